// Native mTLS (GatewayGroup.authz.mode native): routes that accept only client certificates, decided
// by the access RBAC on the verified certificate's names (each partner's identities as principals),
// no callout; partners with an identity Envoy cannot match keep the product on the callout.
import { mtlsPrincipalName, sortedValues, type CredentialType, type ModelSnapshot, type Product, type Route } from '../../model/index.ts';
import type { RouteAccessIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { routeAccess, type NativeAuthContext } from './native-auth.ts';

/** Principal names per partner, or undefined for partners with an identity Envoy cannot match (see mtlsPrincipalName). */
export function mtlsPrincipals(model: ModelSnapshot): { principals: ReadonlyMap<string, string[]>; calloutPartners: ReadonlySet<string> } {
  const principals = new Map<string, string[]>();
  const calloutPartners = new Set<string>();
  for (const i of sortedValues(model, 'mtlsIdentities')) {
    const p = mtlsPrincipalName(i.match);
    if ('reason' in p) calloutPartners.add(i.partner);
    else principals.set(i.partner, [...new Set([...(principals.get(i.partner) ?? []), p.name])].sort(compareStrings));
  }
  return { principals, calloutPartners };
}

/**
 * The access policies of a route taking only client certificates, on certificate names, or undefined
 * when it stays on the callout: it accepts other credentials, a plan limits it (native limits count
 * by the partner header, which is only set at the router here), or a partner subscribed to the
 * product has an identity Envoy cannot match.
 */
export function nativeMtlsAccess(model: ModelSnapshot, product: Product, route: Route, accept: readonly CredentialType[], limited: boolean, auth: NativeAuthContext): RouteAccessIR | undefined {
  if (accept.length !== 1 || accept[0] !== 'mtls' || limited) return undefined;
  const { principals, calloutPartners } = mtlsPrincipals(model);
  for (const s of model.subscriptions.values()) if (s.product === product.name && calloutPartners.has(s.partner)) return undefined;
  const access = routeAccess(model, product, route, auth);
  const partners = new Set([...access.deny.flatMap((d) => d.partners), ...access.allowed.map((a) => a.partner)]);
  const identities = [...partners].sort(compareStrings).map((partner) => ({ partner, principals: principals.get(partner) ?? [] }));
  return { ...access, identities };
}
