// Service mode's rate-limit filter, after ext_authz (limits are counted per authenticated partner, from
// its dynamic metadata, and by the identity headers it sets), with the settings that keep the 429
// contract exact: Portico's own headers (none of Envoy's draft ones, no x-envoy-ratelimited), and a
// closed-mode outage answered as the contract's 429 `rate_limit_unavailable` (a local-reply mapper).
import { RATE_LIMIT_REPLY_MAPPINGS, routeRateLimit } from '../../../contract/index.ts';
import type { RateLimitFilterIR, RouteRateLimitIR } from '../../ir.ts';
import { duration, extension, FILTERS, type Json, type JsonObject } from '../common.ts';
import { calloutRetryPolicy } from './callout.ts';
import type { HttpFilterEmitter } from './filter.ts';

function rateLimitFilter(r: RateLimitFilterIR): JsonObject {
  return extension(FILTERS.rateLimit, 'envoy.extensions.filters.http.ratelimit.v3.RateLimit', {
    domain: r.domain,
    timeout: duration(r.timeoutMs),
    failure_mode_deny: r.failureModeDeny,
    rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: r.cluster }, retry_policy: calloutRetryPolicy(r.timeoutMs) }, transport_api_version: 'V3' },
    enable_x_ratelimit_headers: 'OFF',
    disable_x_envoy_ratelimited_header: true,
    status_on_error: { code: 'TooManyRequests' },
  });
}

/** One rate_limits entry, the descriptor the rate-limit service expects (src/contract/descriptors.ts). */
function rateLimits(r: RouteRateLimitIR): Json[] {
  return [
    routeRateLimit({
      product: r.product,
      route: r.route,
      // Envoy files ext_authz's dynamic metadata under the filter's name.
      ...(r.partnerFromAuthz ? { partner: { metadataNamespace: FILTERS.extAuthz, metadataKey: 'partner' } } : {}),
      countHeaders: r.countHeaders,
    }) as JsonObject,
  ];
}

export const rateLimit: HttpFilterEmitter = {
  chain: (g) => (g.filters.rateLimit ? [rateLimitFilter(g.filters.rateLimit)] : []),
  routeAction: (r): JsonObject => (r.rateLimit ? { rate_limits: rateLimits(r.rateLimit) } : {}),
  localReplies: (f) => (f.rateLimit?.failureModeDeny ? [RATE_LIMIT_REPLY_MAPPINGS.serviceUnavailable] : []),
};
