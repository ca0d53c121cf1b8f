// Access decisions (pure given the index, the clock and a verified token): which credential a route
// accepts, who presented it, whether that partner's subscription allows this call, and what to tell Envoy.
import { claimAt, type CredentialType } from '../model/index.ts';
import { accessRefusalMessage, AUTH_REALM, GATEWAY_HEADERS, gatewayErrorBody, noPartnerClaimMessage, secretPrefix, type AccessRefusal } from '../contract/index.ts';
import type { CredentialIndex, IssuerEntry, ProductEntry } from './credential-index.ts';
import { partnerOfPeer, partnerOfPrincipal, peerFromCertificate } from './mtls.ts';

/** The parts of an ext_authz CheckRequest a decision reads. */
export interface AuthzRequest {
  method: string;
  /** Path without the query string (as Envoy normalised it). */
  path: string;
  /** Raw query string without '?', '' when there is none. */
  query: string;
  /** Request headers, lower-case names (repeated headers joined with ','). */
  headers: ReadonlyMap<string, string>;
  /** Envoy's request id (AttributeContext.HttpRequest.id). */
  requestId: string;
  /** Per-route context_extensions set by the translator: product, route, accept. */
  context: ReadonlyMap<string, string>;
  /** AttributeContext.source: principal and URL-encoded PEM certificate ('' when absent). */
  peerPrincipal: string;
  peerCertificate: string;
  /** AttributeContext.source's IP address (the client as Envoy sees it); '' or absent when unknown. */
  sourceAddress?: string;
}

/** Credential types in the order they are tried: the first one the request presents decides. */
export const CREDENTIAL_ORDER = ['api_key', 'jwt', 'mtls'] as const satisfies readonly CredentialType[];

export interface Allow {
  allowed: true;
  product: string;
  route: string;
  /** Undefined for anonymous calls (public routes, JWT-excluded paths). */
  partner: string | undefined;
  plan: string | undefined;
  credential: CredentialType;
  /** Upstream headers to set (overwriting any client copy). */
  setHeaders: ReadonlyArray<readonly [string, string]>;
  /** Upstream headers to remove: every gateway-owned identity header not being set, the API key header, and Authorization after a JWT unless its issuer forwards tokens. */
  removeHeaders: readonly string[];
  /** Query parameters to remove (the API key parameter). */
  removeQuery: readonly string[];
  /** Dynamic metadata for the rate-limit filter and access logs (namespace envoy.filters.http.ext_authz). */
  metadata: Readonly<Record<string, string>>;
}

export interface Deny {
  allowed: false;
  status: 401 | 403;
  /** Machine-readable code for the JSON body. */
  error: string;
  /** Human text for the JSON body: helps the caller, never echoes a credential. */
  message: string;
  /** RFC 9110 challenge, on every 401. */
  wwwAuthenticate: string | undefined;
  product: string | undefined;
  route: string | undefined;
  partner: string | undefined;
  credential: CredentialType | undefined;
}

export type Decision = Allow | Deny;

/** What the JWT verifier concluded about a presented token. */
export type JwtOutcome = { ok: true; issuer: IssuerEntry; payload: Readonly<Record<string, unknown>> } | { ok: false; error: string; message: string };

export const REALM = AUTH_REALM;

// ── request helpers ──────────────────────────────────────────────────────────

/** The bearer token in Authorization, or undefined when there is no bearer credential. */
export function bearerToken(headers: ReadonlyMap<string, string>): string | undefined {
  const h = headers.get('authorization');
  if (h === undefined || h.length < 7) return undefined;
  // Scheme names are case-insensitive (RFC 9110 §11.1).
  if (h.charCodeAt(6) !== 32 || h.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  return h.slice(7).trim();
}

function queryParam(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    if (k !== name) continue;
    const raw = eq < 0 ? '' : part.slice(eq + 1);
    try {
      return decodeURIComponent(raw.replace(/\+/g, ' '));
    } catch {
      return raw;
    }
  }
  return undefined;
}

function apiKeyOf(p: ProductEntry, req: AuthzRequest): string | undefined {
  if (p.apiKeyHeader !== undefined) {
    const v = req.headers.get(p.apiKeyHeader);
    if (v !== undefined && v !== '') return v;
  }
  if (p.apiKeyQuery !== undefined) {
    const v = queryParam(req.query, p.apiKeyQuery);
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

function isExcluded(p: ProductEntry, path: string): boolean {
  if (p.excludedExact.has(path)) return true;
  for (const prefix of p.excludedPrefixes) if (path.startsWith(prefix)) return true;
  return false;
}

const KNOWN_ACCEPT = new Set<string>(['none', 'api_key', 'jwt', 'mtls']);

/** What a route accepts: the index's view, else (route not yet known here) the translator's, else the product default. */
function acceptedFor(p: ProductEntry, routeName: string, context: ReadonlyMap<string, string>): readonly CredentialType[] {
  const r = p.routes.get(routeName);
  if (r) return r.accept;
  const fromEnvoy = context.get('accept');
  if (fromEnvoy) {
    const list = fromEnvoy.split(',').map((s) => s.trim());
    if (list.length > 0 && list.every((s) => KNOWN_ACCEPT.has(s))) return list as CredentialType[];
  }
  return p.defaultAccept;
}

// ── the plan: which credential will decide ───────────────────────────────────

type Plan =
  | { kind: 'deny'; deny: Deny }
  | { kind: 'anonymous'; product: ProductEntry; route: string; accept: readonly CredentialType[] }
  | { kind: 'missing'; product: ProductEntry; route: string; accept: readonly CredentialType[] }
  | { kind: 'api_key'; product: ProductEntry; route: string; accept: readonly CredentialType[]; key: string }
  | { kind: 'jwt'; product: ProductEntry; route: string; accept: readonly CredentialType[]; token: string }
  | { kind: 'mtls'; product: ProductEntry; route: string; accept: readonly CredentialType[] };

function plan(index: CredentialIndex, req: AuthzRequest): Plan {
  const productName = req.context.get('product') ?? '';
  const route = req.context.get('route') ?? '';
  const product = index.products.get(productName);
  if (!product) {
    return {
      kind: 'deny',
      deny: deny(403, 'unknown_product', 'This API product is not available.', undefined, productName || undefined, route || undefined),
    };
  }
  const accept = acceptedFor(product, route, req.context);
  if (accept.includes('none')) return { kind: 'anonymous', product, route, accept };
  // An issuer's excluded paths waive the token requirement there (health checks, login): the route is public on them.
  if (accept.includes('jwt') && isExcluded(product, req.path)) return { kind: 'anonymous', product, route, accept };
  for (const type of CREDENTIAL_ORDER) {
    if (!accept.includes(type)) continue;
    if (type === 'api_key') {
      const key = apiKeyOf(product, req);
      if (key !== undefined) return { kind: 'api_key', product, route, accept, key };
    } else if (type === 'jwt') {
      const token = bearerToken(req.headers);
      if (token !== undefined) return { kind: 'jwt', product, route, accept, token };
    } else if (req.peerCertificate !== '' || req.peerPrincipal !== '') {
      return { kind: 'mtls', product, route, accept };
    }
  }
  return { kind: 'missing', product, route, accept };
}

/** The token decide() will need verified for this request, and the issuers it may come from. */
export function jwtToVerify(index: CredentialIndex, req: AuthzRequest): { token: string; issuers: readonly IssuerEntry[] } | undefined {
  const p = plan(index, req);
  return p.kind === 'jwt' ? { token: p.token, issuers: p.product.issuers } : undefined;
}

// ── outcomes ─────────────────────────────────────────────────────────────────

function deny(
  status: 401 | 403,
  error: string,
  message: string,
  wwwAuthenticate: string | undefined,
  product: string | undefined,
  route: string | undefined,
  partner?: string,
  credential?: CredentialType,
): Deny {
  return { allowed: false, status, error, message, wwwAuthenticate, product, route, partner, credential };
}

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '\\$&')}"`;
}

/** One challenge per accepted credential type (RFC 9110 §11.6.1), the failing one carrying its error. */
export function challenges(p: ProductEntry, accept: readonly CredentialType[], jwtError?: { error: string; description: string }): string {
  const out: string[] = [];
  const realm = `realm=${quote(REALM)}`;
  for (const type of CREDENTIAL_ORDER) {
    if (!accept.includes(type)) continue;
    if (type === 'api_key') {
      const where = [p.apiKeyHeader !== undefined ? `header=${quote(p.apiKeyHeader)}` : '', p.apiKeyQuery !== undefined ? `query=${quote(p.apiKeyQuery)}` : ''].filter(Boolean).join(', ');
      out.push(`ApiKey ${realm}${where ? `, ${where}` : ''}`);
    } else if (type === 'jwt') {
      out.push(`Bearer ${realm}${jwtError ? `, error=${quote(jwtError.error)}, error_description=${quote(jwtError.description)}` : ''}`);
    } else {
      out.push(`ClientCertificate ${realm}`);
    }
  }
  return out.join(', ');
}

function describeAccepted(p: ProductEntry, accept: readonly CredentialType[]): string {
  const parts: string[] = [];
  for (const type of CREDENTIAL_ORDER) {
    if (!accept.includes(type)) continue;
    if (type === 'api_key') {
      const where = [p.apiKeyHeader !== undefined ? `the ${p.apiKeyHeader} header` : '', p.apiKeyQuery !== undefined ? `the ${p.apiKeyQuery} query parameter` : ''].filter(Boolean).join(' or ');
      parts.push(`an API key in ${where}`);
    } else if (type === 'jwt') parts.push('a bearer token in the Authorization header');
    else parts.push('a client certificate');
  }
  return parts.join(', or ');
}

/** Claim value as a header value; undefined when it is absent, structured, or not a safe header value. */
function claimHeaderValue(payload: Readonly<Record<string, unknown>>, claim: string): string | undefined {
  const v = claimAt(payload, claim);
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v);
  else if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean')) s = v.join(',');
  else return undefined;
  // Only what RFC 9110 allows in a field value (no control characters but HTAB): Envoy would
  // reject the whole answer, or forward a byte the upstream refuses (a 503). Leave the claim out.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  if (s.length > 4096 || /[\0-\x08\x0a-\x1f\x7f]/.test(s)) return undefined;
  return s;
}

interface Identity {
  partner: string;
  credential: 'api_key' | 'jwt' | 'mtls';
  claimHeaders: Array<readonly [string, string]>;
  /** The credential was a token in Authorization that the upstream must not see (its issuer does not forward tokens). */
  consumedAuthorization: boolean;
}

type Planned = { product: ProductEntry; route: string; accept: readonly CredentialType[] };

// Module-level rather than closures inside decide(): nothing is allocated per Check until a denial.
function unauthenticated(pl: Planned, error: string, message: string, credential?: CredentialType, jwtError?: { error: string; description: string }): Deny {
  return deny(401, error, message, challenges(pl.product, pl.accept, jwtError), pl.product.name, pl.route, undefined, credential);
}

function forbidden(pl: Planned, id: Identity, error: string, message: string): Deny {
  return deny(403, error, message, undefined, pl.product.name, pl.route, id.partner, id.credential);
}

/** An access refusal, worded as the native mode's Envoy words it (src/contract/auth-replies.ts). */
function refused(pl: Planned, id: Identity, reason: AccessRefusal, method: string): Deny {
  return forbidden(pl, id, reason, accessRefusalMessage(reason, pl.product.name, /^[A-Z]{1,16}$/.test(method) ? method : 'this method'));
}

// An allow without per-request parts (no claim headers; Envoy sent a request id) is the same for
// every call of one partner on one known route: built once per index, frozen and shared, so the
// service also reuses its encoded CheckResponse. Capped; cleared when full (no LRU bookkeeping on
// the hot path).
const allowMemo = new WeakMap<CredentialIndex, Map<string, Allow>>();
const ALLOW_MEMO_MAX = 8192;

/** Who is let in where: everything an allow is built from besides the index and the request. */
interface Grant {
  p: ProductEntry;
  route: string;
  accept: readonly CredentialType[];
  credential: CredentialType;
  partner: string | undefined;
  plan: string | undefined;
  claimHeaders: ReadonlyArray<readonly [string, string]>;
  consumedAuthorization: boolean;
}

function allow(index: CredentialIndex, req: AuthzRequest, g: Grant): Allow {
  const { p, route, accept, credential, partner, claimHeaders } = g;
  // Plan follows from partner and product, accept from a known route: the key needs neither.
  const shareable = claimHeaders.length === 0 && p.routes.get(route)?.accept === accept && (req.headers.has('x-request-id') || req.requestId === '');
  if (!shareable) return buildAllow(index, req, g);
  let memo = allowMemo.get(index);
  if (!memo) allowMemo.set(index, (memo = new Map()));
  const key = `${p.name}/${route}/${credential}/${partner ?? ''}/${g.consumedAuthorization ? 'strip' : 'keep'}`;
  let a = memo.get(key);
  if (!a) {
    a = buildAllow(index, req, g);
    for (const v of [a.setHeaders, a.removeHeaders, a.removeQuery, a.metadata]) Object.freeze(v);
    if (memo.size >= ALLOW_MEMO_MAX) memo.clear();
    memo.set(key, Object.freeze(a));
  }
  return a;
}

function buildAllow(index: CredentialIndex, req: AuthzRequest, g: Grant): Allow {
  const { p, route, accept, credential, partner, plan, claimHeaders } = g;
  const set: Array<readonly [string, string]> = [
    [GATEWAY_HEADERS.product, p.name],
    [GATEWAY_HEADERS.route, route],
    [GATEWAY_HEADERS.credential, credential],
  ];
  if (partner !== undefined) set.push([GATEWAY_HEADERS.partner, partner]);
  if (plan !== undefined) set.push([GATEWAY_HEADERS.plan, plan]);
  for (const h of claimHeaders) set.push(h);
  if (!req.headers.has('x-request-id') && req.requestId !== '') set.push(['x-request-id', req.requestId]);
  // Never remove what is being set: disjoint lists make Envoy's order of applying them irrelevant.
  const setNames = new Set(set.map(([k]) => k));
  const remove = index.identityHeaders.filter((h) => !setNames.has(h));
  // The API key is a gateway credential: upstreams never need it, and their logs must not see it.
  if (accept.includes('api_key') && p.apiKeyHeader !== undefined && !setNames.has(p.apiKeyHeader)) remove.push(p.apiKeyHeader);
  // So is a verified token, unless its issuer forwards tokens (an upstream that reads them itself).
  if (g.consumedAuthorization && !setNames.has('authorization')) remove.push('authorization');
  const removeQuery = accept.includes('api_key') && p.apiKeyQuery !== undefined ? [p.apiKeyQuery] : [];
  const metadata: Record<string, string> = { product: p.name, route, credential };
  if (partner !== undefined) metadata.partner = partner;
  if (plan !== undefined) metadata.plan = plan;
  return { allowed: true, product: p.name, route, partner, plan, credential, setHeaders: set, removeHeaders: remove, removeQuery, metadata };
}

// ── the decision ─────────────────────────────────────────────────────────────

/**
 * Decides one Check. `now` is epoch milliseconds; `jwt` is the verifier's outcome for the token
 * jwtToVerify() named (without it a presented token is refused). Never throws on request content.
 *
 * Order: the product and route from the translator's context_extensions → accepted credential
 * types (route.auth ?? product.auth ?? api_key+jwt) → public routes and JWT-excluded paths are
 * anonymous → the first accepted type the request presents, in CREDENTIAL_ORDER, decides (a
 * presented but invalid credential is a 401 and never falls through to another) → partner →
 * subscription to the product → its status, expiry, and access level (routes, methods).
 */
export function decide(index: CredentialIndex, req: AuthzRequest, now: number, jwt?: JwtOutcome): Decision {
  const pl = plan(index, req);
  if (pl.kind === 'deny') return pl.deny;
  const p = pl.product;
  const route = pl.route;
  const accept = pl.accept;

  if (pl.kind === 'anonymous') {
    return allow(index, req, { p, route, accept, credential: 'none', partner: undefined, plan: p.publicPlan, claimHeaders: [], consumedAuthorization: false });
  }
  if (pl.kind === 'missing') {
    return unauthenticated(pl, 'missing_credentials', `This API requires ${describeAccepted(p, accept)}.`);
  }

  let id: Identity;
  if (pl.kind === 'api_key') {
    const prefix = secretPrefix(pl.key, 'ptk');
    const entry = prefix === undefined ? undefined : index.apiKeys.get(prefix);
    // Status (revoked, expired) is only disclosed to a caller holding the whole key.
    if (!entry || !index.hasher.verify(pl.key, entry.hash)) return unauthenticated(pl, 'invalid_api_key', 'The API key is not recognised.', 'api_key');
    if (entry.revoked) return unauthenticated(pl, 'revoked_api_key', 'The API key has been revoked.', 'api_key');
    if (entry.expiresAt <= now) return unauthenticated(pl, 'expired_api_key', 'The API key has expired.', 'api_key');
    id = { partner: entry.partner, credential: 'api_key', claimHeaders: [], consumedAuthorization: false };
  } else if (pl.kind === 'jwt') {
    if (!jwt) return unauthenticated(pl, 'invalid_token', 'The token could not be verified.', 'jwt', { error: 'invalid_token', description: 'The token could not be verified.' });
    if (!jwt.ok) return unauthenticated(pl, jwt.error, jwt.message, 'jwt', { error: 'invalid_token', description: jwt.message });
    const issuer = jwt.issuer;
    if (!p.issuers.includes(issuer)) {
      return unauthenticated(pl, 'invalid_token', 'The token issuer is not accepted by this API.', 'jwt', { error: 'invalid_token', description: 'The token issuer is not accepted by this API.' });
    }
    let partner: string | undefined;
    if (issuer.partnerClaim !== undefined) {
      // The top-level claim of that name, else a dotted name's nested claim (claimAt): Envoy's reading too.
      const v = claimAt(jwt.payload, issuer.partnerClaim);
      partner = typeof v === 'string' && v !== '' ? v : undefined;
      if (partner === undefined) {
        return deny(403, 'unknown_partner', noPartnerClaimMessage(issuer.partnerClaim), undefined, p.name, route, undefined, 'jwt');
      }
    } else partner = issuer.partner;
    if (partner === undefined) {
      return deny(403, 'unknown_partner', accessRefusalMessage('unknown_partner', p.name, ''), undefined, p.name, route, undefined, 'jwt');
    }
    const claimHeaders: Array<readonly [string, string]> = [];
    for (const [claim, header] of issuer.forwardClaims) {
      const v = claimHeaderValue(jwt.payload, claim);
      if (v !== undefined) claimHeaders.push([header, v]);
    }
    id = { partner, credential: 'jwt', claimHeaders, consumedAuthorization: !issuer.forwardToken };
  } else {
    let partner: string | undefined;
    if (req.peerCertificate !== '') {
      const peer = peerFromCertificate(req.peerCertificate);
      if (!peer) return unauthenticated(pl, 'invalid_certificate', 'The client certificate could not be read.', 'mtls');
      partner = partnerOfPeer(index.mtls, peer);
    } else partner = partnerOfPrincipal(index.mtls, req.peerPrincipal);
    if (partner === undefined) return unauthenticated(pl, 'unknown_certificate', 'The client certificate is not registered to any partner.', 'mtls');
    id = { partner, credential: 'mtls', claimHeaders: [], consumedAuthorization: false };
  }

  const partner = index.partners.get(id.partner);
  if (!partner) return forbidden(pl, id, 'unknown_partner', 'The credential names a partner this gateway does not know.');
  if (partner.suspended) return refused(pl, id, 'partner_suspended', req.method);
  const sub = index.subscriptions.get(`${id.partner}/${p.name}`);
  if (!sub) return refused(pl, id, 'no_subscription', req.method);
  if (!sub.active) return refused(pl, id, 'subscription_suspended', req.method);
  if (sub.expiresAt <= now) return refused(pl, id, 'subscription_expired', req.method);
  if (sub.routes !== undefined && !sub.routes.has(route)) return refused(pl, id, 'route_not_in_subscription', req.method);
  if (sub.methods !== undefined && !sub.methods.has(req.method)) return refused(pl, id, 'method_not_in_subscription', req.method);
  return allow(index, req, { p, route, accept, credential: id.credential, partner: id.partner, plan: sub.plan, claimHeaders: id.claimHeaders, consumedAuthorization: id.consumedAuthorization });
}

/** The gateway's one error shape, {"error":"<code>","message":"<text>"}, shared with Envoy's own replies. */
export function denyBody(d: Pick<Deny, 'error' | 'message'>): string {
  return gatewayErrorBody(d.error, d.message);
}
