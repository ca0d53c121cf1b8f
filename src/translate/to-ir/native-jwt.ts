// Native JWT (GatewayGroup.authz.mode native): which routes Envoy's jwt_authn verifies alone, with
// which providers (issuers, their public keys pushed inline) and which partners; the rest stay on the callout.
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_JWT_ALGORITHMS,
  jwkAlgorithms,
  jwksKeys,
  jwtIssuerCalloutReason,
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
import type { JwtAuthnIR, JwtProviderIR, RouteAccessIR, RouteIR, RouteJwtAuthIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { routeAccess, type NativeAuthContext } from './native-auth.ts';

/** Tokens Envoy keeps verified per provider and worker (the callout's cache holds as many), and the longest token it reads. */
const JWT_CACHE_SIZE = 10_000;
const JWT_MAX_TOKEN_BYTES = 8 * 1024;

/** The issuers Envoy can verify alone, as providers by issuer name. */
export interface NativeJwtContext {
  providers: ReadonlyMap<string, JwtProviderIR>;
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
  const claimHeaders: Array<[string, string]> = [[GATEWAY_HEADERS.partner, issuer.partnerClaim!]];
  for (const [claim, header] of Object.entries(issuer.forwardClaims ?? {})) claimHeaders.push([header.toLowerCase(), claim]);
  claimHeaders.sort((a, b) => compareStrings(a[0], b[0]));
  return {
    name: issuer.name,
    issuer: issuer.issuer,
    audiences: [...issuer.audiences],
    jwks,
    clockSkewSeconds: issuer.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS,
    forwardToken: issuer.forwardToken === true,
    claimHeaders,
  };
}

export function nativeJwtContext(model: ModelSnapshot, fetched: ReadonlyMap<string, unknown> | undefined): NativeJwtContext {
  const providers = new Map<string, JwtProviderIR>();
  for (const i of sortedValues(model, 'jwtIssuers')) {
    const p = jwtProvider(i, fetched?.get(i.name));
    if (p) providers.set(i.name, p);
  }
  return { providers };
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
  const issuers = [...(product.jwtIssuers ?? sortedValues(model, 'jwtIssuers').map((i) => i.name))].sort(compareStrings);
  if (issuers.length === 0 || issuers.some((i) => !ctx.providers.has(i))) return undefined;
  const claimHeaders = new Set(issuers.flatMap((i) => ctx.providers.get(i)!.claimHeaders.map(([h]) => h)).filter((h) => h !== GATEWAY_HEADERS.partner));
  // Issuer names are slugs: '+' cannot occur in one.
  return { jwtAuth: { requirement: issuers.join('+'), claimHeaders: [...claimHeaders].sort(compareStrings) }, access: routeAccess(model, product, route, auth) };
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
