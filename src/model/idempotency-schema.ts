// A route's duplicate-request protection (`idempotency`): the schema of its settings and their
// defaults, shared by the admin API, declarative files and the translator.
import { type Static, Type } from '@sinclair/typebox';

/** Methods a key may protect: the unsafe ones (a safe method repeats harmlessly by definition). */
export const IDEMPOTENT_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;

export const IDEMPOTENCY_DEFAULTS = {
  required: false,
  ttlSeconds: 86_400,
  methods: ['PATCH', 'POST'] as Array<(typeof IDEMPOTENT_METHODS)[number]>,
} as const;

export const Idempotency = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'default true; false keeps the settings but turns the protection off' })),
    required: Type.Optional(Type.Boolean({ description: 'a request of a protected method without an Idempotency-Key header is refused with 400 (default false: it proceeds unprotected)' })),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 604_800, description: 'how long a key and its stored response are kept after the first request (default 86400: one day)' })),
    methods: Type.Optional(
      Type.Array(Type.Union(IDEMPOTENT_METHODS.map((m) => Type.Literal(m))), {
        minItems: 1,
        uniqueItems: true,
        description: 'the unsafe methods protected (default POST and PATCH)',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'duplicate-request protection with the Idempotency-Key header: a repeat of a request (same key, caller, method, path and body) gets the stored response, marked Idempotent-Replayed; a repeat while the first is in flight 409; the same key with another request 422',
  },
);
export type Idempotency = Static<typeof Idempotency>;

/** The methods a route's settings protect (defaults resolved), or none when off. */
export function protectedMethods(route: { idempotency?: Idempotency; match: { methods?: string[] } }): string[] {
  const i = route.idempotency;
  if (!i || i.enabled === false) return [];
  const wanted: readonly string[] = i.methods ?? IDEMPOTENCY_DEFAULTS.methods;
  const matched = route.match.methods;
  return [...wanted].filter((m) => !matched || matched.includes(m)).sort();
}

/** Whole-model problems of a route's idempotency settings: [field, message] pairs. */
export function idempotencyProblems(route: { idempotency?: Idempotency; match: { methods?: string[] }; directResponse?: unknown }): Array<[string, string]> {
  const i = route.idempotency;
  if (!i || i.enabled === false) return [];
  if (route.directResponse !== undefined) return [['idempotency', 'a direct response has no upstream to protect']];
  if (protectedMethods(route).length === 0)
    return [[i.methods ? 'idempotency.methods' : 'idempotency', `the route matches none of the protected methods (${(i.methods ?? IDEMPOTENCY_DEFAULTS.methods).join(', ')})`]];
  return [];
}
