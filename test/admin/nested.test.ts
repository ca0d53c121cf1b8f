// One document shape everywhere: the admin API accepts a product with its routes and a partner with
// its subscriptions, API keys and mTLS identities, exactly as `export` writes them, all-or-nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertProblem, startTestPortico, type TestPortico } from '../support/portico.ts';

const orders = {
  name: 'orders',
  gatewayGroups: ['edge'],
  basePath: '/api',
  auth: { accept: ['api_key'] },
  routes: [
    { name: 'list', match: { path: { type: 'prefix', value: '/orders' }, methods: ['GET'] }, service: 'orders' },
    { name: 'create', match: { path: { type: 'exact', value: '/orders' }, methods: ['POST'] }, service: 'orders' },
  ],
};

describe('admin API: nested resources', () => {
  let p: TestPortico;
  before(async () => {
    p = await startTestPortico();
    for (const [path, body] of [
      ['/api/v1/gateway-groups/edge', { name: 'edge', listeners: [{ name: 'http', port: 10080 }] }],
      ['/api/v1/services/orders', { name: 'orders', endpoints: [{ host: 'orders.internal', port: 80 }] }],
      ['/api/v1/plans/gold', { name: 'gold', limits: [{ requests: 100, per: 'minute' }] }],
    ] as const) {
      assert.equal((await p.api.put(path, body)).status, 201);
    }
  });
  after(() => p.close());

  const routeNames = async (product: string) => ((await p.api.get(`/api/v1/products/${product}/routes`)).body.items as Array<{ name: string }>).map((r) => r.name);

  it('creates a product with its routes in one write, and answers with them', async () => {
    const before = BigInt((await p.api.get('/api/v1/audit?limit=1')).body.items[0].changeId);
    const r = await p.api.post('/api/v1/products', orders);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.name, 'orders');
    assert.deepEqual(
      r.body.routes.map((x: { name: string; product: string }) => [x.name, x.product]),
      [
        ['create', 'orders'],
        ['list', 'orders'],
      ],
    );
    assert.deepEqual(await routeNames('orders'), ['create', 'list']);
    const audit = (await p.api.get('/api/v1/audit?limit=10')).body.items as Array<{ changeId: string; kind: string }>;
    const change = audit.filter((e) => BigInt(e.changeId) > before);
    assert.equal(new Set(change.map((e) => e.changeId)).size, 1, 'one change for the product and its routes');
    assert.deepEqual(change.map((e) => e.kind).sort(), ['products', 'routes', 'routes']);
  });

  it('refuses the whole write when a nested route is invalid, naming the field in the body', async () => {
    const billing = { ...orders, name: 'billing', basePath: '/billing' };
    const bad = { ...billing, routes: [orders.routes[0], { name: 'broken', match: { path: { type: 'prefix', value: 'no-slash' } }, service: 'orders' }] };
    const r = await p.api.post('/api/v1/products', bad);
    assertProblem(r, 422, 'routes[1].match.path.value');
    assert.equal((await p.api.get('/api/v1/products/billing')).status, 404, 'the product was not written either');

    const dangling = { ...billing, routes: [{ ...orders.routes[0], service: 'nowhere' }] };
    const d = await p.api.post('/api/v1/products', dangling);
    assertProblem(d, 422, 'routes[0].service');
    assert.equal((await p.api.get('/api/v1/products/billing')).status, 404);

    assertProblem(await p.api.post('/api/v1/products', { ...billing, routes: 'all' }), 422, 'routes');
    assertProblem(await p.api.post('/api/v1/products', { ...billing, routes: [orders.routes[0], orders.routes[0]] }), 422, 'routes[1].name');
  });

  it('PUT with routes makes them exactly the listed ones; without routes leaves them alone', async () => {
    const only = await p.api.put('/api/v1/products/orders', { ...orders, routes: [orders.routes[0]] });
    assert.equal(only.status, 200, only.text);
    assert.deepEqual(await routeNames('orders'), ['list']);
    const untouched = await p.api.put('/api/v1/products/orders', { ...orders, routes: undefined, description: 'orders API' });
    assert.equal(untouched.status, 200, untouched.text);
    assert.equal(untouched.body.routes, undefined);
    assert.deepEqual(await routeNames('orders'), ['list']);
    const patched = await p.api.patch('/api/v1/products/orders', { routes: orders.routes }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual(await routeNames('orders'), ['create', 'list']);
    assert.equal((await p.api.get('/api/v1/products/orders')).body.description, 'orders API');
  });

  it('creates a partner with its subscriptions, keys and identities; an exported entry writes back unchanged', async () => {
    const key = `ptk_abcdefgh_${'s'.repeat(43)}`;
    const acme = {
      name: 'acme',
      subscriptions: [{ product: 'orders', plan: 'gold' }],
      apiKeys: [{ name: 'ci', key }],
      mtlsIdentities: [{ name: 'billing', match: { type: 'spiffe_id', value: 'spiffe://example.test/billing' } }],
    };
    const r = await p.api.post('/api/v1/partners', acme);
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(
      r.body.subscriptions.map((s: { product: string; plan: string }) => [s.product, s.plan]),
      [['orders', 'gold']],
    );
    assert.equal(r.body.apiKeys[0].prefix, 'abcdefgh');
    assert.doesNotMatch(r.text, /hash|ptk_/, 'no key or hash in the answer');

    // The partner as `export` writes it goes back through POST/PUT as is.
    const exported = (await p.api.get('/api/v1/config?format=json')).body;
    const entry = exported.partners.find((x: { name: string }) => x.name === 'acme');
    assert.ok(entry.subscriptions && entry.apiKeys && entry.mtlsIdentities, JSON.stringify(entry));
    const last = (await p.api.get('/api/v1/audit?limit=1')).body.items[0].id;
    const again = await p.api.put('/api/v1/partners/acme', entry);
    assert.equal(again.status, 200, again.text);
    assert.equal((await p.api.get('/api/v1/audit?limit=1')).body.items[0].id, last, 'writing the exported entry back changed nothing');
    // So does a product entry from the export.
    const product = exported.products.find((x: { name: string }) => x.name === 'orders');
    assert.equal(product.routes.length, 2);
    assert.equal((await p.api.delete('/api/v1/partners/acme/subscriptions/orders')).status, 204);
    assert.equal((await p.api.put('/api/v1/partners/acme', entry)).status, 200);
    assert.equal((await p.api.get('/api/v1/partners/acme/subscriptions/orders')).status, 200, 'the subscription was restored');
  });
});
