// JWT verification through the authz service: RS256 and ES256 tokens made with jose, a JWKS served
// by a real local HTTP server, claim checks with clock skew, algorithm attacks, key rotation with a
// rate-limited refetch, the verified-token cache, and background refresh.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { Registry } from 'prom-client';
import type { Allow, Decision, Deny } from '../../src/authz/decide.ts';
import { authzRequest, modelOf, testHasher } from '../support/authz-fixtures.ts';
import { waitFor } from '../support/components.ts';
import { AuthzService } from '../../src/authz/service.ts';
import type { JwtIssuer } from '../../src/model/schemas.ts';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

/** A JWKS endpoint whose key list and status the test changes; counts requests. */
class JwksServer {
  keys: JWK[] = [];
  status = 200;
  hits = 0;
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((_req, res) => {
      this.hits++;
      if (this.status !== 200) {
        res.writeHead(this.status).end('nope');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server!.close(() => resolve()));
  }
}

const ISS = 'https://auth.example.com/';
const T0 = Date.parse('2025-06-01T00:00:00Z');
const sec = (ms: number) => Math.floor(ms / 1000);

async function jwk(kp: KeyPair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(kp.publicKey)), kid, alg, use: 'sig' };
}

function sign(kp: KeyPair, alg: string, kid: string | undefined, claims: JWTPayload = {}, iat = T0): Promise<string> {
  const body: JWTPayload = { iss: ISS, aud: 'api.example.com', org: 'acme', sub: 'usr_8a3f', role: 'customer', iat: sec(iat), exp: sec(iat) + 3600, ...claims };
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
  return new SignJWT(body).setProtectedHeader({ alg, ...(kid ? { kid } : {}), typ: 'JWT' }).sign(kp.privateKey);
}

async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 500) throw new Error('condition not met');
    await new Promise((r) => setImmediate(r));
  }
}

function b64url(s: string | Buffer): string {
  return Buffer.from(s).toString('base64url');
}

describe('JWT verification', () => {
  const jwks = new JwksServer();
  let clock = T0;
  let rs1: KeyPair, rs2: KeyPair, es1: KeyPair, inlineKp: KeyPair;
  let service: AuthzService;
  let registry: Registry;

  const issuers = (): JwtIssuer[] => [
    {
      name: 'auth0',
      issuer: ISS,
      audiences: ['api.example.com', 'legacy.example.com'],
      jwksUri: jwks.url,
      partnerClaim: 'org',
      forwardClaims: { sub: 'X-User-Id', role: 'X-User-Role' },
      excludedPaths: ['/api/health'],
    },
  ];

  const model = (extraIssuers: JwtIssuer[] = []) =>
    modelOf({
      products: [{ name: 'api', gatewayGroups: ['edge'], auth: { accept: ['jwt'] } }],
      routes: [{ product: 'api', name: 'users', match: { path: { type: 'prefix', value: '/api' } }, service: 'svc' }],
      partners: [{ name: 'acme' }],
      plans: [{ name: 'gold' }],
      subscriptions: [{ partner: 'acme', product: 'api', plan: 'gold' }],
      jwtIssuers: [...issuers(), ...extraIssuers],
    });

  async function start(inlineJwk?: JWK, settings: ConstructorParameters<typeof AuthzService>[0]['jwt'] = {}): Promise<void> {
    service?.close();
    registry = new Registry();
    service = new AuthzService({ hasher: testHasher(), registry, now: () => clock, jwt: { unknownKidWaitMs: 2_000, ...settings } });
    const extra: JwtIssuer[] = inlineJwk
      ? [{ name: 'inline', issuer: 'https://inline.example/', audiences: ['api.example.com'], jwks: { keys: [inlineJwk as Record<string, unknown>] }, partner: 'acme' }]
      : [];
    service.update(model(extra));
    await service.ready();
  }

  async function check(token: string, path = '/api/users'): Promise<Decision> {
    const d = service.check(authzRequest({ product: 'api', route: 'users', path, headers: { authorization: `Bearer ${token}` } }));
    assert.ok(d !== undefined);
    return d;
  }
  async function allowed(token: string): Promise<Allow> {
    const d = await check(token);
    assert.equal(d.allowed, true, JSON.stringify(d));
    return d as Allow;
  }
  async function rejected(token: string, message: RegExp): Promise<Deny> {
    const d = await check(token);
    assert.equal(d.allowed, false, JSON.stringify(d));
    const x = d as Deny;
    assert.equal(x.status, 401);
    assert.equal(x.error, 'invalid_token');
    assert.match(x.message, message);
    assert.match(x.wwwAuthenticate!, /^Bearer realm="portico", error="invalid_token"/);
    const sig = token.split('.')[2] ?? '';
    if (sig.length >= 16) assert.ok(!JSON.stringify(x).includes(sig.slice(0, 16)), 'the token is never echoed');
    return x;
  }
  async function cacheCount(result: 'hit' | 'miss'): Promise<number> {
    const m = await registry.getSingleMetric('portico_authz_token_cache_total')!.get();
    return m.values.find((v) => v.labels.result === result)?.value ?? 0;
  }

  before(async () => {
    [rs1, rs2, es1, inlineKp] = await Promise.all([
      generateKeyPair('RS256', { extractable: true }),
      generateKeyPair('RS256', { extractable: true }),
      generateKeyPair('ES256', { extractable: true }),
      generateKeyPair('ES256', { extractable: true }),
    ]);
    await jwks.start();
    jwks.keys = [await jwk(rs1, 'rs1', 'RS256'), await jwk(es1, 'es1', 'ES256')];
  });
  after(async () => {
    service?.close();
    await jwks.stop();
  });

  it('accepts valid RS256 and ES256 tokens and forwards the configured claims', async () => {
    await start(await jwk(inlineKp, 'in1', 'ES256'));
    const a = await allowed(await sign(rs1, 'RS256', 'rs1'));
    assert.equal(a.partner, 'acme');
    assert.equal(a.credential, 'jwt');
    assert.deepEqual(
      a.setHeaders.filter(([k]) => k.startsWith('x-user')),
      [
        ['x-user-id', 'usr_8a3f'],
        ['x-user-role', 'customer'],
      ],
    );
    assert.equal((await allowed(await sign(es1, 'ES256', 'es1'))).partner, 'acme');
    // Any of the issuer's audiences, in a list or alone.
    await allowed(await sign(es1, 'ES256', 'es1', { aud: ['other', 'legacy.example.com'] }));
    // An inline JWKS and a fixed partner.
    const inline = await new SignJWT({ iss: 'https://inline.example/', aud: 'api.example.com', exp: sec(T0) + 60 }).setProtectedHeader({ alg: 'ES256', kid: 'in1' }).sign(inlineKp.privateKey);
    assert.equal((await allowed(inline)).partner, 'acme');
  });

  it('checks exp and nbf with the issuer clock skew (30 s by default) and requires exp', async () => {
    await rejected(await sign(rs1, 'RS256', 'rs1', { exp: sec(T0) - 31 }), /expired/);
    await allowed(await sign(rs1, 'RS256', 'rs1', { exp: sec(T0) - 10 }));
    await rejected(await sign(rs1, 'RS256', 'rs1', { nbf: sec(T0) + 120 }), /not valid yet/);
    await allowed(await sign(rs1, 'RS256', 'rs1', { nbf: sec(T0) + 10 }));
    await rejected(await sign(rs1, 'RS256', 'rs1', { exp: undefined }), /expiry/);
  });

  it('rejects a wrong audience and an issuer the product does not accept', async () => {
    await rejected(await sign(rs1, 'RS256', 'rs1', { aud: 'someone-else' }), /audience/);
    await rejected(await sign(rs1, 'RS256', 'rs1', { iss: 'https://evil.example/' }), /issuer/);
    await rejected(await sign(rs1, 'RS256', 'rs1', { iss: undefined }), /issuer/);
  });

  it('rejects alg none and HS256 signed with the RSA public key as the secret (algorithm confusion)', async () => {
    const payload = b64url(JSON.stringify({ iss: ISS, aud: 'api.example.com', org: 'acme', exp: sec(T0) + 600 }));
    const none = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${payload}.`;
    await rejected(none, /algorithm/);
    const pem = await exportSPKI(rs1.publicKey);
    for (const secret of [pem, Buffer.from(JSON.stringify(await jwk(rs1, 'rs1', 'RS256')))]) {
      const header = b64url(JSON.stringify({ alg: 'HS256', kid: 'rs1', typ: 'JWT' }));
      const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
      await rejected(`${header}.${payload}.${sig}`, /algorithm/);
    }
    // An RS256 header over an ES256 key id: the key is not published for that algorithm.
    await rejected(await sign(rs1, 'RS256', 'es1'), /key/);
  });

  it('rejects tampered, malformed and oversized tokens with a 401, synchronously when no signature is checked', async () => {
    const good = await sign(rs1, 'RS256', 'rs1');
    const [h, p, s] = good.split('.') as [string, string, string];
    const forged = b64url(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), org: 'globex' }));
    await rejected(`${h}.${forged}.${s}`, /signature/);
    for (const bad of ['a.b', 'a.b.c', 'a.b.c.d.e', '....', `${b64url('{not json')}.${p}.${s}`, `${h}.${b64url('[1,2]')}.${s}`, `${h}.${p}.${s}!`, '\u0000.\u0001.\u0002']) {
      await rejected(bad, /malformed|issuer/);
    }
    const huge = `${h}.${b64url(JSON.stringify({ pad: 'x'.repeat(9000) }))}.${s}`;
    const sync = service.verifier.verify(huge, [...service.index!.issuers.values()], clock);
    assert.ok(!(sync instanceof Promise), 'an oversized token is refused before any parsing');
    await rejected(huge, /too large/);
  });

  it('waives tokens on excluded paths (seed 003), even expired ones', async () => {
    const expired = await sign(rs1, 'RS256', 'rs1', { exp: sec(T0) - 3600 });
    const d = await check(expired, '/api/health');
    assert.equal(d.allowed, true);
    assert.equal((d as Allow).credential, 'none');
  });

  it('caches verified tokens until they expire, and drops the cache entry when the key is no longer published', async () => {
    await start(undefined, { unknownKidRefetchIntervalMs: 30_000 });
    const token = await sign(es1, 'ES256', 'es1', { exp: sec(T0) + 100 });
    await allowed(token);
    const hits = await cacheCount('hit');
    const second = service.check(authzRequest({ product: 'api', route: 'users', path: '/api/users', headers: { authorization: `Bearer ${token}` } }));
    assert.ok(second !== undefined && !(second instanceof Promise), 'a cached token is decided synchronously');
    assert.equal((second as Allow).partner, 'acme');
    assert.equal(await cacheCount('hit'), hits + 1);
    // Past exp + skew the entry is gone and jose refuses the token.
    clock = T0 + 131_000;
    await rejected(token, /expired/);
    clock = T0;
  });

  it('refetches the JWKS on an unknown kid from a per-issuer bucket, and accepts the rotated key once published', async () => {
    await start(undefined, { unknownKidRefetchIntervalMs: 5_000, unknownKidRefetchBurst: 2 });
    jwks.keys = [await jwk(rs1, 'rs1', 'RS256')];
    const oldToken = await sign(rs1, 'RS256', 'rs1');
    await allowed(oldToken);
    const before = jwks.hits;
    const rotated = await sign(rs2, 'RS256', 'rs2');

    // The IdP signs with rs2 before publishing it: both refetches of the burst find nothing.
    await rejected(rotated, /does not publish/);
    assert.equal(jwks.hits, before + 1, 'an unknown kid triggers a refetch');
    await rejected(await sign(rs2, 'RS256', 'forged-kid'), /does not publish/);
    assert.equal(jwks.hits, before + 2, 'the burst allows a second one at once');
    await rejected(rotated, /does not publish/);
    assert.equal(jwks.hits, before + 2, 'the bucket is empty: no third refetch at the same instant');

    // The IdP rotates: rs2 is published, rs1 retired. One interval later the bucket holds a refetch again.
    jwks.keys = [await jwk(rs2, 'rs2', 'RS256')];
    clock = T0 + 4_999;
    await rejected(rotated, /does not publish/);
    assert.equal(jwks.hits, before + 2, 'not before the interval');
    clock = T0 + 5_000;
    const a = await allowed(rotated);
    assert.equal(a.partner, 'acme');
    assert.equal(jwks.hits, before + 3, 'after one interval the refetch happens and the new key verifies');
    // The retired key's token was cached; it must not outlive its key.
    await rejected(oldToken, /does not publish/);
    clock = T0;
  });

  it('1,000 random kids make at most burst + elapsed / interval fetches, never two at once', async () => {
    // A JWKS endpoint that answers only when told, to hold a fetch in flight.
    let inFlight = 0;
    let maxInFlight = 0;
    let fetches = 0;
    const release: Array<() => void> = [];
    const body = JSON.stringify({ keys: [await jwk(rs1, 'rs1', 'RS256')] });
    const slowFetch = (async () => {
      fetches++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((r) => release.push(r));
      inFlight--;
      return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
    }) as typeof fetch;
    const releaseAll = () => {
      for (const r of release.splice(0)) r();
    };
    service?.close();
    registry = new Registry();
    service = new AuthzService({
      hasher: testHasher(),
      registry,
      now: () => clock,
      fetch: slowFetch,
      jwt: { unknownKidWaitMs: 0, unknownKidRefetchIntervalMs: 5_000, unknownKidRefetchBurst: 3 },
    });
    service.update(model());
    const source = service.verifier.source('auth0')!;
    await waitUntil(() => release.length === 1);
    releaseAll();
    await service.ready();
    assert.equal(fetches, 1, 'the first load');

    const random = await Promise.all(Array.from({ length: 1000 }, (_, i) => sign(rs2, 'RS256', `random-${i}-${Math.random().toString(36).slice(2)}`)));
    const burst = async (tokens: string[]) => {
      for (const t of tokens) {
        const d = await check(t);
        assert.equal(d.allowed, false);
        // Let each triggered fetch finish before the next token, so only the bucket can stop a refetch.
        if (release.length) {
          releaseAll();
          await source.ready();
        }
      }
    };
    await burst(random.slice(0, 500));
    assert.equal(fetches, 1 + 3, 'the burst of 3, then nothing at the same instant');
    // Time passes: one more refetch per 5 s, whatever the number of tokens.
    clock = T0 + 12_000;
    await burst(random.slice(500, 900));
    assert.equal(fetches, 1 + 3 + 2, 'two intervals elapsed: two more');

    // While a fetch is in flight, every unknown kid joins it instead of starting another.
    clock = T0 + 60_000;
    const pending = random.slice(900).map((t) => check(t));
    await waitUntil(() => release.length === 1);
    assert.equal(inFlight, 1);
    releaseAll();
    for (const d of await Promise.all(pending)) assert.equal(d.allowed, false);
    assert.equal(fetches, 1 + 3 + 2 + 1, '100 concurrent unknown kids: one fetch');
    assert.equal(maxInFlight, 1, 'never two fetches at once');
    service.close();
    clock = T0;
  });

  it('keeps the last good keys when a fetch fails, and refreshes in the background', async () => {
    jwks.keys = [await jwk(rs1, 'rs1', 'RS256'), await jwk(es1, 'es1', 'ES256')];
    await start(undefined, { refreshIntervalMs: 100, failureRetryMs: 50 });
    const before = jwks.hits;
    // Waits for what must happen, not for a wall-clock window (on a busy machine timers run late).
    await waitFor('two background refreshes', () => jwks.hits >= before + 2 || undefined);
    jwks.status = 500;
    const errors = async () => (await registry.getSingleMetric('portico_authz_jwks_fetches_total')!.get()).values.find((v) => v.labels.result === 'error')?.value ?? 0;
    await waitFor('a failed fetch counted', async () => (await errors()) >= 1 || undefined);
    await allowed(await sign(es1, 'ES256', 'es1', { sub: 'after-failure' }));
    jwks.status = 200;
    const keysGauge = (await registry.getSingleMetric('portico_authz_jwks_keys')!.get()).values.find((v) => v.labels.issuer === 'auth0')?.value;
    assert.equal(keysGauge, 2);
    const source = service.verifier.source('auth0')!;
    service.close();
    // Fetches started (a fetch in flight at close() is counted already, though the server may see it later).
    const closedAt = source.fetchCount;
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(source.fetchCount, closedAt, 'close() stops the refresher');
  });

  it('ignores symmetric and private keys in a JWKS', async () => {
    const priv = await exportJWK(es1.privateKey);
    jwks.keys = [{ ...priv, kid: 'leaked' }, { kty: 'oct', k: b64url('secret'), kid: 'sym', alg: 'HS256' }, await jwk(rs1, 'rs1', 'RS256')];
    await start();
    assert.equal(service.verifier.source('auth0')!.keyCount, 1);
    await rejected(await sign(es1, 'ES256', 'leaked'), /does not publish/);
    await allowed(await sign(rs1, 'RS256', 'rs1'));
    jwks.keys = [await jwk(rs1, 'rs1', 'RS256'), await jwk(es1, 'es1', 'ES256')];
  });
});
