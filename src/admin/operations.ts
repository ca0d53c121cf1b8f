// Operational endpoints: health and readiness, metrics, fleet status, admin tokens, the audit log.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { AdminTokenInput, schemaErrors } from '../model/index.ts';
import type { ModelStore } from '../store/index.ts';
import { problems } from './problem.ts';

export interface Readiness {
  /** Migrations applied and the first model loaded. */
  ready(): boolean;
  /** Shutting down: /readyz answers 503 so load balancers and Kubernetes stop sending traffic first. */
  draining?(): boolean;
  /** Details shown by /readyz. */
  details(): Record<string, unknown>;
}

export function registerHealthRoutes(app: FastifyInstance, readiness: Readiness): void {
  app.get('/healthz', { config: { public: true }, schema: { tags: ['Health'], summary: 'Liveness: the process is up' } }, async () => ({ status: 'ok' }));
  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        tags: ['Health'],
        summary: 'Readiness: migrations applied and the model loaded; 503 while starting or draining at shutdown',
        response: { 200: { description: 'Ready' }, 503: { description: 'Starting, or draining at shutdown' } },
      },
    },
    async (_req, reply) => {
      const draining = readiness.draining?.() ?? false;
      const ready = !draining && readiness.ready();
      return reply.code(ready ? 200 : 503).send({ status: draining ? 'draining' : ready ? 'ready' : 'starting', ...readiness.details() });
    },
  );
}

export function registerTokenRoutes(app: FastifyInstance, opts: { store: ModelStore }): void {
  const { store } = opts;
  const tags = ['Admin tokens'];
  app.get('/api/v1/admin-tokens', { config: { role: 'admin' }, schema: { tags, summary: 'List admin tokens (never their secrets)', security: [{ bearer: [] }] } }, async () => ({
    items: store.adminTokens.list(),
  }));
  app.post(
    '/api/v1/admin-tokens',
    { config: { role: 'admin' }, schema: { tags, summary: 'Create an admin token; the token is returned once', body: AdminTokenInput, security: [{ bearer: [] }] } },
    async (request, reply) => {
      const errors = schemaErrors(AdminTokenInput, request.body);
      if (errors.length) throw problems.validation(errors);
      const input = request.body as { name: string; role: 'admin' | 'viewer'; description?: string; expiresAt?: string };
      if (input.expiresAt && Date.parse(input.expiresAt) <= Date.now()) throw problems.validation([{ field: 'expiresAt', message: 'must be in the future' }]);
      const { token, info } = await store.adminTokens.create(input, request.principal!.name);
      return reply.code(201).send({ ...info, token });
    },
  );
  app.delete<{ Params: { name: string } }>(
    '/api/v1/admin-tokens/:name',
    { config: { role: 'admin' }, schema: { tags, summary: 'Revoke an admin token', params: Type.Object({ name: Type.String() }), security: [{ bearer: [] }] } },
    async (request, reply) => {
      if (!(await store.adminTokens.delete(request.params.name, request.principal!.name))) throw problems.notFound(`admin token '${request.params.name}'`, 'path parameter name');
      return reply.code(204).send();
    },
  );
}

const AuditQuery = Type.Object(
  {
    kind: Type.Optional(Type.String({ maxLength: 64 })),
    key: Type.Optional(Type.String({ maxLength: 300 })),
    actor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    before: Type.Optional(Type.String({ pattern: '^[0-9]{1,19}$', description: 'entry id; returns older entries' })),
  },
  { additionalProperties: false },
);

export function registerAuditRoutes(app: FastifyInstance, opts: { store: ModelStore }): void {
  app.get<{ Querystring: { kind?: string; key?: string; actor?: string; limit?: number; before?: string } }>(
    '/api/v1/audit',
    { schema: { tags: ['Audit'], summary: 'Audit entries, newest first: who changed what, before and after', querystring: AuditQuery, security: [{ bearer: [] }] } },
    async (request) => {
      const q = request.query;
      // Entry ids are PostgreSQL bigints: a larger number is not an id this API returned.
      if (q.before && BigInt(q.before) > 2n ** 63n - 1n) throw problems.validation([{ field: 'query parameter before', message: 'is not an entry id (too large)' }]);
      const limit = q.limit ?? 100;
      const items = await opts.store.audit({
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.key ? { key: q.key } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        limit,
        ...(q.before ? { before: BigInt(q.before) } : {}),
      });
      const last = items[items.length - 1];
      return { items, ...(items.length === limit && last ? { nextBefore: last.id } : {}) };
    },
  );
}

export function registerFleetRoutes(app: FastifyInstance, fleet: () => unknown): void {
  app.get(
    '/api/v1/fleet',
    {
      schema: {
        tags: ['Fleet'],
        summary: 'Connected Envoys per gateway group: the version each ACKed per resource type, and the last NACK with its message',
        security: [{ bearer: [] }],
      },
    },
    async () => fleet(),
  );
}

/** Prometheus scrape endpoint; public like /healthz, so bind the admin listener to a private address. */
export function registerMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
}
