// API keys through the whole pipeline: keys minted by the admin API, the seed-003 gateway served by a
// real Envoy over xDS, ext_authz on every protected route. Allowed and denied (unknown, wrong secret,
// revoked, expired, no subscription, suspended or expired subscription, suspended partner, access
// level by method and route), decision metrics, and a key rotation under constant load with zero
// failed requests for the key the load is using.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertGatewayError, assertUnauthorized, authzDecisions, calloutStats, createApiKey, identityHeadersOf, startAuthzGateway, startMirror, upstreamHeaders } from '../support/authz-gateway.ts';
import { describeFailures, startLoad } from '../support/load.ts';

const NODE = 'edge-authz-apikey';

describe('authz pipeline: API keys through the admin API, xDS and a real Envoy', () => {
  it('allows, denies, counts and rotates API keys', { timeout: 300_000 }, async (t) => {
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      mutate: (doc) => {
        doc.plans.push({ name: 'unlimited', description: 'no limits: these tests are about who, not how much' });
        doc.partners.push(
          {
            name: 'acme',
            kind: 'service_account',
            subscriptions: [
              // Access levels: only the products route of catalog, only GET on orders.
              { product: 'catalog', plan: 'unlimited', access: { routes: ['products'] } },
              { product: 'orders', plan: 'unlimited', access: { methods: ['GET'] } },
            ],
          },
          { name: 'globex', kind: 'service_account', subscriptions: [{ product: 'orders', plan: 'unlimited' }] },
          { name: 'rotor', kind: 'service_account', subscriptions: [{ product: 'orders', plan: 'unlimited' }] },
        );
      },
    });
    if (!g) return;
    const { api } = g;
    const withKey = (key: string, extra: Record<string, string> = {}) => ({ headers: { 'x-api-key': key, ...extra } });
    try {
      const acme = await createApiKey(api, 'acme', 'primary');
      const globex = await createApiKey(api, 'globex', 'primary');

      await t.test('a key minted by the admin API opens its products; the upstream sees who called, never the key', async () => {
        const r = await g.call('/api/products/p_1', withKey(acme));
        const h = upstreamHeaders(r);
        assert.equal(r.json.service, 'products');
        assert.equal(r.json.path, '/products/p_1');
        assert.deepEqual(identityHeadersOf(h), {
          'x-portico-credential': 'api_key',
          'x-portico-partner': 'acme',
          'x-portico-plan': 'unlimited',
          'x-portico-product': 'catalog',
          'x-portico-route': 'products',
        });
        assert.equal(h['x-api-key'], undefined, 'the API key is removed before the upstream');
        assert.match(h['x-request-id'] ?? '', /^[0-9a-f-]{36}$/, 'the upstream gets the request id');
        assert.equal(r.headers.get('x-request-id'), h['x-request-id'], 'the client sees the same request id');

        const o = await g.call('/api/orders/o_1', withKey(globex));
        assert.equal(upstreamHeaders(o)['x-portico-partner'], 'globex');
        assert.equal(o.json.headers['x-gateway'], 'portico', "the route's own request headers still apply");
      });

      await t.test('no key, an unknown key, a wrong secret: 401 with a challenge and the JSON error', async () => {
        const none = await g.call('/api/orders/o_1');
        assertUnauthorized(none, 'missing_credentials', 'no credentials');
        assert.equal(none.headers.get('www-authenticate'), 'ApiKey realm="portico", header="x-api-key", Bearer realm="portico"');
        assert.match(none.json.message, /x-api-key header/);

        const unknown = await g.call('/api/orders/o_1', withKey(`ptk_zzzzzzzz_${'A'.repeat(43)}`));
        assertUnauthorized(unknown, 'invalid_api_key', 'unknown key');
        // The right prefix with a wrong secret says no more than an unknown key.
        const last = acme.at(-1) === 'A' ? 'B' : 'A';
        const forged = await g.call('/api/products/p_1', withKey(`${acme.slice(0, -1)}${last}`));
        assertUnauthorized(forged, 'invalid_api_key', 'wrong secret');
        assert.equal(forged.json.message, unknown.json.message);
        assert.doesNotMatch(forged.text + (forged.headers.get('www-authenticate') ?? ''), new RegExp(acme.slice(13, 30)), 'the key is never echoed');
      });

      await t.test('revoked and expired keys are refused', async () => {
        const doomed = await createApiKey(api, 'globex', 'doomed');
        assert.equal((await g.call('/api/orders/o_1', withKey(doomed))).status, 200);
        const revoke = await api.patch('/api/v1/partners/globex/api-keys/doomed', { revoked: true });
        assert.equal(revoke.status, 200, revoke.text);
        assertUnauthorized(await g.call('/api/orders/o_1', withKey(doomed)), 'revoked_api_key', 'revoked');

        const expired = await createApiKey(api, 'globex', 'expired', { expiresAt: new Date(Date.now() - 60_000).toISOString() });
        assertUnauthorized(await g.call('/api/orders/o_1', withKey(expired)), 'expired_api_key', 'expired');
        // Extending it through the admin API brings it back (the index follows each write).
        const extend = await api.patch('/api/v1/partners/globex/api-keys/expired', { expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
        assert.equal(extend.status, 200, extend.text);
        assert.equal((await g.call('/api/orders/o_1', withKey(expired))).status, 200);
        // The other keys of the partner were never affected.
        assert.equal((await g.call('/api/orders/o_1', withKey(globex))).status, 200);
      });

      await t.test('a key opens only subscribed products, within the access level (routes and methods)', async () => {
        assertGatewayError(await g.call('/api/users/u_1', withKey(acme)), 403, 'no_subscription', 'wrong product');
        assertGatewayError(await g.call('/api/search?q=x', withKey(acme)), 403, 'route_not_in_subscription', 'route outside the access level');
        assert.equal((await g.call('/api/products', withKey(acme))).status, 200);
        assert.equal((await g.call('/api/orders/o_1', withKey(acme))).status, 200);
        const post = await g.call('/api/orders', { method: 'POST', body: '{}', ...withKey(acme, { 'content-type': 'application/json' }) });
        assertGatewayError(post, 403, 'method_not_in_subscription', 'method outside the access level');
        assert.match(post.json.message, /POST/);
        assert.equal(post.headers.get('www-authenticate'), null, 'a 403 carries no challenge');

        // Widening the access level through the admin API opens POST (merge patch: null removes access).
        const widen = await api.patch('/api/v1/partners/acme/subscriptions/orders', { access: null });
        assert.equal(widen.status, 200, widen.text);
        const again = await g.call('/api/orders', { method: 'POST', body: '{}', ...withKey(acme, { 'content-type': 'application/json' }) });
        assert.equal(upstreamHeaders(again)['x-portico-partner'], 'acme');
        assert.equal(again.json.method, 'POST');
        const narrow = await api.patch('/api/v1/partners/acme/subscriptions/orders', { access: { methods: ['GET'] } });
        assert.equal(narrow.status, 200, narrow.text);
        assertGatewayError(await g.call('/api/orders', { method: 'POST', body: '{}', ...withKey(acme) }), 403, 'method_not_in_subscription');
      });

      await t.test('suspended and expired subscriptions, and suspended partners, are 403', async () => {
        const sub = '/api/v1/partners/globex/subscriptions/orders';
        assert.equal((await api.patch(sub, { status: 'suspended' })).status, 200);
        assertGatewayError(await g.call('/api/orders/o_1', withKey(globex)), 403, 'subscription_suspended', 'suspended subscription');
        assert.equal((await api.patch(sub, { status: 'active' })).status, 200);
        assert.equal((await g.call('/api/orders/o_1', withKey(globex))).status, 200);

        assert.equal((await api.patch(sub, { expiresAt: new Date(Date.now() - 1000).toISOString() })).status, 200);
        assertGatewayError(await g.call('/api/orders/o_1', withKey(globex)), 403, 'subscription_expired', 'expired subscription');
        assert.equal((await api.patch(sub, { expiresAt: null })).status, 200);
        assert.equal((await g.call('/api/orders/o_1', withKey(globex))).status, 200);

        assert.equal((await api.patch('/api/v1/partners/acme', { suspended: true })).status, 200);
        assertGatewayError(await g.call('/api/products', withKey(acme)), 403, 'partner_suspended', 'suspended partner');
        assertGatewayError(await g.call('/api/orders/o_1', withKey(acme)), 403, 'partner_suspended', 'suspended partner, other product');
        assert.equal((await g.call('/api/orders/o_1', withKey(globex))).status, 200, 'other partners are unaffected');
        assert.equal((await api.patch('/api/v1/partners/acme', { suspended: false })).status, 200);
        assert.equal((await g.call('/api/products', withKey(acme))).status, 200);
      });

      await t.test("a product's own key header and query parameter: accepted there, removed before the upstream; x-api-key means nothing there", async () => {
        const mirror = await startMirror();
        t.after(() => mirror.close());
        const created = [
          await api.post('/api/v1/services', { name: 'mirror', endpoints: [{ host: '127.0.0.1', port: mirror.port }] }),
          await api.post('/api/v1/products', {
            name: 'billing',
            gatewayGroups: ['edge'],
            basePath: '/billing',
            auth: { accept: ['api_key'] },
            apiKey: { header: 'X-Partner-Key', queryParameter: 'key' },
          }),
          await api.post('/api/v1/products/billing/routes', { name: 'invoices', match: { path: { type: 'prefix', value: '/invoices' } }, service: 'mirror' }),
          await api.post('/api/v1/partners/acme/subscriptions', { product: 'billing', plan: 'unlimited' }),
        ];
        for (const r of created) assert.equal(r.status, 201, r.text);
        await g.inSync();
        const headersOf = (r: { status: number; text: string; json?: any }) => {
          assert.equal(r.status, 200, r.text);
          return new Map((r.json.rawHeaders as Array<[string, string]>).map(([k, v]) => [k, v]));
        };
        const byQuery = await g.call(`/billing/invoices?a=1&key=${encodeURIComponent(acme)}&b=2`);
        assert.equal(headersOf(byQuery).get('x-portico-partner'), 'acme');
        assert.equal(byQuery.json.path, '/billing/invoices?a=1&b=2', 'the key parameter is removed from the upstream URL');
        const byHeader = headersOf(await g.call('/billing/invoices/7', { headers: { 'X-Partner-Key': acme } }));
        assert.equal(byHeader.get('x-portico-partner'), 'acme');
        assert.equal(byHeader.get('x-partner-key'), undefined, 'the key header is removed');
        const wrongPlace = await g.call('/billing/invoices/7', withKey(acme));
        assertUnauthorized(wrongPlace, 'missing_credentials', 'x-api-key on a product reading X-Partner-Key');
        assert.equal(wrongPlace.headers.get('www-authenticate'), 'ApiKey realm="portico", header="x-partner-key", query="key"');
      });

      await t.test('decisions are counted in /metrics by product, partner and outcome', async () => {
        const admin = g.portico.adminUrl;
        const allowLabels = { product: 'orders', partner: 'acme', outcome: 'allow', credential: 'api_key' };
        const denyLabels = { product: 'orders', partner: 'acme', outcome: 'deny', reason: 'method_not_in_subscription' };
        const unauthLabels = { product: 'orders', partner: 'none', outcome: 'deny', reason: 'missing_credentials' };
        const before = [await authzDecisions(admin, allowLabels), await authzDecisions(admin, denyLabels), await authzDecisions(admin, unauthLabels)];
        for (let i = 0; i < 3; i++) assert.equal((await g.call(`/api/orders/o_${i}`, withKey(acme))).status, 200);
        for (let i = 0; i < 2; i++) assert.equal((await g.call('/api/orders', { method: 'POST', ...withKey(acme) })).status, 403);
        assert.equal((await g.call('/api/orders/o_1')).status, 401);
        const after = [await authzDecisions(admin, allowLabels), await authzDecisions(admin, denyLabels), await authzDecisions(admin, unauthLabels)];
        assert.deepEqual(
          after.map((v, i) => v - before[i]!),
          [3, 2, 1],
        );
      });

      await t.test('key rotation under constant load: create B, switch the load to B, revoke A — zero failed requests', async () => {
        const keyA = await createApiKey(api, 'rotor', 'key-a');
        let current = keyA;
        const sent = new Map<string, number>();
        const load = startLoad({
          concurrency: 8,
          targets: [
            {
              name: 'rotating',
              url: `${g.gw}/api/orders/o_rot`,
              headers: () => {
                sent.set(current, (sent.get(current) ?? 0) + 1);
                return { 'x-api-key': current };
              },
              expect: [200],
              label: (status, body) => (status === 200 ? (JSON.parse(body) as { headers: Record<string, string> }).headers['x-portico-partner'] : undefined),
            },
          ],
        });
        try {
          await load.waitForRequests(300);
          load.mark('creating key B');
          const keyB = await createApiKey(api, 'rotor', 'key-b');
          await load.waitForRequests(200);
          // B works before any client uses it (the index follows the write); A is still valid.
          assert.equal((await g.call('/api/orders/o_1', withKey(keyB))).status, 200);
          load.mark('switching the load to key B');
          current = keyB;
          await load.barrier(); // no request with A is still in flight
          await load.waitForRequests(200);
          load.mark('revoking key A');
          const revoke = await api.patch('/api/v1/partners/rotor/api-keys/key-a', { revoked: true });
          assert.equal(revoke.status, 200, revoke.text);
          await load.waitForRequests(300);
          assertUnauthorized(await g.call('/api/orders/o_1', withKey(keyA)), 'revoked_api_key', 'key A after its revocation');
        } finally {
          const report = await load.stop();
          if (report.failures.length) t.diagnostic(`Envoy's ext_authz stats: ${await calloutStats(g.envoy)}`);
          assert.deepEqual(report.failures, [], describeFailures(report.failures, report.marks));
          t.diagnostic(`rotation load: ${report.requests} requests (${sent.get(keyA)} with A, ${[...sent].find(([k]) => k !== keyA)?.[1]} with B) in ${report.durationMs} ms`);
          assert.ok((sent.get(keyA) ?? 0) >= 500, 'the load ran with A before the switch');
          assert.ok(report.requests - (sent.get(keyA) ?? 0) >= 500, 'the load ran with B across the revocation');
          assert.deepEqual(report.targets.rotating!.labels, { rotor: report.requests }, 'every request reached the upstream as rotor');
        }
      });
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-4000));
      throw e;
    }
  });
});
