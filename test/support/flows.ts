// A flow as the admin API will check it once flows join the route schema: the schema first (the
// model's one validator), then the flow compiler's checks of meaning. For flow tests and benchmarks.
import { schemaErrors } from '../../src/model/validate.ts';
import { compileFlow, compileRouteTransform, BodyTransform, Flow, type CompileOptions, type CompileResult, type FlowError, type FlowSpec, type BodyTransformSpec } from '../../src/flows/index.ts';

export function checkFlow(value: unknown, opts: CompileOptions = {}): CompileResult {
  const shape = schemaErrors(Flow, value, opts.prefix ?? 'flow');
  if (shape.length) return { ok: false, errors: shape.map((e): FlowError => ({ ...e, code: 'invalid' })) };
  return compileFlow(value as FlowSpec, opts);
}

export function checkRouteTransform(service: string, value: unknown, opts: { prefix?: string; timeoutMs?: number } = {}): CompileResult {
  const shape = schemaErrors(BodyTransform, value, opts.prefix ?? 'transform');
  if (shape.length) return { ok: false, errors: shape.map((e): FlowError => ({ ...e, code: 'invalid' })) };
  return compileRouteTransform(service, value as BodyTransformSpec, opts);
}
