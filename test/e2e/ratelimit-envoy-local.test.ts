// Envoy's local token buckets, the safety net that needs no callout: a gateway group's bucket
// (every request on the listener draws from it) and routes' own buckets, through the whole pipeline
// and a real Envoy. A locally refused request never reaches ext_authz; once the config is in Envoy
// the control plane can go away and the buckets still hold. Refusals carry the gateway's 429 shape.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GatewayResponse } from '../support/seed003.ts';
import { freePort, newApiKey, startGateway, withKey } from './ratelimit-envoy-fixture.ts';

/** A local bucket's refusal: 429, Retry-After = the bucket's fill interval, Reset = now + Retry-After, the gateway's JSON body. */
function assertLocal429(r: GatewayResponse, o: { limit: number; retryAfter: number }, what: string): void {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.headers.get('retry-after'), String(o.retryAfter), `${what}: Retry-After`);
  assert.equal(r.headers.get('x-ratelimit-limit'), String(o.limit), `${what}: X-RateLimit-Limit`);
  assert.equal(r.headers.get('x-ratelimit-remaining'), '0', `${what}: X-RateLimit-Remaining`);
  const reset = Number(r.headers.get('x-ratelimit-reset'));
  assert.ok(Math.abs(reset - (Date.now() / 1000 + o.retryAfter)) <= 5, `${what}: X-RateLimit-Reset ${reset} is not now + Retry-After`);
  assert.equal(r.headers.get('content-type'), 'application/json', `${what}: content-type`);
  assert.equal(
    r.text,
    `{"error":"rate_limit_exceeded","message":"Too many requests. Retry after ${o.retryAfter} ${o.retryAfter === 1 ? 'second' : 'seconds'}.","retry_after":${o.retryAfter}}`,
    `${what}: body`,
  );
  assert.equal(r.headers.get('x-envoy-ratelimited'), null, what);
}

describe('local rate limits through Envoy', () => {
  it('a group bucket and route buckets, enforced by Envoy alone', { timeout: 300_000 }, async (t) => {
    const g = await startGateway(t, { nodeId: 'rl-local' });
    if (!g) return;
    const key = newApiKey();
    const route = (name: string, value: string, extra: Record<string, unknown> = {}) => ({ name, match: { path: { type: 'prefix', value } }, service: 'echo', ...extra });
    // Per hour, so no bucket refills while the test runs: the counts are exact.
    const doc = {
      portico: 'v1',
      gatewayGroups: [
        {
          name: 'edge',
          listeners: [{ name: 'http', port: await freePort(), address: '127.0.0.1' }],
          // Written for the callouts: a locally refused request never reaches ext_authz (natively, api_key_auth runs first).
          authz: { mode: 'exact', failureMode: 'closed', timeoutMs: 5000 },
          // 12 tokens for the whole listener; one every 360 s.
          localRateLimit: { requests: 10, per: 'hour', burst: 2 },
        },
      ],
      services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: g.upstream.port }] }],
      products: [
        {
          name: 'site',
          gatewayGroups: ['edge'],
          basePath: '/site',
          auth: { accept: ['none'] },
          // 2 per hour: one token every 1800 s.
          routes: [route('tight', '/tight', { localRateLimit: { requests: 2, per: 'hour' } }), route('open', '/open')],
        },
        { name: 'secure', gatewayGroups: ['edge'], basePath: '/secure', auth: { accept: ['api_key'] }, routes: [route('secured', '/', { localRateLimit: { requests: 2, per: 'hour' } })] },
      ],
      plans: [{ name: 'free' }],
      partners: [{ name: 'acme', apiKeys: [{ name: 'one', key }], subscriptions: [{ product: 'secure', plan: 'free' }] }],
    };
    await g.apply(doc);
    const checks = async () => (await g.envoy.stats('^http\\.edge\\.ext_authz\\.(ok|denied|error)$')) as Map<string, number>;
    const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

    try {
      await t.test('a route bucket refuses before ext_authz: refused requests cost no callout', async () => {
        const before = total(await checks());
        assert.equal((await g.call('/secure/a', withKey(key))).status, 200);
        assert.equal((await g.call('/secure/b', withKey(key))).status, 200);
        assertLocal429(await g.call('/secure/c', withKey(key)), { limit: 2, retryAfter: 1800 }, 'third with a key');
        // Not 401: the bucket answers before anyone looks at credentials.
        assertLocal429(await g.call('/secure/d'), { limit: 2, retryAfter: 1800 }, 'fourth without a key');
        assert.equal(total(await checks()) - before, 2, 'ext_authz was asked twice, for the two allowed requests only');
        assert.ok((await g.envoy.stat('portico_local_rate_limit_route.http_local_rate_limit.rate_limited')) >= 2);
      });

      // The group bucket has given 4 of its 12 tokens (the route bucket's refusals drew from it too).
      await t.test('with the control plane gone, Envoy alone keeps enforcing the route and group buckets', async () => {
        await g.portico.close();
        assert.equal((await g.call('/site/tight')).status, 200);
        assert.equal((await g.call('/site/tight')).status, 200);
        assertLocal429(await g.call('/site/tight'), { limit: 2, retryAfter: 1800 }, 'tight 3');
        // 12 - 4 - 3 = 5 tokens left for the whole listener.
        for (let i = 1; i <= 5; i++) assert.equal((await g.call(`/site/open/${i}`)).status, 200, `open ${i}`);
        assertLocal429(await g.call('/site/open/6'), { limit: 10, retryAfter: 360 }, 'the group bucket is empty');
        assertLocal429(await g.call('/nowhere'), { limit: 10, retryAfter: 360 }, 'every request on the listener draws from it, even a 404');
        assert.ok((await g.envoy.stat('portico_local_rate_limit_group.http_local_rate_limit.rate_limited')) >= 2);
      });
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-3000));
      throw e;
    }
  });

  it('a bucket that refills within a second says "Retry after 1 second." (singular)', { timeout: 300_000 }, async (t) => {
    const g = await startGateway(t, { nodeId: 'rl-local-one' });
    if (!g) return;
    await g.apply({
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: await freePort(), address: '127.0.0.1' }] }],
      services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: g.upstream.port }] }],
      products: [
        {
          name: 'site',
          gatewayGroups: ['edge'],
          basePath: '/site',
          auth: { accept: ['none'] },
          routes: [{ name: 'quick', match: { path: { type: 'prefix', value: '/quick' } }, service: 'echo', localRateLimit: { requests: 1, per: 'second' } }],
        },
      ],
    });
    try {
      // One token a second: of a few requests sent at once, all but one are refused (tried again if
      // the machine was so slow that the bucket refilled between them).
      let refused: GatewayResponse | undefined;
      for (let round = 0; round < 20 && !refused; round++) {
        const rs = await Promise.all(Array.from({ length: 4 }, (_, i) => g.call(`/site/quick/${round}-${i}`)));
        for (const r of rs) assert.ok(r.status === 200 || r.status === 429, `${r.status} ${r.text}`);
        refused = rs.find((r) => r.status === 429);
      }
      assert.ok(refused, 'the 1/s bucket never refused');
      assertLocal429(refused, { limit: 1, retryAfter: 1 }, 'the 1/s bucket');
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-3000));
      throw e;
    }
  });
});
