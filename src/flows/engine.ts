// The flow engine: runs a compiled flow for one request over injected I/O. Pure orchestration —
// step calls, the clock, the caller's cancellation and the code sandbox all come from the shell.
// The steps themselves are in step-call.ts (calls) and step-answers.ts (transform, code, respond).
import { textOf } from './http.ts';
import { errorResult, StepFailed, type Outcome, type RunState } from './run-state.ts';
import { codeStep, implicitResponse, respondStep, transformStep } from './step-answers.ts';
import { callStep } from './step-call.ts';
import { isJsonType, isXmlType, xmlToJson } from './xml.ts';
import type { CallStep, CodeStep, CompiledFlow, CompiledStep, FlowIO, FlowRequest, FlowResult, StepError, StepOutput, StepTrace, TransformStep } from './types.ts';

/** Lists the steps that failed under onError: continue, so a client can tell a partial response. */
export const INCOMPLETE_HEADER = 'x-portico-flow-incomplete';

// Why a run was stopped: tags, not Errors (an Error captures a stack trace, which costs more than
// a whole flow run when it happens on every request).
const DEADLINE = Object.freeze({ stopped: 'deadline' });
const CALLER_GONE = Object.freeze({ stopped: 'caller gone' });
const FINISHED = Object.freeze({ stopped: 'finished' });

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

class Run implements RunState {
  readonly now: () => number;
  private readonly t0: number;
  /** Cancels the run's calls: when it fails, times out, loses its caller, or ends with calls in flight. */
  private readonly ctrl = new AbortController();
  readonly signal = this.ctrl.signal;
  readonly stopped: Promise<never>;
  private stop!: (reason: unknown) => void;
  inflight = 0;
  readonly root: { request: Record<string, unknown>; steps: Record<string, StepOutput> };
  readonly bindings: Record<string, unknown>;
  /** Branches of `wait: referenced` groups still running; they settle, never reject. */
  private readonly pending = new Map<string, Promise<void>>();
  private readonly running = new Set<string>();
  private readonly trace: StepTrace[] = [];
  private readonly incomplete: string[] = [];
  private response: Outcome | undefined;
  private last: StepOutput | undefined;
  readonly inputs: Map<string, unknown> | undefined;

  constructor(
    readonly flow: CompiledFlow,
    readonly request: FlowRequest,
    readonly io: FlowIO,
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
    this.io.onCallerGone?.(onCallerGone);
    try {
      await Promise.race([this.sequence(this.flow.steps), this.stopped]);
      return this.result(this.response ?? implicitResponse(this.last));
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
    const refs = this.awaitRefs(step);
    if (refs) await refs;
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
          this.response = await respondStep(this, step);
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

  /** Waits for the lazy branches this step reads; undefined (no promise to wait for) when none is running. */
  private awaitRefs(step: CompiledStep): Promise<unknown> | undefined {
    if (this.pending.size === 0) return undefined;
    if (step.refs === 'all') return Promise.all(this.pending.values());
    const waits: Promise<void>[] = [];
    for (const name of step.refs) {
      const p = this.pending.get(name);
      if (p) waits.push(p);
    }
    return waits.length ? Promise.all(waits) : undefined;
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
      out = step.kind === 'call' ? await callStep(this, step, start) : step.kind === 'transform' ? await transformStep(this, step, start) : await codeStep(this, step, start);
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
