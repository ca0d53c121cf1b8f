// The runtime's HTTP client for step calls, to an Envoy step listener or straight to a service
// (direct-pools.ts): undici's dispatchers with keep-alive pools, read through the handler interface
// (no streams, no per-call AbortSignal of its own). Measured with bench/flows.ts: node:http's client
// was most of the runtime's CPU per flow. Straight to a service, it answers what Envoy would have:
// 504 past the service's request timeout, 503 when the service cannot be reached.
import { Agent, type Dispatcher } from 'undici';
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
      (r.dispatcher ?? this.agent).dispatch({ origin: r.origin, method: r.method as Dispatcher.HttpMethod, path: r.path, headers: r.headers, body: r.body ?? null }, new Call(r, resolve, reject));
    });
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

/**
 * The calls in flight under one signal (one flow run): the signal gets one abort listener for all
 * of them rather than one added and removed per call (EventTarget listeners cost more than a Set).
 */
const inFlight = new WeakMap<AbortSignal, Set<Call>>();

function track(signal: AbortSignal, call: Call): void {
  let calls = inFlight.get(signal);
  if (!calls) {
    const set = new Set<Call>();
    calls = set;
    inFlight.set(signal, set);
    signal.addEventListener(
      'abort',
      () => {
        for (const c of set) c.cancel();
      },
      { once: true },
    );
  }
  calls.add(call);
}

/**
 * One step call as undici's dispatch handler: a class, so a call allocates this object and its
 * promise rather than a handler of fresh closures. It takes undici's raw handler methods (onConnect,
 * onHeaders, …), not the controller ones (onRequestStart, …): with those undici wraps every call in
 * an adapter and a controller of its own and parses the headers into an object (and the empty
 * trailers into another) that this flattened again; here the raw header list becomes the step's
 * headers in one pass.
 */
class Call implements Dispatcher.DispatchHandler {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private status = 0;
  private headers: Record<string, string> = {};
  private settled = false;
  private timedOut = false;
  private timer: NodeJS.Timeout | undefined;
  private abortCall: ((e: Error) => void) | undefined;

  constructor(
    private readonly r: StepRequest,
    private readonly resolve: (res: StepResponse) => void,
    private readonly reject: (e: unknown) => void,
  ) {}

  /** The flow no longer waits for this call. */
  cancel(): void {
    this.abortCall?.(abortError(this.r.signal));
  }

  onConnect(abort: (e: Error) => void): void {
    if (this.r.signal.aborted) return abort(abortError(this.r.signal));
    if (this.abortCall) return; // a retried connection: tracked and timed already
    this.abortCall = abort;
    track(this.r.signal, this);
    if (this.r.timeoutMs !== undefined) this.timer = setTimeout(timeOut, this.r.timeoutMs, this);
  }

  /** Past the service's request timeout (direct calls only). */
  expire(): void {
    this.timedOut = true;
    this.abortCall?.(new Error('upstream request timeout'));
  }

  onHeaders(statusCode: number, raw: Buffer[] | string[] | null, _resume: () => void): boolean {
    this.status = statusCode;
    if (raw) this.headers = headersOf(raw);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.size += chunk.length;
    this.chunks.push(chunk);
    if (this.size > this.r.maxResponseBytes) {
      this.onComplete();
      this.abortCall?.(new Error('response over its limit'));
      return false;
    }
    return true;
  }

  onComplete(): void {
    if (!this.settle()) return;
    const { chunks } = this;
    this.resolve({ status: this.status, headers: this.headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
  }

  onError(e: Error): void {
    if (!this.settle()) return;
    const r = this.r;
    if (!r.dispatcher || r.signal.aborted) return this.reject(e);
    // Directly to a service: what Envoy answers when it times out or cannot reach it.
    if (this.timedOut && this.status === 0) return this.resolve(UPSTREAM_TIMEOUT());
    if (this.status === 0) return this.resolve(UPSTREAM_UNREACHABLE());
    this.reject(e);
  }

  /** False when the call already settled; otherwise marks it settled and drops its timer and tracking. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.abortCall) inFlight.get(this.r.signal)?.delete(this);
    if (this.timer) clearTimeout(this.timer);
    return true;
  }
}

/**
 * A response's raw header list ([name, value, …]) as the step's headers: names lower-cased, values
 * as latin1 text (as undici reads them), a repeated name's values joined with ", ".
 */
export function headersOf(raw: ReadonlyArray<Buffer | string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    const v = raw[i + 1]!;
    const name = (typeof k === 'string' ? k : k.toString('latin1')).toLowerCase();
    const value = typeof v === 'string' ? v : v.toString('latin1');
    const prev = Object.hasOwn(out, name) ? out[name] : undefined;
    // A header named __proto__ is a field like any other, not the object's prototype.
    if (name === '__proto__') Object.defineProperty(out, name, { value: prev === undefined ? value : `${prev}, ${value}`, enumerable: true, configurable: true, writable: true });
    else out[name] = prev === undefined ? value : `${prev}, ${value}`;
  }
  return out;
}

function timeOut(call: Call): void {
  call.expire();
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('the flow no longer waits for this call');
}
