// Public surface of src/telemetry: logging, the metrics registry, admin API and convergence metrics,
// and the access-log service Envoys stream to (per product × partner request metrics).
export * from './access-log-service.ts';
export type { AccessLogRecord } from './access-log-wire.ts';
export * from './admin-metrics.ts';
export * from './convergence.ts';
export * from './log.ts';
export * from './metrics.ts';
export * from './request-metrics.ts';
export { CACHE_METRIC, cacheResult } from './cache-metrics.ts';
