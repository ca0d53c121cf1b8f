// When Envoy cannot reach the rate-limit callout at all (control plane down), a gateway group's
// rateLimit.failureMode decides, in both modes: `closed` answers the contract's 429
// rate_limit_unavailable (Retry-After: 1), `open` lets the request through. In combined mode a
// public route that is only counted (login) follows the rate-limit failure mode, not authorization's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../support/components.ts';
import { settledNode, snapshotVersions, startEnvoy } from '../support/envoy.ts';
import { call } from '../support/seed003.ts';
import type { FleetView } from '../../src/xds/fleet.ts';
import { freePort, newApiKey, startGateway, withKey, type Mode } from './ratelimit-envoy-fixture.ts';

const UNAVAILABLE = '{"error":"rate_limit_unavailable","message":"Rate limiting is temporarily unavailable. Retry after 1 second.","retry_after":1}';

for (const mode of ['combined', 'service'] as const satisfies readonly Mode[]) {
  describe(`rate-limit callout unreachable, ${mode} mode`, () => {
    it('fails closed or open as the group says', { timeout: 300_000 }, async (t) => {
      const g = await startGateway(t, { nodeId: `rl-fail-strict-${mode}`, group: 'strict' });
      if (!g) return;
      const lenient = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${g.portico.grpcPort}`], group: 'lenient', nodeId: `rl-fail-lenient-${mode}` });
      if (!lenient) return;
      const key = newApiKey();
      const ports = { strict: await freePort(), lenient: await freePort() };
      const group = (name: 'strict' | 'lenient') => ({
        name,
        listeners: [{ name: 'http', port: ports[name], address: '127.0.0.1' }],
        authz: { failureMode: 'closed', timeoutMs: 2000 },
        rateLimit: { mode, failureMode: name === 'strict' ? 'closed' : 'open', timeoutMs: 2000 },
      });
      const groups = ['strict', 'lenient'];
      await g.apply({
        portico: 'v1',
        gatewayGroups: [group('strict'), group('lenient')],
        services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: g.upstream.port }] }],
        products: [
          {
            name: 'accounts',
            gatewayGroups: groups,
            basePath: '/accounts',
            auth: { accept: ['none'] },
            publicPlan: 'generous',
            routes: [{ name: 'login', match: { path: { type: 'exact', value: '/login' } }, service: 'echo' }],
          },
          { name: 'api', gatewayGroups: groups, basePath: '/api', auth: { accept: ['api_key'] }, routes: [{ name: 'all', match: { path: { type: 'prefix', value: '/' } }, service: 'echo' }] },
        ],
        plans: [{ name: 'generous', limits: [{ requests: 1000, per: 'hour' }], countBy: { kind: 'client_ip' } }],
        partners: [{ name: 'acme', apiKeys: [{ name: 'one', key }], subscriptions: [{ product: 'api', plan: 'generous' }] }],
      });
      await lenient.waitForListener('http', 60_000);
      await waitFor(
        'the lenient Envoy to ACK the current snapshot',
        async () => {
          const fleet = (await g.portico.api.get<FleetView>('/api/v1/fleet')).body;
          return settledNode(fleet, lenient.nodeId, snapshotVersions(g.portico.xds.cache, 'lenient')) ? true : undefined;
        },
        60_000,
      );
      const strictUrl = `http://127.0.0.1:${ports.strict}`;
      const lenientUrl = `http://127.0.0.1:${ports.lenient}`;

      // Both answer while the callouts are up.
      for (const base of [strictUrl, lenientUrl]) {
        const r = await call(`${base}/accounts/login`, { method: 'POST' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('x-ratelimit-limit'), '1000');
        assert.equal((await call(`${base}/api/x`, withKey(key))).status, 200);
      }

      await g.portico.close();

      await t.test('failureMode closed: the contract 429 rate_limit_unavailable', async () => {
        const r = await call(`${strictUrl}/accounts/login`, { method: 'POST' });
        assert.equal(r.status, 429, r.text);
        assert.equal(r.headers.get('retry-after'), '1');
        assert.equal(r.headers.get('content-type'), 'application/json');
        assert.equal(r.text, UNAVAILABLE);
      });

      await t.test('failureMode open: the request passes, unlimited', async () => {
        const r = await call(`${lenientUrl}/accounts/login`, { method: 'POST' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.service, 'echo');
        assert.equal(r.headers.get('x-ratelimit-limit'), null);
      });

      await t.test("authenticated routes follow authorization's failure mode (closed here) on both groups", async () => {
        for (const base of [strictUrl, lenientUrl]) {
          const r = await call(`${base}/api/x`, withKey(key));
          assert.equal(r.status, 503, r.text);
          assert.equal(r.json.error, 'authorization_unavailable');
        }
      });
    });
  });
}
