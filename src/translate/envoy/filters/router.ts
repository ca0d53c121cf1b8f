// The router, always last: Envoy (and gRPC clients) refuse a chain that does not end with it.
import { extension, FILTERS, type JsonObject } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

export function routerFilter(): JsonObject {
  return extension(FILTERS.router, 'envoy.extensions.filters.http.router.v3.Router');
}

export const router: HttpFilterEmitter = {
  chain: () => [routerFilter()],
};
