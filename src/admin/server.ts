// The admin API server: fastify with one plugin per feature, problem+json errors, bearer auth,
// and an OpenAPI 3 document generated from the same schemas that validate requests.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { instrumentAdminApi, type Logger } from '../telemetry/index.ts';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import type { TSchema } from '@sinclair/typebox';
import { describeSchemaErrors, inputErrors, parseDocumentText, schemaErrors } from '../model/index.ts';
import type { ModelStore } from '../store/index.ts';
import { authenticate, registerAuth } from './auth.ts';
import { CONFIG_SCHEMAS, configRoutes } from './config.ts';
import { CONSOLE_SCHEMAS, consoleRoutes } from './console.ts';
import { FLOW_SCHEMAS, flowRoutes, type FlowTools } from './flows.ts';
import { ConsoleSessions, SESSION_COOKIE, type SessionOptions } from './console-sessions.ts';
import { CachePurgeResult, cacheRoutes } from './cache.ts';
import { auditRoutes, fleetRoutes, healthRoutes, metricsRoute, OPERATION_SCHEMAS, tokenRoutes, type Readiness } from './operations.ts';
import type { Registry } from 'prom-client';
import { clientErrorHandler, frameworkErrors, HANDLER_CHECKED, HttpProblem, installProblemHandlers, problems } from './problem.ts';
import { documentResponses, refResolver, sharedSerializers, TAGS } from './openapi.ts';
import { PORTAL_SCHEMAS, portalRoutes, type PortalUsageReader } from './portal.ts';
import { partnerTokenRoutes } from './portal-tokens.ts';
import { resourceRoutes } from './resources.ts';

export interface AdminServerOptions {
  store: ModelStore;
  readiness: Readiness;
  bootstrapToken?: string;
  bodyLimitBytes?: number;
  logger?: Logger;
  /** Prometheus registry served at /metrics. */
  registry?: Registry;
  /** Fleet status (connected Envoys, ACKed versions, NACKs) served at /api/v1/fleet. */
  fleet?: () => unknown;
  /** The built web console served at /console (default console/dist of this checkout). */
  consoleDir?: string;
  consoleSessions?: SessionOptions;
  /** A partner's usage against its plans' budgets, for the partner portal. */
  portalUsage?: PortalUsageReader;
  /** The flow engine's check and "try it", for the console's flow designer (/api/v1/flows/…). */
  flowTools?: FlowTools;
}

// Query strings and path parameters arrive as strings: coerce them, then report errors by name.
const coercing = new Ajv({ allErrors: true, verbose: true, strict: false, coerceTypes: true, useDefaults: true });

export async function buildAdminServer(opts: AdminServerOptions): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger as FastifyBaseLogger } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes ?? 64 * 1024 * 1024,
    // Route ids in logs, not full URLs with tokens; request ids reuse the caller's x-request-id.
    requestIdHeader: 'x-request-id',
    ajv: { customOptions: { strict: false } },
    schemaController: { compilersFactory: { buildSerializer: sharedSerializers() } },
    // The serialiser checks anyOf branches with its own Ajv: the model's own formats are known there (values were validated on write).
    serializerOpts: { ajv: { formats: { re2: true, 'ipv4-or-ipv6': true } } },
    // Malformed requests that never reach a route still get problem+json: router errors (bad
    // percent-encoding, overlong path parameters) and Node's HTTP parser errors (431 and the like).
    frameworkErrors,
    clientErrorHandler,
  });

  // Bodies are validated against their schema by the model's Ajv, so the 422 names each field as a
  // handler's checkedBody() would. Bodies a handler shapes before checking (resources drop read-only
  // fields a client echoes back; the flow designer checks the flow apart) are declared with
  // handlerChecked() and pass through.
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'body') {
      if ((schema as { [HANDLER_CHECKED]?: boolean })[HANDLER_CHECKED]) return (data: unknown) => ({ value: data });
      return (data: unknown) => {
        const errors = schemaErrors(schema as TSchema, data);
        return errors.length ? { error: problems.validation(errors) as unknown as Error } : { value: data };
      };
    }
    const validate = coercing.compile(schema as TSchema);
    return (data: unknown) => {
      if (validate(data)) return { value: data };
      const where = httpPart === 'querystring' ? 'query parameter ' : httpPart === 'params' ? 'path parameter ' : '';
      const errors = describeSchemaErrors(validate.errors ?? []).map((e) => ({ field: `${where}${e.field}`, message: e.message }));
      return { error: problems.validation(errors) as unknown as Error };
    };
  });

  // Declarative documents may be YAML; everything else is JSON.
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseDocumentText(String(body)));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, (req, body, done) => {
    app.getDefaultJsonParser('error', 'error')(req, String(body), done);
  });

  installProblemHandlers(app);
  // Before any schema, handler or the store sees a value: bounded nesting, no NUL characters.
  app.addHook('preValidation', async (request) => {
    const errors = [
      ...Object.entries(request.params ?? {}).flatMap(([k, v]: [string, unknown]) => inputErrors(v, `path parameter ${k}`)),
      ...Object.entries(request.query ?? {}).flatMap(([k, v]: [string, unknown]) => inputErrors(v, `query parameter ${k}`)),
      ...inputErrors(request.body),
    ];
    if (errors.length) throw problems.validation(errors);
  });
  // A route with attachValidation takes its body's error where its own checks end (validBody); a
  // path or query parameter's error still answers before the handler runs.
  app.addHook('preHandler', async (request) => {
    if (request.validationError && request.validationError.validationContext !== 'body') throw request.validationError;
  });
  // One line per request, with who made it; never the URL's query (it may carry filters only, but stay safe).
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: reply.statusCode, ms: Math.round(reply.elapsedTime), actor: request.principal?.name },
      'admin request',
    );
  });
  if (opts.registry) instrumentAdminApi(app, opts.registry);
  const auth = { store: opts.store, ...(opts.bootstrapToken ? { bootstrapToken: opts.bootstrapToken } : {}) };
  const sessions = new ConsoleSessions((token) => authenticate(`Bearer ${token}`, auth), opts.consoleSessions);
  registerAuth(app, { ...auth, session: (request) => sessions.principal(request) });

  // The docs page and its assets are public; the API behind them is not.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/docs')) route.config = { ...(route.config ?? {}), public: true };
  });
  // Named schemas drive the document and the serialisers: a field not in an answer's schema is never sent.
  documentResponses(app, [...OPERATION_SCHEMAS, ...CONFIG_SCHEMAS, CachePurgeResult], { ...CONSOLE_SCHEMAS, ...PORTAL_SCHEMAS, ...FLOW_SCHEMAS });
  await app.register(swagger, {
    refResolver,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Portico admin API',
        version: '1',
        description: 'Manage gateway groups, services, products, routes, partners, plans and credentials. Errors are RFC 9457 problem+json.',
      },
      // Relative: the document describes the admin listener it is served from.
      servers: [{ url: '/', description: 'this admin listener' }],
      tags: TAGS,
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'an admin token (pta_…); a partner token reaches only the portal operations' },
          session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE, description: 'the web console’s session (POST /console/api/session); unsafe methods also need its CSRF token' },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' }, logLevel: 'warn' });
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, { readiness: opts.readiness });
  await app.register(resourceRoutes, { store: opts.store });
  await app.register(configRoutes, { store: opts.store });
  await app.register(tokenRoutes, { store: opts.store });
  await app.register(auditRoutes, { store: opts.store });
  await app.register(partnerTokenRoutes, { store: opts.store });
  await app.register(portalRoutes, { store: opts.store, ...(opts.portalUsage ? { usage: opts.portalUsage } : {}), ...(opts.registry ? { registry: opts.registry } : {}) });
  await app.register(cacheRoutes, { store: opts.store });
  if (opts.fleet) await app.register(fleetRoutes, { fleet: opts.fleet });
  if (opts.flowTools) await app.register(flowRoutes, { store: opts.store, tools: opts.flowTools });
  if (opts.registry) await app.register(metricsRoute, { registry: opts.registry });
  await app.register(consoleRoutes, { sessions, ...(opts.consoleDir ? { dir: opts.consoleDir } : {}), ...(opts.registry ? { registry: opts.registry } : {}) });
  return app;
}

export { HttpProblem };
