// A second, independent xDS client: @grpc/grpc-js-xds (proxyless gRPC) resolves xds:///echo through
// our server (API listener → RDS → CDS → EDS) and reaches a gRPC upstream; endpoint changes go live.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { SnapshotCache } from '../../src/xds/cache.ts';
import { proxylessGrpcResources } from '../support/xds-fixtures.ts';
import { FleetStatus } from '../../src/xds/fleet.ts';
import { XdsServer } from '../../src/xds/server.ts';
import { waitFor } from '../support/components.ts';
import { callRaw, startGrpcEcho } from '../support/servers.ts';

const GROUP = 'proxyless';
describe('proxyless gRPC client (@grpc/grpc-js-xds)', () => {
  it('resolves xds:///echo through the control plane and follows endpoint changes', async (t) => {
    const one = await startGrpcEcho('one');
    const two = await startGrpcEcho('two');
    const cache = new SnapshotCache({ debounceMs: 5, debounceMaxMs: 20 });
    const fleet = new FleetStatus({ cache });
    const server = new XdsServer({ cache, fleet });
    cache.setGroupResources(GROUP, proxylessGrpcResources('echo', 'echo-backend', [one.port]));
    cache.flush();
    const port = await server.listen('127.0.0.1', 0);
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [{ server_uri: `127.0.0.1:${port}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'grpc-client-1', cluster: GROUP, locality: {} },
    });
    const xds = await import('@grpc/grpc-js-xds');
    xds.register();
    const client = new grpc.Client('xds:///echo', grpc.credentials.createInsecure());
    try {
      assert.equal(await waitFor('a call through xDS', () => callRaw(client, 'hi').catch(() => undefined)), 'one:hi');
      const node = fleet.node('grpc-client-1');
      assert.ok(node);
      assert.equal(node.group, GROUP);
      assert.match(node.userAgent, /^gRPC Node/);
      assert.deepEqual(
        node.types.map((x) => [x.type, !!x.ackedVersion, x.lastNack]),
        [
          ['clusters', true, undefined],
          ['endpoints', true, undefined],
          ['listeners', true, undefined],
          ['routes', true, undefined],
        ],
      );

      cache.setGroupResources(GROUP, proxylessGrpcResources('echo', 'echo-backend', [two.port]));
      cache.flush();
      assert.equal(
        await waitFor('the endpoint change', async () => {
          const r = await callRaw(client, 'again');
          return r.startsWith('two:') ? r : undefined;
        }),
        'two:again',
      );
    } finally {
      client.close();
      await server.close(500);
      cache.close();
      await one.close();
      await two.close();
      t.diagnostic(JSON.stringify(fleet.status().recentNacks));
    }
  });
});
