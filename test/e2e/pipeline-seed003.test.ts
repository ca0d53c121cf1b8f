// The whole pipeline with a real Envoy: the seed-003 example applied through the admin API is served
// by an Envoy that started with only the bootstrap; the validation gate refuses a write with 422 and
// serves nothing new; a config Envoy NACKs keeps the last good one and shows up in fleet status;
// route prefixes end at a path segment boundary unless a route opts out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { translate } from '../../src/translate/index.ts';
import type { FleetNode, FleetView } from '../../src/xds/fleet.ts';
import { waitFor } from '../support/components.ts';
import { XDS_TYPES, nodeInSync, startEnvoy } from '../support/envoy.ts';
import { startTestPortico } from '../support/portico.ts';
import { call, seed003 } from '../support/seed003.ts';

const GROUP = 'edge';
const NODE = 'edge-seed003';

describe('pipeline: seed 003 through admin API, store, translator, xDS and a real Envoy', () => {
  it('serves the example, gates bad writes, survives a NACK', async (t) => {
    const seed = await seed003();
    const portico = await startTestPortico();
    t.after(async () => {
      await portico.close();
      await seed.close();
    });
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: NODE });
    if (!envoy) return;
    const api = portico.api;
    const gw = seed.gatewayUrl;
    const fleet = async () => (await api.get<FleetView>('/api/v1/fleet')).body;
    const node = async (): Promise<FleetNode | undefined> => (await fleet()).nodes.find((n) => n.nodeId === NODE);
    const typeOf = (n: FleetNode | undefined, type: string) => n?.types.find((x) => x.type === type);
    const inSync = () => nodeInSync(portico, GROUP, NODE);

    try {
      await t.test('Envoy starts with only the bootstrap and serves the example once it is applied', async () => {
        // Connected to an empty control plane: nothing to serve yet.
        await waitFor(
          'Envoy connected, holding the empty config',
          async () => {
            const n = await node();
            return n && ['clusters', 'listeners'].every((x) => typeOf(n, x)?.ackedVersion) ? true : undefined;
          },
          30_000,
        );
        assert.deepEqual(await envoy.dumped('dynamic_listeners'), []);
        assert.deepEqual(await envoy.dumped('dynamic_active_clusters'), []);
        await assert.rejects(fetch(`${gw}/api/health`), 'no listener yet');
        const applied = await api.post('/api/v1/config', seed.yaml(), { 'content-type': 'application/yaml' });
        assert.equal(applied.status, 200, applied.text);
        assert.ok(applied.body.summary.create > 10, applied.text);
        await envoy.waitForListener('http');
        await waitFor('Envoy in sync with the control plane', inSync, 30_000);
        const n = (await node())!;
        assert.equal(n.group, GROUP);
        assert.match(n.userAgent, /^envoy\/1\.40/);
      });

      await t.test("clusters added while Envoy runs get their endpoints without waiting for Envoy's initial-fetch timeout", async () => {
        const timeouts = await envoy.stats('^cluster\\.[a-z-]+\\.init_fetch_timeout$');
        assert.ok(timeouts.size >= 3, JSON.stringify([...timeouts]));
        assert.deepEqual(
          [...timeouts].filter(([, v]) => v > 0),
          [],
          'EDS fetches that timed out',
        );
      });

      await t.test('GET /api/orders/ord_x7k9 reaches the orders service as /orders/ord_x7k9', async () => {
        // A client-sent identity header must never reach the upstream (the gateway strips it).
        const r = await call(`${gw}/api/orders/ord_x7k9`, { headers: { 'x-user-id': 'forged' } });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.service, 'orders');
        assert.equal(r.json.method, 'GET');
        assert.equal(r.json.path, '/orders/ord_x7k9');
        assert.equal(r.json.headers['x-gateway'], 'portico', 'the route sets X-Gateway');
        assert.equal(r.json.headers['x-user-id'], undefined, 'X-User-Id from the client was stripped');
        assert.ok(r.headers.get('x-request-id'), 'Envoy returns the request id');
        const u = await call(`${gw}/api/users/u_1?x=1`);
        assert.equal(u.json.service, 'users');
        assert.equal(u.json.path, '/users/u_1?x=1');
        const p = await call(`${gw}/api/products`);
        assert.deepEqual([p.json.service, p.json.path], ['products', '/products']);
      });

      await t.test('a method the route does not allow is refused with 405 and Allow', async () => {
        const r = await call(`${gw}/api/orders/ord_x7k9`, { method: 'DELETE' });
        assert.equal(r.status, 405);
        assert.equal(r.headers.get('allow'), 'GET, POST');
        assert.match(r.headers.get('content-type') ?? '', /application\/json/);
        assert.deepEqual(r.json, { error: 'method_not_allowed', message: 'This path accepts GET, POST only.' });
        const login = await call(`${gw}/api/auth/login`);
        assert.equal(login.status, 405);
        assert.equal(login.headers.get('allow'), 'POST');
      });

      await t.test("unknown paths get the gateway's JSON 404; /api/health is answered by the gateway", async () => {
        for (const p of ['/nope', '/api/nope', '/apiorders', '/']) {
          const r = await call(`${gw}${p}`);
          assert.equal(r.status, 404, p);
          assert.match(r.headers.get('content-type') ?? '', /application\/json/);
          assert.deepEqual(r.json, { error: 'not_found', message: 'No route matches this request.' }, p);
        }
        const h = await call(`${gw}/api/health`);
        assert.equal(h.status, 200);
        assert.equal(h.headers.get('content-type'), 'application/json');
        assert.deepEqual(h.json, { status: 'ok' });
      });

      await t.test('route prefixes end at a segment boundary unless a route opts out; a product root route answers its base path', async () => {
        for (const p of ['/api/ordersXYZ', '/api/orders.json', '/api/usersX/u_1', '/api/products-all']) {
          const r = await call(`${gw}${p}`);
          assert.equal(r.status, 404, `${p}: ${r.text}`);
          assert.equal(r.json.error, 'not_found', p);
        }
        for (const [p, upstream] of [
          ['/api/orders', '/orders'],
          ['/api/orders/', '/orders/'],
          ['/api/orders?page=2', '/orders?page=2'],
          ['/api/orders/o_1', '/orders/o_1'],
        ]) {
          const r = await call(`${gw}${p}`);
          assert.deepEqual([r.status, r.json?.service, r.json?.path], [200, 'orders', upstream], p);
        }
        // A product whose root route ('/') answers the base path itself, and a route that opts out of the boundary.
        assert.equal((await api.post('/api/v1/products', { name: 'legacy', gatewayGroups: [GROUP], basePath: '/legacy', auth: { accept: ['none'] } })).status, 201);
        const root = await api.post('/api/v1/products/legacy/routes', { name: 'root', match: { path: { type: 'prefix', value: '/' } }, service: 'users', rewrite: { stripPrefix: '/legacy' } });
        assert.equal(root.status, 201, root.text);
        const files = await api.post('/api/v1/products/legacy/routes', {
          name: 'files',
          match: { path: { type: 'prefix', value: '/files', segmentBoundary: false } },
          service: 'products',
          rewrite: { stripPrefix: '/legacy' },
        });
        assert.equal(files.status, 201, files.text);
        const refused = await api.post('/api/v1/products/legacy/routes', { name: 'bad', match: { path: { type: 'exact', value: '/x', segmentBoundary: false } }, service: 'users' });
        assert.equal(refused.status, 422, refused.text);
        assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/);
        assert.deepEqual(
          refused.body.errors.map((e: { field: string; message: string }) => [e.field, e.message]),
          [['match.path.segmentBoundary', 'applies to prefix matches only, not exact']],
        );
        await waitFor('Envoy in sync with the legacy product', inSync, 30_000);
        for (const [p, service, upstream] of [
          ['/legacy', 'users', '/'],
          ['/legacy/', 'users', '/'],
          ['/legacy/a/b', 'users', '/a/b'],
          ['/legacy/files/a', 'products', '/files/a'],
          ['/legacy/filesXYZ', 'products', '/filesXYZ'],
        ]) {
          const r = await call(`${gw}${p}`);
          assert.deepEqual([r.status, r.json?.service, r.json?.path], [200, service, upstream], p);
        }
        assert.equal((await call(`${gw}/legacyXYZ`)).status, 404, 'the base path ends at a segment boundary too');
        assert.equal((await api.delete('/api/v1/products/legacy')).status, 204);
        await waitFor('Envoy in sync without the legacy product', inSync, 30_000);
      });

      await t.test('the validation gate: a write whose translation Envoy would refuse is a 422 naming the field, and nothing served changes', async () => {
        const before = await inSync();
        assert.ok(before);
        const version = portico.xds.cache.getSnapshot(GROUP).version;
        const revision = portico.store.current().revision;
        const dump = await envoy.dumped('dynamic_route_configs');
        const pushes = XDS_TYPES.map((x) => typeOf(before, x)!.pushedAt);

        const bad = {
          name: 'too-many',
          match: { path: { type: 'template', value: '/orders/{a}/{b}/{c}/{d}/{e}/{f}' } },
          service: 'orders',
        };
        const r = await api.post('/api/v1/products/orders/routes', bad);
        assert.equal(r.status, 422, r.text);
        assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
        assert.match(r.body.detail, /match\.path\.value/);
        const err = r.body.errors.find((e: { field: string }) => e.field === 'match.path.value');
        assert.ok(err, r.text);
        assert.equal(err.resource, "route 'orders/too-many'");
        assert.match(err.message, /binds 6 variables; Envoy allows 5/);

        // The same through a declarative document: all or nothing.
        const doc = structuredClone(seed.document);
        doc.products.find((p: { name: string }) => p.name === 'orders').routes.push(bad);
        doc.services.push({ name: 'extra', endpoints: [{ host: '127.0.0.1', port: 1 }] });
        const d = await api.post('/api/v1/config', doc);
        assert.equal(d.status, 422, d.text);
        assert.ok(
          d.body.errors.some((e: { field: string }) => e.field === 'match.path.value'),
          d.text,
        );

        // Nothing was stored, translated into a new version, pushed, or changed in Envoy.
        assert.equal((await api.get('/api/v1/products/orders/routes/too-many')).status, 404);
        assert.equal((await api.get('/api/v1/services/extra')).status, 404);
        assert.equal(portico.store.current().revision, revision);
        assert.equal(portico.xds.cache.getSnapshot(GROUP).version, version);
        assert.equal(portico.xds.cache.hasPending(), false);
        const after = (await node())!;
        assert.deepEqual(
          XDS_TYPES.map((x) => typeOf(after, x)!.pushedAt),
          pushes,
          'no push',
        );
        assert.deepEqual(await envoy.dumped('dynamic_route_configs'), dump);
        assert.equal((await call(`${gw}/api/orders/a/b/c/d/e/f`)).json.path, '/orders/a/b/c/d/e/f', 'still the prefix route');
        assert.equal((await api.get('/readyz')).body.lastError, undefined);
      });

      await t.test('a config Envoy rejects is NACKed once: the last good config keeps serving and fleet status shows the error', async () => {
        const good = (await inSync())!;
        const goodClusters = typeOf(good, 'clusters')!.ackedVersion!;
        const rejectedBefore = await envoy.stat('cluster_manager.cds.update_rejected');
        const current = translate(portico.store.current(), portico.translateOptions).get(GROUP)!;
        // Valid protobuf, so the encoder lets it through; Envoy refuses ORIGINAL_DST with ROUND_ROBIN.
        const bad = { name: 'forced-bad', type: 'ORIGINAL_DST', lb_policy: 'ROUND_ROBIN', connect_timeout: '1s' };
        const badVersion = portico.xds.cache.setGroupResources(GROUP, { ...current, clusters: [...current.clusters, bad] });
        portico.xds.cache.flush();

        const nack = await waitFor('the NACK in GET /api/v1/fleet', async () => typeOf(await node(), 'clusters')?.lastNack, 30_000);
        assert.match(nack.message, /ORIGINAL_DST/);
        const f = await fleet();
        assert.equal(f.groups.find((g) => g.group === GROUP)?.snapshotVersion, badVersion);
        const recent = f.recentNacks.find((x) => x.nodeId === NODE);
        assert.ok(recent, JSON.stringify(f.recentNacks));
        assert.equal(recent.group, GROUP);
        assert.equal(recent.type, 'clusters');
        assert.match(recent.message, /ORIGINAL_DST/);
        const n = (await node())!;
        assert.equal(typeOf(n, 'clusters')!.ackedVersion, goodClusters, 'the node keeps its last good version');
        const dumpedClusters = await envoy.dumped('dynamic_active_clusters');
        assert.ok(!dumpedClusters.some((c) => c.name === 'forced-bad'));
        assert.ok(
          dumpedClusters.every((c) => c.version === goodClusters),
          JSON.stringify(dumpedClusters),
        );
        assert.equal((await call(`${gw}/api/orders/ord_1`)).json?.path, '/orders/ord_1', 'the old config keeps serving');

        // Not re-sent in a loop: no push and no further rejection over a few seconds.
        const pushedAt = typeOf(n, 'clusters')!.pushedAt;
        await new Promise((r) => setTimeout(r, 3000));
        assert.equal(await envoy.stat('cluster_manager.cds.update_rejected'), rejectedBefore + 1, 'rejected exactly once');
        assert.equal(typeOf(await node(), 'clusters')!.pushedAt, pushedAt, 'no push since the NACK');
        assert.equal((await call(`${gw}/api/users/u_2`)).json?.service, 'users');

        // The pipeline's next publication replaces the forced config; Envoy accepts it.
        portico.pipeline.publish(portico.store.current());
        await waitFor('Envoy back in sync', inSync, 30_000);
        assert.equal(typeOf(await node(), 'clusters')!.ackedVersion, goodClusters);
      });
    } catch (e) {
      t.diagnostic(envoy.output().slice(-4000));
      throw e;
    }
  });
});
