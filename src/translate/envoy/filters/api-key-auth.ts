// api_key_auth (native mode): off in the chain, on per route with the keys of the group's partners.
// The partner travels on as x-portico-partner (the access RBAC after it decides who may call, the
// upstream reads it); the key is hidden from the upstream. Refusals get the gateway's 401 bodies.
import { API_KEY_REPLY_MAPPINGS, GATEWAY_HEADERS } from '../../../contract/index.ts';
import type { RouteApiKeyAuthIR } from '../../ir.ts';
import { any, extension, FILTERS, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const API = 'envoy.extensions.filters.http.api_key_auth.v3';

/**
 * Everything per route: Envoy does not merge a route's config with the listener's (forwarding
 * included), and routes differ in key sources. No allowed_clients: every key pushed authenticates,
 * the access RBAC decides. The keys repeat per route; they are one list per group, so Envoy's config
 * holds them once per route that takes keys.
 */
function perRoute(a: RouteApiKeyAuthIR): JsonObject {
  return any(`${API}.ApiKeyAuthPerRoute`, {
    credentials: a.credentials.map((c) => ({ key: c.key, client: c.client })),
    key_sources: a.keySources.map((s) => ({ ...s })),
    forwarding: { header: GATEWAY_HEADERS.partner, hide_credentials: true },
  });
}

export const apiKeyAuth: HttpFilterEmitter = {
  chain: (g) => (g.filters.apiKeyAuth ? [disabledByDefault(extension(FILTERS.apiKeyAuth, `${API}.ApiKeyAuth`))] : []),
  perRoute: (r) => (r.apiKeyAuth ? [[FILTERS.apiKeyAuth, perRoute(r.apiKeyAuth)]] : []),
  localReplies: (f) => (f.apiKeyAuth ? [API_KEY_REPLY_MAPPINGS.missing, API_KEY_REPLY_MAPPINGS.unknown] : []),
};
