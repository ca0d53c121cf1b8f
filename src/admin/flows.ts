// The flow designer's endpoints: check a flow as you type (the runtime's own compiler, errors naming
// the field) and "try it" (admin only: run a flow once for a sample request against the real
// upstreams, answering each step's input, output, outcome and time). The flow engine is handed in
// by the composition root (src/admin does not import src/flows: they are one layer).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { Flow, type FieldError, type ModelSnapshot } from '../model/index.ts';
import type { ModelStore } from '../store/index.ts';
import { checkedBody, handlerChecked, problems } from './problem.ts';

/** What the designer needs of the flow engine (src/flows implements it; main.ts wires it). */
export interface FlowTools {
  /** Field errors of `flow` (flow.steps[0].call.path …) against the model; empty when a route would accept it. */
  check(flow: unknown, model: ModelSnapshot): FieldError[] | Promise<FieldError[]>;
  /** Runs a checked flow once for the sample; step detail on, credentials redacted. */
  run(flow: unknown, sample: FlowSample, model: ModelSnapshot): Promise<{ ok: false; errors: FieldError[] } | { ok: true; result: FlowTryAnswer }>;
}

const Sample = Type.Object(
  {
    method: Type.Optional(Type.Union(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => Type.Literal(m)))),
    path: Type.Optional(Type.String({ pattern: '^/', maxLength: 4096, description: 'the request path, e.g. /api/home' })),
    params: Type.Optional(Type.Record(Type.String({ maxLength: 128 }), Type.String({ maxLength: 4096 }), { description: "path parameters, as the route's template would match them" })),
    query: Type.Optional(Type.Record(Type.String({ maxLength: 128 }), Type.Union([Type.String({ maxLength: 4096 }), Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })]))),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$" }), Type.String({ maxLength: 8192, pattern: '^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$' }), {
        description: 'request headers; credential headers never appear in the trace',
      }),
    ),
    body: Type.Optional(Type.Unknown({ description: 'text as sent, or any JSON value (sent as application/json)' })),
    identity: Type.Optional(
      Type.Object(
        {
          partner: Type.Optional(Type.String({ maxLength: 253 })),
          plan: Type.Optional(Type.String({ maxLength: 253 })),
          credential: Type.Optional(Type.String({ maxLength: 253 })),
          claims: Type.Optional(Type.Record(Type.String({ maxLength: 256 }), Type.Unknown(), { description: 'JWT claims, as the issuers forward them' })),
        },
        { additionalProperties: false, description: 'who the caller is, as the gateway would tell the flow' },
      ),
    ),
  },
  { additionalProperties: false },
);

/** A sample request for "try it", as the designer sends it. */
export type FlowSample = Static<typeof Sample>;

const CheckBody = Type.Object({ flow: Flow }, { additionalProperties: false });
const TryBody = Type.Object({ flow: Flow, request: Type.Optional(Sample) }, { additionalProperties: false });

const StepTrace = Type.Object({
  name: Type.String(),
  kind: Type.String({ description: 'call, parallel, switch, respond, transform or code' }),
  startMs: Type.Number({ description: "milliseconds from the flow's start" }),
  durationMs: Type.Number(),
  outcome: Type.String({ description: 'ok, failed or skipped' }),
  service: Type.Optional(Type.String()),
  error: Type.Optional(Type.Object({ kind: Type.String(), message: Type.String() })),
  input: Type.Optional(Type.Unknown({ description: "a call's request (method, path, headers, body); a transform's or code step's input" })),
  output: Type.Optional(Type.Unknown({ description: "the step's status, headers and body; a respond step's answer; a switch's chosen case" })),
});
const TryResult = Type.Object({
  status: Type.Integer(),
  headers: Type.Record(Type.String(), Type.String()),
  body: Type.String(),
  durationMs: Type.Number(),
  incomplete: Type.Array(Type.String()),
  failedStep: Type.Optional(Type.String()),
  trace: Type.Array(StepTrace),
});

/** What "try it" answers: the flow's answer and each step's trace. */
export type FlowTryAnswer = Static<typeof TryResult>;

const FlowCheckResult = Type.Object({ valid: Type.Literal(true) }, { description: 'The flow would be accepted' });
/** The designer endpoints' answer schemas by component name (server.ts registers them; the routes pass them as they are). */
export const FLOW_SCHEMAS = { FlowCheckResult, FlowTryResult: TryResult };

/** A flow the designer's check has not seen yet stands in for the real one while the rest of the body is checked. */
const STAND_IN = { steps: [{ name: 'x', respond: {} }] };

/** The body, checked except for its flow (a missing body names the body), typed from its schema with the flow unknown. */
function bodyOf<S extends typeof CheckBody | typeof TryBody>(body: unknown, schema: S): Omit<Static<S>, 'flow'> & { flow: unknown } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw problems.validation([{ field: '(body)', message: 'must be a JSON object with a flow' }]);
  // The flow's own errors come from the designer's check (schema, then compiler), with its paths.
  const missing = 'flow' in body ? [] : [{ field: 'flow', message: 'is required' }];
  const { flow: _standIn, ...rest } = checkedBody(schema, { ...body, flow: STAND_IN }, missing);
  return { ...rest, flow: 'flow' in body ? body.flow : undefined };
}

/** The flow designer's endpoints. */
export const flowRoutes: FastifyPluginAsyncTypebox<{ store: ModelStore; tools: FlowTools }> = async (app, opts) => {
  const { store, tools } = opts;
  const tags = ['Flows'];
  app.post(
    '/api/v1/flows/check',
    {
      // Changes nothing: viewers may check too.
      config: { role: 'viewer' },
      schema: {
        tags,
        summary: 'Check a flow as a route would carry it (schema, expressions, references, limits); 422 names each field',
        body: handlerChecked(CheckBody),
        response: { 200: FlowCheckResult },
        security: [{ bearer: [] }],
      },
    },
    async (request) => {
      const b = bodyOf(request.body, CheckBody);
      const errors = await tools.check(b.flow, store.current());
      if (errors.length) throw problems.validation(errors);
      return { valid: true as const };
    },
  );
  app.post(
    '/api/v1/flows/try',
    {
      config: { role: 'admin' },
      schema: {
        tags,
        summary: 'Run a flow once for a sample request against the real upstreams; each step with its input, output, outcome and time (credentials redacted)',
        description:
          "Step calls go from the control plane straight to each service's first endpoint (with its upstream TLS), not through Envoy. The flow's answer is in the body: a failed step is a 200 here whose status says so.",
        body: handlerChecked(TryBody),
        response: { 200: TryResult },
        security: [{ bearer: [] }],
      },
    },
    async (request) => {
      const b = bodyOf(request.body, TryBody);
      const r = await tools.run(b.flow, b.request ?? {}, store.current());
      if (!r.ok) throw problems.validation(r.errors);
      return r.result;
    },
  );
};
