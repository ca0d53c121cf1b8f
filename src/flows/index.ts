// The flow engine's public face: compile a (schema-valid) flow once per model snapshot, checking
// what the schema cannot say; run it per request with runFlow over the shell's I/O.
export { compileFlow, DEFAULTS, type CompileOptions, type CompileResult, type FlowError } from './compile.ts';
export { compileRouteTransform } from './route-transform.ts';
export { runFlow, truthy, INCOMPLETE_HEADER } from './engine.ts';
export { CodeSandbox, codeSandbox, type CodeLimits, type CodeOutcome } from './code.ts';
export { Flow, FlowStep, BodyTransform, FLOW_LIMITS, type FlowSpec, type FlowStepSpec, type BodyTransformSpec } from './schema.ts';
export { jsonToXml, xmlToJson, acceptsXmlFirst } from './xml.ts';
export type { CompiledFlow, FlowRequest, FlowResult, FlowIO, StepCall, StepResponse, StepTrace, StepOutput, FlowIdentity } from './types.ts';
