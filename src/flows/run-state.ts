// What one flow run shares with its step implementations (step-call.ts, step-answers.ts): the
// run's state, the failure that names a step, and the engine's own error answers.
import { gatewayErrorBody } from '../contract/index.ts';
import type { CompiledFlow, FlowIO, FlowRequest, FlowResult, StepError, StepOutput } from './types.ts';

/** The run as its steps see it (the engine's Run). */
export interface RunState {
  readonly flow: CompiledFlow;
  readonly request: FlowRequest;
  readonly io: FlowIO;
  /** What expressions see: `request` and `steps`. */
  readonly root: { request: Record<string, unknown>; steps: Record<string, StepOutput> };
  /** The same as JSONata bindings ($request, $steps) for reshaping. */
  readonly bindings: Record<string, unknown>;
  readonly now: () => number;
  /** Aborted when the run is stopped; cancels its calls. */
  readonly signal: AbortSignal;
  /** Rejects when the run is stopped, so whatever a step awaits gives way at once. */
  readonly stopped: Promise<never>;
  /** Steps' inputs by name, kept only when the shell asked for detail (try it). */
  readonly inputs: Map<string, unknown> | undefined;
  /** Calls and worker runs in flight: left over at the end, they are cancelled. */
  inflight: number;
}

/** A step that failed under onError: fail — the flow answers with an error naming it. */
export class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly error: StepError,
  ) {
    super(error.message);
  }
}

export interface Outcome {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The step that ended the flow with an error. */
  failedStep?: string;
  /** The engine's own error answer (small, and exempt from the response size limit). */
  own?: true;
}

/** The gateway's error body shape; a flow's step errors also name the step. */
function errorBody(error: string, message: string, step?: string): string {
  return step ? JSON.stringify({ error, message, step }) : gatewayErrorBody(error, message);
}

export function errorResult(status: number, error: string, message: string, step?: string): Pick<FlowResult, 'status' | 'headers' | 'body'> & { own: true } {
  return { status, headers: { 'content-type': 'application/json' }, body: errorBody(error, message, step), own: true };
}

export function identity(s: string): string {
  return s;
}
