// The flow engine's public face: check a flow as written (schema, then meaning) and compile it
// once per model snapshot; run it per request with runFlow over the shell's I/O.
import { schemaErrors } from '../model/validate.ts';
import { compileFlow, type CompileOptions, type CompileResult, type FlowError } from './compile.ts';
import { compileRouteTransform } from './route-transform.ts';
import { BodyTransform, Flow, type BodyTransformSpec, type FlowSpec } from './schema.ts';

/** Validates a flow as written (as the admin API or a declarative file gives it) and compiles it. */
export function checkFlow(value: unknown, opts: CompileOptions = {}): CompileResult {
  const prefix = opts.prefix ?? 'flow';
  const shape = schemaErrors(Flow, value, prefix);
  if (shape.length) return { ok: false, errors: shape.map((e): FlowError => ({ ...e, code: 'invalid' })) };
  return compileFlow(value as FlowSpec, opts);
}

/** Validates a route's body transform as written and compiles it into a flow calling `service`. */
export function checkRouteTransform(service: string, value: unknown, opts: { prefix?: string; timeoutMs?: number } = {}): CompileResult {
  const prefix = opts.prefix ?? 'transform';
  const shape = schemaErrors(BodyTransform, value, prefix);
  if (shape.length) return { ok: false, errors: shape.map((e): FlowError => ({ ...e, code: 'invalid' })) };
  return compileRouteTransform(service, value as BodyTransformSpec, opts);
}

export { compileFlow, type CompileOptions, type CompileResult, type FlowError } from './compile.ts';
export { runFlow, INCOMPLETE_HEADER } from './engine.ts';
export { CodeSandbox, codeSandbox } from './code.ts';
export { Flow, BodyTransform, FLOW_LIMITS, type FlowSpec, type BodyTransformSpec } from './schema.ts';
export type { CompiledFlow, FlowRequest, FlowResult, FlowIO, StepCall, StepResponse, StepTrace, FlowIdentity } from './types.ts';
