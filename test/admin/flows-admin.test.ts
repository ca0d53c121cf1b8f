// Flows through the admin API: a route's flow and body transform are part of the route resource
// (OpenAPI, CRUD, declarative export); every bad flow is a 422 naming the step and field, and
// nothing is stored.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { homeFlow } from '../../src/flows/index.ts';
import { startTestPortico, type TestPortico } from '../support/portico.ts';

const yaml = { 'content-type': 'application/yaml' };
const MODEL = `
portico: v1
gatewayGroups:
  - name: edge
    listeners: [{ name: http, port: 10000 }]
  - name: mesh
    kind: proxyless-grpc
services:
  - { name: users, endpoints: [{ host: 127.0.0.1, port: 3001 }] }
  - { name: orders, endpoints: [{ host: 127.0.0.1, port: 3002 }] }
  - { name: products, endpoints: [{ host: 127.0.0.1, port: 3003 }] }
products:
  - name: app
    gatewayGroups: [edge]
    basePath: /api
    auth: { accept: [none] }
  - name: grpc
    gatewayGroups: [mesh]
    hosts: [grpc.internal]
    auth: { accept: [none] }
`;

const route = (name: string, extra: Record<string, unknown>) => ({ name, match: { path: { type: 'exact', value: `/${name}` } }, ...extra });
const call = (name: string, path = '/x', extra: object = {}) => ({ name, call: { service: 'users', path }, ...extra });

describe('flows in the admin API', () => {
  let portico: TestPortico;
  before(async () => {
    portico = await startTestPortico();
    const r = await portico.api.post('/api/v1/config', MODEL, yaml);
    assert.equal(r.status, 200, r.text);
  });
  after(() => portico?.close());

  it('documents flow and transform on the route schema (OpenAPI)', async () => {
    const doc = await portico.api.get('/openapi.json');
    assert.equal(doc.status, 200);
    const body = doc.body.paths['/api/v1/products/{parent}/routes/{name}'].put.requestBody.content['application/json'].schema;
    assert.equal(body.$ref, '#/components/schemas/RouteInput');
    const schema = doc.body.components.schemas.RouteInput;
    assert.ok(schema.properties.flow?.properties?.steps, JSON.stringify(schema.properties.flow).slice(0, 300));
    assert.ok(schema.properties.transform?.properties?.response, 'transform documented');
    // Steps nest (parallel, switch): the step schema is a shared component the flow refers to.
    const ref: string = schema.properties.flow.properties.steps.items.$ref;
    const step = doc.body.components.schemas[ref.replace('#/components/schemas/', '')];
    assert.ok(step?.properties?.parallel && step.properties.switch && step.properties.code, `the step schema resolves: ${ref}`);
  });

  it('stores a flow route, returns and exports it, and applying the export changes nothing', async () => {
    const created = await portico.api.post('/api/v1/products/app/routes', route('home', { flow: homeFlow() }));
    assert.equal(created.status, 201, created.text);
    const got = await portico.api.get('/api/v1/products/app/routes/home');
    assert.deepEqual(got.body.flow, homeFlow());
    const exported = await portico.api.get('/api/v1/config', { accept: 'application/yaml' });
    assert.equal(exported.status, 200);
    const doc = YAML.parse(exported.text);
    assert.deepEqual(doc.products.find((p: { name: string }) => p.name === 'app').routes[0].flow, homeFlow());
    const again = await portico.api.post('/api/v1/config', exported.text, yaml);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.changed, false);
  });

  const refusals: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['a step reading a later step', { flow: { steps: [{ name: 'reply', respond: { body: 'steps.user.body' } }, call('user')] } }, 'flow.steps[0].respond.body', /user/],
    ['a step after an unconditional respond', { flow: { steps: [{ name: 'reply', respond: { status: 204 } }, call('late')] } }, 'flow.steps[1]', /unreachable/],
    ['an expression that does not compile', { flow: { steps: [call('user'), { name: 'reply', respond: { body: '{"a": steps.user.body' } }] } }, 'flow.steps[1].respond.body', /./],
    ['a path template that does not compile', { flow: { steps: [call('user', '/users/{request.params.id')] } }, 'flow.steps[0].call.path', /./],
    ['two kinds in one step', { flow: { steps: [{ name: 'both', call: { service: 'users', path: '/x' }, respond: {} }] } }, 'flow.steps[0]', /exactly one|one of/],
    ['a call to a service the model lacks', { flow: { steps: [{ name: 'x', call: { service: 'ghost', path: '/' } }] } }, 'flow.steps[0].call.service', /ghost/],
    ['code that does not compile', { flow: { steps: [{ name: 'js', code: { source: 'return {' } }] } }, 'flow.steps[0].code.source', /./],
    ['a branch reading its sibling', { flow: { steps: [{ name: 'p', parallel: { steps: [call('a'), call('b', '/b/{steps.a.body.id}')] } }] } }, 'flow.steps[0].parallel.steps[1].call.path', /a/],
    ['more steps than the limit', { flow: { steps: Array.from({ length: 65 }, (_, i) => call(`s${i}`)) } }, 'flow.steps', /64|at most/],
    ['an unknown field in a step', { flow: { steps: [{ name: 'x', call: { service: 'users', path: '/', retry: 2 } }] } }, 'flow.steps[0].call.retry', /not a known field/],
    ['a flow beside a service', { service: 'users', flow: { steps: [call('x')] } }, 'service', /exactly one/],
    ['a flow with a path rewrite', { flow: { steps: [call('x')] }, rewrite: { host: 'users.internal' } }, 'rewrite', /flow/],
    ['a body transform on weighted backends', { backends: [{ service: 'users', weight: 1 }], transform: { response: { remove: ['a'] } } }, 'transform', /one service/],
  ];
  for (const [what, body, field, message] of refusals) {
    it(`refuses ${what} with 422 at ${field}, storing nothing`, async () => {
      const revision = portico.store.current().revision;
      const r = await portico.api.put('/api/v1/products/app/routes/bad', route('bad', body));
      assert.equal(r.status, 422, r.text);
      assert.match(r.headers.get('content-type') ?? '', /problem\+json/);
      const at = (r.body.errors as Array<{ field: string; message: string }>).filter((e) => e.field === field);
      assert.ok(at.length >= 1, `an error at ${field}: ${r.text}`);
      assert.ok(
        at.some((e) => message.test(e.message)),
        r.text,
      );
      assert.equal(portico.store.current().revision, revision, 'nothing committed');
      assert.equal((await portico.api.get('/api/v1/products/app/routes/bad')).status, 404);
    });
  }

  it('refuses a flow on a proxyless gRPC group (no runtime between client and service)', async () => {
    const r = await portico.api.put('/api/v1/products/grpc/routes/bad', { name: 'bad', match: { path: { type: 'prefix', value: '/' } }, flow: { steps: [call('x')] } });
    assert.equal(r.status, 422, r.text);
    assert.ok(
      r.body.errors.some((e: { field: string }) => e.field === 'flow'),
      r.text,
    );
  });

  it('refuses a bad flow in a declarative file as a whole (nothing applied)', async () => {
    const doc = YAML.parse(MODEL);
    doc.products[0].routes = [route('fine', { service: 'users' }), route('broken', { flow: { steps: [{ name: 'r', respond: { body: 'steps.nope.body' } }] } })];
    const revision = portico.store.current().revision;
    const r = await portico.api.post('/api/v1/config', YAML.stringify(doc), yaml);
    assert.equal(r.status, 422, r.text);
    assert.match(r.text, /flow\.steps\[0\]\.respond\.body/);
    assert.equal(portico.store.current().revision, revision);
  });
});
