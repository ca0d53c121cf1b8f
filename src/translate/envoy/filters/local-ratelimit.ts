// Local token buckets, enforced by Envoy alone: the gateway group's bucket on every request of a
// listener (the safety net before any callout: what it refuses costs the control plane nothing), and
// routes' own buckets in their per-route config (the filter itself is off where a route has none).
import { RATE_LIMIT_REPLY_MAPPINGS } from '../../../contract/index.ts';
import type { LocalBucketIR } from '../../ir.ts';
import { any, durationNs, extension, FILTERS, type Json, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

export const LOCAL_RATE_LIMIT_TYPE = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

const ALWAYS: Json = { default_value: { numerator: 100, denominator: 'HUNDRED' } };

/**
 * A LocalRateLimit enforcing one token bucket on every request it sees; its refusals (429) carry the
 * contract's headers, and get its body from the local-reply mapper keyed on their response code
 * details.
 */
export function localRateLimitConfig(statPrefix: string, b: LocalBucketIR): JsonObject {
  const header = (key: string, value: string): Json => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  return {
    stat_prefix: statPrefix,
    token_bucket: { max_tokens: b.maxTokens, tokens_per_fill: b.tokensPerFill, fill_interval: durationNs(b.fillIntervalNs) },
    filter_enabled: ALWAYS,
    filter_enforced: ALWAYS,
    response_headers_to_add: [header('retry-after', String(b.retryAfterSeconds)), header('x-ratelimit-limit', String(b.requests)), header('x-ratelimit-remaining', '0')],
  };
}

export const localRateLimit: HttpFilterEmitter = {
  chain: (g) => [
    ...(g.filters.localRateLimit ? [extension(FILTERS.localRateLimitGroup, LOCAL_RATE_LIMIT_TYPE, localRateLimitConfig('portico_local_rate_limit_group', g.filters.localRateLimit))] : []),
    ...(g.filters.routeLocalRateLimit ? [disabledByDefault(extension(FILTERS.localRateLimitRoute, LOCAL_RATE_LIMIT_TYPE, { stat_prefix: 'portico_local_rate_limit_route' }))] : []),
  ],
  perRoute: (r) => (r.localRateLimit ? [[FILTERS.localRateLimitRoute, any(LOCAL_RATE_LIMIT_TYPE, localRateLimitConfig('portico_local_rate_limit_route', r.localRateLimit))]] : []),
  localReplies: (f) => (f.localRateLimit || f.routeLocalRateLimit ? [RATE_LIMIT_REPLY_MAPPINGS.localLimitOneSecond, RATE_LIMIT_REPLY_MAPPINGS.localLimit] : []),
};
