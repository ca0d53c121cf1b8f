// Plan limits through the whole pipeline and a real Envoy, in both modes: `combined` (the ext_authz
// callout authenticates and counts) and `service` (Envoy's rate-limit filter asks the rate-limit
// service). The same scenarios run against each: exact enforcement with burst, override precedence
// (seed 003's shape: login by client IP, search by user, the default by user), counting by
// partner, by header and by route, a daily quota, refusals that consume nothing (neither
// authorization denials nor refusals by another limit), shadow plans, and the 429 contract's exact
// headers and body as the client receives them, plus X-RateLimit-* on allowed responses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GatewayResponse } from '../support/seed003.ts';
import { assert429, assertAllowed, bearer, freePort, limitsDocument, newApiKey, secondsToMidnight, startGateway, testIdp, withKey, type Mode } from './ratelimit-envoy-fixture.ts';

const HOUR = 3600;

for (const mode of ['combined', 'service'] as const satisfies readonly Mode[]) {
  describe(`rate limits through Envoy, ${mode} mode`, () => {
    it('enforces plans exactly, with the 429 contract', { timeout: 300_000 }, async (t) => {
      const g = await startGateway(t, { nodeId: `rl-${mode}` });
      if (!g) return;
      const idp = await testIdp();
      const keys = { acme1: newApiKey(), acme2: newApiKey(), globex: newApiKey() };
      await g.apply(limitsDocument({ mode, listenerPort: await freePort(), upstreamPort: g.upstream.port, jwk: idp.jwk, keys }));

      try {
        await t.test('the chain holds what the mode needs', async () => {
          const dump = JSON.stringify(await g.envoy.configDump('dynamic_listeners'));
          assert.equal(dump.includes('envoy.filters.http.ratelimit'), mode === 'service', 'rate-limit filter only in service mode');
          assert.equal(dump.includes('portico.ext_authz.limits'), mode === 'combined', 'counting-only ext_authz only in combined mode');
        });

        await t.test('exact enforcement with burst: requests + burst allowed, the next one refused with the exact contract', async () => {
          const token = await idp.token('u-burst', 'acme');
          const remaining: number[] = [];
          for (let i = 1; i <= 6; i++) {
            const r: GatewayResponse = await g.call('/catalog/items/1', bearer(token));
            remaining.push(assertAllowed(r, 5, `request ${i}`));
            assert.equal(r.json.headers['x-user-id'], 'u-burst', 'the upstream sees the user id ext_authz forwarded');
          }
          // Capacity 5 + burst 1, starting full; Remaining may exceed Limit by the burst.
          assert.deepEqual(remaining, [5, 4, 3, 2, 1, 0]);
          const refused = await g.call('/catalog/items/1', bearer(token));
          // 5 per hour: the next token in at most 720 s.
          assert429(refused, { limit: 5, maxRetryAfter: 720, minRetryAfter: 700 }, 'request 7');
          // Counted by the user (X-User-Id from the token), not by partner or address.
          assertAllowed(await g.call('/catalog/items/1', bearer(await idp.token('u-other', 'acme'))), 5, 'another user of the same partner');
          // A client-sent X-User-Id is stripped at the edge: it cannot buy a fresh budget.
          const spoofed = await g.call('/catalog/items/1', { headers: { authorization: `Bearer ${token}`, 'x-user-id': 'someone-else' } });
          assert429(spoofed, { limit: 5, maxRetryAfter: 720 }, 'spoofed user header');
        });

        await t.test('override precedence (seed 003): login by client IP, search by user, the default elsewhere', async () => {
          const token = await idp.token('u-search', 'acme');
          for (let i = 1; i <= 3; i++) assertAllowed(await g.call('/catalog/search?q=x', bearer(token)), 3, `search ${i}`);
          assert429(await g.call('/catalog/search?q=x', bearer(token)), { limit: 3, maxRetryAfter: 1200, minRetryAfter: 1100 }, 'search 4');
          // The search override is the route's own budget: the same user still has the default one.
          assert.equal(assertAllowed(await g.call('/catalog/items/2', bearer(token)), 5, 'items after search'), 5);
          // Another user searches on their own budget.
          assertAllowed(await g.call('/catalog/search?q=y', bearer(await idp.token('u-search-2', 'acme'))), 3, 'search, other user');

          // Anonymous: login 2/h by client IP (an override with its own countBy), register on the default.
          const login = { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } };
          assertAllowed(await g.call('/accounts/login', login), 2, 'login 1');
          assertAllowed(await g.call('/accounts/login', login), 2, 'login 2');
          assert429(await g.call('/accounts/login', login), { limit: 2, maxRetryAfter: 1800, minRetryAfter: 1700 }, 'login 3');
          assert.equal(assertAllowed(await g.call('/accounts/register', login), 5, 'register after login is exhausted'), 5);

          // Health is never limited and needs no decision at all (no callout).
          const before = await g.decisions({ product: 'accounts' });
          for (let i = 0; i < 8; i++) {
            const h = await g.call('/accounts/health');
            assert.equal(h.status, 200);
            assert.equal(h.headers.get('x-ratelimit-limit'), null, 'no limit headers on an unlimited route');
          }
          assert.equal(await g.decisions({ product: 'accounts' }), before, 'no rate-limit decision for health');
        });

        await t.test('counted by partner (every key of the partner shares it) and by route (every caller shares it)', async () => {
          assertAllowed(await g.call('/reports/daily', withKey(keys.acme1)), 2, 'acme key one');
          assertAllowed(await g.call('/reports/daily', withKey(keys.acme2)), 2, 'acme key two');
          assertAllowed(await g.call('/reports/daily', withKey(keys.acme1)), 2, 'acme burst');
          assert429(await g.call('/reports/daily', withKey(keys.acme2)), { limit: 2, maxRetryAfter: 1800 }, 'acme over, whichever key');
          assertAllowed(await g.call('/reports/daily', withKey(keys.globex)), 2, 'globex has its own budget');
          assertAllowed(await g.call('/reports/export', withKey(keys.globex)), 1, 'export, first caller');
          assert429(await g.call('/reports/export', withKey(keys.acme1)), { limit: 1, maxRetryAfter: HOUR }, 'export is one budget for everybody');
        });

        await t.test('a daily quota, and refusals that consume nothing', async () => {
          // A quota counter belongs to its UTC day: keep the test inside one.
          const left = secondsToMidnight();
          if (left < 120) await new Promise((r) => setTimeout(r, (left + 5) * 1000));
          // Refused by authorization (the subscription allows GET and POST only): never counted.
          for (let i = 0; i < 3; i++) assert.equal((await g.call('/ledger/read', withKey(keys.acme1, { method: 'DELETE' }))).status, 403);
          // write: 2/h of its own, on top of the plan's quota of 4 a day.
          for (let i = 1; i <= 2; i++) assert.equal((await g.call('/ledger/write', withKey(keys.acme1, { method: 'POST', body: 'x' }))).status, 200, `write ${i}`);
          for (let i = 3; i <= 5; i++) {
            assert429(await g.call('/ledger/write', withKey(keys.acme1, { method: 'POST', body: 'x' })), { limit: 2, maxRetryAfter: 1800 }, `write ${i}`);
          }
          // Quota used: 2 (the refused writes took nothing), so two reads pass and the third is over.
          assert.equal(assertAllowed(await g.call('/ledger/read', withKey(keys.acme1)), 4, 'read 1'), 1);
          assert.equal(assertAllowed(await g.call('/ledger/read', withKey(keys.acme1)), 4, 'read 2'), 0);
          const over = await g.call('/ledger/read', withKey(keys.acme1));
          const toMidnight = secondsToMidnight();
          const n = assert429(over, { limit: 4, error: 'quota_exceeded', maxRetryAfter: Math.ceil(toMidnight) + 2, minRetryAfter: Math.floor(toMidnight) - 5 }, 'read 3');
          assert.equal(Number(over.headers.get('x-ratelimit-reset')) % 86_400, 0, 'the quota resets at UTC midnight');
          assert.ok(n > 0);
        });

        await t.test('shadow plans never refuse, and report what they would have refused', async () => {
          const before = await g.decisions({ product: 'preview', outcome: 'shadow_limited' });
          const remaining: number[] = [];
          for (let i = 1; i <= 5; i++) remaining.push(assertAllowed(await g.call('/preview/x', withKey(keys.acme1)), 2, `preview ${i}`));
          assert.deepEqual(remaining, [1, 0, 0, 0, 0]);
          assert.equal(await g.decisions({ product: 'preview', outcome: 'shadow_limited' }), before + 3);
        });
      } catch (e) {
        t.diagnostic(g.envoy.output().slice(-3000));
        throw e;
      }
    });
  });
}
