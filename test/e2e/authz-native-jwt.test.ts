// Native JWT (authz.mode native) through the admin API, xDS and a real Envoy: jwt_authn verifies tokens
// with the issuer's keys the control plane fetched and pushed inline, the access RBAC decides on the
// partner claim, no callout. Valid token (partner and claims forwarded, token removed); every
// refusal in the gateway's JSON shape (missing, expired, not yet valid, wrong audience, wrong issuer,
// bad signature, alg none, HS256 with the public key; unknown or absent partner claim, suspended
// partner, no subscription, route outside the access level; a claim that is no header value); suspension and subscription removal on
// update; issuers with a fixed partner or a dotted partner claim (read as the callout reads it: the
// top-level claim of that name, else the nested one) beside a plain one on one route, from the
// token's payload in dynamic metadata, its callers on two plans (x-portico-plan from a second RBAC);
// the same answers in native and exact mode (tokens without the partner claim: unknown_partner); excluded paths (exact or prefix) anonymous, the token unread; the admin saying which issuers Envoy verifies; config_dump with no private key material.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '../support/components.ts';
import { assertGatewayError, assertUnauthorized, authzDecisions, identityHeadersOf, startAuthzGateway, upstreamHeaders } from '../support/authz-gateway.ts';
import { assertSameInBothModes } from '../support/authz-parity.ts';
import { now, startTestIssuer, unsignedToken } from '../support/jwks.ts';

const NODE = 'edge-authz-native-jwt';
const bearer = (token: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${token}`, ...extra } });

describe('authz native mode: JWTs verified by Envoy itself', () => {
  it('allows and refuses tokens without a callout, follows suspension, and keeps private keys out of config_dump', { timeout: 300_000 }, async (t) => {
    const idp = await startTestIssuer({ issuer: 'https://partners.example.com', audience: 'ledger.example.com', keys: [{ kid: 'p-rsa', alg: 'RS256' }] });
    t.after(() => idp.close());
    const fixedIdp = await startTestIssuer({ issuer: 'https://fixed.example.com', audience: 'ledger.example.com', keys: [{ kid: 'f-ec', alg: 'ES256' }] });
    t.after(() => fixedIdp.close());
    const nestedIdp = await startTestIssuer({ issuer: 'https://nested.example.com', audience: 'ledger.example.com', keys: [{ kid: 'n-ec', alg: 'ES256' }] });
    t.after(() => nestedIdp.close());
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      mutate: (doc) => {
        doc.gatewayGroups[0].authz.mode = 'native';
        doc.plans.push({ name: 'unlimited', description: 'no limits: these tests are about who, not how much' }, { name: 'premium', description: 'no limits either: a second plan' });
        doc.jwtIssuers.push({
          name: 'partners-idp',
          issuer: idp.issuer,
          audiences: [idp.audience],
          jwksUri: idp.jwksUri,
          algorithms: ['RS256'],
          partnerClaim: 'partner',
          // Dotted names: read as the callout reads them, the top-level claim of that name first, else the nested path.
          forwardClaims: { sub: 'X-User-Id', role: 'X-User-Role', 'https://ledger.example/team': 'X-User-Team', 'org.unit': 'X-User-Unit' },
          excludedPaths: ['/ledger/entries/public', '/ledger/audit/open/'],
        });
        doc.jwtIssuers.push(
          { name: 'fixed-idp', issuer: fixedIdp.issuer, audiences: [fixedIdp.audience], jwksUri: fixedIdp.jwksUri, algorithms: ['ES256'], partner: 'globex' },
          // A URL-named claim, as some identity providers require for custom claims: it holds dots.
          { name: 'nested-idp', issuer: nestedIdp.issuer, audiences: [nestedIdp.audience], jwksUri: nestedIdp.jwksUri, algorithms: ['ES256'], partnerClaim: 'https://ledger.example/partner' },
        );
        doc.products.push({
          name: 'treasury',
          gatewayGroups: ['edge'],
          basePath: '/treasury',
          jwtIssuers: ['fixed-idp', 'nested-idp', 'partners-idp'],
          auth: { accept: ['jwt'] },
          routes: [{ name: 'all', match: { path: { type: 'prefix', value: '/all' } }, service: 'orders' }],
        });
        doc.products.push({
          name: 'ledger',
          gatewayGroups: ['edge'],
          basePath: '/ledger',
          jwtIssuers: ['partners-idp'],
          auth: { accept: ['jwt'] },
          routes: [
            { name: 'entries', match: { path: { type: 'prefix', value: '/entries' } }, service: 'orders' },
            { name: 'audit', match: { path: { type: 'prefix', value: '/audit' } }, service: 'orders' },
          ],
        });
        doc.partners.push(
          {
            name: 'acme',
            kind: 'service_account',
            subscriptions: [
              { product: 'ledger', plan: 'unlimited' },
              { product: 'treasury', plan: 'unlimited' },
            ],
          },
          {
            name: 'globex',
            kind: 'service_account',
            subscriptions: [
              { product: 'ledger', plan: 'unlimited', access: { routes: ['entries'] } },
              // treasury's callers are on two plans: a second RBAC names the plan of the partner the payload named.
              { product: 'treasury', plan: 'premium' },
            ],
          },
          { name: 'initech', kind: 'service_account', suspended: true, subscriptions: [{ product: 'ledger', plan: 'unlimited' }] },
          { name: 'umbrella', kind: 'service_account', subscriptions: [{ product: 'catalog', plan: 'unlimited' }] },
        );
      },
    });
    if (!g) return;
    const { api, envoy, portico } = g;
    const ledgerChecks = () => authzDecisions(portico.adminUrl, { product: 'ledger' });
    const token = (partner: string | undefined, o: Parameters<typeof idp.token>[0] = {}) => idp.token({ sub: 'user-1', ...o, claims: { ...(partner ? { partner } : {}), role: 'clerk', ...o.claims } });
    // The key set reaches Envoy once the control plane fetched it (the route is on the callout until then).
    await waitFor(
      'the fetched key sets in Envoy',
      async () => {
        const dump = JSON.stringify(await envoy.configDump('dynamic_listeners'));
        return ['partners', 'fixed', 'nested'].every((n) => dump.includes(`${n}.example.com`)) ? true : undefined;
      },
      30_000,
      100,
    );
    await g.inSync();

    await t.test('a valid token opens its route in Envoy alone: partner and claims forwarded, token removed, no callout', async () => {
      const r = await g.call('/ledger/entries/1', bearer(await token('acme'), { 'x-portico-partner': 'forged', 'x-user-role': 'root' }));
      const h = upstreamHeaders(r);
      assert.deepEqual(identityHeadersOf(h), {
        'x-portico-credential': 'jwt',
        'x-portico-partner': 'acme',
        'x-portico-plan': 'unlimited',
        'x-portico-product': 'ledger',
        'x-portico-route': 'entries',
        'x-user-id': 'user-1',
        'x-user-role': 'clerk',
      });
      assert.equal(h.authorization, undefined, 'the token stays at the gateway');
      // Served again from Envoy's token cache.
      assert.equal((await g.call('/ledger/audit', bearer(await token('acme')))).status, 200);
      assert.equal(await ledgerChecks(), 0, 'ext_authz was never asked about ledger');
    });

    await t.test('a fixed partner, a dotted partner claim and a plain one on one route: the partner from the payload, no callout', async () => {
      const treasuryChecks = () => authzDecisions(portico.adminUrl, { product: 'treasury' });
      const partnerOf = async (tok: string, what: string) => {
        const r = await g.call('/treasury/all', bearer(tok, { 'x-portico-partner': 'forged', 'x-portico-issuer-fixed-idp': 'forged' }));
        assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
        const h = upstreamHeaders(r);
        // The header jwt_authn writes for the access RBAC (which issuer verified the token) stays at the gateway.
        assert.deepEqual(
          Object.keys(h).filter((k) => k.startsWith('x-portico-issuer-')),
          [],
          what,
        );
        assert.equal(h['x-portico-plan'], h['x-portico-partner'] === 'globex' ? 'premium' : 'unlimited', what);
        assert.equal(h['x-portico-credential'], 'jwt', what);
        return h['x-portico-partner'];
      };
      const claim = 'https://ledger.example/partner';
      // Any token of fixed-idp is globex's, whatever it claims.
      assert.equal(await partnerOf(await fixedIdp.token({ sub: 'svc', claims: { partner: 'acme' } }), 'fixed partner'), 'globex');
      assert.equal(await partnerOf(await nestedIdp.token({ sub: 'u', claims: { [claim]: 'acme' } }), 'URL-named top-level claim'), 'acme');
      // No top-level claim of that name: the dotted name is a path ({"https://ledger": {"example/partner": …}}).
      assert.equal(await partnerOf(await nestedIdp.token({ sub: 'u', claims: { 'https://ledger': { 'example/partner': 'globex' } } }), 'nested claim'), 'globex');
      // Both: the top-level claim wins, as in the callout.
      assert.equal(await partnerOf(await nestedIdp.token({ sub: 'u', claims: { [claim]: 'acme', 'https://ledger': { 'example/partner': 'globex' } } }), 'both'), 'acme');
      assert.equal(await partnerOf(await token('acme'), 'plain claim beside them'), 'acme');
      // A top-level claim that is no name hides the nested one (the callout: no partner claim).
      assertGatewayError(
        await g.call('/treasury/all', bearer(await nestedIdp.token({ sub: 'u', claims: { [claim]: 7, 'https://ledger': { 'example/partner': 'acme' } } }))),
        403,
        'unknown_partner',
        'a number as the top-level claim',
      );
      assertGatewayError(await g.call('/treasury/all', bearer(await nestedIdp.token({ sub: 'u', claims: { [claim]: 'umbrella' } }))), 403, 'no_subscription', 'a partner not subscribed');
      assertGatewayError(await g.call('/treasury/all', bearer(await nestedIdp.token({ sub: 'u', claims: { [claim]: 'initech' } }))), 403, 'partner_suspended', 'a suspended partner');
      // fixed-idp's partner may not call ledger/audit (access level), and ledger does not accept fixed-idp at all.
      assertUnauthorized(await g.call('/ledger/entries/1', bearer(await fixedIdp.token({ sub: 'svc' }))), 'invalid_token', 'an issuer ledger does not accept');
      assert.equal(await treasuryChecks(), 0, 'ext_authz was never asked about treasury');
      assert.equal(await ledgerChecks(), 0, 'nor about ledger');
    });

    await t.test('bad tokens: 401 invalid_token in the gateway JSON shape with a Bearer challenge', async () => {
      const none = await g.call('/ledger/entries/1');
      assertUnauthorized(none, 'missing_credentials', 'no token');
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="portico"');
      const refused = async (tok: string, what: string, message?: string) => {
        const r = await g.call('/ledger/entries/1', bearer(tok));
        assertUnauthorized(r, 'invalid_token', what);
        if (message) assert.equal(r.json.message, message, what);
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="portico", error="invalid_token"/, what);
      };
      await refused(await token('acme', { iat: now() - 7200, exp: now() - 600 }), 'expired', 'The token has expired.');
      await refused(await token('acme', { nbf: now() + 600 }), 'not yet valid', 'The token is not valid yet.');
      await refused(await token('acme', { aud: 'someone-else.example.com' }), 'wrong audience', 'The token audience is not accepted by this API.');
      await refused(await token('acme', { iss: 'https://evil.example.com' }), 'wrong issuer', 'The token issuer is not accepted by this API.');
      await refused(await token('acme', { exp: null }), 'no expiry');
      const good = await token('acme');
      const [h, , s] = good.split('.');
      const swapped = Buffer.from(JSON.stringify({ iss: idp.issuer, aud: idp.audience, sub: 'user-1', partner: 'globex', exp: now() + 600 })).toString('base64url');
      await refused(`${h}.${swapped}.${s}`, 'payload swapped', 'The token signature is invalid.');
      await refused(unsignedToken({ kid: 'p-rsa', typ: 'JWT' }, { iss: idp.issuer, aud: idp.audience, partner: 'acme', exp: now() + 600 }), 'alg none');
      const pem = idp.keys.get('p-rsa')!.publicKey.export({ type: 'spki', format: 'pem' }) as string;
      await refused(await token('acme', { alg: 'HS256', hmacSecret: new TextEncoder().encode(pem) }), 'HS256 keyed with the RSA public key');
      await refused('not-a-token', 'malformed');
      // A token of the seed's own issuer is valid there, but ledger accepts only partners-idp.
      await refused(await g.issuer.token({ sub: 'user-1', claims: { team: 'acme' } }), 'issuer not accepted by this product');
      assert.equal(await ledgerChecks(), 0, 'still no callout');
    });

    await t.test("valid tokens whose partner may not call: the callout's 403 codes (unknown, absent, suspended, not subscribed, outside the access level)", async () => {
      for (const [partner, code, what] of [
        // Where the callout says unknown_partner (a partner the model does not know): see docs/operations.md.
        ['nobody', 'no_subscription', 'unknown partner claim'],
        [undefined, 'unknown_partner', 'no partner claim'],
        ['initech', 'partner_suspended', 'suspended partner'],
        ['umbrella', 'no_subscription', 'no subscription'],
      ] as const) {
        const r = await g.call('/ledger/entries/1', bearer(await token(partner)));
        assertGatewayError(r, 403, code, what);
        assert.equal(r.headers.get('www-authenticate'), null, `${what}: a 403 carries no challenge`);
      }
      const inside = upstreamHeaders(await g.call('/ledger/entries/1', bearer(await token('globex'))));
      assert.equal(inside['x-portico-plan'], 'unlimited', 'route inside the access level, with its plan');
      assertGatewayError(await g.call('/ledger/audit', bearer(await token('globex'))), 403, 'route_not_in_subscription', 'route outside the access level');
      // A claim is a claim, not a list of partners.
      assertGatewayError(await g.call('/ledger/entries/1', bearer(await token(undefined, { claims: { partner: ['nobody', 'acme'] } }))), 403, 'no_subscription', 'partner claim as an array');
      assert.equal(await ledgerChecks(), 0, 'still no callout');
    });

    await t.test('a forwarded claim that is no valid header value is refused (never a 5xx); other claims pass as they are', async () => {
      for (const claims of [{ role: 'line1\r\nx-portico-partner: evil' }, { role: 'nul\0byte' }, { role: 'bell\x07' }, { 'org.unit': 'top\nlevel' }]) {
        const role = JSON.stringify(claims);
        const r = await g.call('/ledger/entries/1', bearer(await token('acme', { claims })));
        assertUnauthorized(r, 'invalid_token', role);
        assert.equal(r.json.message, 'The token has a claim that is not a valid header value.');
      }
      const tab = upstreamHeaders(await g.call('/ledger/entries/1', bearer(await token('acme', { claims: { role: 'a\tb' } }))));
      assert.equal(tab['x-user-role'], 'a\tb', 'HTAB is a valid field value');
      const zoe = upstreamHeaders(await g.call('/ledger/entries/1', bearer(await token('acme', { claims: { role: 'Zoë' } }))));
      assert.equal(Buffer.from(zoe['x-user-role']!, 'latin1').toString('utf8'), 'Zoë');
    });

    await t.test('suspension and subscription removal take effect on the next push', async () => {
      const acme = await token('acme');
      assert.equal((await api.patch('/api/v1/partners/acme', { suspended: true })).status, 200);
      await g.inSync();
      assertGatewayError(await g.call('/ledger/entries/1', bearer(acme)), 403, 'partner_suspended', 'suspended');
      assert.equal((await api.patch('/api/v1/partners/acme', { suspended: false })).status, 200);
      await g.inSync();
      assert.equal((await g.call('/ledger/entries/1', bearer(acme))).status, 200, 'reinstated');
      assert.equal((await api.delete('/api/v1/partners/globex/subscriptions/ledger')).status, 204);
      await g.inSync();
      assertGatewayError(await g.call('/ledger/entries/1', bearer(await token('globex'))), 403, 'no_subscription', 'subscription removed');
      assert.equal(await ledgerChecks(), 0, 'still no callout');
    });

    await t.test('the admin API says which issuers Envoy verifies; a route also taking API keys stays on the callout', async () => {
      const native = await api.get('/api/v1/jwt-issuers/partners-idp');
      assert.deepEqual(native.body.nativeVerification, { envoy: true });
      // Excluded paths no longer keep an issuer on the callout.
      assert.deepEqual((await api.get('/api/v1/jwt-issuers/example-auth')).body.nativeVerification, { envoy: true });
      // GET → PUT round trip: the output-only field is accepted and ignored.
      const { revision: _r, createdAt: _c, updatedAt: _u, ...body } = native.body;
      assert.equal((await api.put('/api/v1/jwt-issuers/partners-idp', body)).status, 200);
      await g.inSync();
      // A seed route taking the seed issuer's tokens or API keys is still served, by the callout.
      const before = await authzDecisions(portico.adminUrl, { product: 'users' });
      assert.equal((await g.call('/api/users/u_1', bearer(await g.issuer.token({ sub: 'user-42', claims: { team: 'web-app' } })))).status, 200);
      assert.ok((await authzDecisions(portico.adminUrl, { product: 'users' })) > before, 'users is checked by the callout');
    });

    await t.test('excluded paths are anonymous in Envoy as in the callout: exact or prefix, the query ignored, a token left unread; 0 callouts', async () => {
      for (const path of ['/ledger/entries/public', '/ledger/entries/public?page=2', '/ledger/audit/open/report']) {
        const r = await g.call(path, { headers: { 'x-portico-partner': 'forged' } });
        assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
        assert.deepEqual(
          identityHeadersOf(upstreamHeaders(r)),
          { 'x-portico-credential': 'none', 'x-portico-product': 'ledger', 'x-portico-route': path.startsWith('/ledger/audit') ? 'audit' : 'entries' },
          path,
        );
      }
      // A token there is never read (an expired one passes) and reaches the upstream as sent.
      const expired = await token('acme', { iat: now() - 7200, exp: now() - 600 });
      const r = await g.call('/ledger/entries/public', bearer(expired));
      assert.equal(r.status, 200, r.text);
      assert.equal(upstreamHeaders(r).authorization, '[present]', 'the token reaches the upstream (the echo hides its value)');
      // Only the excluded paths: an exact entry is not a prefix, a prefix entry ends in '/'.
      assertUnauthorized(await g.call('/ledger/entries/public/more'), 'missing_credentials', 'below an exact entry');
      assertUnauthorized(await g.call('/ledger/audit/opened'), 'missing_credentials', 'beside a prefix entry');
      assertUnauthorized(await g.call('/ledger/entries/1', bearer(expired)), 'invalid_token', 'the same token on an ordinary path');
      assert.equal(await ledgerChecks(), 0, 'still no callout');
    });

    await t.test('native and exact mode answer alike: status, body, challenge and identity headers (tokens without the partner claim: unknown_partner)', async () => {
      const claim = 'https://ledger.example/partner';
      const tokens: Array<[string, string, string]> = [
        ['/ledger/entries/1', 'valid', await token('acme')],
        ['/ledger/entries/1', 'no partner claim', await token(undefined)],
        ['/ledger/entries/1', 'an empty partner claim', await token(undefined, { claims: { partner: '' } })],
        ['/ledger/entries/1', 'suspended partner', await token('initech')],
        ['/ledger/entries/1', 'no subscription', await token('umbrella')],
        ['/ledger/audit', 'globex (its subscription removed above)', await token('globex')],
        ['/ledger/entries/1', 'expired', await token('acme', { iat: now() - 7200, exp: now() - 600 })],
        ['/treasury/all', 'plain claim beside payload issuers', await token('globex')],
        ['/treasury/all', 'no plain claim beside payload issuers', await token(undefined)],
        ['/treasury/all', 'fixed partner', await fixedIdp.token({ sub: 'svc' })],
        ['/treasury/all', 'dotted claim, top-level', await nestedIdp.token({ sub: 'u', claims: { [claim]: 'acme' } })],
        ['/treasury/all', 'dotted claim, nested', await nestedIdp.token({ sub: 'u', claims: { 'https://ledger': { 'example/partner': 'globex' } } })],
        ['/treasury/all', 'no dotted claim', await nestedIdp.token({ sub: 'u' })],
        ['/treasury/all', 'an empty dotted claim', await nestedIdp.token({ sub: 'u', claims: { [claim]: '' } })],
        ['/treasury/all', 'a number as the dotted claim', await nestedIdp.token({ sub: 'u', claims: { [claim]: 7 } })],
        ['/treasury/all', 'a list as the nested claim', await nestedIdp.token({ sub: 'u', claims: { 'https://ledger': { 'example/partner': ['acme'] } } })],
        ['/ledger/entries/1', 'a URL-named forwarded claim', await token('acme', { claims: { 'https://ledger.example/team': 'blue' } })],
        ['/ledger/entries/1', 'a dotted forwarded claim, top-level', await token('acme', { claims: { 'org.unit': 'top' } })],
        ['/ledger/entries/1', 'a dotted forwarded claim, nested', await token('acme', { claims: { org: { unit: 'nested' } } })],
        ['/ledger/entries/1', 'a dotted forwarded claim, both', await token('acme', { claims: { 'org.unit': 'top', org: { unit: 'nested' } } })],
        ['/ledger/entries/1', 'a dotted forwarded claim, a number at the top', await token('acme', { claims: { 'org.unit': 5, org: { unit: 'nested' } } })],
      ];
      const exact = await assertSameInBothModes(
        g,
        undefined,
        tokens.map(([path, what, tok]) => ({ what, call: () => g.call(path, bearer(tok)) })),
        (r) => Object.fromEntries(Object.entries(upstreamHeaders(r)).filter(([k]) => /^x-(portico|user)-/.test(k))),
      );
      assert.equal(exact.get('a URL-named forwarded claim')?.identity?.['x-user-team'], 'blue');
      assert.equal(exact.get('a dotted forwarded claim, both')?.identity?.['x-user-unit'], 'top', 'the top-level claim first');
      assert.equal(exact.get('a dotted forwarded claim, nested')?.identity?.['x-user-unit'], 'nested');
      assert.equal(exact.get('valid')?.identity?.['x-user-role'], 'clerk', 'claims forwarded in both');
      assert.equal(exact.get('fixed partner')?.identity?.['x-portico-plan'], 'premium', "globex's plan on treasury");
      assert.equal(exact.get('dotted claim, top-level')?.identity?.['x-portico-plan'], 'unlimited', "acme's plan on treasury");
      for (const what of ['no partner claim', 'an empty partner claim', 'no plain claim beside payload issuers']) {
        assert.deepEqual(exact.get(what)?.body, { error: 'unknown_partner', message: 'The token has no partner claim naming a partner.' }, what);
      }
      for (const what of ['no dotted claim', 'an empty dotted claim', 'a number as the dotted claim', 'a list as the nested claim']) {
        assert.deepEqual(exact.get(what)?.body, { error: 'unknown_partner', message: `The token has no ${claim} claim naming a partner.` }, what);
      }
      const checks = await ledgerChecks();
      assert.equal((await g.call('/ledger/entries/1', bearer(await token('acme')))).status, 200);
      assert.equal(await ledgerChecks(), checks, 'back in native mode: no callout');
    });

    await t.test("Envoy's config_dump holds the public keys only: no private key material", async () => {
      const dump = JSON.stringify(await envoy.configDump());
      assert.match(dump, /JwtAuthentication/);
      const jwk = idp.keys.get('p-rsa')!.privateKey.export({ format: 'jwk' }) as Record<string, string>;
      assert.ok(dump.includes(jwk.n!.slice(0, 40)), 'the public modulus is pushed');
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(!dump.includes(jwk[member]!.slice(0, 40)), `private member ${member} in config_dump`);
    });
  });
});
