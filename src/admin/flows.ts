// The flow designer's endpoints: check a flow as you type (the runtime's own compiler, errors naming
// the field) and "try it" (admin only: run a flow once for a sample request against the real
// upstreams, answering each step's input, output, outcome and time). The flow engine is handed in
// by the composition root (src/admin does not import src/flows: they are one layer).
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Flow, schemaErrors, type FieldError, type ModelSnapshot } from '../model/index.ts';
import type { ModelStore } from '../store/index.ts';
import { problems } from './problem.ts';

/** What the designer needs of the flow engine (src/flows implements it; main.ts wires it). */
export interface FlowTools {
  /** Field errors of `flow` (flow.steps[0].call.path …) against the model; empty when a route would accept it. */
  check(flow: unknown, model: ModelSnapshot): FieldError[];
  /** Runs a checked flow once for the sample; step detail on, credentials redacted. */
  run(flow: unknown, sample: Record<string, unknown>, model: ModelSnapshot): Promise<{ ok: false; errors: FieldError[] } | { ok: true; result: unknown }>;
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

const FlowCheckResult = Type.Object({ valid: Type.Literal(true) }, { description: 'The flow would be accepted' });
/** The designer endpoints' answer schemas by component name (server.ts registers them; the routes pass them as they are). */
export const FLOW_SCHEMAS = { FlowCheckResult, FlowTryResult: TryResult };

/** The body must be an object before its fields are read (a missing body names the body). */
function bodyOf(body: unknown, schema: typeof CheckBody | typeof TryBody): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw problems.validation([{ field: '(body)', message: 'must be a JSON object with a flow' }]);
  const b = body as Record<string, unknown>;
  // The flow's own errors come from the designer's check (schema, then compiler), with its paths.
  const rest = schemaErrors(schema, { ...b, flow: { steps: [{ name: 'x', respond: {} }] } });
  if (!('flow' in b)) rest.unshift({ field: 'flow', message: 'is required' });
  if (rest.length) throw problems.validation(rest);
  return b;
}

export function registerFlowRoutes(app: FastifyInstance, opts: { store: ModelStore; tools: FlowTools }): void {
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
        body: CheckBody,
        response: { 200: FlowCheckResult },
        security: [{ bearer: [] }],
      },
    },
    async (request) => {
      const b = bodyOf(request.body, CheckBody);
      const errors = tools.check(b.flow, store.current());
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
        body: TryBody,
        response: { 200: TryResult },
        security: [{ bearer: [] }],
      },
    },
    async (request) => {
      const b = bodyOf(request.body, TryBody);
      const r = await tools.run(b.flow, (b.request ?? {}) as Record<string, unknown>, store.current());
      if (!r.ok) throw problems.validation(r.errors);
      return r.result;
    },
  );
}
