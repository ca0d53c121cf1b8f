// Credential index and access decisions (pure): API keys (rotation, revocation, expiry, header and
// query locations), partner and subscription state, access levels, public routes, JWT-excluded
// paths, identity-header stripping, and malformed input answered with a 401 rather than a throw.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ApiKey, JwtIssuer, Partner, Plan, Product, Route, Subscription } from '../../src/model/schemas.ts';
import { buildCredentialIndex, type CredentialIndex } from '../../src/authz/credential-index.ts';
import { GATEWAY_HEADERS } from '../../src/contract/index.ts';
import { decide, denyBody, jwtToVerify, type Allow, type Decision, type Deny, type JwtOutcome } from '../../src/authz/decide.ts';
import { authzRequest, mintApiKey, modelOf, testHasher, type CheckInput } from '../support/authz-fixtures.ts';

const NOW = Date.parse('2025-06-01T00:00:00Z');
const hasher = testHasher();

const keys = {
  acme1: mintApiKey(hasher, 'acme', 'primary'),
  acme2: mintApiKey(hasher, 'acme', 'rotated'),
  acmeRevoked: mintApiKey(hasher, 'acme', 'old', { revoked: true }),
  acmeExpired: mintApiKey(hasher, 'acme', 'temp', { expiresAt: '2025-05-31T23:59:59Z' }),
  acmeFuture: mintApiKey(hasher, 'acme', 'later', { expiresAt: '2025-06-01T00:00:01Z' }),
  globex: mintApiKey(hasher, 'globex', 'main'),
  initech: mintApiKey(hasher, 'initech', 'main'),
  hooli: mintApiKey(hasher, 'hooli', 'main'),
  umbrella: mintApiKey(hasher, 'umbrella', 'main'),
  stark: mintApiKey(hasher, 'stark', 'main'),
};

const products: Product[] = [
  { name: 'orders', gatewayGroups: ['edge'], basePath: '/orders' },
  { name: 'billing', gatewayGroups: ['edge'], auth: { accept: ['api_key'] }, apiKey: { queryParameter: 'api_key' } },
  { name: 'both', gatewayGroups: ['edge'], auth: { accept: ['api_key'] }, apiKey: { header: 'X-Key', queryParameter: 'key' } },
  { name: 'status', gatewayGroups: ['edge'], auth: { accept: ['none'] }, publicPlan: 'free' },
  { name: 'api', gatewayGroups: ['edge'], auth: { accept: ['jwt'] }, jwtIssuers: ['auth0'] },
  { name: 'mixed', gatewayGroups: ['edge'], auth: { accept: ['api_key', 'jwt'] }, jwtIssuers: ['auth0'], publicPlan: 'free' },
  { name: 'keysonly', gatewayGroups: ['edge'], auth: { accept: ['api_key'] }, jwtIssuers: ['auth0'] },
];
const route = (product: string, name: string, extra: Partial<Route> = {}): Route => ({
  product,
  name,
  match: { path: { type: 'prefix', value: `/${name}` } },
  service: 'svc',
  ...extra,
});
const routes: Route[] = [
  route('orders', 'list', { match: { path: { type: 'prefix', value: '/' }, methods: ['GET'] } }),
  route('orders', 'create', { match: { path: { type: 'exact', value: '/' }, methods: ['POST'] } }),
  route('orders', 'open', { auth: { accept: ['none'] } }),
  route('billing', 'read'),
  route('billing', 'write'),
  route('both', 'any'),
  route('status', 'health'),
  route('api', 'users'),
  route('mixed', 'things'),
  route('keysonly', 'k'),
];
const partners: Partner[] = [{ name: 'acme' }, { name: 'globex', suspended: true }, { name: 'initech' }, { name: 'hooli' }, { name: 'umbrella' }, { name: 'stark' }];
const plans: Plan[] = [{ name: 'gold' }, { name: 'free' }, { name: 'bronze' }];
const subscriptions: Subscription[] = [
  { partner: 'acme', product: 'orders', plan: 'gold' },
  { partner: 'acme', product: 'billing', plan: 'bronze', access: { methods: ['GET', 'HEAD'], routes: ['read'] } },
  { partner: 'acme', product: 'both', plan: 'gold' },
  { partner: 'acme', product: 'api', plan: 'gold' },
  { partner: 'acme', product: 'mixed', plan: 'gold' },
  { partner: 'acme', product: 'keysonly', plan: 'gold' },
  { partner: 'globex', product: 'orders', plan: 'gold' },
  { partner: 'initech', product: 'orders', plan: 'gold', status: 'suspended' },
  { partner: 'umbrella', product: 'orders', plan: 'gold', expiresAt: '2025-05-01T00:00:00Z' },
  { partner: 'stark', product: 'orders', plan: 'gold', expiresAt: '2026-01-01T00:00:00Z' },
];
const issuers: JwtIssuer[] = [
  {
    name: 'auth0',
    issuer: 'https://auth.example.com/',
    audiences: ['api.example.com'],
    jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] },
    partnerClaim: 'org',
    forwardClaims: { sub: 'X-User-Id', role: 'X-User-Role', 'realm.roles': 'X-Roles' },
    excludedPaths: ['/api/health', '/api/auth/login', '/docs/'],
  },
  {
    name: 'internal',
    issuer: 'https://idp.internal/',
    audiences: ['gateway'],
    jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] },
    partner: 'acme',
    forwardClaims: { email: 'X-User-Email' },
  },
];
const apiKeys: ApiKey[] = Object.values(keys).map((k) => k.resource);

const model = modelOf({ products, routes, partners, plans, subscriptions, jwtIssuers: issuers, apiKeys });
const index = buildCredentialIndex(model, { hasher });

function check(i: CheckInput, jwt?: JwtOutcome, idx: CredentialIndex = index, now = NOW): Decision {
  return decide(idx, authzRequest(i), now, jwt);
}
function allowed(d: Decision): Allow {
  assert.equal(d.allowed, true, `expected allow, got ${JSON.stringify(d)}`);
  return d as Allow;
}
function denied(d: Decision, status: 401 | 403, error: string): Deny {
  assert.equal(d.allowed, false, `expected deny, got ${JSON.stringify(d)}`);
  const x = d as Deny;
  assert.equal(x.status, status, JSON.stringify(x));
  assert.equal(x.error, error, JSON.stringify(x));
  if (status === 401) assert.ok(x.wwwAuthenticate?.includes('realm="portico"'), 'a 401 carries WWW-Authenticate');
  else assert.equal(x.wwwAuthenticate, undefined);
  return x;
}
const header = (a: Allow, name: string) => a.setHeaders.find(([k]) => k === name)?.[1];
const withKey = (secret: string, extra: CheckInput = {}): CheckInput => ({ product: 'orders', route: 'list', ...extra, headers: { 'x-api-key': secret, ...extra.headers } });

describe('credential index', () => {
  it('indexes keys by prefix, products with their key locations and issuers, and the gateway-owned headers', () => {
    assert.equal(index.revision, 1);
    const k = index.apiKeys.get(keys.acme1.resource.prefix)!;
    assert.equal(k.partner, 'acme');
    assert.equal(k.hash, keys.acme1.resource.hash);
    assert.equal(k.expiresAt, Number.POSITIVE_INFINITY);
    assert.equal(index.apiKeys.get(keys.acmeExpired.resource.prefix)!.expiresAt, Date.parse('2025-05-31T23:59:59Z'));
    assert.equal(index.apiKeys.get(keys.acmeRevoked.resource.prefix)!.revoked, true);

    const orders = index.products.get('orders')!;
    assert.equal(orders.apiKeyHeader, 'x-api-key');
    assert.equal(orders.apiKeyQuery, undefined);
    assert.deepEqual(orders.routes.get('list')!.accept, ['api_key', 'jwt'], 'no auth anywhere: the secure default');
    assert.deepEqual(orders.routes.get('open')!.accept, ['none']);
    assert.deepEqual(
      orders.issuers.map((i) => i.name),
      ['auth0', 'internal'],
      'no jwtIssuers: every issuer',
    );
    assert.equal(index.products.get('billing')!.apiKeyHeader, undefined, 'a query parameter alone replaces the default header');
    assert.equal(index.products.get('billing')!.apiKeyQuery, 'api_key');
    assert.equal(index.products.get('both')!.apiKeyHeader, 'x-key', 'header names are lower-cased');
    assert.deepEqual(
      index.products.get('api')!.issuers.map((i) => i.name),
      ['auth0'],
    );
    assert.deepEqual([...index.products.get('api')!.excludedExact].sort(), ['/api/auth/login', '/api/health']);
    assert.deepEqual(index.products.get('api')!.excludedPrefixes, ['/docs/']);

    const auth0 = index.issuersByIss.get('https://auth.example.com/')!;
    assert.deepEqual(auth0.algorithms, ['RS256', 'ES256']);
    assert.equal(auth0.clockSkewSeconds, 30);
    assert.deepEqual(auth0.forwardClaims, [
      ['realm.roles', 'x-roles'],
      ['sub', 'x-user-id'],
      ['role', 'x-user-role'],
    ]);

    const billing = index.subscriptions.get('acme/billing')!;
    assert.deepEqual([...billing.methods!], ['GET', 'HEAD']);
    assert.deepEqual([...billing.routes!], ['read']);
    assert.equal(index.subscriptions.get('acme/orders')!.methods, undefined);
    assert.equal(index.subscriptions.get('initech/orders')!.active, false);
    assert.equal(index.partners.get('globex')!.suspended, true);

    assert.deepEqual(index.identityHeaders, [
      'x-portico-credential',
      'x-portico-partner',
      'x-portico-plan',
      'x-portico-product',
      'x-portico-route',
      'x-roles',
      'x-user-email',
      'x-user-id',
      'x-user-role',
    ]);
  });

  it('is a function of the snapshot: rebuilding gives an equal index, and a change shows up only in the new one', () => {
    const again = buildCredentialIndex(model, { hasher });
    assert.deepEqual([...again.apiKeys.entries()], [...index.apiKeys.entries()]);
    assert.deepEqual([...again.identityHeaders], [...index.identityHeaders]);
    const changed = modelOf({ products, routes, partners: partners.map((p) => (p.name === 'acme' ? { ...p, suspended: true } : p)), plans, subscriptions, jwtIssuers: issuers, apiKeys }, 2);
    const next = buildCredentialIndex(changed, { hasher });
    denied(check(withKey(keys.acme1.secret), undefined, next), 403, 'partner_suspended');
    allowed(check(withKey(keys.acme1.secret)));
  });
});

describe('API keys', () => {
  it('allows a valid key: partner, product, plan headers and metadata; strips identity headers and the key', () => {
    const a = allowed(check(withKey(keys.acme1.secret)));
    assert.equal(a.partner, 'acme');
    assert.equal(a.product, 'orders');
    assert.equal(a.route, 'list');
    assert.equal(a.plan, 'gold');
    assert.equal(a.credential, 'api_key');
    assert.equal(header(a, GATEWAY_HEADERS.partner), 'acme');
    assert.equal(header(a, GATEWAY_HEADERS.product), 'orders');
    assert.equal(header(a, GATEWAY_HEADERS.plan), 'gold');
    assert.deepEqual(a.metadata, { product: 'orders', route: 'list', partner: 'acme', plan: 'gold', credential: 'api_key' });
    assert.ok(a.removeHeaders.includes('x-api-key'), 'the API key never reaches the upstream');
    for (const h of ['x-user-id', 'x-user-role', 'x-user-email', 'x-roles']) assert.ok(a.removeHeaders.includes(h), h);
    for (const [k] of a.setHeaders) assert.ok(!a.removeHeaders.includes(k), `${k} is set and must not also be removed`);
    assert.equal(header(a, 'x-request-id'), undefined, 'Envoy already sent a request id: kept as is');
  });

  it('accepts both keys of a partner during rotation, and refuses revoked and expired ones', () => {
    assert.equal(allowed(check(withKey(keys.acme1.secret))).partner, 'acme');
    assert.equal(allowed(check(withKey(keys.acme2.secret))).partner, 'acme');
    const r = denied(check(withKey(keys.acmeRevoked.secret)), 401, 'revoked_api_key');
    assert.match(r.wwwAuthenticate!, /ApiKey realm="portico", header="x-api-key"/);
    denied(check(withKey(keys.acmeExpired.secret)), 401, 'expired_api_key');
    allowed(check(withKey(keys.acmeFuture.secret)));
    denied(check(withKey(keys.acmeFuture.secret), undefined, index, Date.parse('2025-06-01T00:00:01Z')), 401, 'expired_api_key');
  });

  it('does not disclose a key status without the whole key: a known prefix with a wrong secret is just unknown', () => {
    const forged = keys.acmeRevoked.secret.slice(0, -4) + (keys.acmeRevoked.secret.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const d = denied(check(withKey(forged)), 401, 'invalid_api_key');
    assert.equal(d.message, 'The API key is not recognised.');
    denied(check(withKey(`ptk_zzzzzzzz_${'A'.repeat(43)}`)), 401, 'invalid_api_key');
    // A deleted key: same model without it.
    const without = buildCredentialIndex(modelOf({ products, routes, partners, plans, subscriptions, apiKeys: apiKeys.filter((k) => k.name !== 'rotated') }), { hasher });
    denied(check(withKey(keys.acme2.secret), undefined, without), 401, 'invalid_api_key');
  });

  it('refuses a key hashed with another hasher key (keys are keyed hashes, not plain digests)', () => {
    const other = buildCredentialIndex(model, { hasher: testHasher() });
    denied(check(withKey(keys.acme1.secret), undefined, other), 401, 'invalid_api_key');
  });

  it('never echoes the presented key in messages, headers or metadata', () => {
    for (const secret of [keys.acmeRevoked.secret, keys.acmeExpired.secret, `${keys.acme1.secret}x`, keys.globex.secret]) {
      const d = check(withKey(secret));
      const text = JSON.stringify(d);
      assert.ok(!text.includes(secret.slice(13)), `secret leaked in ${text}`);
    }
  });

  it('reads keys from the product query parameter and asks Envoy to drop it', () => {
    const a = allowed(check({ product: 'billing', route: 'read', path: `/read?x=1&api_key=${keys.acme1.secret}` }));
    assert.deepEqual(a.removeQuery, ['api_key']);
    assert.ok(!a.removeHeaders.includes('x-api-key'), 'this product takes no header');
    const d = denied(check({ product: 'billing', route: 'read', headers: { 'x-api-key': keys.acme1.secret } }), 401, 'missing_credentials');
    assert.match(d.message, /api_key query parameter/);
    assert.match(d.wwwAuthenticate!, /query="api_key"/);
  });

  it('takes the configured header first, then the query parameter', () => {
    allowed(check({ product: 'both', route: 'any', headers: { 'x-key': keys.acme1.secret } }));
    allowed(check({ product: 'both', route: 'any', path: `/any?key=${encodeURIComponent(keys.acme1.secret)}` }));
    denied(check({ product: 'both', route: 'any', headers: { 'x-key': 'nope' }, path: `/any?key=${keys.acme1.secret}` }), 401, 'invalid_api_key');
  });

  it('answers malformed keys and headers with a 401, never an exception', () => {
    const weird = [
      '',
      ' ',
      'ptk_',
      'ptk_abcdefgh_',
      `ptk_ABCDEFGH_${'A'.repeat(43)}`,
      'x'.repeat(100_000),
      '\u0000\u0001',
      `ptk_abcdefgh_${'🙂'.repeat(43)}`,
      `${keys.acme1.secret},${keys.acme2.secret}`,
    ];
    for (const v of weird) {
      const d = check(withKey(v));
      assert.equal(d.allowed, false, JSON.stringify(v.slice(0, 20)));
      assert.equal((d as Deny).status, 401);
    }
    denied(check({ product: 'billing', route: 'read', path: '/read?api_key=%E0%A4%A' }), 401, 'invalid_api_key');
  });
});

describe('partners and subscriptions', () => {
  it('refuses a suspended partner, a suspended or expired subscription, and a partner without one', () => {
    denied(check(withKey(keys.globex.secret)), 403, 'partner_suspended');
    denied(check(withKey(keys.initech.secret)), 403, 'subscription_suspended');
    const exp = denied(check(withKey(keys.umbrella.secret)), 403, 'subscription_expired');
    assert.equal(exp.partner, 'umbrella', 'a 403 names the partner for logs');
    denied(check(withKey(keys.hooli.secret)), 403, 'no_subscription');
    allowed(check(withKey(keys.stark.secret)));
    denied(check(withKey(keys.stark.secret), undefined, index, Date.parse('2026-01-01T00:00:00Z')), 403, 'subscription_expired');
  });

  it('applies the access level: routes and methods outside it are forbidden', () => {
    const base = { product: 'billing', path: `/read?api_key=${keys.acme1.secret}` };
    allowed(check({ ...base, route: 'read', method: 'GET' }));
    allowed(check({ ...base, route: 'read', method: 'HEAD' }));
    const m = denied(check({ ...base, route: 'read', method: 'DELETE' }), 403, 'method_not_in_subscription');
    assert.match(m.message, /DELETE/);
    denied(check({ ...base, route: 'write', method: 'GET' }), 403, 'route_not_in_subscription');
    // No access level: every method and route.
    allowed(check(withKey(keys.acme1.secret, { route: 'create', method: 'POST' })));
  });
});

describe('routes and credential selection', () => {
  it('asks for credentials when none is presented, naming what the route accepts', () => {
    const d = denied(check({ product: 'orders', route: 'list' }), 401, 'missing_credentials');
    assert.equal(d.message, 'This API requires an API key in the x-api-key header, or a bearer token in the Authorization header.');
    assert.equal(d.wwwAuthenticate, 'ApiKey realm="portico", header="x-api-key", Bearer realm="portico"');
    assert.equal(denyBody(d), JSON.stringify({ error: 'missing_credentials', message: d.message }));
  });

  it('lets public routes through anonymously with the public plan, still stripping spoofed identity headers', () => {
    const a = allowed(check({ product: 'status', route: 'health', headers: { 'x-portico-partner': 'acme', 'x-user-id': 'root' } }));
    assert.equal(a.partner, undefined);
    assert.equal(a.credential, 'none');
    assert.equal(a.plan, 'free');
    assert.deepEqual(a.metadata, { product: 'status', route: 'health', credential: 'none', plan: 'free' });
    assert.ok(a.removeHeaders.includes('x-portico-partner'));
    assert.ok(a.removeHeaders.includes('x-user-id'));
    assert.equal(header(a, GATEWAY_HEADERS.partner), undefined);
    // A route-level 'none' overrides the product default.
    assert.equal(allowed(check({ product: 'orders', route: 'open' })).credential, 'none');
  });

  it('overwrites spoofed identity headers with the verified identity', () => {
    const a = allowed(check(withKey(keys.acme1.secret, { headers: { 'x-portico-partner': 'globex', 'x-portico-plan': 'platinum', 'x-user-id': 'admin' } })));
    assert.equal(header(a, GATEWAY_HEADERS.partner), 'acme');
    assert.equal(header(a, GATEWAY_HEADERS.plan), 'gold');
    assert.ok(a.removeHeaders.includes('x-user-id'), 'an API-key caller cannot pass a JWT claim header');
    assert.ok(!a.removeHeaders.includes('x-portico-partner'));
  });

  it('waives the token on an issuer excluded path (seed 003: /api/health, /api/auth/login), exact or under a trailing slash', () => {
    for (const path of ['/api/health', '/api/auth/login', '/docs/index.html', '/api/health?verbose=1']) {
      const a = allowed(check({ product: 'api', route: 'users', path, headers: { authorization: 'Bearer expired.or.garbage', 'x-user-id': 'spoof' } }));
      assert.equal(a.credential, 'none', path);
      assert.ok(a.removeHeaders.includes('x-user-id'));
    }
    for (const path of ['/api/healthz', '/api/health/', '/docs', '/api/users']) denied(check({ product: 'api', route: 'users', path }), 401, 'missing_credentials');
    // Exclusions relax the JWT requirement only: a product that does not accept JWTs ignores them.
    denied(check({ product: 'keysonly', route: 'k', path: '/api/health' }), 401, 'missing_credentials');
  });

  it('tries credentials in a fixed order (API key, then JWT, then certificate) and never falls through after a bad one', () => {
    const p = jwtToVerify(index, authzRequest({ product: 'mixed', route: 'things', headers: { authorization: 'Bearer a.b.c' } }));
    assert.equal(p?.token, 'a.b.c');
    assert.deepEqual(
      p?.issuers.map((i) => i.name),
      ['auth0'],
    );
    // Both presented: the API key decides and no token is verified.
    assert.equal(jwtToVerify(index, authzRequest({ product: 'mixed', route: 'things', headers: { authorization: 'Bearer a.b.c', 'x-api-key': keys.acme1.secret } })), undefined);
    assert.equal(allowed(check({ product: 'mixed', route: 'things', headers: { authorization: 'Bearer a.b.c', 'x-api-key': keys.acme1.secret } })).credential, 'api_key');
    // A bad key is a 401 even when a good token is also there.
    const ok: JwtOutcome = { ok: true, issuer: index.issuers.get('auth0')!, payload: { org: 'acme' } };
    denied(check({ product: 'mixed', route: 'things', headers: { authorization: 'Bearer a.b.c', 'x-api-key': 'bad' } }, ok), 401, 'invalid_api_key');
    // mtls is not accepted by this product: a certificate is ignored.
    denied(check({ product: 'mixed', route: 'things', principal: 'spiffe://x/y' }), 401, 'missing_credentials');
  });

  it('refuses unknown products and falls back to the translator accept list for routes it does not know yet', () => {
    denied(check({ product: 'nope', route: 'x' }), 403, 'unknown_product');
    denied(check({}), 403, 'unknown_product');
    allowed(check({ product: 'orders', route: 'brand-new', accept: 'none' }));
    denied(check({ product: 'orders', route: 'brand-new', accept: 'api_key,bogus' }), 401, 'missing_credentials');
    denied(check({ product: 'orders', route: 'brand-new', accept: 'jwt' }), 401, 'missing_credentials');
    // Known route: the index wins over what Envoy says.
    denied(check({ product: 'orders', route: 'list', accept: 'none' }), 401, 'missing_credentials');
  });

  it('shares one frozen allow per partner and route within an index, never across indexes or with per-request parts', () => {
    const a = allowed(check(withKey(keys.acme1.secret)));
    const b = allowed(check(withKey(keys.acme2.secret, { requestId: 'other' })));
    assert.equal(a, b, 'same partner, route and index: the same object');
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.setHeaders) && Object.isFrozen(a.metadata));
    assert.notEqual(allowed(check(withKey(keys.acme1.secret, { route: 'create', method: 'POST' }))), a);
    const next = buildCredentialIndex(model, { hasher });
    assert.notEqual(allowed(check(withKey(keys.acme1.secret), undefined, next)), a);
    const req = authzRequest(withKey(keys.acme1.secret, { requestId: 'only-mine' }));
    const headers = new Map(req.headers);
    headers.delete('x-request-id');
    const c = allowed(decide(index, { ...req, headers }, NOW));
    assert.notEqual(c, a);
    assert.equal(header(c, 'x-request-id'), 'only-mine');
    assert.equal(header(a, 'x-request-id'), undefined);
  });

  it('sets x-request-id from the request id when the request has none', () => {
    const req = authzRequest(withKey(keys.acme1.secret, { requestId: 'abc-123' }));
    const headers = new Map(req.headers);
    headers.delete('x-request-id');
    const a = allowed(decide(index, { ...req, headers }, NOW));
    assert.equal(header(a, 'x-request-id'), 'abc-123');
    assert.ok(!a.removeHeaders.includes('x-request-id'));
  });
});

describe('JWT decisions (given the verifier outcome)', () => {
  const auth0 = index.issuers.get('auth0')!;
  const internal = index.issuers.get('internal')!;
  const bearer = { product: 'api', route: 'users', headers: { authorization: 'Bearer h.p.s', 'x-user-role': 'admin' } };

  it('maps the partner claim, forwards configured claims as headers and strips the rest', () => {
    const a = allowed(check(bearer, { ok: true, issuer: auth0, payload: { org: 'acme', sub: 'usr_8a3f', role: 'customer', realm: { roles: ['a', 'b'] } } }));
    assert.equal(a.partner, 'acme');
    assert.equal(a.credential, 'jwt');
    assert.equal(header(a, 'x-user-id'), 'usr_8a3f');
    assert.equal(header(a, 'x-user-role'), 'customer');
    assert.equal(header(a, 'x-roles'), 'a,b');
    assert.ok(a.removeHeaders.includes('x-user-email'));
    assert.ok(!a.removeHeaders.includes('x-user-role'));
    // A claim the token lacks: the client's copy is removed, not passed on.
    const b = allowed(check(bearer, { ok: true, issuer: auth0, payload: { org: 'acme', sub: 'u1' } }));
    assert.equal(header(b, 'x-user-role'), undefined);
    assert.ok(b.removeHeaders.includes('x-user-role'));
    // Unsafe claim values (CR/LF) are left out rather than breaking Envoy's header map.
    const c = allowed(check(bearer, { ok: true, issuer: auth0, payload: { org: 'acme', sub: 'u1\r\nx-portico-partner: evil' } }));
    assert.equal(header(c, 'x-user-id'), undefined);
    assert.ok(c.removeHeaders.includes('x-user-id'));
    // So is any other control character; a tab and non-ASCII text are valid field content.
    for (const bad of ['a\x01b', 'del\x7f', 'esc\x1b[31m', 'nul\0']) {
      assert.equal(header(allowed(check(bearer, { ok: true, issuer: auth0, payload: { org: 'acme', sub: bad } })), 'x-user-id'), undefined, JSON.stringify(bad));
    }
    for (const good of ['a\tb', 'Zoë', '日本']) {
      assert.equal(header(allowed(check(bearer, { ok: true, issuer: auth0, payload: { org: 'acme', sub: good } })), 'x-user-id'), good);
    }
  });

  it('uses the fixed partner of an issuer; a missing or unknown partner claim is forbidden', () => {
    const a = allowed(check({ product: 'orders', route: 'list', headers: { authorization: 'Bearer h.p.s' } }, { ok: true, issuer: internal, payload: { email: 'a@b.c' } }));
    assert.equal(a.partner, 'acme');
    assert.equal(header(a, 'x-user-email'), 'a@b.c');
    denied(check(bearer, { ok: true, issuer: auth0, payload: { sub: 'u' } }), 403, 'unknown_partner');
    denied(check(bearer, { ok: true, issuer: auth0, payload: { org: 42 } }), 403, 'unknown_partner');
    denied(check(bearer, { ok: true, issuer: auth0, payload: { org: 'nobody' } }), 403, 'unknown_partner');
  });

  /** An index with one product `w` that takes only the given issuer's tokens, acme subscribed; a request for it. */
  const oneIssuer = (only: JwtIssuer) => {
    const idx = buildCredentialIndex(
      modelOf({
        products: [{ name: 'w', gatewayGroups: ['edge'], auth: { accept: ['jwt'] }, jwtIssuers: [only.name] }],
        partners,
        plans,
        subscriptions: [{ partner: 'acme', product: 'w', plan: 'gold' }],
        jwtIssuers: [only],
      }),
      { hasher },
    );
    return { idx, issuer: idx.issuers.get(only.name)!, req: { product: 'w', route: 'r', headers: { authorization: 'Bearer h.p.s' } } };
  };

  it("reads claims from the token's own properties only", () => {
    const weird: JwtIssuer = { ...issuers[0]!, name: 'weird', issuer: 'https://weird/', partnerClaim: 'constructor', forwardClaims: { 'constructor.name': 'X-Ctor', toString: 'X-Str' } };
    const { idx, issuer, req } = oneIssuer(weird);
    denied(check(req, { ok: true, issuer, payload: {} }, idx), 403, 'unknown_partner');
    const a = allowed(check(req, { ok: true, issuer, payload: JSON.parse('{"constructor":"acme"}') as Record<string, unknown> }, idx));
    assert.equal(a.partner, 'acme');
    assert.equal(header(a, 'x-ctor'), undefined);
    assert.equal(header(a, 'x-str'), undefined);
  });

  it('reads a dotted partner claim as native mode does: the top-level claim of that name, else the nested path', () => {
    const { idx, issuer, req } = oneIssuer({ ...issuers[0]!, name: 'dotted', issuer: 'https://dotted/', partnerClaim: 'https://w.example/org', forwardClaims: {} });
    const partnerOf = (payload: Record<string, unknown>) => allowed(check(req, { ok: true, issuer, payload }, idx)).partner;
    assert.equal(partnerOf({ 'https://w.example/org': 'acme' }), 'acme', 'a URL-named claim');
    assert.equal(partnerOf({ 'https://w': { 'example/org': 'acme' } }), 'acme', 'the nested path');
    assert.equal(partnerOf({ 'https://w.example/org': 'acme', 'https://w': { 'example/org': 'nobody' } }), 'acme', 'the top-level claim first');
    // A top-level claim that is no name hides the nested one.
    denied(check(req, { ok: true, issuer, payload: { 'https://w.example/org': 7, 'https://w': { 'example/org': 'acme' } } }, idx), 403, 'unknown_partner');
  });

  it('removes the verified token from the upstream request unless its issuer forwards tokens; never a header it did not consume', () => {
    const a = allowed(check(bearer, { ok: true, issuer: auth0, payload: { org: 'acme', sub: 'u1' } }));
    assert.ok(a.removeHeaders.includes('authorization'), 'forwardToken defaults to false');
    for (const [k] of a.setHeaders) assert.ok(!a.removeHeaders.includes(k));
    // Two issuers naming the same partner without claim headers: allows that would share a memo entry but for the token.
    const keep: JwtIssuer = { name: 'keep', issuer: 'https://keep/', audiences: ['x'], jwks: issuers[1]!.jwks!, partner: 'acme', forwardToken: true };
    const drop: JwtIssuer = { name: 'drop', issuer: 'https://drop/', audiences: ['x'], jwks: issuers[1]!.jwks!, partner: 'acme', forwardToken: false };
    const idx = buildCredentialIndex(
      modelOf({
        products: [{ name: 'w', gatewayGroups: ['edge'], auth: { accept: ['jwt', 'api_key'] }, jwtIssuers: ['keep', 'drop'] }],
        routes: [route('w', 'r')],
        partners,
        plans,
        subscriptions: [{ partner: 'acme', product: 'w', plan: 'gold' }],
        jwtIssuers: [keep, drop],
        apiKeys,
      }),
      { hasher },
    );
    const req = { product: 'w', route: 'r', headers: { authorization: 'Bearer h.p.s' } };
    const kept = allowed(check(req, { ok: true, issuer: idx.issuers.get('keep')!, payload: {} }, idx));
    assert.ok(!kept.removeHeaders.includes('authorization'), 'forwardToken: true passes the token on');
    const dropped = allowed(check(req, { ok: true, issuer: idx.issuers.get('drop')!, payload: {} }, idx));
    assert.ok(dropped.removeHeaders.includes('authorization'));
    assert.ok(!allowed(check(req, { ok: true, issuer: idx.issuers.get('keep')!, payload: {} }, idx)).removeHeaders.includes('authorization'), 'the memo tells them apart');
    // A header the gateway did not authenticate with stays: an API key decided, or no credential was needed.
    const byKey = allowed(check({ product: 'w', route: 'r', headers: { 'x-api-key': keys.acme1.secret, authorization: 'Basic dXNlcjpwYXNz' } }, undefined, idx));
    assert.ok(!byKey.removeHeaders.includes('authorization'), 'an API key decided');
    assert.ok(!allowed(check({ product: 'status', route: 'health', headers: { authorization: 'Bearer h.p.s' } })).removeHeaders.includes('authorization'), 'public route');
    const excluded = allowed(check({ ...bearer, path: '/api/health' }));
    assert.equal(excluded.credential, 'none');
    assert.ok(!excluded.removeHeaders.includes('authorization'), 'excluded path: the token was not even read');
  });

  it('turns a verifier failure into a 401 with an RFC 6750 invalid_token challenge', () => {
    const d = denied(check(bearer, { ok: false, error: 'invalid_token', message: 'The token has expired.' }), 401, 'invalid_token');
    assert.equal(d.wwwAuthenticate, 'Bearer realm="portico", error="invalid_token", error_description="The token has expired."');
    denied(check(bearer), 401, 'invalid_token');
    // A token verified for an issuer this product does not accept.
    denied(check(bearer, { ok: true, issuer: internal, payload: {} }), 401, 'invalid_token');
  });

  it('answers a bearer-less Authorization (Basic, empty) as missing credentials', () => {
    for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'bearer', 'Token abc']) {
      const d = check({ product: 'api', route: 'users', headers: { authorization } });
      assert.equal(d.allowed, false);
      assert.equal((d as Deny).status, 401, authorization);
    }
  });
});

describe('robustness', () => {
  it('never throws on arbitrary header, path and context values', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const junk = () => Array.from({ length: Math.floor(rnd() * 40) }, () => String.fromCharCode(Math.floor(rnd() * 0x2fff))).join('');
    for (let i = 0; i < 2000; i++) {
      const d = check({
        product: rnd() < 0.8 ? ['orders', 'billing', 'api', 'mixed', 'status'][i % 5] : junk(),
        route: rnd() < 0.5 ? 'list' : junk(),
        method: rnd() < 0.5 ? 'GET' : junk(),
        path: `/${junk()}?${junk()}`,
        accept: rnd() < 0.3 ? junk() : undefined,
        principal: rnd() < 0.2 ? junk() : undefined,
        headers: { 'x-api-key': junk(), authorization: rnd() < 0.5 ? `Bearer ${junk()}` : junk(), 'x-key': junk() },
      });
      assert.equal(typeof d.allowed, 'boolean');
    }
  });
});
