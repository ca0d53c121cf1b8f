// Native mode's plan limits: one local_ratelimit instance per distinct limit, after authentication
// (buckets are keyed on the partner header it sets), each holding that limit's buckets as descriptors
// and reading the route rate_limits entries of its stage; the routes' actions choose the caller's buckets.
import type { LimitActionIR, PlanLimitFilterIR, RouteLimitEntryIR } from '../../ir.ts';
import { extension, FILTERS, type Json, type JsonObject } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';
import { ALWAYS, LOCAL_RATE_LIMIT_TYPE, refusalHeaders, tokenBucket } from './local-ratelimit.ts';

/**
 * Buckets kept per wildcard descriptor (one per client address or header value of a budget), least
 * recently used evicted beyond it; Envoy's default is 20, too few for per-address limits of a public
 * API (an evicted caller starts again with a full bucket). 10,000 buckets are about a megabyte.
 */
export const MAX_DYNAMIC_BUCKETS = 10_000;

export function planLimitFilterName(stage: number): string {
  return `${FILTERS.localRateLimitPlans}.${stage}`;
}

function planLimitFilter(f: PlanLimitFilterIR): JsonObject {
  return extension(planLimitFilterName(f.stage), LOCAL_RATE_LIMIT_TYPE, {
    stat_prefix: `portico_plan_limit_${f.stage}`,
    stage: f.stage,
    filter_enabled: ALWAYS,
    filter_enforced: ALWAYS,
    // No bucket of its own: a request matching none of its descriptors is not limited by it.
    always_consume_default_token_bucket: false,
    max_dynamic_descriptors: MAX_DYNAMIC_BUCKETS,
    descriptors: f.descriptors.map((entries) => ({
      entries: entries.map((e): Json => (e.value === undefined ? { key: e.key } : { key: e.key, value: e.value })),
      token_bucket: tokenBucket(f.bucket),
    })),
    response_headers_to_add: refusalHeaders(f.requests, f.retryAfterSeconds),
  });
}

function action(a: LimitActionIR): Json {
  switch (a.kind) {
    case 'generic':
      return { generic_key: { descriptor_key: a.key, descriptor_value: a.value } };
    case 'header':
      // Without the header the entry (and the descriptor) is skipped: the fallback entries cover that caller.
      return { request_headers: { header_name: a.header, descriptor_key: a.key } };
    case 'remote_address':
      return { remote_address: {} };
    case 'header_match':
      return {
        header_value_match: {
          descriptor_key: a.key,
          descriptor_value: a.value,
          expect_match: a.expect,
          headers: [a.regex !== undefined ? { name: a.header, string_match: { safe_regex: { regex: a.regex } } } : { name: a.header, present_match: true }],
        },
      };
  }
}

function rateLimits(entries: readonly RouteLimitEntryIR[]): Json[] {
  return entries.map((e) => ({ stage: e.stage, actions: e.actions.map(action) }));
}

export const planLimits: HttpFilterEmitter = {
  chain: (g) => g.filters.planLimits.map(planLimitFilter),
  routeAction: (r): JsonObject => (r.planLimits ? { rate_limits: rateLimits(r.planLimits) } : {}),
};
