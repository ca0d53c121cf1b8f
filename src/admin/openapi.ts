// What the OpenAPI document promises about responses: the status codes each operation really
// answers with (201 creates, 204 deletes, the 4xx every request can meet) and one named Problem
// schema for every error. test/admin/fuzz.test.ts checks every answer against these lists.
import SerializerSelector from '@fastify/fast-json-stringify-compiler';
import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { KIND_SCHEMAS, ref } from './schemas.ts';

/** The document's tags (operations group under them), each described. */
export const TAGS = [
  { name: 'Gateway groups', description: 'Fleets of Envoys that share one configuration: listeners, TLS, limits mode' },
  { name: 'Certificates', description: 'TLS certificates for listeners (private keys are stored sealed and never shown)' },
  { name: 'Services', description: 'Upstreams: endpoints, TLS, health checks, retries' },
  { name: 'JWT issuers', description: 'Token issuers whose JWTs authenticate callers' },
  { name: 'Products', description: 'APIs as partners subscribe to them, with their routes' },
  { name: 'Plans', description: 'Rate limits and quotas a subscription grants' },
  { name: 'Partners', description: 'Callers of the gateway, with their subscriptions, API keys, mTLS identities and portal tokens' },
  { name: 'Declarative config', description: 'The whole model as one document: export, apply, dry run' },
  { name: 'Admin tokens', description: 'Tokens for this API (admin or viewer)' },
  { name: 'Audit', description: 'Who changed what, when' },
  { name: 'Fleet', description: 'Connected Envoys and what they ACKed or NACKed' },
  { name: 'Health', description: 'Liveness and readiness (unauthenticated)' },
  { name: 'Cache', description: 'Purging the response caches of routes on every Envoy' },
  { name: 'Flows', description: 'The flow designer: check a flow, try it once against the real services' },
  { name: 'Console', description: 'Sessions and data of the web console' },
  { name: 'portal', description: 'The partner portal: what a partner token may see and do for its own partner' },
];

const WHY: Record<number, string> = {
  400: 'Malformed request: invalid JSON or YAML, a bad percent-encoding, a bad If-Match',
  401: 'No valid admin token',
  403: 'The token has the viewer role; this needs admin',
  404: 'The resource (or its parent) does not exist',
  409: 'Already exists, still used by another resource, or conflicts with one',
  412: 'If-Match names a revision that is no longer current',
  413: 'The body is larger than the limit',
  414: 'A path parameter is longer than any name',
  415: 'Unsupported Content-Type',
  422: 'A field is invalid (named in errors)',
  431: 'The URL and headers are too large',
  503: 'The database is unavailable; nothing was written (Retry-After)',
};

const problem = (status: number) => ({ description: WHY[status], content: { 'application/problem+json': { schema: { $ref: 'Problem#' } } } });

/** Success codes by method and path, where the route does not declare its own. */
function successes(method: string, url: string): Record<number, string> {
  const resourceCollection = /^\/api\/v1\/(?!config$|audit$|fleet$)[a-z-]+(\/:parent\/[a-z-]+)?$/.test(url);
  switch (method) {
    case 'POST':
      return resourceCollection ? { 201: 'Created' } : { 200: 'Done' };
    case 'PUT':
      return { 200: 'Replaced', 201: 'Created' };
    case 'DELETE':
      return { 204: 'Deleted' };
    default:
      return { 200: 'OK' };
  }
}

/** Error codes an operation can answer with, beyond its own. */
function errors(method: string, route: RouteOptions): number[] {
  const codes = [400, 404, 414, 422, 431];
  if (!route.config?.public) codes.push(401, 403);
  // fastify parses a DELETE's body too, when one is sent: its size and media type can be refused as well.
  if (method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE') codes.push(413, 415);
  if (method !== 'GET' && method !== 'HEAD' && route.url.startsWith('/api/v1/')) codes.push(409, 412, 503);
  else if (route.config?.readsDatabase) codes.push(503);
  return codes.sort((a, b) => a - b);
}

/** A JSON answer with a named schema (a ref()), as fastify serialises it, the document shows it and the type provider types the reply. */
export function json<S extends TSchema>(description: string, schema: S): { description: string; content: { 'application/json': { schema: S } } } {
  return { description, content: { 'application/json': { schema } } };
}

/**
 * Registers the named schemas (the kinds', Problem, and `more` from other features) and documents
 * every route's responses; call before routes are registered. `byObject` names schemas that routes
 * pass as they are (the object itself): each is registered under its name and referenced.
 */
export function documentResponses(app: FastifyInstance, more: readonly TSchema[] = [], byObject: Readonly<Record<string, TSchema>> = {}): void {
  for (const schema of [...KIND_SCHEMAS.schemas, ...more]) app.addSchema(schema);
  const names = new Map<unknown, string>();
  for (const [name, schema] of Object.entries(byObject)) {
    app.addSchema({ ...schema, $id: name, title: name });
    names.set(schema, name);
  }
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ?? {}) as { hide?: boolean; response?: Record<string, unknown> };
    if (schema.hide) return;
    const response: Record<string, unknown> = { ...(schema.response ?? {}) };
    for (const [code, r] of Object.entries(response)) {
      const name = names.get(r);
      if (name) response[code] = json((r as { description?: string }).description ?? 'OK', ref(name));
    }
    const method = Array.isArray(route.method) ? route.method[0]! : route.method;
    // Authentication is the same everywhere (auth.ts): an admin token, or the console's session cookie.
    const security: Array<Record<string, string[]>> = route.config?.public ? [] : [{ bearer: [] }, { session: [] }];
    const operationId = (schema as { operationId?: string }).operationId ?? operationIdOf(method, route.url);
    if (!Object.keys(response).some((c) => c.startsWith('2'))) {
      for (const [code, description] of Object.entries(successes(method, route.url))) response[code] = code === '204' ? { description, type: 'null' } : { description };
    }
    for (const code of errors(method, route)) if (!(code in response)) response[code] = problem(code);
    route.schema = { ...schema, operationId, security, response };
  });
}

/** An operation id from the method and path, for routes that do not name theirs: `GET /console/api/session` → getConsoleApiSession. */
export function operationIdOf(method: string, url: string): string {
  const words = url
    .replace(/^\/api\/v1\//, '/')
    .split('/')
    .filter((w) => w && !w.startsWith(':'))
    .flatMap((w) => w.split('-'));
  return method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

/** Names component schemas by their $id (Problem, …) instead of def-0, def-1. */
export const refResolver = {
  buildLocalReference(json: { $id?: string; title?: string }, _base: unknown, _fragment: unknown, i: number): string {
    return json.$id ?? `def-${i}`;
  },
};

/**
 * fast-json-stringify, compiling each distinct response schema once per schema scope, on its first
 * answer: every route answers its errors with the same Problem reference and many share answers;
 * compiling them per route and status (~800 compilations) at start made the server take seconds
 * longer to become ready, and even once per distinct schema it was ~3 CPU-s of the start.
 */
export function sharedSerializers(): SerializerSelector.SerializerFactory {
  const build = SerializerSelector();
  return (externalSchemas, options) => {
    const compile = build(externalSchemas, options);
    const compiled = new Map<string, SerializerSelector.Serializer>();
    return (route) => {
      const key = JSON.stringify(route.schema);
      let serialize = compiled.get(key);
      if (!serialize) {
        let fn: SerializerSelector.Serializer | undefined;
        serialize = (data) => (fn ??= compile(route))(data);
        compiled.set(key, serialize);
      }
      return serialize;
    };
  };
}
