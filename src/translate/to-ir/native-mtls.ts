// Native mTLS (GatewayGroup.authz.mode native): routes that accept only client certificates, decided
// by the access RBAC on the verified certificate's names (each partner's identities as principals),
// no callout; partners with an identity Envoy cannot match keep the product on the callout.
import { mtlsPrincipalName, sortedValues, type CredentialType, type ModelSnapshot, type Product, type Route } from '../../model/index.ts';
import type { RouteAccessIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { routeAccess, type NativeAuthContext } from './native-auth.ts';

/**
 * The request header the edge's first filter sets to the verified client certificate's SHA-256
 * fingerprint on routes whose partners are known by one (RBAC matches certificate names, not digests;
 * it matches this header). Under the reserved prefix, so a client's copy is stripped before it is set.
 */
export const PEER_FINGERPRINT_HEADER = 'x-portico-peer-sha256';
export const PEER_FINGERPRINT_VALUE = '%DOWNSTREAM_PEER_FINGERPRINT_256%';

/** Whether a route's access policies know some partner by a fingerprint (its requests need the header). */
export function usesPeerFingerprint(a: RouteAccessIR | undefined): boolean {
  return a?.identities?.some((i) => i.fingerprints !== undefined) === true;
}

const add = (m: Map<string, string[]>, partner: string, v: string) => m.set(partner, [...new Set([...(m.get(partner) ?? []), v])].sort(compareStrings));

/** Principal names and fingerprints per partner, and the partners with an identity Envoy cannot match (see mtlsPrincipalName). */
export function mtlsPrincipals(model: ModelSnapshot): { principals: ReadonlyMap<string, string[]>; fingerprints: ReadonlyMap<string, string[]>; calloutPartners: ReadonlySet<string> } {
  const principals = new Map<string, string[]>();
  const fingerprints = new Map<string, string[]>();
  const calloutPartners = new Set<string>();
  for (const i of sortedValues(model, 'mtlsIdentities')) {
    const p = mtlsPrincipalName(i.match);
    if ('reason' in p) calloutPartners.add(i.partner);
    else if ('fingerprint' in p) add(fingerprints, i.partner, p.fingerprint);
    else add(principals, i.partner, p.name);
  }
  return { principals, fingerprints, calloutPartners };
}

/**
 * The access policies of a route taking only client certificates, on certificate names, or undefined
 * when it stays on the callout: it accepts other credentials, the callout counts its plan limits, or
 * a partner subscribed to the product has an identity Envoy cannot match. Natively counted limits
 * read the partner header a filter after the access RBAC sets (partner-from-access.ts).
 */
export function nativeMtlsAccess(model: ModelSnapshot, product: Product, route: Route, accept: readonly CredentialType[], limited: boolean, auth: NativeAuthContext): RouteAccessIR | undefined {
  if (accept.length !== 1 || accept[0] !== 'mtls' || limited) return undefined;
  const { principals, fingerprints, calloutPartners } = mtlsPrincipals(model);
  for (const s of model.subscriptions.values()) if (s.product === product.name && calloutPartners.has(s.partner)) return undefined;
  const access = routeAccess(model, product, route, auth);
  const partners = new Set([...access.deny.flatMap((d) => d.partners), ...access.allowed.map((a) => a.partner)]);
  const identities = [...partners].sort(compareStrings).map((partner) => {
    const digests = fingerprints.get(partner);
    return { partner, principals: principals.get(partner) ?? [], ...(digests ? { fingerprints: digests } : {}) };
  });
  return { ...access, identities };
}
