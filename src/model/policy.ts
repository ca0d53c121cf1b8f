// Gateway policy facts derived from the model that several stages must agree on: which
// credentials a route accepts, and which request headers only the gateway may set.
import { GATEWAY_HEADERS, RESERVED_HEADER_PREFIX } from '../contract/index.ts';
import { sortedValues, type ModelSnapshot } from './model.ts';
import type { CredentialType, HeaderMutation, Product, Route } from './schemas.ts';

/** What a route accepts when neither it nor its product says: authenticated callers only. */
export const DEFAULT_ACCEPT: readonly CredentialType[] = ['api_key', 'jwt'];

export function effectiveAccept(product: Pick<Product, 'auth'>, route: Pick<Route, 'auth'>): readonly CredentialType[] {
  return route.auth?.accept ?? product.auth?.accept ?? DEFAULT_ACCEPT;
}

/** Where callers send API keys when a product does not say. */
export const DEFAULT_API_KEY_HEADER = 'x-api-key';

/** The (lower-case) header a product's API keys arrive in; undefined when it takes them only as a query parameter. */
export function apiKeyHeader(product: Pick<Product, 'apiKey'>): string | undefined {
  return product.apiKey?.header?.toLowerCase() ?? (product.apiKey?.queryParameter === undefined ? DEFAULT_API_KEY_HEADER : undefined);
}

/**
 * Every header name the gateway sets from verified identity (its own, and each JWT issuer's
 * forwarded claims), lower-cased and sorted: client-sent copies are stripped at the edge on every
 * route, including public ones and when authorization fails open.
 */
export function identityHeaders(model: ModelSnapshot): string[] {
  const names = new Set<string>(Object.values(GATEWAY_HEADERS));
  for (const j of sortedValues(model, 'jwtIssuers')) for (const h of Object.values(j.forwardClaims ?? {})) names.add(h.toLowerCase());
  return [...names].sort();
}

/** A header name under the gateway's reserved prefix (x-portico-), in any case. */
export function isReservedHeader(name: string): boolean {
  return name.toLowerCase().startsWith(RESERVED_HEADER_PREFIX);
}

/** A place where the model names a reserved header it may not use. */
export interface ReservedHeaderUse {
  kind: 'routes' | 'products' | 'jwtIssuers';
  key: string;
  field: string;
  header: string;
}

/**
 * Where the model would set, add, match or read a reserved header: a route's request header rules
 * (the router applies them after authentication, so they could forge the gateway's identity headers)
 * and header matches, a product's API key header and an issuer's forwarded-claim headers (the edge
 * removes client copies before anything reads them, and the gateway's own must not be overwritten).
 * Removing one, response headers and counting by one stay allowed.
 */
export function reservedHeaderUses(model: ModelSnapshot): ReservedHeaderUse[] {
  const out: ReservedHeaderUse[] = [];
  const requestRules = (kind: 'routes' | 'products', key: string, m: HeaderMutation | undefined) => {
    for (const op of ['set', 'add'] as const) {
      for (const h of Object.keys(m?.[op] ?? {})) if (isReservedHeader(h)) out.push({ kind, key, field: `requestHeaders.${op}.${h}`, header: h });
    }
    for (const [from, to] of Object.entries(m?.rename ?? {})) if (isReservedHeader(to)) out.push({ kind, key, field: `requestHeaders.rename.${from}`, header: to });
  };
  for (const r of sortedValues(model, 'routes')) {
    const key = `${r.product}/${r.name}`;
    requestRules('routes', key, r.requestHeaders);
    r.match.headers?.forEach((h, i) => {
      if (isReservedHeader(h.name)) out.push({ kind: 'routes', key, field: `match.headers[${i}].name`, header: h.name });
    });
  }
  for (const p of sortedValues(model, 'products')) {
    requestRules('products', p.name, p.requestHeaders);
    const h = p.apiKey?.header;
    if (h !== undefined && isReservedHeader(h)) out.push({ kind: 'products', key: p.name, field: 'apiKey.header', header: h });
  }
  for (const j of sortedValues(model, 'jwtIssuers')) {
    for (const [claim, h] of Object.entries(j.forwardClaims ?? {})) if (isReservedHeader(h)) out.push({ kind: 'jwtIssuers', key: j.name, field: `forwardClaims.${claim}`, header: h });
  }
  return out;
}
