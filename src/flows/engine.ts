// The flow engine: runs a compiled flow for one request over injected I/O. Pure orchestration —
// step calls, the clock, the caller's cancellation and the code sandbox all come from the shell.
import { gatewayErrorBody } from '../contract/index.ts';
import { renderTemplate } from './expressions.ts';
import { reshape } from './transforms.ts';
import { acceptsXmlFirst, isJsonType, isXmlType, jsonToXml, xmlToJson } from './xml.ts';
import { encodePathValue, encodeQuery, textOf, endToEndHeaders, headerValueProblem } from './http.ts';
import type {
  BodyRewrite,
  CallStep,
  CodeStep,
  CompiledFlow,
  CompiledStep,
  FlowIO,
  FlowRequest,
  FlowResult,
  RespondStep,
  StepError,
  StepOutput,
  StepResponse,
  StepTrace,
  TransformStep,
} from './types.ts';

/** Lists the steps that failed under onError: continue, so a client can tell a partial response. */
export const INCOMPLETE_HEADER = 'x-portico-flow-incomplete';

/** A step that failed under onError: fail — the flow answers with an error naming it. */
class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly error: StepError,
  ) {
    super(error.message);
  }
}
// Why a run was stopped: tags, not Errors (an Error captures a stack trace, which costs more than
// a whole flow run when it happens on every request).
const DEADLINE = Object.freeze({ stopped: 'deadline' });
const CALLER_GONE = Object.freeze({ stopped: 'caller gone' });
const FINISHED = Object.freeze({ stopped: 'finished' });
const STEP_TIMEOUT = Object.freeze({ stopped: 'step timeout' });

/** The gateway's error body shape; a flow's step errors also name the step. */
function errorBody(error: string, message: string, step?: string): string {
  return step ? JSON.stringify({ error, message, step }) : gatewayErrorBody(error, message);
}

function errorResult(status: number, error: string, message: string, step?: string): Pick<FlowResult, 'status' | 'headers' | 'body'> & { own: true } {
  return { status, headers: { 'content-type': 'application/json' }, body: errorBody(error, message, step), own: true };
}

/** Runs one flow for one request. Never throws: every failure becomes a response. */
export async function runFlow(flow: CompiledFlow, request: FlowRequest, io: FlowIO): Promise<FlowResult> {
  return new Run(flow, request, io).run();
}

/** JSONata's boolean cast ($boolean), used for `when` and switch conditions. */
export function truthy(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') return v.length > 0;
  if (typeof v === 'number') return v !== 0;
  if (Array.isArray(v)) return v.length === 1 ? truthy(v[0]) : v.some(truthy);
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return false;
}

interface Outcome {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The step that ended the flow with an error. */
  failedStep?: string;
  /** The engine's own error answer (small, and exempt from the response size limit). */
  own?: true;
}

class Run {
  private readonly now: () => number;
  private readonly t0: number;
  /** Cancels the run's calls: when it fails, times out, loses its caller, or ends with calls in flight. */
  private readonly ctrl = new AbortController();
  /** Rejects when the run is stopped, so whatever it awaits gives way at once. */
  private readonly stopped: Promise<never>;
  private stop!: (reason: unknown) => void;
  private inflight = 0;
  private readonly root: { request: Record<string, unknown>; steps: Record<string, StepOutput> };
  private readonly bindings: Record<string, unknown>;
  /** Branches of `wait: referenced` groups still running; they settle, never reject. */
  private readonly pending = new Map<string, Promise<void>>();
  private readonly running = new Set<string>();
  private readonly trace: StepTrace[] = [];
  private readonly incomplete: string[] = [];
  private response: Outcome | undefined;
  private last: StepOutput | undefined;
  /** Steps' inputs by name, kept only when the shell asked for detail (try it). */
  private readonly inputs: Map<string, unknown> | undefined;

  constructor(
    private readonly flow: CompiledFlow,
    private readonly request: FlowRequest,
    private readonly io: FlowIO,
  ) {
    this.now = io.now ?? (() => performance.now());
    this.t0 = this.now();
    this.inputs = io.detail ? new Map() : undefined;
    const steps = Object.create(null) as Record<string, StepOutput>;
    this.root = { request: {}, steps };
    this.bindings = { request: this.root.request, steps };
    this.stopped = new Promise<never>((_, reject) => (this.stop = reject));
    this.stopped.catch(() => undefined);
  }

  private abort(reason: unknown): void {
    if (this.ctrl.signal.aborted) return;
    this.ctrl.abort(reason);
    this.stop(reason);
  }

  async run(): Promise<FlowResult> {
    const early = this.readRequest();
    if (early) return this.result(early);
    const deadline = setTimeout(() => this.abort(DEADLINE), this.flow.timeoutMs);
    const onCallerGone = () => this.abort(CALLER_GONE);
    this.io.signal?.addEventListener('abort', onCallerGone, { once: true });
    if (this.io.signal?.aborted) onCallerGone();
    try {
      await Promise.race([this.sequence(this.flow.steps), this.stopped]);
      return this.result(this.response ?? this.implicitResponse());
    } catch (e) {
      return this.result(this.failure(e));
    } finally {
      clearTimeout(deadline);
      this.io.signal?.removeEventListener('abort', onCallerGone);
      // Cancels whatever is still running: lazy branches nobody read, calls of a failed flow.
      if (this.inflight > 0) this.abort(FINISHED);
    }
  }

  /** Reads the incoming body into request.body; an answer when it is too large or malformed. */
  private readRequest(): Outcome | undefined {
    const r = this.request;
    const body = r.body;
    const size = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    if (size > this.flow.maxRequestBytes) return errorResult(413, 'payload_too_large', `The request body is larger than ${this.flow.maxRequestBytes} bytes.`);
    let parsed: unknown;
    if (size > 0) {
      const type = r.headers['content-type'];
      const text = textOf(body!);
      try {
        parsed = isJsonType(type) ? JSON.parse(text) : isXmlType(type) ? xmlToJson(text) : text;
      } catch {
        return errorResult(400, 'bad_request', `The request body is not valid ${isJsonType(type) ? 'JSON' : 'XML'}.`);
      }
    }
    Object.assign(this.root.request, {
      method: r.method,
      path: r.path,
      params: r.params ?? {},
      query: r.query ?? {},
      headers: r.headers,
      body: parsed,
      identity: r.identity ?? {},
    });
    return undefined;
  }

  private async sequence(steps: readonly CompiledStep[]): Promise<void> {
    for (const step of steps) {
      if (this.response) return;
      await this.step(step);
    }
  }

  private async step(step: CompiledStep): Promise<void> {
    await this.awaitRefs(step);
    const start = this.now();
    try {
      const when = step.when?.evaluate(this.root);
      if (step.when && !truthy(when instanceof Promise ? await when : when)) {
        this.trace.push({ name: step.name, kind: step.kind, startMs: start - this.t0, durationMs: 0, outcome: 'skipped' });
        return;
      }
      switch (step.kind) {
        case 'parallel':
          return await this.parallel(step.branches, step.wait);
        case 'switch': {
          for (const [i, c] of step.cases.entries()) {
            const v = c.when.evaluate(this.root);
            if (truthy(v instanceof Promise ? await v : v)) {
              this.chose(step.name, start, i);
              return await this.sequence(c.steps);
            }
          }
          this.chose(step.name, start, 'default');
          return await this.sequence(step.otherwise);
        }
        case 'respond': {
          this.response = await this.respond(step);
          const t: StepTrace = { name: step.name, kind: 'respond', startMs: start - this.t0, durationMs: this.now() - start, outcome: 'ok' };
          if (this.inputs) t.output = { status: this.response.status, headers: this.response.headers, body: this.response.body };
          this.trace.push(t);
          return;
        }
        default:
          return await this.produce(step, start);
      }
    } catch (e) {
      // Failures of nested steps and stops pass through; an expression of this step's own that
      // failed (when, a switch condition, a respond field) fails this step.
      if (e instanceof StepFailed || this.ctrl.signal.aborted) throw e;
      const error: StepError = { kind: 'expression', message: (e as Error)?.message ?? String(e) };
      this.trace.push({ name: step.name, kind: step.kind, startMs: start - this.t0, durationMs: this.now() - start, outcome: 'failed', error });
      throw new StepFailed(step.name, error);
    }
  }

  /** With detail only: which case of a switch ran (the runtime's metrics do not count switches). */
  private chose(name: string, start: number, which: number | 'default'): void {
    if (this.inputs) this.trace.push({ name, kind: 'switch', startMs: start - this.t0, durationMs: this.now() - start, outcome: 'ok', output: { case: which } });
  }

  /** Waits for the lazy branches this step reads. */
  private async awaitRefs(step: CompiledStep): Promise<void> {
    if (this.pending.size === 0) return;
    if (step.refs === 'all') {
      await Promise.all(this.pending.values());
      return;
    }
    for (const name of step.refs) {
      const p = this.pending.get(name);
      if (p) await p;
    }
  }

  private async parallel(branches: readonly CompiledStep[], wait: 'all' | 'referenced'): Promise<void> {
    if (wait === 'all') {
      await Promise.all(branches.map((b) => this.step(b)));
      return;
    }
    for (const b of branches) {
      // A failure under onError: fail ends the flow at once, whether or not anyone reads the branch.
      const p = this.step(b).catch((e: unknown) => {
        this.abort(e);
      });
      this.pending.set(b.name, p);
      void p.then(() => this.pending.delete(b.name));
    }
  }

  /** Runs a step that yields a result (call, transform, code) and applies its failure policy. */
  private async produce(step: CallStep | TransformStep | CodeStep, start: number): Promise<void> {
    this.running.add(step.name);
    let out: StepOutput;
    try {
      out = step.kind === 'call' ? await this.call(step, start) : step.kind === 'transform' ? await this.transform(step, start) : await this.code(step, start);
    } catch (e) {
      if (this.ctrl.signal.aborted) throw this.ctrl.signal.reason;
      out = { status: 0, headers: {}, body: null, durationMs: this.now() - start, error: { kind: 'expression', message: (e as Error).message } };
    } finally {
      this.running.delete(step.name);
    }
    const trace: StepTrace = { name: step.name, kind: step.kind, startMs: start - this.t0, durationMs: out.durationMs, outcome: out.error ? 'failed' : 'ok' };
    if (step.kind === 'call') trace.service = step.service;
    if (out.error) trace.error = out.error;
    this.trace.push(trace);
    if (out.error && step.onError === 'continue') {
      this.incomplete.push(step.name);
      out = { ...out, body: step.fallback };
    }
    if (this.inputs) {
      trace.input = this.inputs.get(step.name);
      trace.output = { status: out.status, headers: out.headers, body: out.body };
    }
    if (out.error && step.onError === 'fail') throw new StepFailed(step.name, out.error);
    this.root.steps[step.name] = out;
    this.last = out;
  }

  private async call(step: CallStep, start: number): Promise<StepOutput> {
    const req = this.request;
    const method = step.method ?? (step.forward ? req.method : 'GET');
    const rendered = step.path ? await renderTemplate(step.path, this.root, encodePathValue) : undefined;
    const path = rendered ?? (step.forward ? req.path : '/');
    const query = new Map<string, string | string[]>(step.forward ? Object.entries(req.query ?? {}) : []);
    for (const [name, t] of step.query) {
      const v = await renderTemplate(t, this.root, identity);
      if (v === undefined) query.delete(name);
      else query.set(name, v);
    }
    const headers: Record<string, string> = step.forward ? endToEndHeaders(req.headers) : {};
    const fail = (kind: StepError['kind'], message: string): StepOutput => ({ status: 0, headers: {}, body: null, durationMs: this.now() - start, error: { kind, message } });
    for (const [name, t] of step.headers) {
      const v = await renderTemplate(t, this.root, identity);
      if (v === undefined) delete headers[name];
      else if (headerValueProblem(v)) return fail('expression', `header ${name} ${headerValueProblem(v)}`);
      else headers[name] = v;
    }
    let body: string | Uint8Array | undefined;
    if (step.body) {
      const v = await step.body.evaluate(this.root);
      if (v !== undefined) {
        body = JSON.stringify(v);
        headers['content-type'] = 'application/json';
      }
    } else if (step.forward && req.body !== undefined) {
      body = step.requestBody ? await this.rewriteRequestBody(step.requestBody, headers) : req.body;
    }
    this.inputs?.set(step.name, { service: step.service, method, path: path + encodeQuery(query), headers, ...(body === undefined ? {} : { body: textOf(body) }) });
    // The step's timeout travels with the call (the shell has Envoy enforce it on the upstream
    // request); the timer here is the engine's own guarantee that the step ends on time.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(reject, step.timeoutMs, STEP_TIMEOUT)));
    let res: StepResponse;
    this.inflight++;
    try {
      const call = this.io.call(
        { step: step.name, service: step.service, method, path: path + encodeQuery(query), headers, body, timeoutMs: step.timeoutMs, maxResponseBytes: this.flow.maxResponseBytes },
        this.ctrl.signal,
      );
      res = await Promise.race([call, timeout, this.stopped]);
    } catch (e) {
      if (e === STEP_TIMEOUT) return fail('timeout', `${step.service} did not answer within ${step.timeoutMs} ms`);
      if (this.ctrl.signal.aborted) throw this.ctrl.signal.reason;
      return fail('transport', `${step.service} could not be reached: ${(e as Error)?.message ?? String(e)}`);
    } finally {
      this.inflight--;
      clearTimeout(timer);
    }
    const durationMs = this.now() - start;
    const size = typeof res.body === 'string' ? Buffer.byteLength(res.body) : res.body.byteLength;
    if (size > this.flow.maxResponseBytes) return { ...fail('limit', `${step.service} answered with more than ${this.flow.maxResponseBytes} bytes`), status: res.status };
    let parsed: unknown;
    try {
      parsed = parseBody(res.body, res.headers['content-type'], step.parse, step);
    } catch (e) {
      return { status: res.status, headers: res.headers, body: null, durationMs, error: { kind: 'transport', message: `${step.service} answered with a body that ${(e as Error).message}` } };
    }
    const out: StepOutput = { status: res.status, headers: res.headers, body: parsed, durationMs };
    if (!step.ok(res.status)) out.error = { kind: 'status', message: `${step.service} answered ${res.status}` };
    return out;
  }

  private async rewriteRequestBody(rw: BodyRewrite, headers: Record<string, string>): Promise<string | Uint8Array> {
    const type = this.request.headers['content-type'];
    const parsed = this.root.request.body;
    if (!isJsonType(type) && !isXmlType(type)) return this.request.body!;
    const value = await reshape(rw.reshape, parsed, this.bindings);
    const xml = rw.format === 'xml' || (rw.format === undefined && isXmlType(type));
    headers['content-type'] = xml ? 'application/xml' : 'application/json';
    return xml ? jsonToXml(value, rw.xml) : JSON.stringify(value);
  }

  private async transform(step: TransformStep, start: number): Promise<StepOutput> {
    const from = await step.from.evaluate(this.root);
    this.inputs?.set(step.name, from);
    const body = await reshape(step.reshape, from, this.bindings);
    return { status: 200, headers: {}, body, durationMs: this.now() - start };
  }

  private async code(step: CodeStep, start: number): Promise<StepOutput> {
    const sandbox = this.io.sandbox;
    const done = (o: Omit<StepOutput, 'durationMs'>): StepOutput => ({ ...o, durationMs: this.now() - start });
    if (!sandbox) return done({ status: 0, headers: {}, body: null, error: { kind: 'code', message: 'no code sandbox is configured' } });
    const input = step.input ? step.input.evaluate(this.root) : this.root;
    if (input instanceof Promise) throw new Error('code input must be a plain path');
    const json = JSON.stringify(input ?? null);
    this.inputs?.set(step.name, input ?? null);
    if (json.length > this.flow.maxRequestBytes + this.flow.maxResponseBytes * 2)
      return done({ status: 0, headers: {}, body: null, error: { kind: 'limit', message: 'the code step input is too large' } });
    const limits = { timeMs: step.timeMs, memoryBytes: step.memoryBytes, maxOutputBytes: this.flow.maxResponseBytes };
    let r = sandbox.run(step.source, json, limits, this.ctrl.signal);
    if (r instanceof Promise) {
      // On a worker: the flow's deadline or its caller leaving does not wait for the run.
      this.inflight++;
      try {
        r = await Promise.race([r, this.stopped]);
      } finally {
        this.inflight--;
      }
    }
    return r.ok ? done({ status: 200, headers: {}, body: r.value }) : done({ status: 0, headers: {}, body: null, error: { kind: 'code', message: `code ${r.message}` } });
  }

  private async respond(step: RespondStep): Promise<Outcome> {
    const headers: Record<string, string> = {};
    for (const [name, t] of step.headers) {
      const v = await renderTemplate(t, this.root, identity);
      if (v === undefined) continue;
      const problem = headerValueProblem(v);
      if (problem) throw new StepFailed(step.name, { kind: 'expression', message: `header ${name} ${problem}` });
      headers[name] = v;
    }
    if (step.passthrough) return await this.passthrough(step.passthrough.step, step.passthrough.rewrite);
    const status = typeof step.status === 'number' ? step.status : await step.status.evaluate(this.root);
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
      throw new StepFailed(step.name, { kind: 'expression', message: `status evaluated to ${JSON.stringify(status)}, not a status between 200 and 599` });
    }
    const value = step.body ? await step.body.evaluate(this.root) : undefined;
    if (value === undefined) return { status, headers, body: '' };
    const format = step.format === 'accept' ? (acceptsXmlFirst(this.request.headers.accept) ? 'xml' : 'json') : step.format;
    const body = format === 'xml' ? jsonToXml(value, step.xml) : format === 'text' ? (typeof value === 'string' ? value : JSON.stringify(value)) : JSON.stringify(value);
    headers['content-type'] ??= format === 'xml' ? 'application/xml' : format === 'text' ? 'text/plain; charset=utf-8' : 'application/json';
    return { status, headers, body };
  }

  /** Answers with a call's status and headers, its body rewritten (route-level transforms). */
  private async passthrough(name: string, rw: BodyRewrite): Promise<Outcome> {
    const out = this.root.steps[name]!;
    const type = out.headers['content-type'];
    const headers = endToEndHeaders(out.headers);
    if (!isJsonType(type) && !isXmlType(type)) return { status: out.status, headers, body: serialize(out.body, type) };
    const value = await reshape(rw.reshape, out.body, this.bindings);
    const xml = rw.format === 'accept' ? acceptsXmlFirst(this.request.headers.accept) : rw.format === undefined ? isXmlType(type) : rw.format === 'xml';
    headers['content-type'] = xml ? 'application/xml' : 'application/json';
    return { status: out.status, headers, body: xml ? jsonToXml(value, rw.xml) : JSON.stringify(value) };
  }

  /** Without a respond step, the flow answers with the last result. */
  private implicitResponse(): Outcome {
    const out = this.last;
    if (!out) return { status: 204, headers: {}, body: '' };
    const type = out.headers['content-type'] ?? (typeof out.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json');
    return { status: out.status || 200, headers: { ...endToEndHeaders(out.headers), 'content-type': type }, body: serialize(out.body, type) };
  }

  private failure(e: unknown): Outcome {
    const reason = this.ctrl.signal.aborted && !(e instanceof StepFailed) ? this.ctrl.signal.reason : e;
    if (reason instanceof StepFailed) {
      const { kind, message } = reason.error;
      const status = kind === 'timeout' ? 504 : kind === 'expression' || kind === 'code' ? 500 : 502;
      const code = kind === 'timeout' ? 'flow_step_timeout' : status === 500 ? 'flow_step_error' : 'flow_step_failed';
      return { ...errorResult(status, code, `Step ${reason.step} failed: ${message}.`, reason.step), failedStep: reason.step };
    }
    if (reason === DEADLINE) {
      const running = [...this.running, ...this.pending.keys()];
      const detail = running.length ? ` (still running: ${[...new Set(running)].join(', ')})` : '';
      return errorResult(504, 'flow_timeout', `The flow did not finish within ${this.flow.timeoutMs} ms${detail}.`);
    }
    if (reason === CALLER_GONE) return errorResult(499, 'client_closed', 'The caller went away before the flow finished.');
    return errorResult(500, 'flow_error', `The flow failed: ${(reason as Error)?.message ?? String(reason)}.`);
  }

  private result(o: Outcome): FlowResult {
    let { status, headers, body } = o;
    if (!o.own && Buffer.byteLength(body) > this.flow.maxResponseBytes)
      ({ status, headers, body } = errorResult(502, 'response_too_large', `The flow's response is larger than ${this.flow.maxResponseBytes} bytes.`));
    if (this.incomplete.length) headers = { ...headers, [INCOMPLETE_HEADER]: this.incomplete.join(',') };
    const r: FlowResult = { status, headers, body, incomplete: this.incomplete, trace: this.trace, durationMs: this.now() - this.t0 };
    if (o.failedStep) r.failedStep = o.failedStep;
    return r;
  }
}

function identity(s: string): string {
  return s;
}

function parseBody(body: string | Uint8Array, type: string | undefined, mode: CallStep['parse'], step: CallStep): unknown {
  const size = typeof body === 'string' ? body.length : body.byteLength;
  if (size === 0) return null;
  const text = textOf(body);
  const as = mode !== 'auto' ? mode : isJsonType(type) ? 'json' : isXmlType(type) ? 'xml' : 'text';
  if (as === 'json') {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error('is not valid JSON');
    }
  }
  if (as === 'xml') return xmlToJson(text, step.xml);
  return text;
}

function serialize(body: unknown, type: string | undefined): string {
  if (typeof body === 'string') return body;
  if (body === null || body === undefined) return isJsonType(type) ? 'null' : '';
  if (isXmlType(type)) return jsonToXml(body);
  return JSON.stringify(body);
}
