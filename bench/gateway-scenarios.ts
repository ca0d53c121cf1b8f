// The gateway benchmarks' scenarios: one route through Envoy in each configuration, the model that
// makes it (applied through the admin API) and the request headers a caller sends.
//   plain     auth none, no limits: Envoy proxies, no callout
//   auth      API key (ext_authz callout: authz.mode exact), a plan without limits
//   combined  API key + a rate limit, rateLimit.mode combined (one callout authenticates and counts)
//   service   API key + a rate limit, rateLimit.mode service (ext_authz callout + rate-limit callout)
//   native    a rate limit per client address, rateLimit.mode native (Envoy's own token buckets, no callout)
//   auth-native  API key (ext_authz callout: authz.mode exact) + a rate limit per partner, rateLimit.mode native
//   jwt-native   JWT verified by Envoy (jwt_authn with its token cache, the access RBAC on the partner
//                claim) + a rate limit per partner, both native: no callout
//   key-native   API key + a rate limit per partner, both native (api_key_auth; rateLimit.mode native): no callout
// The limit is far above what the machine can send, so every request is counted and none refused.
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';

export const GROUP = 'edge';

export type Scenario = 'plain' | 'auth' | 'combined' | 'service' | 'native' | 'auth-native' | 'jwt-native' | 'key-native';

/** Calls to the control plane (ext_authz, rate-limit service) each request of a scenario makes. */
export const CALLOUTS_PER_REQUEST: Readonly<Record<Scenario, number>> = { plain: 0, auth: 1, combined: 1, service: 2, native: 0, 'auth-native': 1, 'jwt-native': 0, 'key-native': 0 };

/**
 * Refuses a round whose callouts differ from what the scenario names (a default that changed — native
 * authorization — once turned the callout scenarios native without a word).
 */
export function checkCallouts(s: Scenario, callouts: number, requests: number): void {
  const perRequest = callouts / Math.max(1, requests);
  if (Math.abs(perRequest - CALLOUTS_PER_REQUEST[s]) > 0.1) {
    throw new Error(`${s}: ${perRequest.toFixed(2)} callouts per request where the scenario makes ${CALLOUTS_PER_REQUEST[s]}: its model no longer measures what its name says`);
  }
}

/** Scenarios whose allowed responses carry X-RateLimit-* (a callout counted them). */
export const COUNTED_BY_CALLOUT: readonly Scenario[] = ['combined', 'service'];
export const NATIVE: readonly Scenario[] = ['native', 'auth-native', 'jwt-native', 'key-native'];

// jwt-native: an issuer whose public key is in the model (pushed to Envoy inline), one token reused by every request (as a client does until it expires).
const ISSUER = { name: 'bench-idp', issuer: 'https://idp.bench.example', audience: 'bench.example' };
const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const issuerJwk = { ...(signing.publicKey.export({ format: 'jwk' }) as Record<string, string>), kid: 'bench-1', alg: 'ES256', use: 'sig' };
export const benchToken = (): Promise<string> =>
  new SignJWT({ partner: 'acme' })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench-1' })
    .setIssuer(ISSUER.issuer)
    .setAudience(ISSUER.audience)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(signing.privateKey);

/**
 * The model of one scenario. `group`, `product` and `service` rename its gateway group, product and
 * service (two scenarios side by side in one model: pairDocument).
 */
export function documentFor(s: Scenario, o: { listenerPort: number; upstreamPort: number; key: string; group?: string; product?: string; service?: string }): Record<string, unknown> {
  const group = o.group ?? GROUP;
  const product = o.product ?? 'bench';
  const service = o.service ?? 'upstream';
  const limited = s === 'combined' || s === 'service' || s === 'auth-native' || s === 'jwt-native' || s === 'key-native';
  const mode = s === 'service' ? 'service' : NATIVE.includes(s) ? 'native' : 'combined';
  return {
    portico: 'v1',
    gatewayGroups: [
      {
        name: group,
        listeners: [{ name: 'http', port: o.listenerPort, address: '127.0.0.1' }],
        // Generous timeouts: a loaded machine must not turn slow callouts into failed requests.
        // auth and auth-native measure the ext_authz callout: since native authorization became the
        // default they must state exact, or Envoy checks their keys itself (0 callouts per request).
        authz: { failureMode: 'closed', timeoutMs: 5000, ...(s === 'auth' || s === 'auth-native' ? { mode: 'exact' } : s === 'jwt-native' || s === 'key-native' ? { mode: 'native' } : {}) },
        rateLimit: { mode, failureMode: 'closed', timeoutMs: 5000 },
      },
    ],
    services: [{ name: service, endpoints: [{ host: '127.0.0.1', port: o.upstreamPort }] }],
    products: [
      {
        name: product,
        gatewayGroups: [group],
        basePath: `/${product}`,
        auth: { accept: s === 'plain' || s === 'native' ? ['none'] : s === 'jwt-native' ? ['jwt'] : ['api_key'] },
        // native: anonymous callers on a plan limited per client address.
        ...(s === 'native' ? { publicPlan: 'per-address' } : {}),
        routes: [{ name: 'get', match: { path: { type: 'prefix', value: '/' } }, service }],
      },
    ],
    plans: [
      { name: 'unlimited' },
      // Counted on every request, never reached.
      { name: 'big', limits: [{ requests: 1_000_000_000, per: 'second' }], countBy: { kind: 'partner' } },
      { name: 'per-address', limits: [{ requests: 1_000_000_000, per: 'second' }], countBy: { kind: 'client_ip' } },
    ],
    jwtIssuers: [{ name: ISSUER.name, issuer: ISSUER.issuer, audiences: [ISSUER.audience], algorithms: ['ES256'], partnerClaim: 'partner', jwks: { keys: [issuerJwk] } }],
    partners: [{ name: 'acme', apiKeys: [{ name: 'bench', key: o.key }], subscriptions: [{ product, plan: limited ? 'big' : 'unlimited' }] }],
  };
}

/**
 * Two scenarios' models as one: each its own group, product and service (named after the
 * scenario); plans, issuers and the partner are shared, the partner subscribed to both products.
 */
export function pairDocument(sides: ReadonlyArray<{ s: Scenario; listenerPort: number; upstreamPort: number }>, key: string): Record<string, unknown> {
  type Doc = { gatewayGroups: unknown[]; services: unknown[]; products: unknown[]; partners: Array<{ subscriptions: unknown[] }> } & Record<string, unknown>;
  const docs = sides.map((d) => documentFor(d.s, { ...d, key, group: pairGroup(d.s), product: pairProduct(d.s), service: `upstream-${d.s}` }) as Doc);
  const first = docs[0];
  return {
    ...first!,
    gatewayGroups: docs.flatMap((d) => d.gatewayGroups),
    services: docs.flatMap((d) => d.services),
    products: docs.flatMap((d) => d.products),
    partners: [{ ...first!.partners[0]!, subscriptions: docs.flatMap((d) => d.partners[0]!.subscriptions) }],
  };
}

/** A scenario's gateway group and product in pairDocument. */
export const pairGroup = (s: Scenario): string => `edge-${s}`;
export const pairProduct = (s: Scenario): string => `bench-${s}`;

/** What a caller of the scenario sends: nothing, its API key, or its bearer token. */
export function headersFor(s: Scenario, c: { key: string; token: string }): string[] {
  return s === 'plain' || s === 'native' ? [] : s === 'jwt-native' ? [`authorization: Bearer ${c.token}`] : [`x-api-key: ${c.key}`];
}
