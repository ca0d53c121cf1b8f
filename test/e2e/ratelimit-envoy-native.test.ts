// Plan limits in native mode (rateLimit.mode: native) through the whole pipeline and a real Envoy:
// Envoy's own token buckets count by partner, by client IP, by a header and by route, with seed
// 003's override precedence, and refuse with the exact 429 contract; the control plane makes no
// rate-limit decision at all (authentication still calls out here: the ext_authz exact mode sets
// the partner header native buckets are keyed on, as native authentication will).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assert429, bearer, freePort, limitsDocument, newApiKey, secondsToMidnight, startGateway, testIdp, withKey } from './ratelimit-envoy-fixture.ts';
import type { GatewayResponse } from '../support/seed003.ts';

const HOUR = 3600;

function assertPassed(r: GatewayResponse, what: string): void {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
}

describe('rate limits through Envoy, native mode', () => {
  it('enforces plans with local token buckets, no rate-limit callout, the 429 contract exact', { timeout: 300_000 }, async (t) => {
    const g = await startGateway(t, { nodeId: 'rl-native' });
    if (!g) return;
    const idp = await testIdp();
    const keys = { acme1: newApiKey(), acme2: newApiKey(), globex: newApiKey() };
    await g.apply(limitsDocument({ mode: 'native', listenerPort: await freePort(), upstreamPort: g.upstream.port, jwk: idp.jwk, keys }));
    const decisionsBefore = await g.decisions({});

    try {
      await t.test('the chain holds local buckets after ext_authz, and no callout counts', async () => {
        const dump = JSON.stringify(await g.envoy.configDump('dynamic_listeners'));
        assert.ok(!dump.includes('envoy.filters.http.ratelimit'), 'no rate-limit filter');
        assert.ok(!dump.includes('portico.ext_authz.limits'), 'no counting-only ext_authz');
        assert.ok(dump.indexOf('portico.local_ratelimit.plans.1') > dump.indexOf('envoy.filters.http.ext_authz'), 'plan buckets after authentication');
      });

      await t.test('exact enforcement with burst, by the user header ext_authz forwards', async () => {
        const token = await idp.token('u-burst', 'acme');
        for (let i = 1; i <= 6; i++) {
          const r: GatewayResponse = await g.call('/catalog/items/1', bearer(token));
          assertPassed(r, `request ${i}`);
          assert.equal(r.json.headers['x-user-id'], 'u-burst');
        }
        // 5 per hour + burst 1, starting full; one token every 720 s.
        assert429(await g.call('/catalog/items/1', bearer(token)), { limit: 5, maxRetryAfter: 720, minRetryAfter: 720 }, 'request 7');
        assertPassed(await g.call('/catalog/items/1', bearer(await idp.token('u-other', 'acme'))), 'another user of the same partner');
        // A client-sent X-User-Id is stripped at the edge: it cannot buy a fresh budget.
        const spoofed = await g.call('/catalog/items/1', { headers: { authorization: `Bearer ${token}`, 'x-user-id': 'someone-else' } });
        assert429(spoofed, { limit: 5, maxRetryAfter: 720 }, 'spoofed user header');
      });

      await t.test('override precedence (seed 003): login by client IP, search by user, the default elsewhere', async () => {
        const token = await idp.token('u-search', 'acme');
        for (let i = 1; i <= 3; i++) assertPassed(await g.call('/catalog/search?q=x', bearer(token)), `search ${i}`);
        assert429(await g.call('/catalog/search?q=x', bearer(token)), { limit: 3, maxRetryAfter: 1200, minRetryAfter: 1200 }, 'search 4');
        // The search override is the route's own budget: the same user still has the plan-wide one.
        assertPassed(await g.call('/catalog/items/2', bearer(token)), 'items after search');
        assertPassed(await g.call('/catalog/search?q=y', bearer(await idp.token('u-search-2', 'acme'))), 'search, other user');

        const login = { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } };
        assertPassed(await g.call('/accounts/login', login), 'login 1');
        assertPassed(await g.call('/accounts/login', login), 'login 2');
        assert429(await g.call('/accounts/login', login), { limit: 2, maxRetryAfter: 1800, minRetryAfter: 1800 }, 'login 3');
        // Anonymous on register: no X-User-Id, so the plan-wide budget counts by address (6 tokens).
        for (let i = 1; i <= 6; i++) assertPassed(await g.call('/accounts/register', login), `register ${i}`);
        assert429(await g.call('/accounts/register', login), { limit: 5, maxRetryAfter: 720 }, 'register 7');
        for (let i = 0; i < 8; i++) assertPassed(await g.call('/accounts/health'), `health ${i}`);
      });

      await t.test('counted by partner (every key of the partner shares it) and by route (every caller shares it)', async () => {
        assertPassed(await g.call('/reports/daily', withKey(keys.acme1)), 'acme key one');
        assertPassed(await g.call('/reports/daily', withKey(keys.acme2)), 'acme key two');
        assertPassed(await g.call('/reports/daily', withKey(keys.acme1)), 'acme burst');
        assert429(await g.call('/reports/daily', withKey(keys.acme2)), { limit: 2, maxRetryAfter: 1800, minRetryAfter: 1800 }, 'acme over, whichever key');
        assertPassed(await g.call('/reports/daily', withKey(keys.globex)), 'globex has its own budget');
        assertPassed(await g.call('/reports/export', withKey(keys.globex)), 'export, first caller');
        assert429(await g.call('/reports/export', withKey(keys.acme1)), { limit: 1, maxRetryAfter: HOUR, minRetryAfter: HOUR }, 'export is one budget for everybody');
      });

      await t.test('shadow plans never refuse', async () => {
        for (let i = 1; i <= 5; i++) assertPassed(await g.call('/preview/x', withKey(keys.acme1)), `preview ${i}`);
      });

      await t.test('a daily quota, counted from the access logs, refused after one push; the overshoot measured', async () => {
        const left = secondsToMidnight();
        if (left < 120) await new Promise((r) => setTimeout(r, (left + 5) * 1000));
        // acme's plan on ledger: 4 a day by partner (write also 2/h: reads only here). Requests
        // sent one after another until the refusal: those past 4 are the overshoot (admitted while
        // the access-log batch, the count and the push were on their way).
        const started = Date.now();
        let admitted = 0;
        let refusal: GatewayResponse | undefined;
        while (!refusal && Date.now() - started < 60_000) {
          const r = await g.call('/ledger/read', withKey(keys.acme1));
          if (r.status === 429) refusal = r;
          else {
            assertPassed(r, `read ${admitted + 1}`);
            admitted++;
          }
        }
        assert.ok(refusal, `never refused after ${admitted} admitted`);
        t.diagnostic(`quota 4/day: ${admitted} admitted before the refusal (overshoot ${admitted - 4}), refused ${Date.now() - started} ms after the first request`);
        assert.ok(admitted >= 4, 'the quota itself is admitted');
        const toMidnight = secondsToMidnight();
        assert429(refusal, { limit: 4, error: 'quota_exceeded', maxRetryAfter: Math.ceil(toMidnight) + 2, minRetryAfter: Math.floor(toMidnight) - 5 }, 'quota refusal');
        assert.equal(Number(refusal.headers.get('x-ratelimit-reset')) % 86_400, 0, 'the quota resets at UTC midnight');
        // From now on every request of acme there is refused, whichever key; other products are not touched.
        for (let i = 0; i < 5; i++) assert.equal((await g.call('/ledger/read', withKey(i % 2 ? keys.acme1 : keys.acme2))).status, 429);
        assert.equal((await g.call('/ledger/write', withKey(keys.acme2, { method: 'POST', body: 'x' }))).status, 429, 'the quota is plan-wide: write too');
        assertPassed(await g.call('/catalog/items/9', bearer(await idp.token('u-quota', 'acme'))), 'acme elsewhere');
        const routes = JSON.stringify(await g.envoy.configDump('dynamic_route_configs'));
        assert.ok(routes.includes('quota_4_day'), 'the refusal is a per-route RBAC policy named after the quota');
      });

      await t.test('the control plane decided nothing: Envoy counted every request', async () => {
        assert.equal(await g.decisions({}), decisionsBefore);
        assert.ok((await g.envoy.stat('portico_plan_limit_1.http_local_rate_limit.rate_limited')) + (await g.envoy.stat('portico_plan_limit_2.http_local_rate_limit.rate_limited')) > 0);
      });

      await t.test('with the control plane gone, the buckets still hold (anonymous routes: no authentication callout)', async () => {
        await g.portico.close();
        const login = { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } };
        assert429(await g.call('/accounts/login', login), { limit: 2, maxRetryAfter: 1800 }, 'login still over');
        assertPassed(await g.call('/accounts/health'), 'health');
      });
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-3000));
      throw e;
    }
  });

  it('a plan of many subscribers: its guard split into patterns Envoy accepts (RE2 refuses one of over 100 instructions), counting as before', { timeout: 300_000 }, async (t) => {
    const g = await startGateway(t, { nodeId: 'rl-native-crowd' });
    if (!g) return;
    const idp = await testIdp();
    const doc = limitsDocument({ mode: 'native', listenerPort: await freePort(), upstreamPort: g.upstream.port, jwk: idp.jwk, keys: { acme1: newApiKey(), acme2: newApiKey(), globex: newApiKey() } });
    // 40 more subscribers of catalog's standard plan (counted by X-User-Id behind the plan's guard),
    // named to sort before acme: acme's name lands in a later pattern than the first.
    const crowd = Array.from({ length: 40 }, (_, i) => `aa-crowd-${i}-${'q'.repeat(i % 7)}`.replace(/-$/, ''));
    doc.partners.push(...crowd.map((name) => ({ name, subscriptions: [{ product: 'catalog', plan: 'standard' }] })));
    try {
      await g.apply(doc);
      const patterns = new Set<string>();
      const collect = (v: unknown): void => {
        if (Array.isArray(v)) v.forEach(collect);
        else if (v && typeof v === 'object') {
          const regex = (v as { safe_regex?: { regex?: unknown } }).safe_regex?.regex;
          if (typeof regex === 'string' && regex.includes('crowd')) patterns.add(regex);
          Object.values(v).forEach(collect);
        }
      };
      collect(await g.envoy.configDump('dynamic_route_configs'));
      assert.ok(patterns.size >= 3, `the guard is ${patterns.size} pattern(s)`);
      const withAcme = [...patterns].filter((p) => p.includes('acme'));
      assert.equal(withAcme.length, 1, 'acme is in exactly one pattern');
      assert.ok(!withAcme[0]!.includes('aa\\-crowd\\-0|'), 'and not in the first');

      for (const [team, user] of [
        ['acme', 'u-crowd-acme'],
        [crowd[0]!, 'u-crowd-first'],
      ] as const) {
        const token = await idp.token(user, team);
        for (let i = 1; i <= 6; i++) assertPassed(await g.call('/catalog/items/1', bearer(token)), `${team}: request ${i}`);
        assert429(await g.call('/catalog/items/1', bearer(token)), { limit: 5, maxRetryAfter: 720, minRetryAfter: 720 }, `${team}: request 7`);
      }
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-3000));
      throw e;
    }
  });
});
