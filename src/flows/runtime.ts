// The flow runtime: the HTTP server Envoy sends flow routes to, after authentication, limits and
// access logging. It runs the route's flow as compiled for the model when the request arrived. Step
// calls to a service that needs nothing only Envoy gives go straight to it (direct-pools.ts, with its
// timeouts, circuit breaker and TLS); the others go back through the Envoy that asked, to its step
// listener, so they keep retries, health checks, outlier detection and the rest.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { FLOW_HEADERS, GATEWAY_HEADERS, RESERVED_HEADER_PREFIX, gatewayErrorBody } from '../contract/index.ts';
import { emptySnapshot, type ModelSnapshot } from '../model/index.ts';
import type { Logger } from '../telemetry/index.ts';
import type { CodeSandbox } from './code.ts';
import type { CodePool } from './code-pool.ts';
import { runFlow } from './engine.ts';
import { FlowMetrics, type Refusal } from './metrics.ts';
import { compileModelFlows, type ModelFlows, type RouteFlow } from './model.ts';
import { StepClient, UPSTREAM_OVERFLOW } from './step-client.ts';
import { DirectPools, type DirectService } from './direct-pools.ts';
import type { CompiledStep, FlowIdentity, FlowRequest, StepCall, StepResponse } from './types.ts';

export interface FlowRuntimeOptions {
  registry: Registry;
  logger: Logger;
  /** Port of the step listener on each Envoy: calls go to the Envoy that sent the request, on this port… */
  stepPort: number;
  /** …or to this host:port for every call (an Envoy beside the runtime). */
  stepAddress?: string;
  /** Flow runs at once; past it a request is answered 503 at once (Envoy's circuit breaker also caps them). */
  maxConcurrent: number;
  /** Checks code steps as flows compile; flows with code steps are refused at write time without one. */
  sandbox?: CodeSandbox;
  /** Runs code steps on worker threads; without it they run in `sandbox`, on this thread. */
  codePool?: CodePool;
  /** Call services that need nothing only Envoy gives directly (off: every call through Envoy). */
  directCalls?: boolean;
}

/** Request headers a step call carries on, so the upstream and the tracer see one request. */
const PROPAGATED = new Set(['x-request-id', 'traceparent', 'tracestate', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'b3']);

export class FlowRuntime {
  private flows: ModelFlows = compileModelFlows(emptySnapshot());
  private readonly metrics: FlowMetrics;
  private readonly client = new StepClient();
  private readonly direct: DirectPools | undefined;
  private readonly server: http.Server;
  private active = 0;
  private draining = false;
  private readonly runner: CodePool | CodeSandbox | undefined;

  constructor(private readonly opts: FlowRuntimeOptions) {
    this.metrics = new FlowMetrics(opts.registry);
    this.runner = opts.codePool ?? opts.sandbox;
    this.direct = opts.directCalls ? new DirectPools() : undefined;
    this.server = http.createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: 30_000 }, (req, res) => this.handle(req, res));
    // Envoy pools connections to the runtime: keep them well past its own idle timeout (1 h).
    this.server.keepAliveTimeout = 3_900_000;
  }

  /** A new model: flows compiled again (unchanged routes reuse their compiled flow); runs in progress keep theirs. */
  update(model: ModelSnapshot): void {
    const checkCode = this.opts.sandbox ? (s: string) => this.opts.sandbox!.check(s) : undefined;
    this.flows = compileModelFlows(model, checkCode ? { checkCode } : {});
    this.direct?.update(model);
    // A model with code steps gets a worker ready before its first request needs one.
    if (this.opts.codePool && [...this.flows.routes.values()].some((rf) => hasCode(rf.flow.steps))) this.opts.codePool.warm();
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops accepting, lets runs in progress finish (bounded by graceMs), then closes every connection. */
  async close(graceMs: number): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.server.closeAllConnections();
    await Promise.all([this.client.close(), this.direct?.close()]);
    await closed;
  }

  private refuse(res: http.ServerResponse, status: number, reason: Refusal, message: string): void {
    this.metrics.refuse(reason);
    const body = gatewayErrorBody(reason, message);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(status === 503 ? { 'retry-after': '1' } : {}) });
    res.end(body);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // The flow is fixed here: a model change during the run does not change what it runs.
    const key = req.headers[FLOW_HEADERS.flow];
    const rf = typeof key === 'string' ? this.flows.routes.get(key) : undefined;
    if (!rf) {
      req.resume();
      return this.refuse(res, 404, 'unknown_flow', 'No flow answers this route (the model may have changed).');
    }
    if (this.draining) {
      req.resume();
      return this.refuse(res, 503, 'draining', 'The flow runtime is shutting down.');
    }
    if (this.active >= this.opts.maxConcurrent) {
      req.resume();
      return this.refuse(res, 503, 'overloaded', 'Too many flows are running; retry shortly.');
    }
    const limit = rf.flow.maxRequestBytes;
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      res.setHeader('connection', 'close');
      req.resume();
      return this.refuse(res, 413, 'payload_too_large', `The request body is larger than ${limit} bytes.`);
    }
    this.active++;
    this.metrics.inProgress.inc();
    // No length and no transfer coding: no body (RFC 9112 6.3), as Envoy sends a GET. Run at once,
    // without stream listeners; node:http drains the (empty) request once the answer is sent.
    if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
      this.run(rf, req, res, undefined).finally(() => this.done());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        // A body without a length that grows past the limit: stop holding it.
        if (!tooLarge) {
          tooLarge = true;
          chunks.length = 0;
          res.setHeader('connection', 'close');
          this.refuse(res, 413, 'payload_too_large', `The request body is larger than ${limit} bytes.`);
        }
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) return this.done();
      this.run(rf, req, res, chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).finally(() => this.done());
    });
    req.on('error', () => this.done());
  }

  private done(): void {
    this.active--;
    this.metrics.inProgress.dec();
  }

  private async run(rf: RouteFlow, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer | undefined): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const headers: Record<string, string> = {};
    const carried: Record<string, string> = {};
    const incoming = req.headers;
    for (const k in incoming) {
      const v = incoming[k];
      if (v === undefined) continue;
      const value = typeof v === 'string' ? v : v.join(', ');
      headers[k] = value;
      if ((k.startsWith(RESERVED_HEADER_PREFIX) && k !== FLOW_HEADERS.flow) || PROPAGATED.has(k)) carried[k] = value;
    }
    const request: FlowRequest = { method: req.method ?? 'GET', path, headers, identity: this.identity(rf, headers) };
    if (q >= 0) request.query = queryOf(url.slice(q + 1));
    const params = rf.params?.(path);
    if (params) request.params = params;
    if (body) request.body = body;
    // The caller going away cancels the run and its calls.
    let gone = false;
    const onCallerGone = (stop: () => void) => {
      if (res.destroyed) {
        gone = true;
        return stop();
      }
      res.on('close', () => {
        if (res.writableFinished) return;
        gone = true;
        stop();
      });
    };
    // Worked out on the first call that goes through Envoy (direct calls need no step listener).
    let to: string | undefined;
    const result = await runFlow(rf.flow, request, {
      call: (c, signal) => {
        const d = this.direct?.get(c.service);
        if (d) return this.callDirect(d, c, carried, headers.host, signal);
        to ??= this.stepOrigin(req);
        return this.call(to, rf, c, carried, headers.host, signal);
      },
      onCallerGone,
      ...(this.runner ? { sandbox: this.runner } : {}),
    });
    this.metrics.observe(rf.product, rf.route, result);
    if (result.failedStep) this.opts.logger.debug({ flow: rf.key, step: result.failedStep, status: result.status }, 'flow ended by a failed step');
    if (res.headersSent || gone) return;
    res.writeHead(result.status, { ...result.headers, 'content-length': Buffer.byteLength(result.body) });
    res.end(req.method === 'HEAD' ? undefined : result.body);
  }

  /** Who is calling, from the headers the gateway set after authentication (clients' copies are stripped at the edge). */
  private identity(rf: RouteFlow, h: Record<string, string>): FlowIdentity {
    const id: FlowIdentity = {};
    if (h[GATEWAY_HEADERS.partner]) id.partner = h[GATEWAY_HEADERS.partner];
    if (h[GATEWAY_HEADERS.plan]) id.plan = h[GATEWAY_HEADERS.plan];
    if (h[GATEWAY_HEADERS.credential]) id.credential = h[GATEWAY_HEADERS.credential];
    // Claims are those the issuers forward as headers: the runtime never sees the token itself.
    for (const [claim, headers] of rf.claimHeaders) {
      const v = headers.map((header) => h[header]).find((value) => value !== undefined);
      if (v === undefined) continue;
      id.claims ??= Object.create(null) as Record<string, unknown>;
      setPath(id.claims, claim, v);
    }
    return id;
  }

  /** The origin of the step listener the calls of this request go to. */
  private stepOrigin(req: http.IncomingMessage): string {
    if (this.opts.stepAddress) return `http://${this.opts.stepAddress}`;
    const peer = req.socket.remoteAddress ?? '127.0.0.1';
    const host = peer.startsWith('::ffff:') ? peer.slice(7) : peer;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.opts.stepPort}`;
  }

  /** A call through the Envoy step listener at `origin`. */
  private call(origin: string, rf: RouteFlow, c: StepCall, carried: Record<string, string>, host: string | undefined, signal: AbortSignal): Promise<StepResponse> {
    // The caller's Host goes on, as on a route that forwards to the service directly.
    const headers: Record<string, string> = { ...(host ? { host } : {}), ...c.headers, ...carried, [FLOW_HEADERS.service]: c.service, [FLOW_HEADERS.step]: `${rf.key}/${c.step}` };
    return this.client.call({ origin, method: c.method, path: c.path, headers, body: c.body, maxResponseBytes: c.maxResponseBytes, signal });
  }

  /** A call straight to the service, within its circuit breaker's limit. */
  private async callDirect(d: DirectService, c: StepCall, carried: Record<string, string>, host: string | undefined, signal: AbortSignal): Promise<StepResponse> {
    if (d.inFlight >= d.maxInFlight) return UPSTREAM_OVERFLOW();
    d.inFlight++;
    try {
      const headers: Record<string, string> = { ...(host ? { host } : {}), ...c.headers, ...carried };
      return await this.client.call({
        origin: d.origin,
        dispatcher: d.dispatcher,
        timeoutMs: d.requestTimeoutMs,
        method: c.method,
        path: c.path,
        headers,
        body: c.body,
        maxResponseBytes: c.maxResponseBytes,
        signal,
      });
    } finally {
      d.inFlight--;
    }
  }
}

function hasCode(steps: readonly CompiledStep[]): boolean {
  return steps.some((s) => (s.kind === 'code' ? true : s.kind === 'parallel' ? hasCode(s.branches) : s.kind === 'switch' ? s.cases.some((c) => hasCode(c.steps)) || hasCode(s.otherwise) : false));
}

function queryOf(qs: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  // Nothing to decode (no %, no +): split it as URLSearchParams would, without its entry arrays.
  if (!/[%+]/.test(qs)) {
    for (const part of qs.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const k = eq < 0 ? part : part.slice(0, eq);
      const v = eq < 0 ? '' : part.slice(eq + 1);
      const prev = out[k];
      out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return out;
  }
  for (const [k, v] of new URLSearchParams(qs)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** Sets a dotted claim name (realm_access.roles) as nested fields, own properties only. */
function setPath(target: Record<string, unknown>, dotted: string, value: string): void {
  const parts = dotted.split('.');
  let o = target;
  for (const p of parts.slice(0, -1)) {
    const next = Object.hasOwn(o, p) ? o[p] : undefined;
    if (typeof next !== 'object' || next === null) o[p] = Object.create(null);
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]!] = value;
}
