// What a compiled flow is made of, and what the engine exchanges with the shell that runs it:
// the incoming request, step calls out, step responses back, and the flow's result.
import type { CompiledExpression, CompiledTemplate, StepRefs } from './expressions.ts';
import type { CompiledReshape } from './transforms.ts';
import type { XmlOptions } from '../model/index.ts';

// ── compiled flow (immutable; built once per model snapshot) ────────────────
interface StepBase {
  readonly name: string;
  /** Field path of the step in the model, e.g. flow.steps[2], for messages. */
  readonly field: string;
  /** Steps whose results this step reads (its own fields only, not nested steps). */
  readonly refs: StepRefs;
  readonly when?: CompiledExpression;
  readonly onError: 'fail' | 'continue';
  readonly fallback: unknown;
}

export interface CallStep extends StepBase {
  readonly kind: 'call';
  readonly service: string;
  readonly forward: boolean;
  readonly method?: string;
  readonly path?: CompiledTemplate;
  readonly query: ReadonlyArray<readonly [string, CompiledTemplate]>;
  readonly headers: ReadonlyArray<readonly [string, CompiledTemplate]>;
  readonly body?: CompiledExpression;
  readonly timeoutMs: number;
  readonly ok: (status: number) => boolean;
  readonly parse: 'auto' | 'json' | 'xml' | 'text';
  readonly xml?: XmlOptions;
  /** Route-level transforms only: reshape the forwarded request body, and convert it. */
  readonly requestBody?: BodyRewrite;
}

export interface BodyRewrite {
  readonly reshape: CompiledReshape;
  /** json, xml, or accept (by the caller's Accept header); undefined keeps the body's own format. */
  readonly format?: 'json' | 'xml' | 'accept';
  readonly xml?: XmlOptions;
}

export interface ParallelStep extends StepBase {
  readonly kind: 'parallel';
  readonly branches: readonly CompiledStep[];
  readonly wait: 'all' | 'referenced';
}

export interface SwitchStep extends StepBase {
  readonly kind: 'switch';
  readonly cases: ReadonlyArray<{ readonly when: CompiledExpression; readonly steps: readonly CompiledStep[] }>;
  readonly otherwise: readonly CompiledStep[];
}

export interface RespondStep extends StepBase {
  readonly kind: 'respond';
  readonly status: number | CompiledExpression;
  readonly headers: ReadonlyArray<readonly [string, CompiledTemplate]>;
  readonly body?: CompiledExpression;
  readonly format: 'json' | 'xml' | 'text' | 'accept';
  readonly xml?: XmlOptions;
  /** Route-level transforms only: answer with this step's status and headers, its body rewritten. */
  readonly passthrough?: { readonly step: string; readonly rewrite: BodyRewrite };
}

export interface TransformStep extends StepBase {
  readonly kind: 'transform';
  readonly from: CompiledExpression;
  readonly reshape: CompiledReshape;
}

export interface CodeStep extends StepBase {
  readonly kind: 'code';
  readonly source: string;
  readonly input?: CompiledExpression;
  readonly timeMs: number;
  readonly memoryBytes: number;
}

export type CompiledStep = CallStep | ParallelStep | SwitchStep | RespondStep | TransformStep | CodeStep;

export interface CompiledFlow {
  readonly steps: readonly CompiledStep[];
  readonly timeoutMs: number;
  readonly maxRequestBytes: number;
  readonly maxResponseBytes: number;
  readonly hasCode: boolean;
}

// ── runtime exchange ──────────────────────────────────────────────────────────
export interface FlowIdentity {
  partner?: string;
  plan?: string;
  /** Which credential the caller presented, e.g. the API key's or issuer's name. */
  credential?: string;
  /** Verified JWT claims, when the caller presented a token. */
  claims?: Record<string, unknown>;
}

export interface FlowRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Path parameters from the route's template match. */
  params?: Record<string, string>;
  /** Decoded query parameters; repeated ones as arrays. */
  query?: Record<string, string | string[]>;
  /** Lower-case names. */
  headers: Record<string, string>;
  body?: string | Uint8Array;
  identity?: FlowIdentity;
}

/** One call a step makes; the shell sends it (through Envoy) to the service and honours the signal. */
export interface StepCall {
  step: string;
  service: string;
  method: string;
  /** Path with its encoded query string. */
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  timeoutMs: number;
  /** The shell should stop reading (and fail) past this many body bytes. */
  maxResponseBytes: number;
}

export interface StepResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string | Uint8Array;
}

export interface FlowIO {
  call(call: StepCall, signal: AbortSignal): Promise<StepResponse>;
  /** Milliseconds on a monotonic clock; default performance.now. */
  now?(): number;
  /** Aborted when the caller goes away: the flow stops and its calls are cancelled. */
  signal?: AbortSignal;
  /**
   * The same, for a shell that learns it from an event (the runtime: the response closing): given
   * the run's stop function as the run starts. Saves an AbortController and its listener per request.
   */
  onCallerGone?(stop: () => void): void;
  /**
   * Record what each step was given and what it gave (StepTrace input/output) and which way each
   * switch went: for "try it" in the console. Off on the runtime's path, where nothing is copied.
   */
  detail?: boolean;
  /**
   * Runs code steps; required when the flow has any. In process (CodeSandbox, synchronous) or on
   * worker threads (CodePool, asynchronous; the signal drops a run still waiting for a worker).
   */
  sandbox?: {
    run(source: string, inputJson: string, limits: { timeMs: number; memoryBytes: number; maxOutputBytes: number }, signal?: AbortSignal): CodeRun | Promise<CodeRun>;
  };
}

export type CodeRun = { ok: true; value: unknown } | { ok: false; kind: 'timeout' | 'memory' | 'error'; message: string };

export type StepErrorKind = 'timeout' | 'status' | 'transport' | 'limit' | 'expression' | 'code' | 'cancelled';

export interface StepError {
  kind: StepErrorKind;
  message: string;
}

/** What `steps.<name>` holds for later steps. */
export interface StepOutput {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  durationMs: number;
  error?: StepError;
}

export interface StepTrace {
  name: string;
  kind: CompiledStep['kind'];
  /** Milliseconds from the flow's start. */
  startMs: number;
  durationMs: number;
  outcome: 'ok' | 'failed' | 'skipped';
  error?: StepError;
  /** The service, for call steps. */
  service?: string;
  /** With FlowIO.detail: a call's request (method, path, headers, body), a transform's or code step's input. */
  input?: unknown;
  /** With FlowIO.detail: the step's result (status, headers, body), a respond step's answer, a switch's chosen case. */
  output?: unknown;
}

export interface FlowResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Steps that failed under onError: continue (also in the x-portico-flow-incomplete header). */
  incomplete: string[];
  /** The step that ended the flow with an error, when one did. */
  failedStep?: string;
  trace: StepTrace[];
  durationMs: number;
}
