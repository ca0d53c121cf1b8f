// Local token buckets, enforced by Envoy alone: the gateway group's bucket on every request of a
// listener (the safety net before any callout: what it refuses costs the control plane nothing), and
// routes' own buckets in their per-route config (the filter itself is off where a route has none).
import { RATE_LIMIT_REPLY_MAPPINGS } from '../../../contract/index.ts';
import type { LocalBucketIR } from '../../ir.ts';
import { any, durationNs, extension, FILTERS, type Json, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

export const LOCAL_RATE_LIMIT_TYPE = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

export const ALWAYS: Json = { default_value: { numerator: 100, denominator: 'HUNDRED' } };

/** An Envoy TokenBucket. */
export function tokenBucket(b: LocalBucketIR): JsonObject {
  return { max_tokens: b.maxTokens, tokens_per_fill: b.tokensPerFill, fill_interval: durationNs(b.fillIntervalNs) };
}

/**
 * The 429 contract's headers on a local bucket's refusal: Retry-After (the longest wait for the next
 * fill), X-RateLimit-Limit (requests per period, without burst), Remaining 0, and Reset — Unix
 * seconds when the budget is next available, computed by Envoy per request (CEL: request time +
 * Retry-After). The body comes from the local-reply mapper keyed on the refusal's details.
 */
export function refusalHeaders(requests: number, retryAfterSeconds: number): Json[] {
  const header = (key: string, value: string): Json => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  return [
    header('retry-after', String(retryAfterSeconds)),
    header('x-ratelimit-limit', String(requests)),
    header('x-ratelimit-remaining', '0'),
    header('x-ratelimit-reset', `%CEL(int(request.time) + ${retryAfterSeconds})%`),
  ];
}

/** A LocalRateLimit enforcing one token bucket on every request it sees. */
export function localRateLimitConfig(statPrefix: string, b: LocalBucketIR): JsonObject {
  return {
    stat_prefix: statPrefix,
    token_bucket: tokenBucket(b),
    filter_enabled: ALWAYS,
    filter_enforced: ALWAYS,
    response_headers_to_add: refusalHeaders(b.requests, b.retryAfterSeconds),
  };
}

export const localRateLimit: HttpFilterEmitter = {
  chain: (g) => [
    ...(g.filters.localRateLimit ? [extension(FILTERS.localRateLimitGroup, LOCAL_RATE_LIMIT_TYPE, localRateLimitConfig('portico_local_rate_limit_group', g.filters.localRateLimit))] : []),
    ...(g.filters.routeLocalRateLimit ? [disabledByDefault(extension(FILTERS.localRateLimitRoute, LOCAL_RATE_LIMIT_TYPE, { stat_prefix: 'portico_local_rate_limit_route' }))] : []),
  ],
  perRoute: (r) => (r.localRateLimit ? [[FILTERS.localRateLimitRoute, any(LOCAL_RATE_LIMIT_TYPE, localRateLimitConfig('portico_local_rate_limit_route', r.localRateLimit))]] : []),
  localReplies: (f) => (f.localRateLimit || f.routeLocalRateLimit || f.planLimits.length ? [RATE_LIMIT_REPLY_MAPPINGS.localLimitOneSecond, RATE_LIMIT_REPLY_MAPPINGS.localLimit] : []),
};
