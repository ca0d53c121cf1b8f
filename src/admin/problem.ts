// RFC 9457 problem details: every admin API error is one of these, naming the field that is
// wrong, and every error the store or fastify raises is mapped here in one place.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { KINDS, DocumentSyntaxError, schemaErrors, type FieldError, type ModelError } from '../model/index.ts';
import { ModelValidationError, PreconditionFailedError, StoreUnavailableError, DuplicateError, InvalidValueError, unavailableSummary } from '../store/index.ts';

export interface ProblemError {
  field: string;
  message: string;
  /** The resource the field belongs to, when it is not the one in the request URL. */
  resource?: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: ProblemError[];
}

/** An error that already knows its HTTP problem. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    detail: string,
    readonly errors?: ProblemError[],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

/** Marks a body schema fastify must not validate (server.ts's validator compiler passes such bodies through). */
export const HANDLER_CHECKED: unique symbol = Symbol('portico.handlerChecked');

/**
 * A route's body schema for a body its handler shapes before checking it, with checkedBody() (the
 * resources drop echoed read-only fields and merge patches; the flow designer checks the flow apart;
 * console sign-in answers a wrong content type first),
 * so fastify does not validate it and the type provider types it unknown until checked. The document
 * shows the schema unchanged. Every other body schema is validated by fastify (server.ts), with the
 * same 422 naming each field; a route whose other checks must answer first (404, 403, 409) sets
 * attachValidation and takes the body with validBody() where those checks end.
 */
export const handlerChecked = <S extends TSchema>(schema: S): TUnsafe<unknown> => Type.Unsafe<unknown>({ ...schema, [HANDLER_CHECKED]: true });

/** The body, validated against its schema (422 naming each field, after `earlier` errors) and typed as it. */
export function checkedBody<S extends TSchema>(schema: S, body: unknown, earlier: FieldError[] = []): Static<S> {
  const errors = [...earlier, ...schemaErrors(schema, body)];
  if (errors.length) throw problems.validation(errors);
  // Ajv has just checked it against the same schema.
  return body as Static<S>;
}

/**
 * The body of a route with attachValidation, once its own checks have answered: fastify's 422 if the
 * body failed its schema (a path or query parameter's error was answered before the handler ran).
 */
export function validBody<B>(request: { body: B; validationError?: Error }): B {
  if (request.validationError) throw request.validationError;
  return request.body;
}

// Every 4xx names what is wrong: a body field, a path or query parameter, a header, or the
// request as a whole ('(body)', '(url)', '(headers)').
const at = (field: string, message: string): ProblemError[] => [{ field, message }];

export const problems = {
  validation: (errors: FieldError[], detail?: string) =>
    new HttpProblem(
      422,
      'validation',
      'Invalid request',
      detail ?? summarize(errors),
      errors.map((e) => ({ field: e.field, message: e.message })),
    ),
  badRequest: (detail: string, errors: ProblemError[]) => new HttpProblem(400, 'bad-request', 'Bad request', detail, errors),
  notFound: (what: string, field = '(url)') => new HttpProblem(404, 'not-found', 'Not found', `${what} does not exist`, at(field, `names ${what}, which does not exist`)),
  conflict: (detail: string, errors: ProblemError[]) => new HttpProblem(409, 'conflict', 'Conflict', detail, errors),
  preconditionFailed: (detail: string, field = 'header If-Match') => new HttpProblem(412, 'precondition-failed', 'Precondition failed', detail, at(field, detail)),
  unauthorized: (detail: string) => new HttpProblem(401, 'unauthorized', 'Unauthorized', detail, at('header Authorization', detail), { 'www-authenticate': 'Bearer realm="portico-admin"' }),
  forbidden: (detail: string) => new HttpProblem(403, 'forbidden', 'Forbidden', detail, at('header Authorization', detail)),
  unavailable: (detail: string) => new HttpProblem(503, 'unavailable', 'Service unavailable', detail, undefined, { 'retry-after': '5' }),
};

function summarize(errors: FieldError[]): string {
  const first = errors[0];
  if (!first) return 'the request is invalid';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `${first.field} ${first.message}${more}`;
}

function resourceLabel(e: ModelError): string {
  return `${KINDS[e.kind].singular} '${e.key}'`;
}

/**
 * Maps a refused model write to a problem. A reference error caused by a delete is a conflict
 * (something still uses the resource); conflicts are 409; everything else is 422.
 */
export function modelProblem(err: ModelValidationError, deleting?: { kind: string; key: string }): HttpProblem {
  const errors = err.errors.map((e) => ({ resource: resourceLabel(e), field: e.field, message: e.message }));
  if (deleting) {
    const users = err.errors.filter((e) => e.code === 'reference' && e.target?.kind === deleting.kind && e.target.key === deleting.key);
    if (users.length) {
      const who = [...new Set(users.map(resourceLabel))];
      return problems.conflict(
        `${KINDS[deleting.kind as keyof typeof KINDS].singular} '${deleting.key}' is still used by ${who.slice(0, 5).join(', ')}${who.length > 5 ? ` and ${who.length - 5} more` : ''}; change or delete those first`,
        errors,
      );
    }
  }
  const conflicts = err.errors.filter((e) => e.code === 'conflict');
  if (conflicts.length) return problems.conflict(`${resourceLabel(conflicts[0]!)}: ${conflicts[0]!.field} ${conflicts[0]!.message}`, errors);
  const first = err.errors[0]!;
  return new HttpProblem(422, 'validation', 'Invalid model', `${resourceLabel(first)}: ${first.field} ${first.message}`, errors);
}

export function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err;
  if (err instanceof ModelValidationError) return modelProblem(err);
  if (err instanceof PreconditionFailedError) return problems.preconditionFailed(err.message);
  if (err instanceof DuplicateError) return problems.conflict(err.message, at('name', 'is already taken'));
  if (err instanceof InvalidValueError) return problems.validation([{ field: err.field, message: err.message }]);
  // The detail is the store's own sentence; the driver's message (with source paths) is only logged.
  if (err instanceof StoreUnavailableError) return problems.unavailable(err.message);
  if (err instanceof DocumentSyntaxError) return problems.badRequest(`the document is not valid YAML or JSON: ${err.message}`, at('(body)', err.message));
  const fe = err as FastifyError & { validation?: unknown };
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problems.badRequest(`the body is not valid JSON: ${fe.message}`, at('(body)', 'is not valid JSON'));
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpProblem(413, 'payload-too-large', 'Payload too large', fe.message, at('(body)', fe.message));
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpProblem(
        415,
        'unsupported-media-type',
        'Unsupported media type',
        'send application/json (or application/yaml for declarative documents)',
        at('header Content-Type', 'is not a supported media type'),
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problems.badRequest(fe.message, at('header Content-Length', 'does not match the body'));
    case 'FST_ERR_NOT_FOUND':
      return problems.notFound('the requested path');
    case 'FST_ERR_BAD_URL':
      return problems.badRequest('the URL has an invalid percent-encoding', at('(url)', 'has an invalid percent-encoding'));
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new HttpProblem(414, 'uri-too-long', 'URI too long', 'a path parameter is longer than any name the API accepts', at('(url)', 'has a path parameter that is too long'));
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new HttpProblem(fe.statusCode, 'bad-request', 'Bad request', fe.message, at('(request)', fe.message));
  }
  return new HttpProblem(500, 'internal', 'Internal error', 'the server failed to handle the request; see its log');
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, p: HttpProblem): FastifyReply {
  const body: Problem = {
    type: `urn:portico:problem:${p.code}`,
    title: p.title,
    status: p.status,
    detail: p.message,
    instance: request.url.split('?')[0],
    ...(p.errors?.length ? { errors: p.errors } : {}),
  };
  for (const [k, v] of Object.entries(p.headers)) reply.header(k, v);
  return reply.code(p.status).type('application/problem+json').send(body);
}

/** Installs the error and not-found handlers so nothing leaves the API except problem+json. */
export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const p = toProblem(err);
    if (err instanceof StoreUnavailableError) request.log.warn({ database: unavailableSummary(err) }, 'admin request failed: database unavailable');
    else if (p.status >= 500) request.log[p.status === 503 ? 'warn' : 'error']({ err }, 'admin request failed');
    return sendProblem(reply, request, p);
  });
  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, problems.notFound(`${request.method} ${request.url.split('?')[0]}`)));
}

/** fastify's router errors (bad percent-encoding, overlong path parameters), as problems: pass as the frameworkErrors option. */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  sendProblem(reply, request, toProblem(err));
}

/**
 * Errors Node's HTTP parser raises before a request exists (headers or URL too long, malformed
 * requests, timeouts): answered as problem+json straight on the socket, then closed. Pass as the
 * clientErrorHandler option.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, title, field, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request header fields too large', '(headers)', 'the URL and headers together exceed the size the server accepts']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request timeout', '(request)', 'the request did not arrive in time']
        : [400, 'Bad request', '(request)', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({
    type: `urn:portico:problem:${status === 400 ? 'bad-request' : status === 408 ? 'timeout' : 'headers-too-large'}`,
    title,
    status,
    detail: message,
    errors: [{ field, message }],
  });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}
