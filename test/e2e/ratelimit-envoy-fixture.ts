// Shared setup of the rate-limit-through-Envoy tests: a model with plans that count by partner,
// client IP, a header (the user id ext_authz forwards from a JWT) and route, applied through the
// admin API of a real control plane, served by a real Envoy to a real echo upstream; API keys and a
// JWT issuer whose secrets the test holds; helpers to read the 429 contract and the limiter's metrics.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import YAML from 'yaml';
import { freePort } from '../support/components.ts';
import { startEnvoy, waitInSync, type TestEnvoy } from '../support/envoy.ts';
import { startTestPortico, type TestPortico } from '../support/portico.ts';
import { call, echo, type GatewayResponse, type Upstream } from '../support/seed003.ts';

export type Mode = 'native' | 'combined' | 'service';

/** A secret in Portico's API key format, imported through the document (hashed on arrival). */
export function newApiKey(): string {
  const prefix = randomBytes(8)
    .toString('hex')
    .slice(0, 8)
    .replace(/[^a-z0-9]/g, 'a');
  return `ptk_${prefix}_${randomBytes(32).toString('base64url')}`;
}

export interface TestIdp {
  jwk: JWK;
  /** A token naming the partner (claim team) for a user (sub → X-User-Id upstream). */
  token(sub: string, team: string): Promise<string>;
}

export const ISSUER = 'https://idp.test';
export const AUDIENCE = 'api.test';

export async function testIdp(): Promise<TestIdp> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  return {
    jwk,
    token: (sub, team) =>
      new SignJWT({ team }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject(sub).setIssuedAt().setExpirationTime('2h').sign(privateKey),
  };
}

export interface Keys {
  acme1: string;
  acme2: string;
  globex: string;
}

/**
 * The model of the mode tests. Limits are per hour (or per day) so nothing refills while a test
 * runs: every count is exact on a slow machine. Callout timeouts are generous for the same reason
 * (a timed-out count would fail open and let a request through).
 *
 * - standard (seed 003's shape): 5/h burst 1 by X-User-Id (from the JWT's sub); login 2/h by client
 *   IP; search 3/h by X-User-Id; health never limited. It is also accounts' public plan.
 * - metered: 2/h burst 1 by partner; the export route 1/h counted per route (everybody shares it).
 * - daily: a quota of 4 a day by partner; the write route also 2/h.
 * - trial: shadow, 2/h by partner.
 */
export function limitsDocument(o: { mode: Mode; listenerPort: number; upstreamPort: number; jwk: JWK; keys: Keys; group?: string; timeoutMs?: number }): Record<string, any> {
  const group = o.group ?? 'edge';
  const timeoutMs = o.timeoutMs ?? 5_000;
  const route = (name: string, type: string, value: string, methods?: string[]) => ({
    name,
    match: { path: { type, value }, ...(methods ? { methods } : {}) },
    service: 'echo',
  });
  const g = [group];
  return {
    portico: 'v1',
    gatewayGroups: [
      {
        name: group,
        listeners: [{ name: 'http', port: o.listenerPort, address: '127.0.0.1' }],
        authz: { failureMode: 'closed', timeoutMs },
        rateLimit: { mode: o.mode, failureMode: 'open', timeoutMs },
      },
    ],
    services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: o.upstreamPort }] }],
    jwtIssuers: [
      {
        name: 'idp',
        issuer: ISSUER,
        audiences: [AUDIENCE],
        jwks: { keys: [o.jwk] },
        algorithms: ['ES256'],
        partnerClaim: 'team',
        forwardClaims: { sub: 'X-User-Id' },
      },
    ],
    products: [
      {
        name: 'accounts',
        gatewayGroups: g,
        basePath: '/accounts',
        auth: { accept: ['none'] },
        publicPlan: 'standard',
        routes: [
          route('login', 'exact', '/login', ['POST']),
          route('register', 'exact', '/register', ['POST']),
          { name: 'health', match: { path: { type: 'exact', value: '/health' }, methods: ['GET'] }, directResponse: { status: 200, body: '{"status":"ok"}', contentType: 'application/json' } },
        ],
      },
      { name: 'catalog', gatewayGroups: g, basePath: '/catalog', auth: { accept: ['jwt', 'api_key'] }, routes: [route('items', 'prefix', '/items'), route('search', 'prefix', '/search')] },
      { name: 'reports', gatewayGroups: g, basePath: '/reports', auth: { accept: ['api_key'] }, routes: [route('daily', 'prefix', '/daily'), route('export', 'prefix', '/export')] },
      { name: 'ledger', gatewayGroups: g, basePath: '/ledger', auth: { accept: ['api_key'] }, routes: [route('write', 'prefix', '/write'), route('read', 'prefix', '/read')] },
      { name: 'preview', gatewayGroups: g, basePath: '/preview', auth: { accept: ['api_key'] }, routes: [route('all', 'prefix', '/')] },
    ],
    plans: [
      {
        name: 'standard',
        limits: [{ requests: 5, per: 'hour', burst: 1 }],
        countBy: { kind: 'header', header: 'X-User-Id' },
        overrides: [
          { product: 'accounts', route: 'login', limits: [{ requests: 2, per: 'hour' }], countBy: { kind: 'client_ip' } },
          { product: 'accounts', route: 'health', limits: [] },
          { product: 'catalog', route: 'search', limits: [{ requests: 3, per: 'hour' }] },
        ],
      },
      {
        name: 'metered',
        limits: [{ requests: 2, per: 'hour', burst: 1 }],
        countBy: { kind: 'partner' },
        overrides: [{ product: 'reports', route: 'export', limits: [{ requests: 1, per: 'hour' }], countBy: { kind: 'route' } }],
      },
      { name: 'daily', quotas: [{ requests: 4, per: 'day' }], countBy: { kind: 'partner' }, overrides: [{ product: 'ledger', route: 'write', limits: [{ requests: 2, per: 'hour' }] }] },
      { name: 'trial', shadow: true, limits: [{ requests: 2, per: 'hour' }], countBy: { kind: 'partner' } },
    ],
    partners: [
      {
        name: 'acme',
        apiKeys: [
          { name: 'one', key: o.keys.acme1 },
          { name: 'two', key: o.keys.acme2 },
        ],
        subscriptions: [
          { product: 'catalog', plan: 'standard' },
          { product: 'reports', plan: 'metered' },
          { product: 'ledger', plan: 'daily', access: { methods: ['GET', 'POST'] } },
          { product: 'preview', plan: 'trial' },
        ],
      },
      { name: 'globex', apiKeys: [{ name: 'one', key: o.keys.globex }], subscriptions: [{ product: 'reports', plan: 'metered' }] },
    ],
  };
}

export interface Gateway {
  portico: TestPortico;
  envoy: TestEnvoy;
  upstream: Upstream;
  group: string;
  nodeId: string;
  /** Base URL of the listener. */
  gw: string;
  call(path: string, init?: RequestInit): Promise<GatewayResponse>;
  /** Applies a document (all or nothing) and waits until Envoy holds what it produced. */
  apply(doc: Record<string, any>): Promise<void>;
  /** Resolves once Envoy has ACKed the group's current snapshot. */
  inSync(): Promise<void>;
  /** Sum of portico_ratelimit_decisions_total over the series matching the labels. */
  decisions(labels: Record<string, string>): Promise<number>;
}

/**
 * A control plane (optionally with settings, e.g. REDIS_URL) and an Envoy node of `group` fed by
 * it. Undefined when Envoy is missing outside CI; stopped when the test ends (or by the caller,
 * through portico.close / envoy.stop, for outage tests).
 */
export async function startGateway(t: TestContext, o: { nodeId: string; group?: string; env?: Record<string, string>; upstream?: Upstream }): Promise<Gateway | undefined> {
  const group = o.group ?? 'edge';
  const upstream = o.upstream ?? (await echo('echo'));
  const portico = await startTestPortico(o.env ? { env: o.env } : {});
  t.after(async () => {
    await portico.close();
    if (!o.upstream) await upstream.close();
  });
  const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group, nodeId: o.nodeId });
  if (!envoy) return undefined;
  const api = portico.api;
  let gw = '';
  const inSync = async () => {
    await waitInSync(portico, group, o.nodeId);
  };
  const gateway: Gateway = {
    portico,
    envoy,
    upstream,
    group,
    nodeId: o.nodeId,
    get gw() {
      return gw;
    },
    call: (p, init) => call(`${gw}${p}`, init),
    apply: async (doc) => {
      // The gateway becomes exactly this document (a test's earlier document leaves nothing behind).
      const r = await api.post('/api/v1/config?prune=true', YAML.stringify(doc), { 'content-type': 'application/yaml' });
      assert.equal(r.status, 200, r.text);
      const l = (doc.gatewayGroups as Array<{ name: string; listeners: Array<{ port: number }> }>).find((x) => x.name === group)!.listeners[0]!;
      gw = `http://127.0.0.1:${l.port}`;
      await envoy.waitForListener('http', 60_000);
      await inSync();
      await portico.authz.ready();
    },
    inSync,
    decisions: async (labels) => {
      const text = await (await fetch(`${portico.adminUrl}/metrics`)).text();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith('portico_ratelimit_decisions_total{')) continue;
        const m = /^[^{]+\{([^}]*)\} (\S+)$/.exec(line);
        if (!m) continue;
        const got = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
        if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[2]);
      }
      return sum;
    },
  };
  return gateway;
}

export { freePort };

// ── the 429 contract ──────────────────────────────────────────────────────────

export const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } });
export const withKey = (key: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { 'x-api-key': key, ...(init.headers as Record<string, string> | undefined) } });

/** An allowed response from the upstream, carrying the limit's headers; returns Remaining. */
export function assertAllowed(r: GatewayResponse, limit: number, what: string): number {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.headers.get('x-ratelimit-limit'), String(limit), `${what}: X-RateLimit-Limit`);
  const remaining = r.headers.get('x-ratelimit-remaining');
  assert.match(remaining ?? '', /^\d+$/, `${what}: X-RateLimit-Remaining`);
  assert.ok(Number(remaining) <= limit, `${what}: X-RateLimit-Remaining ${remaining} is more than the limit ${limit}`);
  assert.equal(r.headers.get('retry-after'), null, `${what}: no Retry-After on an allowed response`);
  return Number(remaining);
}

/**
 * A refusal exactly as the contract says: 429, Retry-After, X-RateLimit-Limit/Remaining/Reset,
 * application/json and the body byte for byte (with N = Retry-After); nothing of Envoy's own.
 * `maxRetryAfter` bounds N (the time until the budget is back). Returns N.
 */
export function assert429(r: GatewayResponse, o: { limit: number; error?: 'rate_limit_exceeded' | 'quota_exceeded'; maxRetryAfter: number; minRetryAfter?: number }, what: string): number {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.text}`);
  const ra = r.headers.get('retry-after');
  assert.match(ra ?? '', /^\d+$/, `${what}: Retry-After ${ra}`);
  const n = Number(ra);
  assert.ok(n >= (o.minRetryAfter ?? 1) && n <= o.maxRetryAfter, `${what}: Retry-After ${n} not in [${o.minRetryAfter ?? 1}, ${o.maxRetryAfter}]`);
  assert.equal(r.headers.get('x-ratelimit-limit'), String(o.limit), `${what}: X-RateLimit-Limit`);
  assert.equal(r.headers.get('x-ratelimit-remaining'), '0', `${what}: X-RateLimit-Remaining`);
  const reset = Number(r.headers.get('x-ratelimit-reset'));
  const expectReset = Date.now() / 1000 + n;
  assert.ok(Math.abs(reset - expectReset) <= 5, `${what}: X-RateLimit-Reset ${reset}, expected about ${Math.round(expectReset)}`);
  assert.equal(r.headers.get('content-type'), 'application/json', `${what}: content-type`);
  const error = o.error ?? 'rate_limit_exceeded';
  const message = error === 'quota_exceeded' ? 'Quota exceeded.' : 'Too many requests.';
  assert.equal(r.text, `{"error":"${error}","message":"${message} Retry after ${n} ${n === 1 ? 'second' : 'seconds'}.","retry_after":${n}}`, `${what}: body`);
  for (const h of ['x-envoy-ratelimited', 'ratelimit', 'ratelimit-policy']) assert.equal(r.headers.get(h), null, `${what}: no ${h} header`);
  return n;
}

/** Seconds until the next UTC midnight. */
export function secondsToMidnight(now = Date.now()): number {
  const d = new Date(now);
  return (Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - now) / 1000;
}
