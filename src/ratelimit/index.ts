// The rate limiter's public surface, for the composition root (gRPC hosting, settings) and for
// ext_authz (in-process decide() in "one callout" mode).
export { createRateLimiter, RateLimiter, type LimiterLogger, type RateLimiterOptions, type RateLimitSettings } from './limiter.ts';
export type { Decision, DecisionRequest, ErrorCode, HeaderPair, LimitStatus, Outcome } from './decision.ts';
// Token-bucket arithmetic, also used by authz to pace JWKS refetches on unknown kids.
export { bucketStep, type BucketSpec, type BucketState } from './algorithms.ts';
export { MemoryCounters, type CounterBackend } from './backend.ts';
export { RedisCounters, type RedisCountersOptions } from './redis.ts';
export { RateLimitMetrics, type RateLimitMetricsOptions } from './metrics.ts';
export { buildLimitTable, LimitTable } from './table.ts';
export { DescriptorError, parseRateLimitRequest, type RateLimitRequestMessage } from './descriptors.ts';
export {
  addRateLimitService,
  encodeDecision,
  rateLimitServiceDefinition,
  rateLimitServiceImplementation,
  registerRateLimitUnary,
  shouldRateLimitBytes,
  startRateLimitServer,
  RATE_LIMIT_SERVICE,
  SHOULD_RATE_LIMIT_PATH,
  type UnaryAnswer,
} from './service.ts';
export { QuotaLedger, type QuotaExhaustion, type QuotaRecord } from './quota-ledger.ts';
export { partnerBudgets, readPartnerUsage, type BudgetUsage, type PartnerBudget, type UsageSource, type UsageSources } from './usage.ts';
