// The processor's metrics (portico_idempotency_*), labelled by product and route.
import type { Counter, Registry } from 'prom-client';
import { counter } from '../telemetry/index.ts';

/** What became of a request on a protected route. */
export type RequestOutcome = 'first' | 'replayed' | 'conflict' | 'mismatch' | 'missing_key' | 'invalid_key' | 'too_large' | 'unprotected' | 'unavailable';

export interface IdempotencyMetrics {
  requests: Counter<'product' | 'route' | 'outcome'>;
  /** First requests' responses: stored for replays, or the key released (server error, unfinished). */
  responses: Counter<'product' | 'route' | 'result'>;
}

export function idempotencyMetrics(registry: Registry): IdempotencyMetrics {
  return {
    requests: counter(registry, {
      name: 'portico_idempotency_requests_total',
      help: 'Requests on routes with Idempotency-Key protection, by outcome: first (proceeds), replayed (stored response), conflict (409: first still in flight), mismatch (422: key reused for another request), missing_key (400), invalid_key (400), too_large (413: body over 960 KiB), unprotected (method not protected, or no key where none is required), unavailable (503: store unreachable)',
      labelNames: ['product', 'route', 'outcome'],
    }),
    responses: counter(registry, {
      name: 'portico_idempotency_responses_total',
      help: "First requests' responses: stored (kept for replays) or released (server error or no complete response: the key is free again)",
      labelNames: ['product', 'route', 'result'],
    }),
  };
}
