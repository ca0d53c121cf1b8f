// The admin API tells the operator which modes a gateway group really runs and why (native unless
// stated; the products of an exact plan counted by the callout, each with why), takes the read-only field back on PUT, and refuses
// an exact plan in a group that states native mode with a problem naming the field.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertProblem, startTestPortico, type TestPortico } from '../support/portico.ts';

const MODEL = `portico: v1
gatewayGroups:
  - name: edge
    listeners: [{ name: http, port: 18080 }]
  - name: strict
    listeners: [{ name: http, port: 18081 }]
    authz: { mode: exact }
    rateLimit: { mode: combined }
services:
  - name: orders
    endpoints: [{ host: 127.0.0.1, port: 3002 }]
plans:
  - name: gold
    limits: [{ requests: 10, per: minute }]
products:
  - name: shop
    gatewayGroups: [edge, strict]
    routes:
      - name: list
        match: { path: { type: prefix, value: /shop } }
        service: orders
partners:
  - name: acme
    subscriptions:
      - product: shop
        plan: gold
`;

describe('enforcement of a gateway group', () => {
  let portico: TestPortico;
  before(async () => {
    portico = await startTestPortico();
    const applied = await portico.api.post('/api/v1/config', MODEL, { 'content-type': 'application/yaml' });
    assert.equal(applied.status, 200, applied.text);
  });
  after(() => portico?.close());

  it('is native when unstated, as stated otherwise', async () => {
    const edge = await portico.api.get('/api/v1/gateway-groups/edge');
    assert.deepEqual(edge.body.enforcement, { authz: { mode: 'native', stated: false }, rateLimit: { mode: 'native', stated: false } });
    const strict = await portico.api.get('/api/v1/gateway-groups/strict');
    assert.deepEqual(strict.body.enforcement, { authz: { mode: 'exact', stated: true }, rateLimit: { mode: 'combined', stated: true } });
  });

  it('says which products the callout counts for an exact plan, and why; the group stays native', async () => {
    const put = await portico.api.put('/api/v1/plans/gold', { name: 'gold', limits: [{ requests: 10, per: 'minute' }], exact: true });
    assert.equal(put.status, 200, put.text);
    const edge = await portico.api.get('/api/v1/gateway-groups/edge');
    assert.deepEqual(edge.body.enforcement.rateLimit, { mode: 'native', stated: false, calloutProducts: { shop: 'plan gold asks for exact counting (exact: true)' } });
    assert.equal(edge.body.enforcement.authz.mode, 'native');
  });

  it('takes the read-only field back on PUT, and refuses native stated beside an exact plan', async () => {
    const edge = await portico.api.get('/api/v1/gateway-groups/edge');
    const { revision: _r, createdAt: _c, updatedAt: _u, ...body } = edge.body;
    assert.equal((await portico.api.put('/api/v1/gateway-groups/edge', body)).status, 200);
    const refused = await portico.api.put('/api/v1/gateway-groups/edge', { ...body, rateLimit: { mode: 'native' } });
    assertProblem(refused, 422, 'exact');
    assert.equal((await portico.api.get('/api/v1/gateway-groups/edge')).body.enforcement.rateLimit.stated, false, 'nothing changed');
  });
});
