// Admin API changes go live in a running Envoy without a restart, under constant request load with
// zero failed requests: a new route (and service), moved endpoints, a canary weight shift
// 100/0 → 50/50 → 0/100, and a removed product (whose URLs then answer the gateway's 404). A removal
// that also drops a cluster is a known xDS ordering gap, kept as a TODO test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../support/components.ts';
import { startEnvoy, waitInSync } from '../support/envoy.ts';
import { describeFailures, startLoad, type LoadTarget } from '../support/load.ts';
import { startTestPortico } from '../support/portico.ts';
import { call, echo, seed003 } from '../support/seed003.ts';

const GROUP = 'edge';
const NODE = 'edge-live';

const serviceOf = (_status: number, body: string): string | undefined => {
  try {
    return (JSON.parse(body) as { service?: string }).service;
  } catch {
    return undefined;
  }
};

describe('pipeline: live changes under constant load', () => {
  it('new route, moved endpoints, canary shift and a removed product: live without restart, zero failed requests', async (t) => {
    const seed = await seed003();
    const ordersB = await echo('orders-b');
    const canary = await echo('orders-canary');
    const inventory = await echo('inventory');
    const portico = await startTestPortico();
    let stopLoad: (() => Promise<unknown>) | undefined;
    t.after(async () => {
      await stopLoad?.();
      await portico.close();
      await seed.close();
      await Promise.all([ordersB.close(), canary.close(), inventory.close()]);
    });
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: NODE });
    if (!envoy) return;
    const api = portico.api;
    const gw = seed.gatewayUrl;
    const pid = envoy.process.child.pid;
    const converged = (what: string) => waitInSync(portico, GROUP, NODE, 30_000, what);
    const ok = (r: { status: number; text: string }, status = 200) => assert.equal(r.status, status, r.text);
    /** n sequential requests through the gateway; which service answered each. */
    const sample = async (path: string, n: number) => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const r = await call(`${gw}${path}`);
        assert.equal(r.status, 200, r.text);
        seen[r.json.service] = (seen[r.json.service] ?? 0) + 1;
      }
      return seen;
    };

    ok(await api.post('/api/v1/config', seed.yaml(), { 'content-type': 'application/yaml' }));
    await envoy.waitForListener('http');
    await converged('Envoy to take the example');

    const targets: LoadTarget[] = [
      { name: 'health', url: `${gw}/api/health`, expect: [200] },
      { name: 'orders', url: `${gw}/api/orders/ord_1`, expect: [200], label: serviceOf },
      { name: 'users', url: `${gw}/api/users/u_1`, expect: [200], label: serviceOf },
      { name: 'products', url: `${gw}/api/products/p_1`, expect: [200], label: serviceOf },
      { name: 'login', url: `${gw}/api/auth/login`, method: 'POST', body: '{}', headers: { 'content-type': 'application/json' }, expect: [200] },
      // Not there yet: the gateway's 404 until the route is added.
      { name: 'inventory', url: `${gw}/api/inventory/i_1`, expect: [404, 200], label: serviceOf },
    ];
    const load = startLoad({ targets, concurrency: 8 });
    stopLoad = () => load.stop();
    await load.waitForRequests(300);
    /** Proof that load ran across a change: requests completed between the write and the convergence. */
    const across = async (label: string, change: () => Promise<void>) => {
      load.mark(label);
      const before = load.completed();
      await change();
      await load.waitForRequests(100);
      assert.ok(load.completed() > before + 100);
    };

    try {
      await t.test('a new route (and the service it needs) goes live', async () => {
        await across('add a route', async () => {
          ok(await api.post('/api/v1/services', { name: 'inventory', endpoints: [{ host: '127.0.0.1', port: inventory.port }] }), 201);
          ok(
            await api.post('/api/v1/products/catalog/routes', {
              name: 'inventory',
              match: { path: { type: 'prefix', value: '/inventory' }, methods: ['GET'] },
              service: 'inventory',
              rewrite: { stripPrefix: '/api' },
            }),
            201,
          );
          await converged('the new route in Envoy');
          await waitFor('the new route to answer', async () => ((await call(`${gw}/api/inventory/i_1`)).json?.service === 'inventory' ? true : undefined));
        });
        const r = await call(`${gw}/api/inventory/i_9`);
        assert.deepEqual([r.status, r.json.service, r.json.path], [200, 'inventory', '/inventory/i_9']);
        load.expect('inventory', [200]);
        await load.waitForRequests(200);
        assert.ok(load.report().targets.inventory!.labels.inventory! > 0, 'the load reached the new route');
      });

      await t.test("a service's endpoints move to another upstream and the traffic follows", async () => {
        assert.deepEqual(await sample('/api/orders/x', 10), { orders: 10 });
        await across('move endpoints', async () => {
          ok(await api.patch('/api/v1/services/orders', { endpoints: [{ host: '127.0.0.1', port: ordersB.port }] }));
          await converged('the endpoint change in Envoy');
          await waitFor('traffic on the new upstream', async () => ((await call(`${gw}/api/orders/x`)).json?.service === 'orders-b' ? true : undefined));
        });
        assert.deepEqual(await sample('/api/orders/x', 30), { 'orders-b': 30 });
        assert.ok(load.report().targets.orders!.labels['orders-b']! > 0, 'the load followed');
      });

      await t.test('canary weights shift 100/0 → 50/50 → 0/100 and the distribution moves', async () => {
        ok(await api.post('/api/v1/services', { name: 'orders-canary', endpoints: [{ host: '127.0.0.1', port: canary.port }] }), 201);
        const shift = async (stable: number, next: number) => {
          await across(`weights ${stable}/${next}`, async () => {
            ok(
              await api.patch('/api/v1/products/orders/routes/orders', {
                service: null,
                backends: [
                  { service: 'orders', weight: stable },
                  { service: 'orders-canary', weight: next },
                ],
              }),
            );
            await converged(`weights ${stable}/${next} in Envoy`);
          });
        };
        await shift(100, 0);
        assert.deepEqual(await sample('/api/orders/x', 40), { 'orders-b': 40 });
        await shift(50, 50);
        const half = await sample('/api/orders/x', 200);
        assert.equal((half['orders-b'] ?? 0) + (half['orders-canary'] ?? 0), 200, JSON.stringify(half));
        // Binomial(200, 0.5): outside [50, 150] has a probability below 1e-12.
        assert.ok((half['orders-canary'] ?? 0) >= 50 && (half['orders-canary'] ?? 0) <= 150, JSON.stringify(half));
        await shift(0, 100);
        await waitFor('only the canary', async () => ((await call(`${gw}/api/orders/x`)).json?.service === 'orders-canary' ? true : undefined));
        assert.deepEqual(await sample('/api/orders/x', 40), { 'orders-canary': 40 });
        assert.ok(load.report().targets.orders!.labels['orders-canary']! > 0);
      });

      await t.test('a removed product answers 404 while every other URL keeps working', async () => {
        // users: its service stays (accounts' login and register use it), so only routes change.
        load.expect('users', [200, 404]);
        await across('remove a product', async () => {
          // The subscription refers to the product: it goes first (one write each, as an admin would).
          ok(await api.delete('/api/v1/partners/web-app/subscriptions/users'), 204);
          ok(await api.delete('/api/v1/products/users'), 204);
          await converged('the removal in Envoy');
          await waitFor('the removed product to answer 404', async () => ((await call(`${gw}/api/users/x`)).status === 404 ? true : undefined));
        });
        for (let i = 0; i < 10; i++) {
          const r = await call(`${gw}/api/users/u_${i}`);
          assert.equal(r.status, 404);
          assert.deepEqual(r.json, { error: 'not_found', message: 'No route matches this request.' });
        }
        const login = await call(`${gw}/api/auth/login`, { method: 'POST', body: '{}' });
        assert.deepEqual([login.status, login.json.service, login.json.path], [200, 'users', '/auth/login']);
        load.expect('users', [404]);
        await load.waitForRequests(200);
      });

      await t.test('the constant load saw zero failed requests, and Envoy was never restarted', async () => {
        const report = await load.stop();
        stopLoad = undefined;
        assert.equal(report.failures.length, 0, describeFailures(report.failures, report.marks));
        for (const [name, s] of Object.entries(report.targets)) assert.ok(s.requests >= 100, `${name}: only ${s.requests} requests`);
        const users = report.targets.users!.statuses;
        assert.ok(users['404']! > 0 && users['200']! > 0, `the load ran across the removal: ${JSON.stringify(users)}`);
        t.diagnostic(`${report.requests} requests in ${report.durationMs} ms: ${JSON.stringify(Object.fromEntries(Object.entries(report.targets).map(([k, v]) => [k, v.statuses])))}`);
        assert.equal(envoy.process.child.pid, pid);
        assert.equal(envoy.process.child.exitCode, null);
        assert.equal(await envoy.stat('server.hot_restart_epoch'), 0);
      });

      await t.test('a removed product whose service nothing else uses: its cluster outlives the routes to it (no 503 in between)', async () => {
        const removal = startLoad({
          targets: [
            { name: 'orders', url: `${gw}/api/orders/ord_1`, expect: [200, 404] },
            { name: 'products', url: `${gw}/api/products/p_1`, expect: [200] },
          ],
          concurrency: 8,
        });
        const noCluster = await envoy.stat('http.edge.no_cluster');
        try {
          await removal.waitForRequests(200);
          // The home flow calls the orders service too: it goes first, so nothing else uses orders.
          ok(await api.delete('/api/v1/partners/web-app/subscriptions/home'), 204);
          ok(await api.delete('/api/v1/products/home'), 204);
          ok(await api.delete('/api/v1/partners/web-app/subscriptions/orders'), 204);
          ok(await api.delete('/api/v1/products/orders'), 204);
          await converged('the removal in Envoy');
          await waitFor('the removed product to answer 404', async () => ((await call(`${gw}/api/orders/x`)).status === 404 ? true : undefined));
          // The clusters go in a second step, once Envoy has ACKed the routes that stopped using them.
          await waitFor(
            'the unused clusters to be removed',
            async () => {
              const clusters = (await envoy.dumped('dynamic_active_clusters')).map((c) => c.name);
              return !clusters.includes('orders') && !clusters.includes('orders-canary') ? true : undefined;
            },
            30_000,
          );
          await removal.waitForRequests(200);
        } finally {
          const report = await removal.stop();
          assert.equal(report.failures.length, 0, `${describeFailures(report.failures)}\nhttp.edge.no_cluster +${(await envoy.stat('http.edge.no_cluster')) - noCluster}`);
        }
      });
    } catch (e) {
      t.diagnostic(envoy.output().slice(-4000));
      throw e;
    }
  });
});
