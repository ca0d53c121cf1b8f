// Combined mode in the ext_authz service: on routes marked `ratelimit: combined`, an allowed Check
// is counted by the limiter in process, with what Envoy would count (partner, client address, the
// headers as ext_authz leaves them), and answered with the limiter's verdict: X-RateLimit-* added
// to the response when admitted, the contract's 429 when refused. Denied Checks are never counted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { Registry } from 'prom-client';
import { checkRequestJson, mintApiKey, modelOf, testHasher, type ModelResources } from '../support/authz-fixtures.ts';
import { AuthzService, countedHeaderNames, type CheckResult } from '../../src/authz/service.ts';
import { createRateLimiter } from '../../src/ratelimit/limiter.ts';
import type { Decision, DecisionRequest } from '../../src/ratelimit/decision.ts';
import { decodeMessage, encodeMessage, type JsonObject } from '../../src/proto/index.ts';

const hasher = testHasher();
const acme = mintApiKey(hasher, 'acme', 'primary');

async function idp() {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256', use: 'sig' };
  const token = (sub: string) =>
    new SignJWT({ team: 'acme' }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer('https://idp').setAudience('api').setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(privateKey);
  return { jwk, token };
}

function resources(jwk: Record<string, unknown>): ModelResources {
  return {
    gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 1 }] }],
    products: [
      { name: 'shop', gatewayGroups: ['edge'], auth: { accept: ['api_key', 'jwt'] } },
      { name: 'open', gatewayGroups: ['edge'], auth: { accept: ['none'] }, publicPlan: 'tight' },
    ],
    routes: [
      { product: 'shop', name: 'items', match: { path: { type: 'prefix', value: '/' } }, service: 'svc' },
      { product: 'open', name: 'login', match: { path: { type: 'prefix', value: '/login' } }, service: 'svc' },
    ],
    jwtIssuers: [{ name: 'idp', issuer: 'https://idp', audiences: ['api'], jwks: { keys: [jwk] }, partnerClaim: 'team', forwardClaims: { sub: 'X-User-Id' } }],
    partners: [{ name: 'acme' }],
    plans: [
      { name: 'per-user', limits: [{ requests: 2, per: 'hour' }], countBy: { kind: 'header', header: 'X-User-Id' } },
      { name: 'tight', limits: [{ requests: 1, per: 'hour' }], countBy: { kind: 'client_ip' } },
    ],
    subscriptions: [{ partner: 'acme', product: 'shop', plan: 'per-user', access: { methods: ['GET'] } }],
    apiKeys: [acme.resource],
  };
}

function check(o: { product: string; route: string; accept: string; headers?: Record<string, string>; method?: string; combined?: boolean }): Buffer {
  const json = checkRequestJson({ product: o.product, route: o.route, accept: o.accept, ...(o.headers ? { headers: o.headers } : {}), ...(o.method ? { method: o.method } : {}) }) as {
    attributes: { context_extensions: Record<string, string> };
  };
  if (o.combined !== false) json.attributes.context_extensions.ratelimit = 'combined';
  return Buffer.from(encodeMessage('envoy.service.auth.v3.CheckRequest', json as unknown as JsonObject));
}

async function answer(r: CheckResult | Promise<CheckResult>): Promise<Record<string, any>> {
  const x = await r;
  assert.ok(x.ok, JSON.stringify(x));
  return decodeMessage('envoy.service.auth.v3.CheckResponse', x.response) as Record<string, any>;
}

const headerMap = (list: Array<{ header: { key: string; value: string } }> | undefined) => Object.fromEntries((list ?? []).map((h) => [h.header.key, h.header.value]));

/** A limiter that records what it was asked and answers like the real one. */
function recording(real: { decide(r: DecisionRequest): Promise<Decision> }) {
  const asked: DecisionRequest[] = [];
  return {
    asked,
    decide: (r: DecisionRequest) => {
      asked.push(r);
      return real.decide(r);
    },
  };
}

describe('ext_authz combined mode', () => {
  it('counts allowed requests with the headers as ext_authz leaves them, answers the limit headers, then the 429', async () => {
    const { jwk, token } = await idp();
    const model = modelOf(resources(jwk));
    const real = createRateLimiter({}, { registry: new Registry(), model });
    const limiter = recording(real);
    const svc = new AuthzService({ hasher, registry: new Registry(), limiter });
    svc.update(model);
    await svc.ready();
    try {
      const t = await token('u1');
      // A client-sent X-User-Id never counts: the gateway sets it from the token.
      const req = () => check({ product: 'shop', route: 'items', accept: 'api_key,jwt', headers: { authorization: `Bearer ${t}`, 'x-user-id': 'forged' } });
      const first = await answer(svc.checkBytes(req()));
      assert.equal(first.status?.code ?? 0, 0);
      assert.deepEqual(headerMap(first.ok_response.response_headers_to_add), { 'X-RateLimit-Limit': '2', 'X-RateLimit-Remaining': '1' });
      assert.equal(headerMap(first.ok_response.headers)['x-user-id'], 'u1', 'the allow itself is intact (identity headers)');
      assert.ok(first.ok_response.headers_to_remove.includes('x-api-key'));
      assert.equal(first.dynamic_metadata.partner, 'acme');
      assert.deepEqual(limiter.asked[0], { product: 'shop', route: 'items', partner: 'acme', clientIp: '10.0.0.7', headers: { 'x-user-id': 'u1' } });

      await answer(svc.checkBytes(req()));
      const refused = await answer(svc.checkBytes(req()));
      assert.equal(refused.status.code, 8, 'RESOURCE_EXHAUSTED');
      assert.equal(refused.denied_response.status.code, 'TooManyRequests');
      const h = headerMap(refused.denied_response.headers);
      const n = Number(h['Retry-After']);
      assert.ok(n > 0 && n <= 1800, String(n));
      assert.deepEqual(Object.keys(h), ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'content-type']);
      assert.deepEqual([h['X-RateLimit-Limit'], h['X-RateLimit-Remaining'], h['content-type']], ['2', '0', 'application/json']);
      assert.equal(refused.denied_response.body, `{"error":"rate_limit_exceeded","message":"Too many requests. Retry after ${n} ${n === 1 ? 'second' : 'seconds'}.","retry_after":${n}}`);
      assert.equal(refused.dynamic_metadata.error, 'rate_limit_exceeded');
      assert.equal(refused.dynamic_metadata.plan, 'per-user');

      // Another user has their own budget.
      const other = await answer(svc.checkBytes(check({ product: 'shop', route: 'items', accept: 'api_key,jwt', headers: { authorization: `Bearer ${await token('u2')}` } })));
      assert.equal(headerMap(other.ok_response.response_headers_to_add)['X-RateLimit-Remaining'], '1');
    } finally {
      svc.close();
      await real.close();
    }
  });

  it('never counts a denied request, a route not marked combined, or without a limiter', async () => {
    const { jwk } = await idp();
    const model = modelOf(resources(jwk));
    const real = createRateLimiter({}, { registry: new Registry(), model });
    const limiter = recording(real);
    const svc = new AuthzService({ hasher, registry: new Registry(), limiter });
    svc.update(model);
    try {
      // 401 (no credential) and 403 (method outside the subscription): not counted.
      assert.equal((await answer(svc.checkBytes(check({ product: 'shop', route: 'items', accept: 'api_key,jwt' })))).denied_response.status.code, 'Unauthorized');
      const forbidden = await answer(svc.checkBytes(check({ product: 'shop', route: 'items', accept: 'api_key,jwt', method: 'DELETE', headers: { 'x-api-key': acme.secret } })));
      assert.equal(forbidden.denied_response.status.code, 'Forbidden');
      // Service mode routes (no marker): allowed without counting, no limit headers.
      const plain = await answer(svc.checkBytes(check({ product: 'shop', route: 'items', accept: 'api_key,jwt', headers: { 'x-api-key': acme.secret }, combined: false })));
      assert.equal(plain.ok_response.response_headers_to_add, undefined);
      assert.equal(limiter.asked.length, 0);
      // The API key header is removed upstream, so nothing can count by it; the address is the client's.
      await answer(svc.checkBytes(check({ product: 'shop', route: 'items', accept: 'api_key,jwt', headers: { 'x-api-key': acme.secret } })));
      assert.deepEqual(limiter.asked, [{ product: 'shop', route: 'items', partner: 'acme', clientIp: '10.0.0.7' }]);

      // Anonymous routes counted by the public plan: allow once, then 429.
      const login = () => check({ product: 'open', route: 'login', accept: 'none' });
      assert.equal(headerMap((await answer(svc.checkBytes(login()))).ok_response.response_headers_to_add)['X-RateLimit-Limit'], '1');
      assert.equal((await answer(svc.checkBytes(login()))).denied_response.status.code, 'TooManyRequests');
    } finally {
      svc.close();
      await real.close();
    }

    const bare = new AuthzService({ hasher, registry: new Registry() });
    bare.update(model);
    try {
      const r = await answer(bare.checkBytes(check({ product: 'shop', route: 'items', accept: 'api_key,jwt', headers: { 'x-api-key': acme.secret } })));
      assert.equal(r.status?.code ?? 0, 0);
      assert.equal(r.ok_response.response_headers_to_add, undefined);
    } finally {
      bare.close();
    }
  });

  it('looks up only the headers some plan counts by', async () => {
    const { jwk } = await idp();
    assert.deepEqual(countedHeaderNames(modelOf(resources(jwk))), ['x-user-id']);
  });
});
