// CORS, before ext_authz: it answers preflight requests before anyone asks for credentials (and
// before the local buckets, so a browser can read their 429s); each product's policy is per route.
import type { CorsIR } from '../../ir.ts';
import { any, extension, FILTERS, type JsonObject } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

export function corsPolicy(c: CorsIR): JsonObject {
  return any('envoy.extensions.filters.http.cors.v3.CorsPolicy', {
    allow_origin_string_match: c.allowOrigins.map((o) => ({ exact: o })),
    ...(c.allowMethods.length ? { allow_methods: c.allowMethods.join(', ') } : {}),
    ...(c.allowHeaders.length ? { allow_headers: c.allowHeaders.join(', ') } : {}),
    ...(c.exposeHeaders.length ? { expose_headers: c.exposeHeaders.join(', ') } : {}),
    ...(c.maxAgeSeconds !== undefined ? { max_age: String(c.maxAgeSeconds) } : {}),
    ...(c.allowCredentials !== undefined ? { allow_credentials: c.allowCredentials } : {}),
    // The gateway answers every preflight itself, allowed origin or not; upstreams never see one.
    forward_not_matching_preflights: false,
  });
}

export const cors: HttpFilterEmitter = {
  chain: (g) => (g.filters.cors ? [extension(FILTERS.cors, 'envoy.extensions.filters.http.cors.v3.Cors')] : []),
  perRoute: (r) => (r.cors ? [[FILTERS.cors, corsPolicy(r.cors)]] : []),
};
