// CRUD endpoints for every model kind under /api/v1, generated from the kind registry:
// list (paged, filtered by tag), get, create, replace, merge-patch and delete, with ETags.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  canonicalResource,
  CHILD_FIELD,
  KINDS,
  KIND_ORDER,
  keyOf,
  metaKey,
  resourceSchemaErrors,
  sortedValues,
  type AnyResource,
  type KindName,
  type ModelSnapshot,
  type Mutation,
  type ApiKeyInput,
} from '../model/index.ts';
import { ModelValidationError, PreconditionFailedError, type ModelStore, type Precondition } from '../store/index.ts';
import { keyRange, PAGE_CACHE_MAX, pageCache, present, presentedJson, sortedKeys, upperBound } from './present.ts';
import { nameNestedErrors, nestedMutations, splitChildren, type NestedWrite } from './nested.ts';
import { json } from './openapi.ts';
import { handlerChecked, modelProblem, problems } from './problem.ts';
import { KIND_SCHEMAS, SCHEMA_NAME } from './schemas.ts';

/** Fields the API returns but a client never sets; accepted (and ignored) in bodies so GET → edit → PUT works. */
const OUTPUT_ONLY = ['revision', 'createdAt', 'updatedAt'];
const OUTPUT_ONLY_OF: Partial<Record<KindName, string[]>> = {
  certificates: ['hasPrivateKey', 'notAfter', 'notBefore', 'subject', 'issuer', 'fingerprintSha256'],
  jwtIssuers: ['nativeVerification'],
  gatewayGroups: ['enforcement'],
};

/** A resource's path parameters: its name, and its parent's for nested kinds. */
type Params = { parent?: string; name?: string };

export interface ResourceRouteOptions {
  store: ModelStore;
}

function etag(revision: number): string {
  return `"${revision}"`;
}

/** Parses If-Match / body revision into a store precondition. */
function precondition(kind: KindName, key: string, request: FastifyRequest, bodyRevision: unknown): Precondition | undefined {
  const ifMatch = request.headers['if-match'];
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*') throw problems.badRequest('If-None-Match supports only * (create only)', [{ field: 'header If-None-Match', message: 'must be *' }]);
    return { kind, key, revision: 'absent' };
  }
  if (ifMatch !== undefined) {
    if (ifMatch.trim() === '*') return { kind, key, revision: 'exists' };
    const m = /^\s*(?:W\/)?"(\d+)"\s*$/.exec(ifMatch);
    if (!m) throw problems.badRequest(`If-Match must be an ETag such as "3" (got ${ifMatch})`, [{ field: 'header If-Match', message: 'must be an ETag such as "3"' }]);
    return { kind, key, revision: Number(m[1]) };
  }
  if (bodyRevision !== undefined) {
    if (typeof bodyRevision !== 'number' || !Number.isInteger(bodyRevision)) throw problems.validation([{ field: 'revision', message: 'must be an integer' }]);
    return { kind, key, revision: bodyRevision };
  }
  return undefined;
}

// ── kind-specific list filters (query parameter → predicate) ──────────────────
const FILTERS: Partial<Record<KindName, Record<string, (r: AnyResource, v: string) => boolean>>> = {
  products: { gatewayGroup: (r, v) => (r as { gatewayGroups: string[] }).gatewayGroups.includes(v) },
  routes: {
    service: (r, v) => {
      const x = r as { service?: string; backends?: Array<{ service: string }> };
      return x.service === v || (x.backends ?? []).some((b) => b.service === v);
    },
  },
  subscriptions: {
    plan: (r, v) => (r as { plan: string }).plan === v,
    status: (r, v) => ((r as { status?: string }).status ?? 'active') === v,
  },
  apiKeys: { revoked: (r, v) => String((r as { revoked?: boolean }).revoked === true) === v },
  jwtIssuers: { issuer: (r, v) => (r as { issuer: string }).issuer === v },
};

const ListQuery = (kind: KindName) =>
  Type.Object(
    {
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
      cursor: Type.Optional(Type.String({ maxLength: 400 })),
      tag: Type.Optional(Type.String({ maxLength: 63 })),
      q: Type.Optional(Type.String({ maxLength: 200, description: 'substring of the name' })),
      ...Object.fromEntries(Object.keys(FILTERS[kind] ?? {}).map((f) => [f, Type.Optional(Type.String({ maxLength: 200 }))])),
    },
    { additionalProperties: false },
  );

// ── routes ────────────────────────────────────────────────────────────────────
/** CRUD for every kind (one plugin: the routes are generated from the kind registry). */
export const resourceRoutes: FastifyPluginAsyncTypebox<ResourceRouteOptions> = async (app, opts) => {
  for (const kind of KIND_ORDER) registerKind(app, kind, opts.store);
};

function registerKind(app: Parameters<typeof resourceRoutes>[0], kind: KindName, store: ModelStore): void {
  const info = KINDS[kind];
  const parent = info.parent;
  const parentInfo = parent ? KINDS[parent.kind] : undefined;
  const base = parentInfo ? `/api/v1/${parentInfo.path}/:parent/${info.path}` : `/api/v1/${info.path}`;
  const item = `${base}/:name`;
  const tag = info.singular.replace(/^\w/, (c) => c.toUpperCase());
  const tags = [parentInfo ? `${parentInfo.singular.replace(/^\w/, (c) => c.toUpperCase())}s` : `${tag}s`];
  const params = parent ? Type.Object({ parent: Type.String({ description: `${parentInfo!.singular} name` }), name: Type.String() }) : Type.Object({ name: Type.String() });
  // Top-level collections have no path parameters (an empty object: nothing in the document).
  const collectionParams = parent ? Type.Object({ parent: Type.String() }) : Type.Object({});
  const named = KIND_SCHEMAS.byKind[kind];

  const keyFor = (p: Params, name: string) => (parent ? `${p.parent}/${name}` : name);
  const requireParent = (p: Params) => {
    if (parent && !(store.current()[parent.kind] as ReadonlyMap<string, unknown>).has(p.parent!)) {
      throw problems.notFound(`${parentInfo!.singular} '${p.parent}'`, 'path parameter parent');
    }
  };
  const lookup = (p: Params): AnyResource => {
    requireParent(p);
    const r = (store.current()[kind] as ReadonlyMap<string, AnyResource>).get(keyFor(p, p.name!));
    if (!r) throw problems.notFound(`${info.singular} '${keyFor(p, p.name!)}'`, 'path parameter name');
    return r;
  };
  const reply = (res: FastifyReply, r: AnyResource, model: ModelSnapshot, status: number, extra: Record<string, unknown> = {}) => {
    const body = { ...present(kind, r, model), ...extra };
    const rev = model.meta.get(metaKey(kind, keyOf(kind, r)))?.revision;
    if (rev !== undefined) res.header('etag', etag(rev));
    return res.code(status).send(body);
  };

  /**
   * Normalises a write body: drops output-only fields, fills the key and parent from the URL
   * (rejecting a mismatch), validates it, and turns it into the stored resource.
   */
  const prepareBody = (raw: unknown, p: Params, urlName: string | undefined, existing: AnyResource | undefined) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw problems.validation([{ field: '(body)', message: 'must be a JSON object' }]);
    }
    const body: Record<string, unknown> = { ...raw };
    const bodyRevision = body.revision;
    for (const f of [...OUTPUT_ONLY, ...(OUTPUT_ONLY_OF[kind] ?? [])]) delete body[f];
    if (parent) {
      if (body[parent.field] !== undefined && body[parent.field] !== p.parent) {
        throw problems.validation([{ field: parent.field, message: `must match the URL ('${p.parent}') or be left out` }]);
      }
      delete body[parent.field];
    }
    if (urlName !== undefined) {
      if (body[info.keyField] === undefined) body[info.keyField] = urlName;
      else if (body[info.keyField] !== urlName) {
        throw problems.validation([{ field: info.keyField, message: `must match the URL ('${urlName}'); resources cannot be renamed` }]);
      }
    }
    if (kind === 'apiKeys') {
      const serverSet = ['hash', 'prefix'].filter((f) => body[f] !== undefined);
      if (serverSet.length) throw problems.validation(serverSet.map((field) => ({ field, message: 'is set by the server; import an existing key with the key field' })));
    }
    const errors = resourceSchemaErrors(kind, body);
    if (errors.length) throw problems.validation(errors);
    let resource: Record<string, unknown> = parent ? { [parent.field]: p.parent, ...body } : body;
    let minted: string | undefined;
    if (kind === 'certificates' && resource.privateKey === undefined && (existing as { privateKey?: string } | undefined)?.privateKey) {
      resource.privateKey = (existing as { privateKey: string }).privateKey;
    }
    if (kind === 'apiKeys') {
      const { key, ...rest } = resource as ApiKeyInput & Record<string, unknown>;
      const hasher = store.apiKeyHasher();
      if (key !== undefined) {
        resource = { ...rest, prefix: key.split('_')[1], hash: hasher.hash(key), secret: key };
      } else if (existing) {
        const e = existing as { prefix: string; hash: string; secret?: string };
        resource = { ...rest, prefix: e.prefix, hash: e.hash, ...(e.secret !== undefined ? { secret: e.secret } : {}) };
      } else {
        const m = hasher.mint('ptk');
        minted = m.secret;
        resource = { ...rest, prefix: m.prefix, hash: m.hash, secret: m.secret };
      }
    }
    return { resource: resource as unknown as AnyResource, bodyRevision, minted };
  };

  const commit = async (request: FastifyRequest, mutation: Mutation, pre: Precondition | undefined, summary: string, nested?: NestedWrite) => {
    try {
      return await store.commit({
        mutations: [mutation, ...(nested?.mutations ?? [])],
        actor: request.principal?.name ?? 'unknown',
        summary,
        ...(pre ? { preconditions: [pre] } : {}),
      });
    } catch (e) {
      if (e instanceof ModelValidationError) throw modelProblem(nested ? nameNestedErrors(e, nested.fieldOf) : e, mutation.op === 'delete' ? { kind, key: mutation.key } : undefined);
      if (e instanceof PreconditionFailedError) {
        if (e.expected === 'absent') throw problems.conflict(e.message, [{ field: info.keyField, message: `names ${info.singular} '${mutation.key}', which already exists` }]);
        throw e.actual === undefined ? problems.notFound(`${info.singular} '${mutation.key}'`, 'path parameter name') : problems.preconditionFailed(e.message);
      }
      throw e;
    }
  };

  const write = async (request: FastifyRequest, p: Params, body: unknown, res: FastifyReply, mode: 'create' | 'replace' | 'patch') => {
    requireParent(p);
    const model = store.current();
    let urlName = p.name;
    // No body, null, an array or a scalar: refused before anything reads a field of it.
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw problems.validation([{ field: '(body)', message: mode === 'patch' ? 'must be a JSON merge patch object' : 'must be a JSON object' }]);
    }
    const fields: Record<string, unknown> = { ...body };
    let raw: Record<string, unknown> = fields;
    if (mode === 'create') {
      urlName = undefined;
      if (typeof fields[info.keyField] !== 'string') {
        throw problems.validation([{ field: info.keyField, message: fields[info.keyField] === undefined ? 'is required' : 'must be of type string' }]);
      }
    }
    const name = urlName ?? String(fields[info.keyField]);
    const key = keyFor(p, name);
    const existing = (model[kind] as ReadonlyMap<string, AnyResource>).get(key);
    if (mode === 'patch') {
      if (!existing) throw problems.notFound(`${info.singular} '${key}'`, 'path parameter name');
      const current = { ...(canonicalResource(kind, existing) as Record<string, unknown>) };
      if (kind === 'apiKeys') {
        delete current.prefix;
        delete current.hash;
        delete current.secret;
      }
      if (kind === 'certificates') delete current.privateKey;
      raw = mergePatched(current, fields);
    }
    // A product with its routes, a partner with its subscriptions…: the shape `export` writes.
    const { own, children } = splitChildren(kind, raw);
    const { resource, bodyRevision, minted } = prepareBody(own, p, mode === 'create' ? undefined : urlName, existing);
    const nested = children.size ? nestedMutations(kind, key, resource, children, store, model) : undefined;
    if (nested?.errors.length) throw problems.validation(nested.errors);
    let pre = precondition(kind, key, request, mode === 'patch' ? fields.revision : bodyRevision);
    if (mode === 'create') pre = { kind, key, revision: 'absent' };
    if (mode === 'patch' && !pre) pre = { kind, key, revision: 'exists' };
    const summary = `${existing ? 'update' : 'create'} ${info.singular} ${key}${nested ? ` with its ${[...children.keys()].map((c) => CHILD_FIELD[c]).join(', ')}` : ''}`;
    const result = await commit(request, { kind, op: 'put', key, resource }, pre, summary, nested);
    const stored = (result.snapshot[kind] as ReadonlyMap<string, AnyResource>).get(key)!;
    const created = result.changes.some((c) => c.kind === kind && c.key === key && c.action === 'create');
    // Nested children come back as written (never a secret: present() drops hashes and keys).
    const shown: Record<string, unknown> = minted ? { key: minted } : {};
    for (const child of children.keys()) {
      shown[CHILD_FIELD[child]!] = sortedValues(result.snapshot, child)
        .filter((c) => keyOf(child, c).startsWith(`${key}/`))
        .map((c) => present(child, c, result.snapshot));
    }
    return reply(res, stored, result.snapshot, created ? 201 : 200, shown);
  };

  const docs = (summary: string, operationId: string, extra: Record<string, unknown> = {}) => ({ tags, summary, operationId, ...extra });
  const name = SCHEMA_NAME[kind];
  const plural = name.endsWith('y') ? `${name.slice(0, -1)}ies` : `${name}s`;

  app.get(
    base,
    {
      schema: {
        ...docs(`List ${info.singular}s`, `list${plural}`),
        params: collectionParams,
        querystring: ListQuery(kind),
        response: { 200: json(`A page of ${info.singular}s`, named.page) },
      },
    },
    async (request, res) => {
      const p: Params = request.params;
      requireParent(p);
      const q = request.query;
      const model = store.current();
      let pages = pageCache.get(model);
      const cached = pages?.get(request.url);
      if (cached !== undefined) return res.type('application/json; charset=utf-8').send(cached);
      const limit = Number(q.limit ?? 100);
      const prefix = parent ? `${p.parent}/` : '';
      let after: string | undefined;
      if (q.cursor) {
        after = Buffer.from(q.cursor, 'base64url').toString('utf8');
        if (!after || /[\0]/.test(after)) throw problems.validation([{ field: 'cursor', message: 'is not a cursor this API returned' }]);
      }
      // The kind's own filters (query parameters the schema declares as strings).
      const given: Record<string, unknown> = q;
      const filters = Object.entries(FILTERS[kind] ?? {}).flatMap(([f, pred]) => {
        const v = given[f];
        return typeof v === 'string' ? [(r: AnyResource) => pred(r, v)] : [];
      });
      const resources = model[kind] as ReadonlyMap<string, AnyResource>;
      let keys = keyRange(sortedKeys(resources), prefix);
      if (q.tag || q.q || filters.length) {
        keys = keys.filter((k) => {
          const r = resources.get(k)!;
          return (
            (!q.tag || ((r as { tags?: string[] }).tags ?? []).includes(q.tag)) &&
            (!q.q || String((r as unknown as Record<string, unknown>)[info.keyField]).includes(q.q)) &&
            filters.every((matches) => matches(r))
          );
        });
      }
      const start = after === undefined ? 0 : upperBound(keys, after);
      const page = keys.slice(start, start + limit);
      const last = page[page.length - 1];
      const more = start + limit < keys.length;
      // Items are pre-serialised per resource version, so a page costs a join, not a walk.
      const serialize = res.compileSerializationSchema(named.answer);
      const items = page.map((k) => presentedJson(kind, resources.get(k)!, model, serialize));
      const body = `{"items":[${items.join(',')}],"total":${keys.length}${more && last ? `,"nextCursor":"${Buffer.from(last).toString('base64url')}"` : ''}}`;
      if (!pages) pageCache.set(model, (pages = new Map()));
      if (pages.size >= PAGE_CACHE_MAX) pages.clear();
      pages.set(request.url, body);
      return res.type('application/json; charset=utf-8').send(body);
    },
  );

  app.get(item, { schema: { ...docs(`Get a ${info.singular}`, `get${name}`), params, response: { 200: json(`The ${info.singular}`, named.answer) } } }, async (request, res) => {
    const r = lookup(request.params);
    const model = store.current();
    const rev = model.meta.get(metaKey(kind, keyOf(kind, r)))?.revision;
    if (rev !== undefined) res.header('etag', etag(rev));
    return res.type('application/json; charset=utf-8').send(presentedJson(kind, r, model, res.compileSerializationSchema(named.answer)));
  });

  app.post(
    base,
    {
      schema: {
        ...docs(
          `Create a ${info.singular}`,
          `create${name}`,
          kind === 'apiKeys' ? { description: 'Generates the key unless `key` imports one; the key is returned once, in this response only.' } : {},
        ),
        params: collectionParams,
        body: handlerChecked(named.input),
        response: { 201: json(`Created`, named.written) },
      },
    },
    (request, res) => write(request, request.params, request.body, res, 'create'),
  );

  app.put(
    item,
    {
      schema: {
        ...docs(`Create or replace a ${info.singular}`, `replace${name}`, {
          description: 'Send If-Match with the ETag you read to avoid overwriting a concurrent change; If-None-Match: * creates only.',
        }),
        params,
        body: handlerChecked(named.input),
        response: { 200: json('Replaced', named.written), 201: json('Created', named.written) },
      },
    },
    (request, res) => write(request, request.params, request.body, res, 'replace'),
  );

  app.patch(
    item,
    { schema: { ...docs(`Change fields of a ${info.singular} (JSON merge patch, RFC 7396)`, `update${name}`), params, response: { 200: json('Changed', named.written) } } },
    (request, res) => write(request, request.params, request.body, res, 'patch'),
  );

  app.delete(item, { schema: { ...docs(`Delete a ${info.singular}`, `delete${name}`), params, response: { 204: { description: 'Deleted', type: 'null' } } } }, async (request, res) => {
    const r = lookup(request.params);
    const key = keyOf(kind, r);
    const pre = precondition(kind, key, request, undefined);
    await commit(request, { kind, op: 'delete', key }, pre, `delete ${info.singular} ${key}`);
    return res.code(204).send();
  });
}

/** RFC 7396 JSON merge patch of an object by an object (an object again). */
function mergePatched(target: Record<string, unknown>, patch: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 7396 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  return mergePatched(target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {}, patch);
}
