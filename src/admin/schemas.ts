// The admin API's named schemas (#/components/schemas): each kind as the API answers with it (the
// allow-list fastify serialises through), its request body, its list page, and Problem. Derived
// from the model's schemas, so validation, serialisation and the OpenAPI document share one source.
import { Type, type Static, type TProperties, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { ApiKeyPrefix, CHILD_FIELD, childKinds, KINDS, KIND_ORDER, type KindName } from '../model/index.ts';

/** Component names per kind: `#/components/schemas/<name>` (and `<name>Input`, `<name>Page`). */
export const SCHEMA_NAME: Readonly<Record<KindName, string>> = {
  gatewayGroups: 'GatewayGroup',
  certificates: 'Certificate',
  services: 'Service',
  products: 'Product',
  routes: 'Route',
  plans: 'Plan',
  partners: 'Partner',
  subscriptions: 'Subscription',
  apiKeys: 'ApiKey',
  jwtIssuers: 'JwtIssuer',
  mtlsIdentities: 'MtlsIdentity',
};

/**
 * A reference to a named schema, resolved by fastify (validation, serialisation) and @fastify/swagger.
 * `T` is what the TypeBox type provider types a reply (or parameter) through this reference as.
 */
export const ref = <T = unknown>(id: string): TUnsafe<T> => Type.Unsafe<T>({ $ref: `${id}#` });

/** A reference to a named schema object (by its `$id`), typed as that schema. */
export function refTo<S extends TSchema>(schema: S): TUnsafe<Static<S>> {
  if (schema.$id === undefined) throw new Error('refTo needs a schema with an $id');
  return ref<Static<S>>(schema.$id);
}

/** RFC 9457 problem details as this API writes them (see problem.ts). */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'urn:portico:problem:<code>' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.String(),
    instance: Type.Optional(Type.String({ description: 'the request path' })),
    errors: Type.Optional(
      Type.Array(
        Type.Object(
          {
            field: Type.String({ description: "what is wrong: a body field (endpoints[0].host), 'path parameter name', 'header If-Match', '(body)', '(url)', '(headers)'" }),
            message: Type.String(),
            resource: Type.Optional(Type.String({ description: 'the resource the field belongs to, when not the one in the URL' })),
          },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { $id: 'Problem', title: 'Problem', description: 'An error (RFC 9457); every 4xx names at least one field', additionalProperties: false },
);

// Bookkeeping every stored resource carries in answers (never in bodies the API reads).
const META: TProperties = {
  revision: Type.Integer({ minimum: 1, readOnly: true, description: 'the ETag; send it back in If-Match (or as revision) to update only this version' }),
  createdAt: Type.String({ format: 'date-time', readOnly: true }),
  updatedAt: Type.String({ format: 'date-time', readOnly: true }),
};

// What answers add to, or leave out of, the input fields. Secrets are left out here, not only in
// present(): a field missing from a response schema is never sent.
const ANSWER_EXTRA: Partial<Record<KindName, TProperties>> = {
  certificates: {
    hasPrivateKey: Type.Boolean({ description: 'whether a private key is stored (it is never shown)' }),
    subject: Type.Optional(Type.String()),
    issuer: Type.Optional(Type.String()),
    notBefore: Type.Optional(Type.String({ format: 'date-time' })),
    notAfter: Type.Optional(Type.String({ format: 'date-time' })),
    fingerprintSha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
  },
  jwtIssuers: {
    nativeVerification: Type.Object(
      { envoy: Type.Boolean(), reason: Type.Optional(Type.String({ description: 'why the callout verifies these tokens instead' })) },
      { additionalProperties: false, description: 'in native mode: whether Envoy verifies this issuer’s tokens itself, or the callout does (and why)' },
    ),
  },
  gatewayGroups: {
    enforcement: Type.Optional(
      Type.Object(
        {
          authz: Type.Object(
            { mode: Type.Union([Type.Literal('native'), Type.Literal('exact')]), stated: Type.Boolean() },
            {
              additionalProperties: false,
              description: 'native: Envoy authorizes every route it can decide alone (the others stay on the callout); exact: the ext_authz callout checks every authenticated request',
            },
          ),
          rateLimit: Type.Object(
            {
              mode: Type.Union([Type.Literal('native'), Type.Literal('combined'), Type.Literal('service')]),
              stated: Type.Boolean(),
              reason: Type.Optional(Type.String({ description: 'why a group that states no mode counts with the callout' })),
              calloutProducts: Type.Optional(
                Type.Record(Type.String(), Type.String(), {
                  description: 'in a native group that states no mode: the products whose plans the callout counts (and authorizes), each with why; the other products stay native',
                }),
              ),
            },
            { additionalProperties: false },
          ),
        },
        { additionalProperties: false, description: 'the modes the group runs: as stated, else native; rate limits fall back to combined where native cannot count the plans (reason)' },
      ),
    ),
  },
  apiKeys: {
    prefix: ApiKeyPrefix,
    storage: Type.Union([Type.Literal('sealed'), Type.Literal('hash-only')], {
      description: 'sealed: the whole key is stored encrypted (Envoy can check it itself); hash-only: imported as a hash, checked by the callout',
    }),
  },
};
const ANSWER_OMIT: Partial<Record<KindName, string[]>> = { certificates: ['privateKey'], apiKeys: ['key', 'hash'] };

/**
 * A model schema as an answer schema: no defaults (the serialiser would invent values the
 * resource does not have) and subschemas that carry their own $id (FlowStep) replaced by a
 * reference, collected in `shared` to be registered once.
 */
function answerForm(schema: unknown, shared: Map<string, unknown>, top = true): unknown {
  if (Array.isArray(schema)) return schema.map((s) => answerForm(s, shared, false));
  if (schema === null || typeof schema !== 'object') return schema;
  const s = schema as Record<string, unknown>;
  if (!top && typeof s.$id === 'string') {
    if (!shared.has(s.$id)) {
      shared.set(s.$id, s);
      shared.set(s.$id, answerForm(s, shared, true));
    }
    return { $ref: `${s.$id}#` };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'default') continue;
    out[k] = k === 'properties' || k === 'patternProperties' ? Object.fromEntries(Object.entries(v as object).map(([p, x]) => [p, answerForm(x, shared, false)])) : answerForm(v, shared, false);
  }
  return out;
}

type Json = Record<string, unknown>;

/** A closed object schema from properties and the names among them that are required. */
function object(id: string, properties: Json, required: string[], description?: string): TSchema {
  return { $id: id, title: id, type: 'object', properties, required: [...new Set(required)], additionalProperties: false, ...(description ? { description } : {}) } as unknown as TSchema;
}

function without(props: Json, omit: string[]): Json {
  const out = { ...props };
  for (const f of omit) delete out[f];
  return out;
}

/** References to a kind's named schemas, for route definitions. */
export interface KindSchemas {
  /** The resource as GET, list pages and writes answer with it. */
  answer: TSchema;
  /** What a write answers with: the resource, plus nested children written with it, plus a minted key once. */
  written: TSchema;
  /** The list page envelope. */
  page: TSchema;
  /** The request body of POST and PUT. */
  input: TSchema;
}

const idOf = (s: TSchema): string | undefined => (s as { $id?: string }).$id;

/** Every named schema of the resource kinds (each registered once with addSchema), and references to each kind's. */
function kindSchemas(): { schemas: TSchema[]; byKind: Record<KindName, KindSchemas> } {
  const shared = new Map<string, unknown>();
  const schemas: TSchema[] = [ProblemSchema];
  const byKind = {} as Record<KindName, KindSchemas>;
  for (const kind of KIND_ORDER) {
    const info = KINDS[kind];
    const name = SCHEMA_NAME[kind];
    const model = answerForm(info.schema, shared) as { properties: Json; required?: string[] };
    const omit = ANSWER_OMIT[kind] ?? [];
    const extra = Type.Object({ ...(ANSWER_EXTRA[kind] ?? {}), ...META });
    const parent = info.parent ? { [info.parent.field]: Type.String({ description: `the ${KINDS[info.parent.kind].singular} it belongs to` }) } : {};
    const answerProps = { ...parent, ...without(model.properties, omit), ...extra.properties };
    const answerRequired = [...Object.keys(parent), ...(model.required ?? []).filter((f) => !omit.includes(f)), ...(extra.required ?? [])];
    const answer = object(name, answerProps, answerRequired, `A ${info.singular} as the API shows it: never a secret`);

    const children = childKinds(kind);
    const added: Json = Object.fromEntries(
      children.map((c) => [CHILD_FIELD[c]!, Type.Array(ref(SCHEMA_NAME[c]), { description: `the ${KINDS[c].singular}s as written, when the request sent them` })]),
    );
    if (kind === 'apiKeys') {
      added.key = Type.String({ description: 'the whole key, in the answer to the write that minted it only; it is never shown again' });
    }
    const written = Object.keys(added).length ? object(`${name}Written`, { ...answerProps, ...added }, answerRequired, `What a write of a ${info.singular} answers with`) : ref(name);

    const page = Type.Object(
      {
        items: Type.Array(ref(name)),
        total: Type.Integer({ minimum: 0, description: 'how many match, on all pages' }),
        nextCursor: Type.Optional(Type.String({ description: 'pass as cursor for the next page; absent on the last page' })),
      },
      { $id: `${name}Page`, title: `${name}Page`, additionalProperties: false },
    );

    // A parent's body may carry its children as `export` writes them (see nested.ts).
    const childInputs = Object.fromEntries(
      children.map((c) => [CHILD_FIELD[c]!, Type.Array(ref(`${SCHEMA_NAME[c]}Input`), { description: `the ${KINDS[c].singular}s, exactly (others are deleted)` })]),
    );
    const serverSet = kind === 'apiKeys' ? ['prefix', 'hash'] : [];
    const input = object(
      `${name}Input`,
      { ...without(model.properties, serverSet), ...childInputs },
      (model.required ?? []).filter((f) => !serverSet.includes(f)),
      `The body that creates or replaces a ${info.singular}`,
    );
    schemas.push(answer, page, input);
    // The partner portal's new and rotated keys: always minted, so the key is always there.
    if (kind === 'apiKeys')
      schemas.push(
        object(
          'ApiKeyMinted',
          { ...answerProps, ...added, replaces: Type.String({ description: 'the key this one replaces (a rotation)' }) },
          [...answerRequired, 'key'],
          'A newly minted API key, with the whole key shown once',
        ),
      );
    if (idOf(written) !== undefined) schemas.push(written);
    byKind[kind] = { answer: ref(name), written: ref(idOf(written) ?? name), page: ref(`${name}Page`), input: ref(`${name}Input`) };
  }
  const embedded = [...shared.values()] as TSchema[];
  return { schemas: [...embedded, ...schemas], byKind };
}

export const KIND_SCHEMAS = kindSchemas();
