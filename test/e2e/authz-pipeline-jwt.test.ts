// JWTs through the whole pipeline: the seed-003 issuer (partner claim `team`, claims forwarded as
// X-User-Id and X-User-Role, excluded paths) pointed at a real JWKS server, a real Envoy over xDS.
// Valid RS256 and ES256 tokens; expired, not yet valid, wrong audience, wrong issuer, no expiry,
// alg none, HS256 signed with the RSA public key, an algorithm outside the allow-list, a forged
// signature, unknown partner; excluded paths; a route taking JWT or API key; a JWKS key rotation
// under load, picked up without a control-plane restart; a key published after its tokens were
// refused, picked up within the refetch interval while a flood of random kids stays paced.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { waitFor } from '../support/components.ts';
import { assertGatewayError, assertUnauthorized, calloutStats, createApiKey, identityHeadersOf, startAuthzGateway, upstreamHeaders } from '../support/authz-gateway.ts';
import { now, unsignedToken } from '../support/jwks.ts';
import { describeFailures, startLoad } from '../support/load.ts';

const NODE = 'edge-authz-jwt';
const bearer = (token: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${token}`, ...extra } });

describe('authz pipeline: JWTs from a real JWKS through xDS and a real Envoy', () => {
  it('verifies tokens, forwards claims, refuses every bad token and follows a key rotation', { timeout: 300_000 }, async (t) => {
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      issuerKeys: [
        { kid: 'rsa-1', alg: 'RS256' },
        { kid: 'ec-1', alg: 'ES256' },
      ],
      mutate: (doc) => {
        doc.plans.push({ name: 'unlimited' });
        doc.partners.push({ name: 'solo', subscriptions: [{ product: 'catalog', plan: 'unlimited' }] });
      },
    });
    if (!g) return;
    const { api, issuer } = g;
    const user = { sub: 'user-42', claims: { team: 'web-app', role: 'admin' } };
    const challenge = (description: string) => `Bearer realm="portico", error="invalid_token", error_description="${description}"`;
    const refused = async (token: string, description: string, what: string) => {
      const r = await g.call('/api/users/u_1', bearer(token));
      assertUnauthorized(r, 'invalid_token', what);
      assert.equal(r.json.message, description, what);
      assert.ok(r.headers.get('www-authenticate')?.includes(challenge(description)), `${what}: ${r.headers.get('www-authenticate')}`);
    };
    try {
      await t.test('a valid RS256 token: the upstream sees the partner, product and the forwarded claims', async () => {
        const token = await issuer.token(user);
        const r = await g.call('/api/users/u_1', bearer(token));
        const h = upstreamHeaders(r);
        assert.equal(r.json.service, 'users');
        assert.deepEqual(identityHeadersOf(h), {
          'x-portico-credential': 'jwt',
          'x-portico-partner': 'web-app',
          'x-portico-plan': 'standard',
          'x-portico-product': 'users',
          'x-portico-route': 'users',
          'x-user-id': 'user-42',
          'x-user-role': 'admin',
        });
        assert.match(h['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
        assert.equal(h.authorization, undefined, 'the token stays at the gateway (forwardToken defaults to false)');
        // The scheme is case-insensitive; the same token is served from the verified-token cache.
        const lower = await g.call('/api/orders/o_1', { headers: { authorization: `bearer ${token}` } });
        assert.equal(upstreamHeaders(lower)['x-portico-product'], 'orders');
      });

      await t.test("forwardToken: true passes the caller's token on to the upstream; back to false, it is removed again", async () => {
        const token = await issuer.token(user);
        const setForward = async (forwardToken: boolean) => {
          const r = await api.patch('/api/v1/jwt-issuers/example-auth', { forwardToken }, { 'content-type': 'application/merge-patch+json' });
          assert.equal(r.status, 200, r.text);
        };
        await setForward(true);
        try {
          const forwarded = await waitFor(
            'the authz service to forward tokens',
            async () => {
              const h = upstreamHeaders(await g.call('/api/users/u_1', bearer(token)));
              return h.authorization !== undefined ? h : undefined;
            },
            10_000,
            100,
          );
          assert.equal(forwarded.authorization, '[present]');
          assert.equal(forwarded['x-portico-partner'], 'web-app');
        } finally {
          await setForward(false);
        }
        await waitFor(
          'the authz service to strip tokens again',
          async () => (upstreamHeaders(await g.call('/api/users/u_1', bearer(token))).authorization === undefined ? true : undefined),
          10_000,
          100,
        );
      });

      await t.test('a valid ES256 token is accepted too', async () => {
        const token = await issuer.token({ kid: 'ec-1', sub: 'user-ec', claims: { team: 'web-app', role: 'viewer' } });
        const h = upstreamHeaders(await g.call('/api/products/p_1', bearer(token)));
        assert.equal(h['x-user-id'], 'user-ec');
        assert.equal(h['x-user-role'], 'viewer');
        assert.equal(h['x-portico-product'], 'catalog');
      });

      await t.test('claims are the only source of claim headers: a token without `role` forwards none, whatever the client sent', async () => {
        const token = await issuer.token({ sub: 'user-7', claims: { team: 'web-app' } });
        const h = upstreamHeaders(await g.call('/api/users/u_7', bearer(token, { 'x-user-role': 'admin', 'x-user-id': 'root', 'x-portico-partner': 'acme' })));
        assert.equal(h['x-user-id'], 'user-7');
        assert.equal(h['x-user-role'], undefined);
        assert.equal(h['x-portico-partner'], 'web-app');
      });

      await t.test('expired, not yet valid, wrong audience, wrong issuer, no expiry: 401 invalid_token', async () => {
        await refused(await issuer.token({ ...user, iat: now() - 7200, exp: now() - 600 }), 'The token has expired.', 'expired');
        await refused(await issuer.token({ ...user, nbf: now() + 600 }), 'The token is not valid yet.', 'not yet valid');
        await refused(await issuer.token({ ...user, aud: 'someone-else.example.com' }), 'The token audience is not accepted by this API.', 'wrong audience');
        await refused(await issuer.token({ ...user, aud: null }), 'The token audience is not accepted by this API.', 'no audience');
        await refused(await issuer.token({ ...user, iss: 'https://evil.example.com' }), 'The token issuer is not accepted by this API.', 'wrong issuer');
        await refused(await issuer.token({ ...user, exp: null }), 'The token has no valid expiry (exp) claim.', 'no expiry');
      });

      await t.test('wrong algorithms: alg none, HS256 keyed with the RSA public key, RS384 with a published key; forged signatures', async () => {
        const rsa = issuer.keys.get('rsa-1')!;
        const claims = { iss: issuer.issuer, aud: issuer.audience, sub: 'user-42', team: 'web-app', exp: now() + 600 };
        await refused(unsignedToken({ kid: 'rsa-1', typ: 'JWT' }, claims), 'The token signing algorithm is not accepted.', 'alg none');
        const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
        const confused = await issuer.token({ ...user, kid: 'rsa-1', alg: 'HS256', hmacSecret: new TextEncoder().encode(pem) });
        await refused(confused, 'The token signing algorithm is not accepted.', 'HS256 with the RSA public key');
        const jwkSecret = new TextEncoder().encode(JSON.stringify(rsa.jwk));
        await refused(await issuer.token({ ...user, alg: 'HS256', hmacSecret: jwkSecret }), 'The token signing algorithm is not accepted.', 'HS256 with the JWK');
        await refused(await issuer.token({ ...user, alg: 'RS384' }), 'The token signing algorithm is not accepted.', 'RS384 (not in the allow-list)');

        // A good token with its payload swapped (team changed): the signature no longer matches.
        const good = await issuer.token(user);
        const [h, , s] = good.split('.');
        const payload = Buffer.from(JSON.stringify({ ...claims, team: 'solo', role: 'admin' })).toString('base64url');
        await refused(`${h}.${payload}.${s}`, 'The token signature is invalid.', 'payload swapped');
        // An ES256 header on a token signed with the RSA key.
        await refused(`${Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'ec-1' })).toString('base64url')}.${good.split('.')[1]}.${s}`, 'The token signature is invalid.', 'alg swapped');
      });

      await t.test('claim values that are no valid header value are left out; the request still reaches the upstream', async () => {
        for (const role of ['x'.repeat(5000), 'line1\r\nx-portico-partner: evil', 'nul\0byte']) {
          const token = await issuer.token({ sub: 'user-5', claims: { team: 'solo', role } });
          const h = upstreamHeaders(await g.call('/api/products/p_1', bearer(token)));
          assert.equal(h['x-user-id'], 'user-5');
          assert.equal(h['x-user-role'], undefined, JSON.stringify(role.slice(0, 20)));
          assert.equal(h['x-portico-partner'], 'solo');
        }
        // Non-ASCII text is a valid (obs-text) header value and is forwarded as UTF-8 bytes.
        const zoe = await issuer.token({ sub: 'user-6', claims: { team: 'solo', role: 'Zoë' } });
        assert.equal(Buffer.from(upstreamHeaders(await g.call('/api/products/p_1', bearer(zoe)))['x-user-role']!, 'latin1').toString('utf8'), 'Zoë');
      });

      await t.test('claim values with other control characters (0x01, DEL, ESC) are left out too', async () => {
        for (const role of ['a\x01b', 'del\x7f', 'esc\x1b[31m']) {
          const token = await issuer.token({ sub: 'user-8', claims: { team: 'solo', role } });
          const r = await g.call('/api/products/p_1', bearer(token));
          assert.equal(r.status, 200, `${JSON.stringify(role)}: ${r.status} ${r.text}`);
          assert.equal(upstreamHeaders(r)['x-user-role'], undefined);
        }
      });

      await t.test('a valid token naming no known partner, or none at all, is 403; a partner without a subscription is 403', async () => {
        const unknown = await g.call('/api/users/u_1', bearer(await issuer.token({ sub: 'x', claims: { team: 'nobody' } })));
        assertGatewayError(unknown, 403, 'unknown_partner', 'unknown partner');
        assert.equal(unknown.headers.get('www-authenticate'), null);
        assertGatewayError(await g.call('/api/users/u_1', bearer(await issuer.token({ sub: 'x' }))), 403, 'unknown_partner', 'no team claim');
        assertGatewayError(await g.call('/api/users/u_1', bearer(await issuer.token({ sub: 'x', claims: { team: 42 } }))), 403, 'unknown_partner', 'team not a string');
        const solo = await issuer.token({ sub: 's', claims: { team: 'solo' } });
        assertGatewayError(await g.call('/api/orders/o_1', bearer(solo)), 403, 'no_subscription', 'solo on orders');
        assert.equal(upstreamHeaders(await g.call('/api/products', bearer(solo)))['x-portico-partner'], 'solo');
      });

      await t.test('one route, several credentials: a JWT or an API key; a presented but invalid one never falls through', async () => {
        const key = await createApiKey(api, 'solo', 'primary');
        const token = await issuer.token({ sub: 'u', claims: { team: 'web-app' } });
        assert.equal(upstreamHeaders(await g.call('/api/products', bearer(token)))['x-portico-credential'], 'jwt');
        assert.equal(upstreamHeaders(await g.call('/api/products', { headers: { 'x-api-key': key } }))['x-portico-credential'], 'api_key');
        // Both presented: the API key decides (API key → JWT → certificate).
        assert.equal(upstreamHeaders(await g.call('/api/products', bearer(token, { 'x-api-key': key })))['x-portico-partner'], 'solo');
        assertUnauthorized(await g.call('/api/products', bearer(token, { 'x-api-key': `ptk_zzzzzzzz_${'Q'.repeat(43)}` })), 'invalid_api_key', 'bad key + good token');
        // A valid key with a garbage bearer token: the key decides and the token is never examined.
        assert.equal(upstreamHeaders(await g.call('/api/products', bearer('x.y.z', { 'x-api-key': key })))['x-portico-credential'], 'api_key');
      });

      await t.test("the issuer's excluded paths are reachable without a token, even where the product requires one", async () => {
        // In seed 003 these belong to the public accounts product.
        assert.equal((await g.call('/api/health')).status, 200);
        assert.equal((await g.call('/api/auth/login', { method: 'POST', body: '{}' })).status, 200);
        assert.equal((await g.call('/api/auth/register', { method: 'POST', body: '{}' })).status, 200);
        // Make accounts require a JWT, with one route that is not excluded: ext_authz now runs there.
        const me = await api.post('/api/v1/products/accounts/routes', {
          name: 'me',
          match: { path: { type: 'exact', value: '/auth/me' }, methods: ['GET'] },
          service: 'users',
          rewrite: { stripPrefix: '/api' },
        });
        assert.equal(me.status, 201, me.text);
        const patched = await api.patch('/api/v1/products/accounts', { auth: { accept: ['jwt'] } });
        assert.equal(patched.status, 200, patched.text);
        await g.inSync();
        assertUnauthorized(await g.call('/api/auth/me'), 'missing_credentials', 'a non-excluded path of the product');
        const expired = await issuer.token({ ...user, iat: now() - 7200, exp: now() - 600 });
        for (const [path, method] of [
          ['/api/health', 'GET'],
          ['/api/auth/login', 'POST'],
          ['/api/auth/register', 'POST'],
        ] as const) {
          const r = await g.call(path, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
          assert.equal(r.status, 200, `${path}: ${r.text}`);
          // Login with an expired token works: tokens on excluded paths are not even parsed.
          const withExpired = await g.call(path, { method, ...(method === 'POST' ? { body: '{}' } : {}), ...bearer(expired, { 'x-user-id': 'forged' }) });
          assert.equal(withExpired.status, 200, `${path} with an expired token: ${withExpired.text}`);
          if (path !== '/api/health') {
            const h = upstreamHeaders(withExpired);
            assert.equal(h['x-portico-partner'], undefined, path);
            assert.equal(h['x-user-id'], undefined, `${path}: no identity from an unverified token or the client`);
            assert.equal(h.authorization, '[present]', `${path}: a token the gateway did not read is the upstream's to judge`);
          }
        }
        const ok = await g.call('/api/auth/me', bearer(await issuer.token(user)));
        assert.equal(upstreamHeaders(ok)['x-user-id'], 'user-42');
      });

      await t.test('JWKS key rotation under load: old and new tokens both accepted, without a control-plane restart', async () => {
        const source = g.portico.authz.verifier.source('example-auth');
        assert.ok(source, 'the issuer has a key source');
        // Partner solo: a plan without limits (web-app's seed-003 plan allows 100/s per user; this is not about limits).
        const oldToken = await issuer.token({ sub: 'old-user', claims: { team: 'solo' } });
        await issuer.addKey('rsa-2', 'RS256'); // made now, published later
        assert.equal((await g.call('/api/products/p_1', bearer(oldToken))).status, 200);
        const load = startLoad({
          concurrency: 4,
          targets: [{ name: 'old-token', url: `${g.gw}/api/products/p_old`, headers: { authorization: `Bearer ${oldToken}` }, expect: [200] }],
        });
        try {
          await load.waitForRequests(200);
          const fetchesBefore = issuer.fetchCount();
          // The IdP publishes a new key beside the old one and signs new tokens with it.
          issuer.publish(['rsa-1', 'ec-1', 'rsa-2']);
          issuer.signWith('rsa-2');
          load.mark('rotated: new tokens signed with rsa-2');
          const newToken = await issuer.token({ sub: 'new-user', claims: { team: 'solo', role: 'ops' } });
          // The first request with the unknown kid makes the control plane refetch the JWKS.
          const first = await g.call('/api/products/p_new', bearer(newToken));
          if (first.status !== 200) t.diagnostic(`first request with the new kid: ${first.status} ${first.text} (the refetch took longer than the wait)`);
          const accepted = await waitFor(
            'a token signed with the new key to be accepted',
            async () => {
              const r = await g.call('/api/products/p_new', bearer(newToken));
              return r.status === 200 ? r : undefined;
            },
            20_000,
            200,
          );
          assert.equal(upstreamHeaders(accepted)['x-user-id'], 'new-user');
          assert.equal(accepted.json.headers['x-user-role'], 'ops');
          assert.ok(issuer.fetchCount() > fetchesBefore, 'the JWKS was fetched again');
          assert.equal(g.portico.authz.verifier.source('example-auth'), source, 'the same key source, no restart or re-sync');
          await load.waitForRequests(200);
          assert.equal(upstreamHeaders(await g.call('/api/products/p_1', bearer(oldToken)))['x-user-id'], 'old-user', 'old tokens still accepted');
          const es = await issuer.token({ kid: 'ec-1', sub: 'ec', claims: { team: 'solo' } });
          assert.equal((await g.call('/api/products/p_1', bearer(es))).status, 200, 'the other published key still works');
        } finally {
          const report = await load.stop();
          if (report.failures.length) t.diagnostic(`Envoy's ext_authz stats: ${await calloutStats(g.envoy)}`);
          assert.deepEqual(report.failures, [], describeFailures(report.failures, report.marks));
        }
      });

      await t.test('a key published after its first tokens were refused is accepted within seconds; 1,000 random kids make a handful of JWKS fetches', async () => {
        const { unknownKidRefetchIntervalMs: interval, unknownKidRefetchBurst: burst } = g.portico.authz.verifier.settings;
        await issuer.addKey('rsa-3', 'RS256');
        // The IdP signs with rsa-3 before it publishes it: the first tokens spend unknown-kid refetches.
        const early = await issuer.token({ kid: 'rsa-3', sub: 'early', claims: { team: 'solo' } });
        await refused(early, 'The token was signed by a key the issuer does not publish.', 'not published yet');

        // A flood of tokens naming random kids (20 at a time): each is refused, and the refetches stay paced.
        const [, payload, signature] = early.split('.');
        const forged = (i: number) => `${Buffer.from(JSON.stringify({ alg: 'RS256', kid: `random-${i}-${randomUUID()}` })).toString('base64url')}.${payload}.${signature}`;
        const fetchesBefore = issuer.fetchCount();
        const started = Date.now();
        const statuses = new Map<number, number>();
        for (let i = 0; i < 1000; i += 20) {
          const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => g.call('/api/products/p_1', bearer(forged(i + j)))));
          for (const r of batch) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        }
        const elapsed = Date.now() - started;
        const fetches = issuer.fetchCount() - fetchesBefore;
        assert.deepEqual([...statuses], [[401, 1000]]);
        // The bucket holds at most `burst` refetches and regains one per interval, whatever the load.
        const bound = burst + Math.ceil(elapsed / interval);
        t.diagnostic(`1,000 random kids in ${elapsed} ms: ${fetches} JWKS fetches (bound ${bound})`);
        assert.ok(fetches <= bound, `${fetches} fetches for 1,000 random kids in ${elapsed} ms; at most ${bound} expected`);

        // Now the IdP publishes rsa-3: a token signed with it is accepted once the bucket refills (one interval).
        issuer.publish(['rsa-1', 'ec-1', 'rsa-2', 'rsa-3']);
        const published = Date.now();
        const accepted = await waitFor(
          'the token signed with the newly published key to be accepted',
          async () => {
            const r = await g.call('/api/products/p_1', bearer(early));
            return r.status === 200 ? r : undefined;
          },
          3 * interval,
          200,
        );
        assert.equal(upstreamHeaders(accepted)['x-user-id'], 'early');
        t.diagnostic(`accepted ${Date.now() - published} ms after the key was published (refetch interval ${interval} ms)`);
      });

      await t.test('a token signed by a key the issuer does not publish is 401', async () => {
        await issuer.addKey('rsa-rogue', 'RS256');
        const rogue = await issuer.token({ ...user, kid: 'rsa-rogue' });
        await refused(rogue, 'The token was signed by a key the issuer does not publish.', 'unpublished key');
        // Signed by a rogue key but claiming a published kid: a bad signature.
        const claimed = await issuer.token({ ...user, kid: 'rsa-rogue' });
        const [, p, s] = claimed.split('.');
        await refused(`${Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'rsa-1' })).toString('base64url')}.${p}.${s}`, 'The token signature is invalid.', 'rogue key, published kid');
      });
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-4000));
      throw e;
    }
  });
});
