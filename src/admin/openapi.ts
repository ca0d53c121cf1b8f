// What the OpenAPI document promises about responses: the status codes each operation really
// answers with (201 creates, 204 deletes, the 4xx every request can meet) and one named Problem
// schema for every error. test/admin/fuzz.test.ts checks every answer against these lists.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, RouteOptions } from 'fastify';

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
        Type.Object({
          field: Type.String({ description: "what is wrong: a body field (endpoints[0].host), 'path parameter name', 'header If-Match', '(body)', '(url)', '(headers)'" }),
          message: Type.String(),
          resource: Type.Optional(Type.String({ description: 'the resource the field belongs to, when not the one in the URL' })),
        }),
      ),
    ),
  },
  { $id: 'Problem', title: 'Problem', description: 'An error (RFC 9457); every 4xx names at least one field' },
);

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
  if (method === 'POST' || method === 'PUT' || method === 'PATCH') codes.push(413, 415);
  if (method !== 'GET' && method !== 'HEAD' && route.url.startsWith('/api/v1/')) codes.push(409, 412, 503);
  return codes.sort((a, b) => a - b);
}

/** Adds the Problem schema and documents every route's responses; call before routes are registered. */
export function documentResponses(app: FastifyInstance): void {
  app.addSchema(ProblemSchema);
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ?? {}) as { hide?: boolean; response?: Record<string, unknown> };
    if (schema.hide) return;
    const method = Array.isArray(route.method) ? route.method[0]! : route.method;
    const response: Record<string, unknown> = { ...(schema.response ?? {}) };
    if (!Object.keys(response).some((c) => c.startsWith('2'))) {
      for (const [code, description] of Object.entries(successes(method, route.url))) response[code] = code === '204' ? { description, type: 'null' } : { description };
    }
    for (const code of errors(method, route)) if (!(code in response)) response[code] = problem(code);
    route.schema = { ...schema, response };
  });
}

/** Names component schemas by their $id (Problem, …) instead of def-0, def-1. */
export const refResolver = {
  buildLocalReference(json: { $id?: string; title?: string }, _base: unknown, _fragment: unknown, i: number): string {
    return json.$id ?? `def-${i}`;
  },
};
