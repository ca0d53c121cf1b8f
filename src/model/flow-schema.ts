// The shape of a flow (a route's programmable action) and of route-level body transforms, as
// TypeBox schemas: part of the route schema and the OpenAPI document; src/flows compiles and runs them.
import { Type, type Static } from '@sinclair/typebox';

const closed = { additionalProperties: false } as const;

/** Limits the validator enforces beyond what the schema can say (counts across the whole tree). */
export const FLOW_LIMITS = {
  /** Steps in one flow, counting every nested step. */
  steps: 64,
  /** Call steps in one flow: what one request can fan out to, at most. */
  calls: 32,
  /** Branches in one parallel group. */
  branches: 16,
  /** Nesting of switch and parallel inside each other. */
  depth: 4,
} as const;

/** What a flow leaves unset (the translator reads the flow deadline to time Envoy's route to the runtime). */
export const FLOW_DEFAULTS = { flowTimeoutMs: 10_000, callTimeoutMs: 5000, maxRequestBytes: 1 << 20, maxResponseBytes: 4 << 20, codeTimeMs: 50, codeMemoryMb: 16 } as const;

/** Step names are referenced in expressions as steps.<name>, so they are plain identifiers. */
export const StepName = Type.String({
  pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$',
  description: 'letters, digits and underscores, not starting with a digit; referenced as steps.<name>',
});
const ServiceName = Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', description: 'a service of the model' });
export const Expression = Type.String({ minLength: 1, maxLength: 16_384, description: 'a JSONata expression over {request, steps}' });
export const Template = Type.String({
  maxLength: 4096,
  description: 'text with {JSONata} parts, e.g. /users/{request.params.id}; write {{ and }} for literal braces',
});
const HeaderName = Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$", description: 'an HTTP header name' });
const HttpMethod = Type.Union(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => Type.Literal(m)));
const Millis = (max: number, description: string) => Type.Integer({ minimum: 1, maximum: max, description });
const FieldPath = Type.String({
  pattern: '^[^.\\s]+(\\.[^.\\s]+)*$',
  maxLength: 512,
  description: 'dot-separated field names, applied to every element of an array on the way',
});
const StatusClass = Type.Union(['1xx', '2xx', '3xx', '4xx', '5xx'].map((c) => Type.Literal(c)));

/** Reshaping of one JSON value; the operations apply in this order: pick, remove, rename, map. */
export const Reshape = {
  pick: Type.Optional(Type.Array(FieldPath, { minItems: 1, maxItems: 256, uniqueItems: true, description: 'keep only these fields' })),
  remove: Type.Optional(Type.Array(FieldPath, { minItems: 1, maxItems: 256, uniqueItems: true, description: 'drop these fields' })),
  rename: Type.Optional(Type.Record(FieldPath, Type.String({ pattern: '^[^.\\s]+$', maxLength: 128 }), { description: 'field path → new name (same level)' })),
  map: Type.Optional({ ...Expression, description: 'a JSONata expression with the value as $ (and $request, $steps)' }),
};

export const XmlOptions = Type.Object(
  {
    root: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$', description: 'root element when the JSON has several top-level fields; default root' })),
    arrays: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 64, uniqueItems: true, description: 'element names always read as arrays (XML → JSON)' })),
  },
  closed,
);
export type XmlOptions = Static<typeof XmlOptions>;

const Format = Type.Union([Type.Literal('json'), Type.Literal('xml'), Type.Literal('text')]);

// ── steps ─────────────────────────────────────────────────────────────────────
const Call = Type.Object(
  {
    service: ServiceName,
    forward: Type.Optional(Type.Boolean({ description: 'start from the incoming request: its method, path, query, headers and body (each overridable); default false' })),
    method: Type.Optional(HttpMethod),
    path: Type.Optional({ ...Template, pattern: '^/', description: 'path template, e.g. /users/{request.params.id}; values are URL-encoded' }),
    query: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Template, { description: 'name → template; an undefined value leaves the parameter out' })),
    headers: Type.Optional(Type.Record(HeaderName, Template, { description: 'name → template; an undefined value leaves the header out' })),
    body: Type.Optional({ ...Expression, description: 'JSONata; its result is sent as JSON' }),
    timeoutMs: Type.Optional(Millis(60_000, 'this call, default 5000')),
    okStatus: Type.Optional(
      Type.Array(Type.Union([StatusClass, Type.Integer({ minimum: 100, maximum: 599 })]), {
        minItems: 1,
        maxItems: 32,
        uniqueItems: true,
        description: "statuses that count as success; default ['2xx']",
      }),
    ),
    parse: Type.Optional(
      Type.Union(
        ['auto', 'json', 'xml', 'text'].map((p) => Type.Literal(p)),
        { description: 'how to read the response body; auto: by Content-Type' },
      ),
    ),
    xml: Type.Optional(XmlOptions),
  },
  closed,
);

const Respond = Type.Object(
  {
    status: Type.Optional(Type.Union([Type.Integer({ minimum: 200, maximum: 599 }), Expression], { description: 'a status, or JSONata giving one; default 200' })),
    headers: Type.Optional(Type.Record(HeaderName, Template)),
    body: Type.Optional({ ...Expression, description: 'JSONata building the body from request and steps' }),
    format: Type.Optional(Type.Union([Format, Type.Literal('accept')], { description: "json (default), xml, text, or accept: xml when the caller's Accept prefers it" })),
    xml: Type.Optional(XmlOptions),
  },
  closed,
);

const Transform = Type.Object(
  {
    from: { ...Expression, description: 'the value to reshape, e.g. steps.user.body' },
    ...Reshape,
  },
  closed,
);

const Code = Type.Object(
  {
    source: Type.String({ minLength: 1, maxLength: 65_536, description: 'JavaScript function body; `input` is {request, steps} (or the input expression); return JSON' }),
    input: Type.Optional(Expression),
    timeMs: Type.Optional(Millis(1000, 'CPU time limit, default 50')),
    memoryMb: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'memory limit, default 16' })),
  },
  closed,
);

const StepCommon = {
  name: StepName,
  description: Type.Optional(Type.String({ maxLength: 1024 })),
  when: Type.Optional({ ...Expression, description: 'run the step only when this is true' }),
  onError: Type.Optional(
    Type.Union([Type.Literal('fail'), Type.Literal('continue')], {
      description: 'fail (default): the flow answers with an error; continue: the step yields `fallback` and the response lists it as incomplete',
    }),
  ),
  fallback: Type.Optional(Type.Unknown({ description: 'the body a failed step yields under onError: continue; default null' })),
};

/**
 * A step: exactly one of call, parallel, switch, respond, transform, code (checked by the
 * validator, which names the step). Recursive through parallel and switch; the validator bounds
 * the nesting to FLOW_LIMITS.depth.
 */
export const FlowStep = Type.Recursive(
  (Step) =>
    Type.Object(
      {
        ...StepCommon,
        call: Type.Optional(Call),
        respond: Type.Optional(Respond),
        transform: Type.Optional(Transform),
        code: Type.Optional(Code),
        parallel: Type.Optional(
          Type.Object(
            {
              steps: Type.Array(Step, { minItems: 1, maxItems: FLOW_LIMITS.branches }),
              wait: Type.Optional(
                Type.Union([Type.Literal('all'), Type.Literal('referenced')], {
                  description: 'all (default): continue when every branch is done; referenced: continue at once, a later step waits for the branches it names',
                }),
              ),
            },
            closed,
          ),
        ),
        switch: Type.Optional(
          Type.Object(
            {
              cases: Type.Array(Type.Object({ when: Expression, steps: Type.Array(Step, { minItems: 1, maxItems: FLOW_LIMITS.steps }) }, closed), { minItems: 1, maxItems: 32 }),
              default: Type.Optional(Type.Array(Step, { minItems: 1, maxItems: FLOW_LIMITS.steps })),
            },
            closed,
          ),
        ),
      },
      closed,
    ),
  { $id: 'FlowStep' },
);

export const Flow = Type.Object(
  {
    execution: Type.Optional(
      Type.Union([Type.Literal('runtime'), Type.Literal('envoy')], {
        description:
          "runtime (default): Portico's flow runtime runs it; envoy: the gateway's Envoy runs it in the flows Wasm filter (parallel GET calls, pick/remove/rename, a JSON reply of step bodies; refused at write time otherwise)",
      }),
    ),
    timeoutMs: Type.Optional(Millis(120_000, 'deadline for the whole flow, default 10000')),
    maxRequestBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 << 20, description: 'incoming body limit, default 1 MiB' })),
    maxResponseBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 << 20, description: 'limit on each step response and on the flow response, default 4 MiB' })),
    steps: Type.Array(FlowStep, { minItems: 1, maxItems: FLOW_LIMITS.steps }),
  },
  closed,
);

/** Route-level transforms of an ordinary proxied route's bodies, without writing a flow. */
export const BodyTransform = Type.Object(
  {
    request: Type.Optional(
      Type.Object(
        {
          ...Reshape,
          format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('xml')], { description: 'what the service reads; the body is converted when the caller sent the other' })),
          xml: Type.Optional(XmlOptions),
        },
        closed,
      ),
    ),
    response: Type.Optional(
      Type.Object(
        {
          ...Reshape,
          format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('xml'), Type.Literal('accept')], { description: "what the caller gets; accept: by the caller's Accept header" })),
          xml: Type.Optional(XmlOptions),
        },
        closed,
      ),
    ),
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 << 20, description: 'default 4 MiB' })),
  },
  closed,
);

export type ReshapeSpec = { pick?: string[]; remove?: string[]; rename?: Record<string, string>; map?: string };
export type CallSpec = Static<typeof Call>;
export type RespondSpec = Static<typeof Respond>;
export type TransformSpec = Static<typeof Transform>;
export type CodeSpec = Static<typeof Code>;
/** A step as written (the schema's depth bound aside, the nesting is the same at every level). */
export interface FlowStepSpec {
  name: string;
  description?: string;
  when?: string;
  onError?: 'fail' | 'continue';
  fallback?: unknown;
  call?: CallSpec;
  respond?: RespondSpec;
  transform?: TransformSpec;
  code?: CodeSpec;
  parallel?: { steps: FlowStepSpec[]; wait?: 'all' | 'referenced' };
  switch?: { cases: Array<{ when: string; steps: FlowStepSpec[] }>; default?: FlowStepSpec[] };
}
export interface FlowSpec {
  execution?: 'runtime' | 'envoy';
  timeoutMs?: number;
  maxRequestBytes?: number;
  maxResponseBytes?: number;
  steps: FlowStepSpec[];
}
export type BodyTransformSpec = Static<typeof BodyTransform>;
