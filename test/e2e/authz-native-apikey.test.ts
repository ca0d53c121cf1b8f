// Native API keys (authz.mode native) through the admin API, xDS and a real Envoy: Envoy's
// api_key_auth authenticates with the keys pushed to it and the access RBAC decides, no callout.
// Allowed (partner and plan forwarded, key hidden), every refusal in the gateway's JSON shape with the
// callout's codes (missing, unknown, revoked, expired key; no subscription, suspended partner or
// subscription, expired subscription, route or method outside the access level), a subscription and a
// key expiring with no model change, the access RBAC left off where every key holder may call, a key
// imported as a hash only still served by the callout, Envoy's config_dump showing no key material,
// and an exact plan moving only its own product to the callout (another product's plan limit is
// still counted by Envoy alone).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { apiKeyProduct, assertGatewayError, assertUnauthorized, authzDecisions, createApiKey, identityHeadersOf, startAuthzGateway, upstreamHeaders } from '../support/authz-gateway.ts';

const NODE = 'edge-authz-native';

describe('authz native mode: API keys checked by Envoy itself', () => {
  it('allows, refuses and revokes keys without a callout, and never shows a key in config_dump', { timeout: 300_000 }, async (t) => {
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      // Unstated rate-limit mode: the group chooses product by product (an exact plan moves only its product to the callout).
      modes: 'native',
      mutate: (doc) => {
        doc.plans.push(
          { name: 'unlimited', description: 'no limits: these tests are about who, not how much' },
          { name: 'premium', description: 'no limits either: a second plan name' },
          { name: 'tight', limits: [{ requests: 2, per: 'minute' }], countBy: { kind: 'partner' } },
          { name: 'counted', limits: [{ requests: 2, per: 'minute' }], countBy: { kind: 'partner' }, exact: true },
        );
        // Plan limits: metered's counted by Envoy; strict's plan asks for exact counting, which moves only strict to the callout.
        doc.products.push(apiKeyProduct('metered'), apiKeyProduct('strict'));
        doc.products.push(
          {
            name: 'ledger',
            gatewayGroups: ['edge'],
            basePath: '/ledger',
            auth: { accept: ['api_key'] },
            routes: [
              { name: 'entries', match: { path: { type: 'prefix', value: '/entries' } }, service: 'orders' },
              { name: 'audit', match: { path: { type: 'prefix', value: '/audit' } }, service: 'orders' },
            ],
          },
          // Every caller on one plan: Envoy sets the plan header as a literal (no shadow rules).
          {
            name: 'archive',
            gatewayGroups: ['edge'],
            basePath: '/archive',
            auth: { accept: ['api_key'] },
            routes: [{ name: 'records', match: { path: { type: 'prefix', value: '/records' } }, service: 'orders' }],
          },
          {
            name: 'vault',
            gatewayGroups: ['edge'],
            basePath: '/vault',
            auth: { accept: ['api_key'] },
            routes: [{ name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 'orders' }],
          },
        );
        doc.partners.push(
          {
            name: 'acme',
            kind: 'service_account',
            subscriptions: [
              { product: 'ledger', plan: 'unlimited' },
              { product: 'archive', plan: 'unlimited' },
              { product: 'metered', plan: 'tight' },
              { product: 'strict', plan: 'counted' },
            ],
          },
          { name: 'globex', kind: 'service_account', subscriptions: [{ product: 'ledger', plan: 'unlimited', access: { routes: ['entries'] } }] },
          { name: 'initech', kind: 'service_account', suspended: true, subscriptions: [{ product: 'ledger', plan: 'unlimited' }] },
          // Subscribed to another product of the group: its keys reach Envoy, but ledger refuses it.
          { name: 'umbrella', kind: 'service_account', subscriptions: [{ product: 'catalog', plan: 'unlimited' }] },
          { name: 'hooli', kind: 'service_account', subscriptions: [{ product: 'vault', plan: 'unlimited' }] },
          { name: 'soylent', kind: 'service_account', subscriptions: [{ product: 'ledger', plan: 'premium', access: { methods: ['GET', 'HEAD'] } }] },
          { name: 'stark', kind: 'service_account', subscriptions: [{ product: 'ledger', plan: 'unlimited', status: 'suspended' }] },
          { name: 'wayne', kind: 'service_account', subscriptions: [{ product: 'ledger', plan: 'unlimited', expiresAt: '2020-01-01T00:00:00Z' }] },
        );
      },
    });
    if (!g) return;
    const { api, portico, envoy } = g;
    const withKey = (key: string, extra: Record<string, string> = {}) => ({ headers: { 'x-api-key': key, ...extra } });
    const ledgerChecks = () => authzDecisions(portico.adminUrl, { product: 'ledger' });
    const keys = {
      acme: await createApiKey(api, 'acme', 'primary'),
      globex: await createApiKey(api, 'globex', 'primary'),
      initech: await createApiKey(api, 'initech', 'primary'),
      umbrella: await createApiKey(api, 'umbrella', 'primary'),
      soylent: await createApiKey(api, 'soylent', 'primary'),
      stark: await createApiKey(api, 'stark', 'primary'),
      wayne: await createApiKey(api, 'wayne', 'primary'),
    };
    // A key imported as a hash only (as from an older export): the store has no secret to give Envoy.
    const hooliKey = `ptk_hooli001_${'H'.repeat(43)}`;
    await portico.store.commit({
      mutations: [
        { kind: 'apiKeys', op: 'put', key: 'hooli/imported', resource: { partner: 'hooli', name: 'imported', prefix: 'hooli001', hash: portico.store.apiKeyHasher().hash(hooliKey) } as never },
      ],
      actor: 'test',
      summary: 'import a hash-only key',
    });
    await g.inSync();

    await t.test('a sealed key opens its route in Envoy alone: the partner is forwarded, the key hidden, no callout made', async () => {
      const r = await g.call('/ledger/entries/1', withKey(keys.acme, { 'x-portico-partner': 'forged', 'x-portico-plan': 'forged' }));
      assert.equal(r.status, 200, r.text);
      const h = upstreamHeaders(r);
      assert.deepEqual(identityHeadersOf(h), {
        'x-portico-credential': 'api_key',
        'x-portico-partner': 'acme',
        'x-portico-plan': 'unlimited',
        'x-portico-product': 'ledger',
        'x-portico-route': 'entries',
      });
      assert.equal(h['x-api-key'], undefined, 'the key is removed before the upstream');
      assert.equal((await g.call('/ledger/audit', withKey(keys.acme))).status, 200);
      assert.equal(await ledgerChecks(), 0, 'ext_authz was never asked about ledger');
      // One plan for every caller of archive: the plan header is a literal, a forged one still replaced.
      const one = await g.call('/archive/records/1', withKey(keys.acme, { 'x-portico-plan': 'forged' }));
      assert.equal(one.status, 200, one.text);
      assert.equal(upstreamHeaders(one)['x-portico-plan'], 'unlimited');
      assert.equal(upstreamHeaders(one)['x-portico-partner'], 'acme');
      assertGatewayError(await g.call('/archive/records/1', withKey(keys.globex)), 403, 'no_subscription', 'a partner not subscribed to archive');
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'archive' }), 0, 'no callout for archive');
    });

    await t.test('refusals keep the gateway JSON shape: missing and unknown key 401 with a challenge, partners not allowed 403 with the callout code', async () => {
      const none = await g.call('/ledger/entries/1');
      assertUnauthorized(none, 'missing_credentials', 'no key');
      assert.equal(none.headers.get('www-authenticate'), 'ApiKey realm="portico"');
      assertUnauthorized(await g.call('/ledger/entries/1', withKey(`ptk_zzzzzzzz_${'A'.repeat(43)}`)), 'invalid_api_key', 'unknown key');
      assertUnauthorized(await g.call('/ledger/entries/1', withKey(`${keys.acme.slice(0, -1)}${keys.acme.endsWith('A') ? 'B' : 'A'}`)), 'invalid_api_key', 'wrong secret');
      assert.equal((await g.call('/ledger/entries/1', withKey(keys.globex))).status, 200, 'route inside the access level');
      const outside = await g.call('/ledger/audit', withKey(keys.globex));
      assertGatewayError(outside, 403, 'route_not_in_subscription', 'route outside the access level');
      assert.equal(outside.json.message, 'The subscription does not include this operation.');
      assert.equal(outside.headers.get('www-authenticate'), null, 'a 403 carries no challenge');
      assertGatewayError(await g.call('/ledger/entries/1', withKey(keys.initech)), 403, 'partner_suspended', 'suspended partner');
      const unsubscribed = await g.call('/ledger/entries/1', withKey(keys.umbrella));
      assertGatewayError(unsubscribed, 403, 'no_subscription', 'no subscription');
      assert.equal(unsubscribed.json.message, 'The partner has no subscription to the ledger API.', 'the product comes from the route');
      const suspended = await g.call('/ledger/entries/1', withKey(keys.stark));
      assertGatewayError(suspended, 403, 'subscription_suspended', 'suspended subscription');
      assert.equal(suspended.json.message, 'The subscription to the ledger API is suspended.');
      assertGatewayError(await g.call('/ledger/entries/1', withKey(keys.wayne)), 403, 'subscription_expired', 'expired subscription');
      assert.equal(await ledgerChecks(), 0, 'still no callout');
    });

    await t.test('a method-restricted subscription: its methods pass with their plan, others are refused naming the method', async () => {
      const get = await g.call('/ledger/entries/1', withKey(keys.soylent));
      assert.equal(get.status, 200, get.text);
      assert.equal(upstreamHeaders(get)['x-portico-plan'], 'premium', 'the plan of this partner, set by Envoy');
      const post = await g.call('/ledger/entries', { method: 'POST', body: '{}', ...withKey(keys.soylent, { 'content-type': 'application/json' }) });
      assertGatewayError(post, 403, 'method_not_in_subscription', 'POST outside the access level');
      assert.equal(post.json.message, 'The subscription does not allow POST requests.');
      const del = await g.call('/ledger/entries/1', { method: 'DELETE', ...withKey(keys.acme) });
      assert.equal(del.status, 200, 'an unrestricted partner may DELETE');
      assert.equal(await ledgerChecks(), 0, 'no callout');
    });

    await t.test('a subscription and a key stop working at their expiry with no model change (a push scheduled for the instant)', async () => {
      // Far enough ahead that the first calls below surely happen before it, on a loaded machine too.
      const at = Date.now() + 12_000;
      const expiresAt = new Date(at).toISOString();
      assert.equal((await api.patch('/api/v1/partners/wayne/subscriptions/ledger', { expiresAt })).status, 200);
      const shortKey = await createApiKey(api, 'acme', 'short', { expiresAt });
      await g.inSync();
      assert.equal((await g.call('/ledger/entries/1', withKey(keys.wayne))).status, 200, 'before its expiry the subscription works');
      assert.equal((await g.call('/ledger/entries/1', withKey(shortKey))).status, 200, 'before its expiry the key works');
      assert.ok(Date.now() < at, 'the calls above were made before the expiry');
      const revision = portico.store.current().revision;
      // Waits for the refusal (an event: Envoy's config changing), bounded so a missing push fails.
      let refused: Awaited<ReturnType<typeof g.call>> | undefined;
      while (Date.now() < at + 30_000) {
        const r = await g.call('/ledger/entries/1', withKey(keys.wayne));
        if (r.status !== 200) {
          refused = r;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(refused, 'the subscription was still served 30 s after its expiry');
      t.diagnostic(`first refusal ${Date.now() - at} ms after the expiry instant`);
      assert.ok(Date.now() >= at, 'never refused before its expiry');
      assertGatewayError(refused, 403, 'subscription_expired', 'expired with no model change');
      assertUnauthorized(await g.call('/ledger/entries/1', withKey(shortKey)), 'invalid_api_key', 'expired key');
      assert.equal((await g.call('/ledger/entries/1', withKey(keys.acme))).status, 200, 'others are unaffected');
      assert.equal(portico.store.current().revision, revision, 'no model change made it happen');
      assert.equal(await ledgerChecks(), 0, 'no callout');
    });

    await t.test('a key imported as a hash only keeps working through the callout; the listing says which keys are which', async () => {
      const r = await g.call('/vault/items/1', withKey(hooliKey));
      assert.equal(r.status, 200, r.text);
      assert.equal(upstreamHeaders(r)['x-portico-partner'], 'hooli');
      assert.ok((await authzDecisions(portico.adminUrl, { product: 'vault' })) > 0, 'vault is checked by the callout');
      const hooli = await api.get('/api/v1/partners/hooli/api-keys');
      assert.deepEqual(
        hooli.body.items.map((k: { name: string; storage: string }) => [k.name, k.storage]),
        [['imported', 'hash-only']],
      );
      const acme = await api.get('/api/v1/partners/acme/api-keys/primary');
      assert.equal(acme.body.storage, 'sealed');
      assert.equal(acme.body.secret, undefined);
      assert.equal(acme.body.hash, undefined);
      assert.doesNotMatch(acme.text, new RegExp(keys.acme.slice(13)), 'the listing never shows the key');
    });

    await t.test("Envoy's config_dump shows no key material", async () => {
      const dump = JSON.stringify(await envoy.configDump());
      assert.match(dump, /ApiKeyAuthPerRoute/, 'the native routes are in the dump');
      for (const [who, key] of Object.entries(keys)) assert.ok(!dump.includes(key.slice(13)), `${who}'s key is in config_dump`);
      assert.match(dump, /\[redacted\]/);
    });

    await t.test('a revoked key is refused once the push lands; the partner is unaffected', async () => {
      const spare = await createApiKey(api, 'acme', 'spare');
      await g.inSync();
      assert.equal((await g.call('/ledger/entries/1', withKey(spare))).status, 200);
      assert.equal((await api.patch('/api/v1/partners/acme/api-keys/spare', { revoked: true })).status, 200);
      await g.inSync();
      assertUnauthorized(await g.call('/ledger/entries/1', withKey(spare)), 'invalid_api_key', 'revoked key');
      assert.equal((await g.call('/ledger/entries/1', withKey(keys.acme))).status, 200);
      // Suspending the partner takes its keys' access away on the next push, lifting it gives it back.
      assert.equal((await api.patch('/api/v1/partners/acme', { suspended: true })).status, 200);
      await g.inSync();
      assertGatewayError(await g.call('/ledger/entries/1', withKey(keys.acme)), 403, 'partner_suspended', 'suspended');
      assert.equal((await api.patch('/api/v1/partners/acme', { suspended: false })).status, 200);
      await g.inSync();
      assert.equal((await g.call('/ledger/entries/1', withKey(keys.acme))).status, 200);
    });

    await t.test('an exact plan moves only its product to the callout: another product is still limited by Envoy alone', async () => {
      const edge = await api.get('/api/v1/gateway-groups/edge');
      assert.deepEqual(edge.body.enforcement.rateLimit, { mode: 'native', stated: false, calloutProducts: { strict: 'plan counted asks for exact counting (exact: true)' } });
      for (const product of ['metered', 'strict']) {
        for (const n of [1, 2]) assert.equal((await g.call(`/${product}/items/1`, withKey(keys.acme))).status, 200, `${product} request ${n}`);
        const refused = await g.call(`/${product}/items/1`, withKey(keys.acme));
        assert.equal(refused.status, 429, `${product}: ${refused.status} ${refused.text}`);
        assert.equal(refused.headers.get('content-type'), 'application/json', product);
        assert.equal(refused.headers.get('x-ratelimit-limit'), '2', product);
        assert.ok(Number(refused.headers.get('retry-after')) >= 1, `${product}: retry-after ${refused.headers.get('retry-after')}`);
      }
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'metered' }), 0, 'metered: Envoy authorized and counted it alone');
      assert.ok((await authzDecisions(portico.adminUrl, { product: 'strict' })) >= 3, 'strict: the callout authorized and counted it');
      assert.equal(await ledgerChecks(), 0, 'ledger (no limits) stayed native');
    });

    await t.test('a product every key holder may call on one plan goes without the access RBAC; a key of a partner it refuses brings it back', async () => {
      /** Whether Envoy's route for a path prefix carries an access decision (the RBAC, or its no_subscription-only form). */
      const rbacOn = async (prefix: string): Promise<boolean> => {
        type Route = { match: { path_separated_prefix?: string }; typed_per_filter_config?: Record<string, unknown> };
        const configs = (await envoy.configDump('dynamic_route_configs')).configs as Array<{ route_config: { virtual_hosts: Array<{ routes: Route[] }> } }>;
        const route = configs.flatMap((c) => c.route_config.virtual_hosts.flatMap((v) => v.routes)).find((x) => x.match.path_separated_prefix === prefix);
        assert.ok(route, `a route for ${prefix}`);
        const perFilter = route.typed_per_filter_config ?? {};
        return perFilter['envoy.filters.http.rbac'] !== undefined || perFilter['portico.access.no_subscription'] !== undefined;
      };
      assert.equal(await rbacOn('/archive/records'), true, 'keys of partners archive refuses reach Envoy: the RBAC refuses them');
      // Only acme keeps a key: on archive (acme alone, one plan) the key list is the whole decision.
      for (const p of ['globex', 'initech', 'umbrella', 'soylent', 'stark', 'wayne']) assert.equal((await api.patch(`/api/v1/partners/${p}/api-keys/primary`, { revoked: true })).status, 200);
      await g.inSync();
      assert.equal(await rbacOn('/archive/records'), false, 'no RBAC where it could refuse nobody');
      assert.equal(await rbacOn('/ledger/entries'), true, 'ledger still refuses partners (suspended, expired...)');
      const r = await g.call('/archive/records/1', withKey(keys.acme, { 'x-portico-partner': 'forged' }));
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(identityHeadersOf(upstreamHeaders(r)), {
        'x-portico-credential': 'api_key',
        'x-portico-partner': 'acme',
        'x-portico-plan': 'unlimited',
        'x-portico-product': 'archive',
        'x-portico-route': 'records',
      });
      assertUnauthorized(await g.call('/archive/records/1', withKey(keys.globex)), 'invalid_api_key', 'a revoked key');
      const again = await createApiKey(api, 'globex', 'again');
      await g.inSync();
      assert.equal(await rbacOn('/archive/records'), true);
      assertGatewayError(await g.call('/archive/records/1', withKey(again)), 403, 'no_subscription', 'a key of a partner not subscribed to archive');
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'archive' }), 0, 'no callout for archive');
    });
  });
});
