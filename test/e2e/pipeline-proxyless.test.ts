// A second, independent xDS client through the whole pipeline: a proxyless-grpc gateway group, a
// service and a product with a host created through the admin API; a real @grpc/grpc-js-xds client
// dials xds:///<host>, reads listener → routes → cluster → endpoints from us and reaches the gRPC
// upstream; admin changes follow live; what gRPC clients cannot do is refused with 422.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { FleetView } from '../../src/xds/fleet.ts';
import { waitFor } from '../support/components.ts';
import { waitInSync } from '../support/envoy.ts';
import { startTestPortico } from '../support/portico.ts';
import { callRaw, startGrpcEcho } from '../support/servers.ts';

const GROUP = 'mesh';
const NODE = 'grpc-client-pipeline';
const HOST = 'greeter.internal';
describe('pipeline: proxyless gRPC client (@grpc/grpc-js-xds) on translated config', () => {
  it('admin API → store → translator → xDS → a gRPC client calling xds:///<host>', async (t) => {
    const one = await startGrpcEcho('one');
    const two = await startGrpcEcho('two');
    const portico = await startTestPortico();
    const api = portico.api;
    let client: grpc.Client | undefined;
    t.after(async () => {
      client?.close();
      await portico.close();
      await one.close();
      await two.close();
    });
    const created = (r: { status: number; text: string }) => assert.equal(r.status, 201, r.text);
    const converged = (what: string) => waitInSync(portico, GROUP, NODE, 30_000, what);

    await t.test('the group, service, product and route are created through the admin API', async () => {
      created(await api.post('/api/v1/gateway-groups', { name: GROUP, kind: 'proxyless-grpc', description: 'gRPC clients that read xDS themselves' }));
      created(await api.post('/api/v1/services', { name: 'greeter', protocol: 'http2', endpoints: [{ host: '127.0.0.1', port: one.port }] }));
      created(await api.post('/api/v1/products', { name: 'greeter', gatewayGroups: [GROUP], hosts: [HOST], auth: { accept: ['none'] } }));
      created(await api.post('/api/v1/products/greeter/routes', { name: 'say', match: { path: { type: 'prefix', value: '/portico.test.Echo/' } }, service: 'greeter' }));
      await waitFor('the snapshot to be published', () => (portico.xds.cache.hasPending() ? undefined : true));
      const snap = portico.xds.cache.getSnapshot(GROUP);
      assert.deepEqual(Object.fromEntries([...snap.types.values()].map((ts) => [ts.typeUrl.split('.').pop(), [...ts.resources.keys()]])), {
        Cluster: ['greeter'],
        ClusterLoadAssignment: ['greeter'],
        Listener: [HOST],
        RouteConfiguration: [HOST],
        Secret: [],
      });
    });

    await t.test('what gRPC clients cannot do is refused with 422, naming the field', async () => {
      const noHost = await api.post('/api/v1/products', { name: 'nohost', gatewayGroups: [GROUP], auth: { accept: ['none'] } });
      assert.equal(noHost.status, 422, noHost.text);
      assert.deepEqual(
        noHost.body.errors.map((e: { field: string }) => e.field),
        ['hosts'],
      );
      assert.match(noHost.body.detail, /hosts is required in proxyless-grpc gateway group 'mesh'/);
      const methods = await api.post('/api/v1/products/greeter/routes', {
        name: 'post-only',
        match: { path: { type: 'exact', value: '/portico.test.Echo/Other' }, methods: ['POST'] },
        service: 'greeter',
      });
      assert.equal(methods.status, 422, methods.text);
      assert.deepEqual(
        methods.body.errors.map((e: { field: string }) => e.field),
        ['match.methods'],
      );
      const secured = await api.patch('/api/v1/products/greeter', { auth: { accept: ['jwt'] } });
      assert.equal(secured.status, 422, secured.text);
      assert.match(secured.body.errors[0].message, /gRPC clients do not call ext_authz/);
      assert.equal((await api.get('/api/v1/products/nohost')).status, 404);
    });

    await t.test('a real gRPC client resolves xds:///greeter.internal through us and reaches the upstream', async () => {
      process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
        xds_servers: [{ server_uri: `127.0.0.1:${portico.grpcPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
        node: { id: NODE, cluster: GROUP, locality: {} },
      });
      const xds = await import('@grpc/grpc-js-xds');
      xds.register();
      client = new grpc.Client(`xds:///${HOST}`, grpc.credentials.createInsecure());
      assert.equal(await waitFor('a call through xDS', () => callRaw(client!, 'hi').catch(() => undefined), 30_000), 'one:hi');
      const node = await converged('the client in sync');
      assert.equal(node.group, GROUP);
      assert.match(node.userAgent, /^gRPC Node/);
      assert.deepEqual(
        node.types.map((x) => [x.type, x.lastNack?.message]),
        [
          ['clusters', undefined],
          ['endpoints', undefined],
          ['listeners', undefined],
          ['routes', undefined],
        ],
      );
      // No route for other services: the client fails the call itself (no Envoy-style 404 route).
      await assert.rejects(callRaw(client, 'x', '/other.Service/Call'), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    });

    await t.test('admin changes reach the client live: moved endpoints, then a weighted canary', async () => {
      assert.equal((await api.patch('/api/v1/services/greeter', { endpoints: [{ host: '127.0.0.1', port: two.port }] })).status, 200);
      await converged('the endpoint change');
      assert.equal(await waitFor('the moved endpoint', async () => ((await callRaw(client!, 'a')).startsWith('two:') ? 'two' : undefined), 30_000), 'two');

      created(await api.post('/api/v1/services', { name: 'greeter-canary', endpoints: [{ host: '127.0.0.1', port: one.port }] }));
      const shifted = await api.patch('/api/v1/products/greeter/routes/say', {
        service: null,
        backends: [
          { service: 'greeter', weight: 0 },
          { service: 'greeter-canary', weight: 100 },
        ],
      });
      assert.equal(shifted.status, 200, shifted.text);
      await converged('the canary');
      await waitFor('the canary to answer', async () => ((await callRaw(client!, 'b')).startsWith('one:') ? true : undefined), 30_000);
      for (let i = 0; i < 10; i++) assert.equal(await callRaw(client!, `c${i}`), `one:c${i}`);
      const n = (await api.get<FleetView>('/api/v1/fleet')).body.nodes.find((x) => x.nodeId === NODE)!;
      assert.ok(
        n.types.every((x) => !x.lastNack),
        JSON.stringify(n.types),
      );
    });
  });
});
