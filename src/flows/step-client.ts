// The runtime's HTTP client for step calls, to an Envoy step listener or straight to a service
// (direct-pools.ts): undici's dispatchers with keep-alive pools, read through the handler interface
// (no streams, no per-call AbortSignal of its own). Measured with bench/flows.ts: node:http's client
// was most of the runtime's CPU per flow. Straight to a service, it answers what Envoy would have:
// 504 past the service's request timeout, 503 when the service cannot be reached.
import { Agent, type Dispatcher } from 'undici';
import { flatHeaders } from './direct-calls.ts';
import type { StepResponse } from './types.ts';

export interface StepRequest {
  origin: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | Uint8Array | undefined;
  /** Bytes of response body kept; past it the call is cut and the body returned so far (the engine fails the step). */
  maxResponseBytes: number;
  signal: AbortSignal;
  /** A service's own pool (the runtime calls it directly); unset: the shared agent, to `origin`. */
  dispatcher?: Dispatcher;
  /** Directly only: the service's request timeout. */
  timeoutMs?: number;
}

/** Envoy's own answers, which a step sees the same way whichever path its call took. */
function envoyAnswer(status: 503 | 504, body: string): StepResponse {
  return { status, headers: { 'content-type': 'text/plain' }, body };
}
export const UPSTREAM_TIMEOUT = (): StepResponse => envoyAnswer(504, 'upstream request timeout');
export const UPSTREAM_UNREACHABLE = (): StepResponse => envoyAnswer(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
export const UPSTREAM_OVERFLOW = (): StepResponse => ({
  ...envoyAnswer(503, 'upstream connect error or disconnect/reset before headers. reset reason: overflow'),
  headers: { 'content-type': 'text/plain', 'x-envoy-overloaded': 'true' },
});

export class StepClient {
  // The engine enforces each step's timeout and the flow's deadline and aborts what it no longer
  // waits for, so undici's own timers are off. Envoy keeps idle connections for an hour.
  private readonly agent = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000, headersTimeout: 0, bodyTimeout: 0 });

  call(r: StepRequest): Promise<StepResponse> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let status = 0;
      let headers: Record<string, string> = {};
      let settled = false;
      let onAbort: (() => void) | undefined;
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        if (onAbort) r.signal.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        f();
      };
      const done = () => settle(() => resolve({ status, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }));
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(controller) {
          if (r.signal.aborted) return controller.abort(abortError(r.signal));
          onAbort = () => controller.abort(abortError(r.signal));
          r.signal.addEventListener('abort', onAbort, { once: true });
          if (r.timeoutMs !== undefined)
            timer = setTimeout(() => {
              timedOut = true;
              controller.abort(new Error('upstream request timeout'));
            }, r.timeoutMs);
        },
        onResponseStart(_c, statusCode, h) {
          status = statusCode;
          headers = flatHeaders(h);
        },
        onResponseData(controller, chunk) {
          size += chunk.length;
          chunks.push(chunk);
          if (size > r.maxResponseBytes) {
            done();
            controller.abort(new Error('response over its limit'));
          }
        },
        onResponseEnd: done,
        onResponseError: (_c, e) =>
          settle(() => {
            if (!r.dispatcher || r.signal.aborted) return reject(e);
            // Directly to a service: what Envoy answers when it times out or cannot reach it.
            if (timedOut && status === 0) return resolve(UPSTREAM_TIMEOUT());
            if (status === 0) return resolve(UPSTREAM_UNREACHABLE());
            reject(e);
          }),
      };
      (r.dispatcher ?? this.agent).dispatch({ origin: r.origin, method: r.method as Dispatcher.HttpMethod, path: r.path, headers: r.headers, body: r.body ?? null }, handler);
    });
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('the flow no longer waits for this call');
}
