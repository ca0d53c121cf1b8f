// Gateway policy facts derived from the model that several stages must agree on: which
// credentials a route accepts, and which request headers only the gateway may set.
import { GATEWAY_HEADERS } from '../contract/index.ts';
import { sortedValues, type ModelSnapshot } from './model.ts';
import type { CredentialType, Product, Route } from './schemas.ts';

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
