// Public surface of src/idempotency: the Idempotency-Key processor Envoy's ext_proc filter calls,
// its stores (Redis, memory) and the pure decisions behind it.
export { IdempotencyProcessor, type ProcessorOptions, type ServiceHost } from './processor.ts';
export { MemoryIdempotencyStore, RedisIdempotencyStore, type IdempotencyStore } from './store.ts';
export * from './decide.ts';
export { idempotencyMetrics, type IdempotencyMetrics, type RequestOutcome } from './metrics.ts';
