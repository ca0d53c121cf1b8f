// Native JWT (GatewayGroup.authz.mode native): which routes Envoy's jwt_authn verifies alone, with
// which providers (issuers, their public keys pushed inline) and which partners; the rest stay on the callout.
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_JWT_ALGORITHMS,
  jwkAlgorithms,
  jwksKeys,
  jwtIssuerCalloutReason,
  partnerFromPayload,
  publicJwkMembers,
  sortedValues,
  type CredentialType,
  type JwtAlgorithm,
  type JwtIssuer,
  type ModelSnapshot,
  type Product,
  type Route,
} from '../../model/index.ts';
import { GATEWAY_HEADERS } from '../../contract/index.ts';
import type { HeaderMatchIR, JwtAuthnIR, JwtProviderIR, PathMatchIR, RouteAccessIR, RouteIR, RouteJwtAuthIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { routeAccess, type NativeAuthContext } from './native-auth.ts';

/** Tokens Envoy keeps verified per provider and worker (the callout's cache holds as many), and the longest token it reads. */
const JWT_CACHE_SIZE = 10_000;
const JWT_MAX_TOKEN_BYTES = 8 * 1024;

/** The issuers Envoy can verify alone, as providers by issuer name. */
export interface NativeJwtContext {
  providers: ReadonlyMap<string, JwtProviderIR>;
  /** The partner claim names of the model's providers that copy the claim into the partner header. */
  headerClaims: ReadonlySet<string>;
}

/** The partner claim a provider copies into the partner header (undefined: the partner is read from the payload). */
export function headerPartnerClaim(p: JwtProviderIR): string | undefined {
  return p.partner ? undefined : p.claimHeaders.find(([h]) => h === GATEWAY_HEADERS.partner)?.[1];
}

/** The partner claim name of a provider that reads one (header or payload), else undefined (a fixed partner, or none). */
export function partnerClaimOf(p: JwtProviderIR): string | undefined {
  return p.partner ? p.partner.claim : headerPartnerClaim(p);
}

/**
 * A forwarded header's value read as the callout reads a dotted claim name, the top-level claim of
 * that name (jwt_authn's claim_to_headers reads only the nested path): from the payload jwt_authn
 * writes to metadata, with Envoy's CEL formatter. A claim the payload lacks formats to nothing, which
 * leaves the header jwt_authn set from the nested path, the callout's second reading. Undefined when
 * the name has no dot, or a character the formatter command or a CEL string cannot hold.
 */
export function payloadClaimHeader(provider: string, claim: string): string | undefined {
  if (!claim.includes('.') || /[)%'"\\\n\r]/.test(claim) || !/^[a-z0-9-]+$/.test(provider)) return undefined;
  return `%CEL(metadata.filter_metadata['envoy.filters.http.jwt_authn']['${provider}']['${claim}'])%`;
}

/**
 * The issuer's key set for Envoy: only public signing keys, each pinned to one allowed algorithm
 * (a key usable with two gets two entries), so a token signed with an algorithm outside the issuer's
 * allow-list (HS256 with the public key, none, RS384…) finds no key. Undefined when none is usable.
 */
export function envoyJwks(doc: unknown, algorithms: readonly JwtAlgorithm[]): string | undefined {
  const keys: Array<Record<string, string>> = [];
  for (const jwk of jwksKeys(doc)) {
    for (const alg of jwkAlgorithms(jwk, algorithms)) keys.push({ ...publicJwkMembers(jwk), ...(typeof jwk.kid === 'string' ? { kid: jwk.kid } : {}), alg });
  }
  return keys.length ? JSON.stringify({ keys }) : undefined;
}

/** A provider for the issuer, or undefined when its routes need the callout (see jwtIssuerCalloutReason) or its keys are not loaded yet. */
export function jwtProvider(issuer: JwtIssuer, fetched: unknown): JwtProviderIR | undefined {
  if (jwtIssuerCalloutReason(issuer) !== undefined) return undefined;
  const jwks = envoyJwks(issuer.jwks ?? fetched, issuer.algorithms ?? DEFAULT_JWT_ALGORITHMS);
  if (jwks === undefined) return undefined;
  const fromPayload = partnerFromPayload(issuer);
  const claimHeaders: Array<[string, string]> = fromPayload ? [] : [[GATEWAY_HEADERS.partner, issuer.partnerClaim!]];
  for (const [claim, header] of Object.entries(issuer.forwardClaims ?? {})) claimHeaders.push([header.toLowerCase(), claim]);
  claimHeaders.sort((a, b) => compareStrings(a[0], b[0]));
  // Dotted forwarded claims: the route reads the top-level claim from the payload too (payloadClaimHeader).
  const payloadClaims = claimHeaders.filter(([h, c]) => h !== GATEWAY_HEADERS.partner && payloadClaimHeader(issuer.name, c) !== undefined);
  return {
    name: issuer.name,
    issuer: issuer.issuer,
    audiences: [...issuer.audiences],
    jwks,
    clockSkewSeconds: issuer.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS,
    forwardToken: issuer.forwardToken === true,
    claimHeaders,
    ...(payloadClaims.length ? { payloadClaims } : {}),
    ...(fromPayload ? { partner: issuer.partner !== undefined ? { fixed: issuer.partner } : issuer.partnerClaim !== undefined ? { claim: issuer.partnerClaim } : { none: true as const } } : {}),
  };
}

/** The product's issuers (those its JWT routes accept), by name. */
function productIssuers(model: ModelSnapshot, product: Product): string[] {
  return [...(product.jwtIssuers ?? sortedValues(model, 'jwtIssuers').map((i) => i.name))].sort(compareStrings);
}

/**
 * The paths where the product's issuers waive the token (excludedPaths: exact, or a prefix when the
 * entry ends in '/'), as the callout reads them: on any route of the product that takes JWTs.
 */
export function excludedPaths(model: ModelSnapshot, product: Product): string[] {
  const out = new Set<string>();
  for (const name of productIssuers(model, product)) for (const p of model.jwtIssuers.get(name)?.excludedPaths ?? []) out.add(p);
  return [...out].sort(compareStrings);
}

/** Whether a request path could both match the route's path and the excluded entry (conservative: true when unsure). */
function overlaps(path: PathMatchIR, entry: string): boolean {
  const prefix = entry.endsWith('/');
  const v = path.value;
  switch (path.kind) {
    case 'exact':
      return prefix ? v.startsWith(entry) : v === entry;
    case 'prefix':
      return entry.startsWith(v) || (prefix && v.startsWith(entry));
    case 'segment_prefix':
      return entry === v || entry.startsWith(`${v}/`) || (prefix && `${v}/`.startsWith(entry));
    default:
      return true;
  }
}

/** Matches the request path (`:path` holds the query too) against an excluded entry, as the callout does on the path alone. */
function excludedPathMatch(entry: string): HeaderMatchIR {
  if (entry.endsWith('/')) return { name: ':path', match: { kind: 'prefix', value: entry }, invert: false };
  return { name: ':path', match: { kind: 'regex', value: `${entry.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}(\\?.*)?` }, invert: false };
}

/**
 * The routes Envoy serves where the product's issuers waive the token inside a native JWT route:
 * copies of the route (before its native authorization) that also match the excluded path, placed
 * right before it (virtual-hosts.ts), so they take exactly the requests the route would have taken
 * there. Like the callout, they let the caller through anonymously (no token read, no access RBAC,
 * x-portico-credential none, the product's public plan). They keep the route's native plan limits
 * and quota refusals: the caller carries no partner header there, so only the public plan's entries
 * (callers that are no subscriber) apply, and the public plan counts them, as in the callout.
 */
export function waivedRoutes(model: ModelSnapshot, product: Product, base: RouteIR, identity: Array<[string, string]>): RouteIR[] {
  const entries = excludedPaths(model, product).filter((e) => overlaps(base.match.path, e));
  if (entries.length === 0) return [];
  // Service mode's rate-limit actions never reach here (a route the callout counts is not native).
  const { rateLimit: _r, ...rest } = base;
  const m = base.requestHeaders;
  const requestHeaders = { ...m, set: [...m.set, ...identity].sort((a, b) => compareStrings(a[0], b[0])) };
  return entries.map((e) => ({ ...rest, match: { ...base.match, headers: [...base.match.headers, excludedPathMatch(e)] }, requestHeaders, authz: { disabled: true } }));
}

export function nativeJwtContext(model: ModelSnapshot, fetched: ReadonlyMap<string, unknown> | undefined): NativeJwtContext {
  const providers = new Map<string, JwtProviderIR>();
  const headerClaims = new Set<string>();
  for (const i of sortedValues(model, 'jwtIssuers')) {
    const p = jwtProvider(i, fetched?.get(i.name));
    if (!p) continue;
    providers.set(i.name, p);
    const claim = headerPartnerClaim(p);
    if (claim !== undefined) headerClaims.add(claim);
  }
  return { providers, headerClaims };
}

/**
 * jwt_authn and the access policies for a route, or undefined when the route stays on the callout: it
 * accepts other credentials than a JWT, a plan limits it and the callout counts it, or one of its
 * issuers cannot be verified by Envoy alone. The access RBAC decides on the partner claim as it does
 * on an API key's partner (a claim naming no subscribed partner: no_subscription).
 */
export function nativeJwtAuth(
  model: ModelSnapshot,
  product: Product,
  route: Route,
  accept: readonly CredentialType[],
  limited: boolean,
  ctx: NativeJwtContext,
  auth: NativeAuthContext,
): { jwtAuth: RouteJwtAuthIR; access: RouteAccessIR } | undefined {
  if (accept.length !== 1 || accept[0] !== 'jwt' || limited) return undefined;
  const issuers = productIssuers(model, product);
  if (issuers.length === 0 || issuers.some((i) => !ctx.providers.has(i))) return undefined;
  const providers = issuers.map((i) => ctx.providers.get(i)!);
  const claimHeaders = new Set(providers.flatMap((p) => p.claimHeaders.map(([h]) => h)).filter((h) => h !== GATEWAY_HEADERS.partner));
  const access = routeAccess(model, product, route, auth, true);
  // Issuer names are slugs: '+' cannot occur in one.
  const payloadClaims = providers.flatMap((p) => (p.payloadClaims ?? []).map(([h, c]): [string, string, string] => [h, p.name, c]));
  const jwtAuth = { requirement: issuers.join('+'), claimHeaders: [...claimHeaders].sort(compareStrings), ...(payloadClaims.length ? { payloadClaims } : {}) };
  const claimless = claimlessTokens(providers, ctx);
  const withClaimless = { ...access, ...(claimless.length ? { claimless } : {}) };
  if (!providers.some((p) => p.partner)) return { jwtAuth, access: withClaimless };
  const unmapped = providers.filter((p) => p.partner?.none).map((p) => p.name);
  return { jwtAuth, access: { ...withClaimless, identities: tokenIdentities(access, providers), ...(unmapped.length ? { unmappedTokens: unmapped } : {}) } };
}

/**
 * The route's partner claims, for refusing tokens that lack theirs as the callout does (403
 * unknown_partner naming the claim) rather than as a partner with no subscription.
 */
function claimlessTokens(providers: readonly JwtProviderIR[], ctx: NativeJwtContext): NonNullable<RouteAccessIR['claimless']> {
  const fromPayload = providers.filter((p) => p.partner).map((p) => p.name);
  const byClaim = new Map<string, string[]>();
  for (const p of providers) {
    const claim = partnerClaimOf(p);
    if (claim !== undefined) byClaim.set(claim, [...(byClaim.get(claim) ?? []), p.name]);
  }
  return [...byClaim]
    .sort((a, b) => compareStrings(a[0], b[0]))
    .map(([claim, names]) => {
      // A header-read claim has no dot (a dotted one is read in the payload): see partnerFromPayload.
      if (ctx.providers.get(names[0]!)?.partner) return { claim, providers: names };
      return { claim, providers: names, fromHeader: { except: fromPayload, ...(ctx.headerClaims.size === 1 ? { inChain: true as const } : {}) } };
    });
}

/**
 * Who each partner is on a route where some issuer's tokens name their partner in the payload (a
 * fixed partner, a dotted claim): the partner header (issuers whose claim jwt_authn copied into it),
 * or a token of a fixed-partner issuer, or the claim in the payload. The shadow match then names the
 * partner, which the route forwards (no filter sets the partner header for those tokens).
 */
function tokenIdentities(access: RouteAccessIR, providers: readonly JwtProviderIR[]): NonNullable<RouteAccessIR['identities']> {
  const byHeader = providers.some((p) => !p.partner);
  const partners = new Set([...access.deny.flatMap((d) => d.partners), ...access.allowed.map((a) => a.partner)]);
  return [...partners].sort(compareStrings).map((partner) => {
    const tokens = providers.flatMap((p) => (p.partner?.claim !== undefined ? [{ provider: p.name, claim: p.partner.claim }] : p.partner?.fixed === partner ? [{ provider: p.name }] : []));
    return { partner, principals: [], ...(byHeader ? { partnerHeader: true as const } : {}), ...(tokens.length ? { tokens } : {}) };
  });
}

/** The group's jwt_authn: the providers its native routes require, and one requirement per distinct issuer list. */
export function jwtAuthnIr(routes: readonly RouteIR[], ctx: NativeJwtContext): JwtAuthnIR | undefined {
  const requirements = new Set<string>();
  for (const r of routes) if (r.jwtAuth) requirements.add(r.jwtAuth.requirement);
  if (requirements.size === 0) return undefined;
  const sorted = [...requirements].sort(compareStrings);
  const used = new Set(sorted.flatMap((n) => n.split('+')));
  return {
    providers: [...used].sort(compareStrings).map((n) => ctx.providers.get(n)!),
    requirements: sorted.map((n) => [n, n.split('+')]),
    cacheSize: JWT_CACHE_SIZE,
    maxTokenBytes: JWT_MAX_TOKEN_BYTES,
  };
}
