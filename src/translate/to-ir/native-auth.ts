// Native authorization (GatewayGroup.authz.mode native): which routes Envoy's api_key_auth decides
// alone, with which keys and which partners, and which stay on the ext_authz callout (and why).
import { apiKeyHeader, sortedValues, type ApiKey, type CredentialType, type GatewayGroup, type ModelSnapshot, type Product, type Route } from '../../model/index.ts';
import type { ApiKeyCredentialIR, RouteApiKeyAuthIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';

/** Not a valid partner name (names are lower-case slugs), so no credential carries it. */
export const NO_CLIENT = 'portico:none';

export type AuthzMode = 'exact' | 'native';

export function authzMode(group: GatewayGroup): AuthzMode {
  return group.authz?.mode ?? 'exact';
}

/** What native routes of one group share: the keys Envoy may check, and whether any key forces the callout. */
export interface NativeAuthContext {
  /** Sealed, usable keys of the partners subscribed to some product of the group, by key (sorted). */
  credentials: ApiKeyCredentialIR[];
  /** Partners with a key Envoy cannot check (hash-only import) or that expires: their products stay on the callout. */
  calloutPartners: ReadonlySet<string>;
}

/** A key Envoy can be given: whole (sealed in the store), not revoked, without an expiry the push would have to track. */
function nativeKey(k: ApiKey): boolean {
  return k.secret !== undefined && k.expiresAt === undefined;
}

/**
 * The keys a native group's Envoys receive: only those of partners subscribed to a product the group
 * serves (a node receives only its group's resources, over the authenticated xDS channel). Revoked
 * keys are left out, so a revocation is a route-table push.
 */
export function nativeAuthContext(model: ModelSnapshot, products: readonly Product[]): NativeAuthContext {
  const served = new Set(products.map((p) => p.name));
  const partners = new Set<string>();
  for (const s of model.subscriptions.values()) if (served.has(s.product)) partners.add(s.partner);
  const credentials: ApiKeyCredentialIR[] = [];
  const calloutPartners = new Set<string>();
  for (const k of sortedValues(model, 'apiKeys')) {
    if (!partners.has(k.partner) || k.revoked === true) continue;
    if (nativeKey(k)) credentials.push({ key: k.secret!, client: k.partner });
    else calloutPartners.add(k.partner);
  }
  credentials.sort((a, b) => compareStrings(a.key, b.key));
  return { credentials, calloutPartners };
}

/**
 * api_key_auth for a route, or undefined when the route stays on the callout: it accepts other
 * credentials than API keys, a plan limits it (the callout counts it), or one of the product's
 * subscriptions needs what the key filter cannot express (an expiry, a method restriction) or
 * belongs to a partner with keys Envoy cannot check.
 */
export function nativeApiKeyAuth(model: ModelSnapshot, product: Product, route: Route, accept: readonly CredentialType[], limited: boolean, ctx: NativeAuthContext): RouteApiKeyAuthIR | undefined {
  if (accept.length !== 1 || accept[0] !== 'api_key' || limited) return undefined;
  const allowed: string[] = [];
  for (const s of model.subscriptions.values()) {
    if (s.product !== product.name) continue;
    if (s.expiresAt !== undefined || s.access?.methods !== undefined || ctx.calloutPartners.has(s.partner)) return undefined;
    const partner = model.partners.get(s.partner);
    if (!partner || partner.suspended === true || s.status === 'suspended') continue;
    if (s.access?.routes !== undefined && !s.access.routes.includes(route.name)) continue;
    allowed.push(s.partner);
  }
  const header = apiKeyHeader(product);
  const query = product.apiKey?.queryParameter;
  return {
    keySources: [...(header !== undefined ? [{ header }] : []), ...(query !== undefined ? [{ query }] : [])],
    credentials: ctx.credentials,
    // An empty list would let every known key through: a name no partner can have refuses them all.
    allowedClients: allowed.length ? allowed.sort(compareStrings) : [NO_CLIENT],
  };
}
