// The flow engine's public face: compile a (schema-valid) flow once per model snapshot, checking
// what the schema cannot say; run it per request with runFlow over the shell's I/O.
export { compileFlow, DEFAULTS, type CompileOptions, type CompileResult, type FlowError } from './compile.ts';
export { compileRouteTransform } from './route-transform.ts';
export { runFlow, truthy, INCOMPLETE_HEADER } from './engine.ts';
export { CodeSandbox, codeSandbox, type CodeLimits, type CodeOutcome } from './code.ts';
export { CodePool, type CodePoolOptions } from './code-pool.ts';
export { Flow, FlowStep, BodyTransform, FLOW_LIMITS, type FlowSpec, type FlowStepSpec, type BodyTransformSpec } from '../model/index.ts';
export { jsonToXml, xmlToJson, acceptsXmlFirst } from './xml.ts';
export type { CompiledFlow, FlowRequest, FlowResult, FlowIO, StepCall, StepResponse, StepTrace, StepOutput, FlowIdentity } from './types.ts';
export { compileModelFlows, isFlowRoute, templateMatcher, type ModelFlows, type RouteFlow } from './model.ts';
export { FlowRuntime, type FlowRuntimeOptions } from './runtime.ts';
// Seed 003's data (the demo's upstreams answer it) and its /api/home flow, also for tests and benchmarks.
export { HOME_FLOW_YAML, homeFlow, SEED_HOME_BODY, SEED_ORDERS, SEED_RECOMMENDATIONS, SEED_USER } from './fixtures.ts';
// The console's flow designer: checks a flow as a route would carry it; "try it" with step detail.
export { checkFlow, tryFlow, redact, sampleRequest, type SampleRequest, type TryOutcome } from './designer.ts';
export { directCaller } from './direct-calls.ts';
