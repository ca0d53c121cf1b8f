// What a JWT issuer's keys allow, shared by the callout's verifier (src/authz/jwks.ts) and the native
// translator (jwt_authn with the keys pushed inline): which algorithms a JWK may verify, its public
// members, and why an issuer cannot be verified by Envoy alone.
import type { JwtAlgorithm, JwtIssuer } from './schemas.ts';

/** Algorithms an issuer accepts when it does not list its own: asymmetric only, never HS* or none. */
export const DEFAULT_JWT_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'ES256'];
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

const RSA_ALGS: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EC_ALGS: Readonly<Record<string, JwtAlgorithm>> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };

/** The algorithms one JWK may verify, within the issuer's allow-list. Symmetric and private keys never qualify. */
export function jwkAlgorithms(jwk: Record<string, unknown>, allowed: readonly JwtAlgorithm[]): JwtAlgorithm[] {
  if (jwk.kty === 'oct' || 'd' in jwk || 'k' in jwk) return [];
  if (jwk.use !== undefined && jwk.use !== 'sig') return [];
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) return [];
  let candidates: readonly JwtAlgorithm[];
  if (jwk.kty === 'RSA') candidates = RSA_ALGS;
  else if (jwk.kty === 'EC') candidates = typeof jwk.crv === 'string' && EC_ALGS[jwk.crv] ? [EC_ALGS[jwk.crv]!] : [];
  else if (jwk.kty === 'OKP') candidates = jwk.crv === 'Ed25519' ? ['EdDSA'] : [];
  else candidates = [];
  if (typeof jwk.alg === 'string') candidates = candidates.filter((a) => a === jwk.alg);
  return candidates.filter((a) => allowed.includes(a));
}

/** Only the public members of a verification key (no usage hints, nothing private). */
export function publicJwkMembers(jwk: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['kty', 'crv', 'n', 'e', 'x', 'y'] as const) if (typeof jwk[k] === 'string') out[k] = jwk[k];
  return out;
}

/** The keys of a JWKS document (at most 256, objects only); [] when it has no "keys" array. */
export function jwksKeys(doc: unknown): Array<Record<string, unknown>> {
  const list = doc !== null && typeof doc === 'object' ? (doc as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(list)) return [];
  return list.slice(0, 256).filter((k): k is Record<string, unknown> => k !== null && typeof k === 'object' && !Array.isArray(k));
}

/**
 * Why Envoy's jwt_authn cannot decide for this issuer alone (its routes stay on the ext_authz
 * callout), or undefined when it can. Shown by the admin API beside each issuer.
 */
export function jwtIssuerCalloutReason(_i: Pick<JwtIssuer, 'partner' | 'partnerClaim'>): string | undefined {
  // None left: tokens of an issuer with neither partner nor partnerClaim name no partner, which the
  // access RBAC refuses as unknown_partner, as the callout does. Kept for the admin's nativeVerification.
  return undefined;
}

/**
 * How an issuer's tokens name their partner, as Envoy reads it: a top-level claim without a dot is
 * copied into the partner header by jwt_authn (the cheapest check); a fixed partner (any token of
 * the issuer) or a dotted claim name is matched by the access RBAC in the token's payload, which
 * jwt_authn writes to dynamic metadata (see partnerClaimValue for the reading of a dotted name).
 */
export function partnerFromPayload(i: Pick<JwtIssuer, 'partner' | 'partnerClaim'>): boolean {
  return i.partnerClaim === undefined || i.partnerClaim.includes('.');
}

/**
 * A claim of a token's payload by name: the top-level claim of that name, else, for a dotted name,
 * the nested claim along the path (`org.partner` reads {"org":{"partner":…}}), so claims named by URL
 * (`https://example.com/partner`, the namespaced custom claims some identity providers require) and
 * nested claims both work. Own properties only. Shared by the callout's partner claim and forwarded
 * claims, and matched the same way by Envoy's access RBAC (src/translate/envoy/filters/access.ts).
 */
export function claimAt(payload: Readonly<Record<string, unknown>>, claim: string): unknown {
  // A claim name like "constructor" must not reach Object.prototype.
  const own = (o: unknown, k: string): unknown => (o !== null && typeof o === 'object' && !Array.isArray(o) && Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined);
  let v = own(payload, claim);
  if (v === undefined && claim.includes('.')) {
    v = payload;
    for (const part of claim.split('.')) v = own(v, part);
  }
  return v;
}
