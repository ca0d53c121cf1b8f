// What the two callout filters (ext_authz, rate limit) share: retries for a callout that got no answer.
import { duration, type JsonObject } from '../common.ts';

/**
 * Retries for a callout that never got an answer: a control-plane replica that is draining or
 * gone refuses or resets the stream (its GOAWAY refuses every call sent after the last one it read),
 * and another replica can answer within the same timeout (Envoy bounds the retries by it; the
 * callouts cluster lets all of them be in flight at once). Both checks are safe to repeat; a
 * rate-limit hit repeated after a reset may count twice, which beats failing the request during a
 * rolling restart. Envoy also takes `max_interval` as the per-try timeout, so it is the whole
 * callout timeout: a slow answer is waited for, not cut short and asked again on the same connection.
 */
export function calloutRetryPolicy(timeoutMs: number): JsonObject {
  return {
    retry_on: 'connect-failure,refused-stream,reset,unavailable',
    num_retries: 2,
    retry_back_off: { base_interval: duration(10), max_interval: duration(Math.max(10, timeoutMs)) },
  };
}
