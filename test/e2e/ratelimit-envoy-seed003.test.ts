// Seed 003's rate limits as examples/gateway.yaml writes them, through the admin API and a real
// Envoy with real JWTs: login 10/min by client IP (the accounts product's public plan), search
// 20/s by user, the default 100/s burst 20 by user (X-User-Id, forwarded from the token's sub);
// health never limited. First in combined mode (the example's default), then switched live to
// service mode: the same counters, now answered by the rate-limit service; then to native mode:
// the same limits in Envoy's own token buckets, no rate-limit decision by the control plane.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startEnvoy, waitInSync } from '../support/envoy.ts';
import { startTestIssuer } from '../support/jwks.ts';
import { startTestPortico } from '../support/portico.ts';
import { call, seed003, type GatewayResponse } from '../support/seed003.ts';
import { assert429 } from './ratelimit-envoy-fixture.ts';

const NODE = 'rl-seed003';

describe('seed 003 rate limits through Envoy', () => {
  it('login by client IP, search and the default by user, health unlimited, in every mode', { timeout: 300_000 }, async (t) => {
    const issuer = await startTestIssuer();
    const seed = await seed003({ keepAuth: true, keepLimits: true, jwksUri: issuer.jwksUri });
    const portico = await startTestPortico();
    t.after(async () => {
      await portico.close();
      await seed.close();
      await issuer.close();
    });
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: 'edge', nodeId: NODE });
    if (!envoy) return;
    const api = portico.api;
    const inSync = () => waitInSync(portico, 'edge', NODE);
    // The example's callout timeouts are production ones (100 ms for rate limiting); on a loaded
    // test machine a late answer would fail open and let a request through. Only the timeouts change.
    const edge = seed.document.gatewayGroups.find((g: { name: string }) => g.name === 'edge');
    edge.authz.timeoutMs = 5000;
    edge.rateLimit.timeoutMs = 5000;
    const applied = await api.post('/api/v1/config', seed.yaml(), { 'content-type': 'application/yaml' });
    assert.equal(applied.status, 200, applied.text);
    await envoy.waitForListener('http', 60_000);
    await inSync();
    await portico.authz.ready();
    const gw = seed.gatewayUrl;
    const bearer = async (sub: string) => ({ headers: { authorization: `Bearer ${await issuer.token({ sub, claims: { team: 'web-app' } })}` } });
    const limits = (r: GatewayResponse) => [r.status, r.headers.get('x-ratelimit-limit'), r.headers.get('x-ratelimit-remaining')];
    const decisions = async () => {
      const text = await (await fetch(`${portico.adminUrl}/metrics`)).text();
      return text
        .split('\n')
        .filter((l) => l.startsWith('portico_ratelimit_decisions_total{') && l.includes('product="accounts"'))
        .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    };

    try {
      await t.test('combined: login allows 10 a minute per client IP, then the contract 429', async () => {
        const started = Date.now();
        const first = await call(`${gw}/api/auth/login`, { method: 'POST', body: '{}' });
        assert.deepEqual(limits(first), [200, '10', '9']);
        let allowed = 1;
        let refused: GatewayResponse | undefined;
        for (let i = 0; i < 30 && !refused; i++) {
          const r = await call(`${gw}/api/auth/login`, { method: 'POST', body: '{}' });
          if (r.status === 429) refused = r;
          else {
            assert.equal(r.status, 200, r.text);
            allowed++;
          }
        }
        assert.ok(refused, 'login was never refused');
        // One token every 6 s: exactly 10, unless the machine took over 6 s to send them.
        const refills = Math.floor((Date.now() - started) / 6000);
        assert.ok(allowed >= 10 && allowed <= 10 + refills, `${allowed} logins allowed in ${Date.now() - started} ms`);
        assert429(refused, { limit: 10, maxRetryAfter: 6 }, 'login over the limit');
        // Register is on the plan's default (100/s burst 20, by X-User-Id, here by address): untouched.
        assert.deepEqual(limits(await call(`${gw}/api/auth/register`, { method: 'POST', body: '{}' })), [200, '100', '100']);
      });

      await t.test('combined: health is never limited and makes no callout', async () => {
        const before = await decisions();
        for (let i = 0; i < 15; i++) assert.deepEqual(limits(await call(`${gw}/api/health`)), [200, null, null]);
        assert.equal(await decisions(), before);
      });

      await t.test('combined: search 20/s by user, the default 100/s burst 20 by user (first request of a full bucket)', async () => {
        const a = await bearer('user-a');
        assert.deepEqual(limits(await call(`${gw}/api/search?q=x`, a)), [200, '20', '19']);
        assert.deepEqual(limits(await call(`${gw}/api/products`, a)), [200, '100', '100']);
        assert.deepEqual(limits(await call(`${gw}/api/orders/o_1`, a)), [200, '100', '100'], 'each product has its own default budget');
        assert.deepEqual(limits(await call(`${gw}/api/search?q=x`, await bearer('user-b'))), [200, '20', '19'], 'another user, another budget');
      });

      await t.test('switched to service mode: same limits, same counters', async () => {
        const r = await api.patch('/api/v1/gateway-groups/edge', { rateLimit: { mode: 'service' } }, { 'content-type': 'application/merge-patch+json' });
        assert.equal(r.status, 200, r.text);
        await inSync();
        assert.ok(JSON.stringify(await envoy.configDump('dynamic_listeners')).includes('envoy.filters.http.ratelimit'));
        const c = await bearer('user-c');
        assert.deepEqual(limits(await call(`${gw}/api/search?q=x`, c)), [200, '20', '19']);
        assert.deepEqual(limits(await call(`${gw}/api/users/u_1`, c)), [200, '100', '100']);
        const login = await call(`${gw}/api/auth/login`, { method: 'POST', body: '{}' });
        if (login.status === 429) assert429(login, { limit: 10, maxRetryAfter: 6 }, 'login, still over');
        else {
          // Tokens refilled meanwhile (one per 6 s): the service counts on from the shared state, it does not start full.
          const [status, limit, remaining] = limits(login);
          assert.deepEqual([status, limit], [200, '10'], login.text);
          assert.ok(Number(remaining) < 9, `login Remaining ${remaining}: counted on from the combined mode's state`);
        }
        const before = await decisions();
        assert.deepEqual(limits(await call(`${gw}/api/health`)), [200, null, null]);
        assert.equal(await decisions(), before);
      });

      await t.test('switched to native mode: the same limits in Envoy, no decision by the control plane', async () => {
        const r = await api.patch('/api/v1/gateway-groups/edge', { rateLimit: { mode: 'native' } }, { 'content-type': 'application/merge-patch+json' });
        assert.equal(r.status, 200, r.text);
        await inSync();
        const dump = JSON.stringify(await envoy.configDump('dynamic_listeners'));
        assert.ok(dump.includes('portico.local_ratelimit.plans.1') && !dump.includes('envoy.filters.http.ratelimit'));
        const before = await decisions();
        /** Sends until refused (at most `max`); returns how many passed and the refusal. */
        const until429 = async (url: string, init: RequestInit, max: number) => {
          let passed = 0;
          for (let i = 0; i < max; i++) {
            const res = await call(url, init);
            if (res.status === 429) return { passed, refused: res };
            assert.equal(res.status, 200, res.text);
            passed++;
          }
          return { passed, refused: undefined };
        };
        // Login: a new bucket of 10 by client address (native buckets start full), one token every 6 s.
        const started = Date.now();
        const login = await until429(`${gw}/api/auth/login`, { method: 'POST', body: '{}' }, 40);
        assert.ok(login.refused, 'login was never refused');
        const refills = Math.floor((Date.now() - started) / 6000);
        assert.ok(login.passed >= 10 && login.passed <= 10 + refills, `${login.passed} logins passed`);
        assert429(login.refused, { limit: 10, maxRetryAfter: 6, minRetryAfter: 6 }, 'login over the limit, natively');
        // Search: 20 a second by user (one token every 50 ms). 120 at once from one user: the bucket's
        // 20 and what refills while they arrive pass, the rest are refused with search's numbers.
        const user = await bearer('user-native');
        const burst = await Promise.all(Array.from({ length: 120 }, () => call(`${gw}/api/search?q=x`, user)));
        const passed = burst.filter((x) => x.status === 200).length;
        const refused = burst.filter((x) => x.status === 429);
        assert.equal(passed + refused.length, 120, 'only 200 and 429');
        assert.ok(passed >= 20 && refused.length > 0, `${passed} searches passed, ${refused.length} refused`);
        assert429(refused[0]!, { limit: 20, maxRetryAfter: 1 }, 'search over the limit, natively');
        for (let i = 0; i < 15; i++) assert.equal((await call(`${gw}/api/health`)).status, 200);
        assert.equal(await decisions(), before, 'the control plane decided nothing');
      });
    } catch (e) {
      t.diagnostic(envoy.output().slice(-3000));
      throw e;
    }
  });
});
