// The web console on the admin listener: its built files under /console/, sign-in and sign-out
// (session cookies, see console-sessions.ts) and the traffic summary its overview polls.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { DURATION_METRIC, REQUESTS_METRIC } from '../telemetry/index.ts';
import { type ConsoleSessions, CSRF_HEADER } from './console-sessions.ts';
import { handlerChecked, problems } from './problem.ts';

/** Where `npm run console:build` writes the console (gitignored; scripts/setup.sh builds it). */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../console/dist/', import.meta.url));

export interface ConsoleOptions {
  sessions: ConsoleSessions;
  dir?: string;
  registry?: Registry;
}

// The console loads only its own files and talks only to this origin; it is never framed.
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Portico console not built</title></head>
<body><main><h1>The Portico console is not built</h1>
<p>This server has no console files. Build them with <code>npm run console:build</code>
(<code>scripts/setup.sh</code> and the container image do), then reload this page.</p>
<p>The admin API itself works: see <a href="/docs">/docs</a>.</p></main></body></html>`;

const tags = ['Console'];
const SessionInfo = Type.Object({
  name: Type.String(),
  role: Type.Union([Type.Literal('admin'), Type.Literal('viewer'), Type.Literal('partner')]),
  partner: Type.Optional(Type.String({ description: 'the partner a partner token acts for (the console then shows the partner portal only)' })),
  csrf: Type.String({ description: `send it as the ${CSRF_HEADER} header on every POST, PUT, PATCH and DELETE made with the session cookie` }),
  expiresAt: Type.String({ format: 'date-time' }),
});
const TrafficSeries = Type.Object({
  product: Type.String(),
  partner: Type.String(),
  requests: Type.Number(),
  outcomes: Type.Record(Type.String(), Type.Number()),
  codeClasses: Type.Record(Type.String(), Type.Number()),
  durationSum: Type.Number(),
  /** Cumulative histogram buckets: upper bound in seconds ("+Inf" last) and count. */
  buckets: Type.Array(Type.Object({ le: Type.String(), count: Type.Number() })),
});
const Traffic = Type.Object({ at: Type.String({ format: 'date-time' }), series: Type.Array(TrafficSeries) });
/** The console's answer schemas by component name (server.ts registers them; the routes pass them as they are). */
export const CONSOLE_SCHEMAS = { ConsoleSession: SessionInfo, Traffic };

/**
 * Whether the browser reached us over https, directly or through a TLS-terminating proxy. Trusting
 * X-Forwarded-Proto from anyone is safe here: it can only add Secure, which a plain-http client
 * then never sends back (it breaks only the sender's own session).
 */
function secure(request: FastifyRequest): boolean {
  return (
    request.protocol === 'https' ||
    String(request.headers['x-forwarded-proto'] ?? '')
      .split(',')[0]
      ?.trim() === 'https'
  );
}

/** The console's files and session endpoints, and the traffic summary. */
export const consoleRoutes: FastifyPluginAsyncTypebox<ConsoleOptions> = async (app, opts) => {
  const { sessions } = opts;
  const dir = opts.dir ?? DEFAULT_CONSOLE_DIR;

  app.post(
    '/console/api/session',
    {
      config: { public: true },
      schema: {
        tags,
        summary: 'Sign in to the console: exchange an admin, viewer or partner token for a session cookie (HttpOnly, SameSite=Strict)',
        body: handlerChecked(Type.Object({ token: Type.String({ minLength: 1 }) })),
        response: { 200: SessionInfo },
      },
    },
    async (request, reply) => {
      // JSON only: a cross-site HTML form cannot send it, so nobody can sign a browser in as someone else.
      if (!(request.headers['content-type'] ?? '').startsWith('application/json'))
        throw problems.badRequest('send {"token": …} as application/json', [{ field: 'header Content-Type', message: 'must be application/json' }]);
      const body = request.body;
      const token = typeof body === 'object' && body !== null && 'token' in body ? body.token : undefined;
      if (typeof token !== 'string' || token.length === 0) throw problems.validation([{ field: 'token', message: 'is required' }]);
      sessions.destroy(sessions.idOf(request));
      const { id, principal, view } = sessions.create(token);
      request.principal = principal;
      reply.header('set-cookie', sessions.cookie(id, secure(request))).header('cache-control', 'no-store');
      return { name: principal.name, role: principal.role, ...(principal.partner ? { partner: principal.partner } : {}), ...view };
    },
  );

  app.get(
    '/console/api/session',
    { config: { role: 'viewer', partner: 'also' }, schema: { tags, summary: 'The signed-in principal and the session’s CSRF token', response: { 200: SessionInfo } } },
    async (request, reply) => {
      const view = sessions.viewOf(sessions.idOf(request));
      if (!view) throw problems.unauthorized('no console session: sign in with POST /console/api/session');
      reply.header('cache-control', 'no-store');
      const p = request.principal!;
      return { name: p.name, role: p.role, ...(p.partner ? { partner: p.partner } : {}), ...view };
    },
  );

  app.delete(
    '/console/api/session',
    { config: { role: 'viewer', partner: 'also' }, schema: { tags, summary: 'Sign out of the console', response: { 204: { description: 'Signed out', type: 'null' } } } },
    async (request, reply) => {
      sessions.destroy(sessions.idOf(request));
      return reply
        .header('set-cookie', sessions.clearCookie(secure(request)))
        .code(204)
        .send();
    },
  );

  app.get(
    '/console/api/traffic',
    { schema: { tags, summary: 'Requests through Envoy per product and partner since this replica started (from the access-log stream)', response: { 200: Traffic } } },
    async () => ({ at: new Date().toISOString(), series: opts.registry ? await trafficSeries(opts.registry) : [] }),
  );

  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), public: true };
      route.schema = { ...(route.schema ?? {}), hide: true };
    });
    scope.addHook('onSend', async (_request, reply: FastifyReply) => {
      reply.headers(PAGE_HEADERS);
    });
    scope.get('/console', async (_request, reply) => reply.redirect('/console/'));
    if (existsSync(`${dir}/index.html`)) {
      await scope.register(fastifyStatic, { root: dir, prefix: '/console/', decorateReply: false, index: 'index.html', maxAge: 0 });
    } else {
      const notBuilt = async (_request: FastifyRequest, reply: FastifyReply) => reply.code(503).type('text/html; charset=utf-8').send(NOT_BUILT);
      scope.get('/console/', notBuilt);
      scope.get('/console/*', notBuilt);
    }
  });
};

type Values = { labels: Record<string, string | number>; value: number; metricName?: string }[];

async function values(registry: Registry, name: string): Promise<Values> {
  const metric = registry.getSingleMetric(name);
  return metric ? ((await metric.get()).values as Values) : [];
}

/** Sums the request counter and duration histogram over gateway groups, per product and partner. */
export async function trafficSeries(registry: Registry) {
  const rows = new Map<
    string,
    { product: string; partner: string; requests: number; outcomes: Record<string, number>; codeClasses: Record<string, number>; durationSum: number; buckets: Map<string, number> }
  >();
  const row = (labels: Record<string, string | number>) => {
    const product = String(labels.product ?? '');
    const partner = String(labels.partner ?? '');
    const key = `${product}\0${partner}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { product, partner, requests: 0, outcomes: {}, codeClasses: {}, durationSum: 0, buckets: new Map() }));
    return r;
  };
  for (const v of await values(registry, REQUESTS_METRIC)) {
    if (!v.value) continue;
    const r = row(v.labels);
    r.requests += v.value;
    const outcome = String(v.labels.outcome);
    const cls = String(v.labels.code_class);
    r.outcomes[outcome] = (r.outcomes[outcome] ?? 0) + v.value;
    r.codeClasses[cls] = (r.codeClasses[cls] ?? 0) + v.value;
  }
  for (const v of await values(registry, DURATION_METRIC)) {
    if (v.metricName === `${DURATION_METRIC}_sum`) row(v.labels).durationSum += v.value;
    else if (v.metricName === `${DURATION_METRIC}_bucket`) {
      const r = row(v.labels);
      const le = String(v.labels.le);
      r.buckets.set(le, (r.buckets.get(le) ?? 0) + v.value);
    }
  }
  return [...rows.values()]
    .filter((r) => r.requests > 0 || r.durationSum > 0)
    .sort((a, b) => a.product.localeCompare(b.product) || a.partner.localeCompare(b.partner))
    .map(({ buckets, ...r }) => ({ ...r, buckets: [...buckets].map(([le, count]) => ({ le, count })) }));
}
