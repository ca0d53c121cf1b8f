// Seed 003's rate limits as examples/gateway.yaml writes them, through the admin API and a real
// Envoy with real JWTs: login 10/min by client IP (the accounts product's public plan), search
// 20/s by user, the default 100/s burst 20 by user (X-User-Id, forwarded from the token's sub);
// health never limited. First in combined mode (the example's default), then switched live to
// service mode: the same counters, now answered by the rate-limit service.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startEnvoy, waitInSync } from '../support/envoy.ts';
import { startTestIssuer } from '../support/jwks.ts';
import { startTestPortico } from '../support/portico.ts';
import { call, seed003, type GatewayResponse } from '../support/seed003.ts';
import { assert429 } from './ratelimit-envoy-fixture.ts';

const NODE = 'rl-seed003';

describe('seed 003 rate limits through Envoy', () => {
  it('login by client IP, search and the default by user, health unlimited, in both modes', { timeout: 300_000 }, async (t) => {
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
    } catch (e) {
      t.diagnostic(envoy.output().slice(-3000));
      throw e;
    }
  });
});
