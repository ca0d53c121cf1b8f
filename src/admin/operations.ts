// Operational endpoints: health and readiness, metrics, fleet status, admin tokens, the audit log.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type TProperties } from '@sinclair/typebox';
import type { Registry } from 'prom-client';
import { AdminTokenInput } from '../model/index.ts';
import type { ModelStore } from '../store/index.ts';
import { problems } from './problem.ts';
import { json } from './openapi.ts';
import { ref, refTo } from './schemas.ts';

// ── named answer schemas (registered by server.ts; fastify serialises through them) ───────────
const named = <P extends TProperties>(id: string, properties: P, description: string) => Type.Object(properties, { $id: id, title: id, description, additionalProperties: false });
const Time = (description?: string) => Type.String({ format: 'date-time', ...(description ? { description } : {}) });
const Certificate = Type.Object(
  { commonName: Type.String(), serial: Type.String(), notAfter: Type.String(), groups: Type.Array(Type.String(), { description: 'gateway groups the certificate names' }) },
  { additionalProperties: false, description: 'the verified client certificate' },
);
const Nack = { version: Type.String(), message: Type.String({ description: "Envoy's error detail" }), at: Time() };

const tokenFields = {
  name: Type.String(),
  role: Type.String({ description: 'admin (everything) or viewer (read only)' }),
  partner: Type.Optional(Type.String({ description: 'the partner a partner token acts for' })),
  prefix: Type.String({ description: 'the public part of the token, to recognise it; the secret is never shown again' }),
  description: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Time()),
  createdAt: Time(),
  createdBy: Type.String(),
};

const Health = named('Health', { status: Type.Literal('ok') }, 'The process is up');
const ReadinessAnswer = named(
  'Readiness',
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('starting'), Type.Literal('draining')]),
    database: Type.Optional(Type.String({ description: 'embedded or postgres' })),
    migrations: Type.Optional(Type.Object({ applied: Type.Integer(), pending: Type.Integer() }, { additionalProperties: false })),
    modelRevision: Type.Optional(Type.Integer({ description: 'the newest committed model' })),
    servedRevision: Type.Optional(Type.Integer({ description: 'the model revision translated and served to Envoy' })),
    lastError: Type.Optional(Type.Object({ revision: Type.Integer(), message: Type.String(), at: Time() }, { additionalProperties: false })),
  },
  'Whether this replica serves: migrations applied, the model loaded, not draining',
);
const AdminToken = named('AdminToken', tokenFields, 'An admin token: never its secret or hash');
/** A new admin or partner token with its secret (portal-tokens.ts answers with it too). */
export const AdminTokenCreated = named(
  'AdminTokenCreated',
  { ...tokenFields, token: Type.String({ description: 'the whole token; shown in this answer only' }) },
  'A new admin token with its secret, shown once',
);
/** Admin tokens, or a partner's portal tokens. */
export const AdminTokenList = named('AdminTokenList', { items: Type.Array(refTo(AdminToken)) }, 'Every admin token');
const AuditEntry = named(
  'AuditEntry',
  {
    id: Type.String({ description: 'pass as before to read older entries' }),
    changeId: Type.String({ description: 'entries written by one request share it' }),
    at: Time(),
    actor: Type.String({ description: 'the admin token (or bootstrap) that made the change' }),
    action: Type.String({ description: 'create, update or delete' }),
    kind: Type.String(),
    key: Type.String(),
    before: Type.Optional(Type.Unknown({ description: 'the resource before the change, secrets removed when it was written' })),
    after: Type.Optional(Type.Unknown({ description: 'the resource after the change, secrets removed when it was written' })),
  },
  'One change to the model',
);
const AuditPage = named(
  'AuditPage',
  { items: Type.Array(refTo(AuditEntry)), nextBefore: Type.Optional(Type.String({ description: 'pass as before for older entries' })) },
  'Audit entries, newest first',
);
const Fleet = named(
  'Fleet',
  {
    generatedAt: Time(),
    groups: Type.Array(Type.Object({ group: Type.String(), snapshotVersion: Type.Optional(Type.String()), connected: Type.Integer() }, { additionalProperties: false })),
    nodes: Type.Array(
      Type.Object(
        {
          streamId: Type.Integer(),
          nodeId: Type.String(),
          group: Type.String(),
          peer: Type.String(),
          protocol: Type.Union([Type.Literal('sotw'), Type.Literal('delta')]),
          service: Type.String(),
          userAgent: Type.String(),
          connectedSince: Time(),
          certificate: Type.Optional(Certificate),
          types: Type.Array(
            Type.Object(
              {
                type: Type.String(),
                typeUrl: Type.String(),
                pushedVersion: Type.Optional(Type.String()),
                pushedAt: Type.Optional(Time()),
                ackedVersion: Type.Optional(Type.String()),
                ackedAt: Type.Optional(Time()),
                pending: Type.Boolean({ description: 'a push not answered yet' }),
                lastNack: Type.Optional(Type.Object(Nack, { additionalProperties: false })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    recentNacks: Type.Array(Type.Object({ ...Nack, nodeId: Type.String(), group: Type.String(), type: Type.String() }, { additionalProperties: false })),
    channelSecurity: Type.Union([Type.Literal('mtls'), Type.Literal('plaintext')]),
    refused: Type.Array(
      Type.Object(
        {
          at: Time(),
          service: Type.String(),
          peer: Type.String(),
          code: Type.String(),
          reason: Type.String(),
          message: Type.String(),
          nodeId: Type.Optional(Type.String()),
          group: Type.Optional(Type.String()),
          certificate: Type.Optional(Certificate),
        },
        { additionalProperties: false },
      ),
      { description: 'callers refused on the control-plane channels, newest first' },
    ),
    pipeline: Type.Optional(
      Type.Object(
        { servedRevision: Type.Integer(), lastError: Type.Optional(Type.Object({ revision: Type.Integer(), message: Type.String(), at: Time() }, { additionalProperties: false })) },
        { additionalProperties: false, description: 'the model revision served, and why the newest could not be' },
      ),
    ),
  },
  'Connected Envoys per gateway group and what each ACKed or NACKed',
);

/** The operational answers, registered by server.ts (fastify serialises through them). */
export const OPERATION_SCHEMAS = [Health, ReadinessAnswer, AdminToken, AdminTokenCreated, AdminTokenList, AuditEntry, AuditPage, Fleet];

export interface Readiness {
  /** Migrations applied and the first model loaded. */
  ready(): boolean;
  /** Shutting down: /readyz answers 503 so load balancers and Kubernetes stop sending traffic first. */
  draining?(): boolean;
  /** Details shown by /readyz. */
  details(): Record<string, unknown>;
}

/** Liveness and readiness (public). */
export const healthRoutes: FastifyPluginAsyncTypebox<{ readiness: Readiness }> = async (app, { readiness }) => {
  app.get(
    '/healthz',
    { config: { public: true }, schema: { tags: ['Health'], summary: 'Liveness: the process is up', operationId: 'getHealth', response: { 200: json('Up', refTo(Health)) } } },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        tags: ['Health'],
        operationId: 'getReadiness',
        summary: 'Readiness: migrations applied and the model loaded; 503 while starting or draining at shutdown',
        response: { 200: json('Ready', refTo(ReadinessAnswer)), 503: json('Starting, or draining at shutdown', refTo(ReadinessAnswer)) },
      },
    },
    async (_req, reply) => {
      const draining = readiness.draining?.() ?? false;
      const ready = !draining && readiness.ready();
      return reply.code(ready ? 200 : 503).send({ status: draining ? 'draining' : ready ? 'ready' : 'starting', ...readiness.details() });
    },
  );
};

/** Admin tokens: list, create (the secret shown once), revoke. */
export const tokenRoutes: FastifyPluginAsyncTypebox<{ store: ModelStore }> = async (app, opts) => {
  const { store } = opts;
  const tags = ['Admin tokens'];
  app.get(
    '/api/v1/admin-tokens',
    {
      config: { role: 'admin' },
      schema: { tags, summary: 'List admin tokens (never their secrets)', operationId: 'listAdminTokens', security: [{ bearer: [] }], response: { 200: json('The tokens', refTo(AdminTokenList)) } },
    },
    async () => ({
      items: store.adminTokens.list(),
    }),
  );
  app.post(
    '/api/v1/admin-tokens',
    {
      config: { role: 'admin' },
      schema: {
        tags,
        summary: 'Create an admin token; the token is returned once',
        operationId: 'createAdminToken',
        body: AdminTokenInput,
        security: [{ bearer: [] }],
        response: { 201: json('Created; `token` is shown in this answer only', refTo(AdminTokenCreated)) },
      },
    },
    async (request, reply) => {
      const input = request.body;
      if (input.expiresAt && Date.parse(input.expiresAt) <= Date.now()) throw problems.validation([{ field: 'expiresAt', message: 'must be in the future' }]);
      const { token, info } = await store.adminTokens.create(input, request.principal!.name);
      return reply.code(201).send({ ...info, token });
    },
  );
  app.delete(
    '/api/v1/admin-tokens/:name',
    {
      config: { role: 'admin' },
      schema: {
        tags,
        summary: 'Revoke an admin token',
        operationId: 'deleteAdminToken',
        params: Type.Object({ name: Type.String() }),
        security: [{ bearer: [] }],
        response: { 204: { description: 'Revoked', type: 'null' } },
      },
    },
    async (request, reply) => {
      if (!(await store.adminTokens.delete(request.params.name, request.principal!.name))) throw problems.notFound(`admin token '${request.params.name}'`, 'path parameter name');
      return reply.code(204).send();
    },
  );
};

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

/** The audit log, newest first. */
export const auditRoutes: FastifyPluginAsyncTypebox<{ store: ModelStore }> = async (app, opts) => {
  app.get(
    '/api/v1/audit',
    {
      config: { readsDatabase: true },
      schema: {
        tags: ['Audit'],
        summary: 'Audit entries, newest first: who changed what, before and after',
        operationId: 'listAuditEntries',
        querystring: AuditQuery,
        security: [{ bearer: [] }],
        response: { 200: json('A page of entries', refTo(AuditPage)) },
      },
    },
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
};

/** Fleet status: connected Envoys and what they ACKed or NACKed. */
export const fleetRoutes: FastifyPluginAsyncTypebox<{ fleet: () => unknown }> = async (app, { fleet }) => {
  app.get(
    '/api/v1/fleet',
    {
      schema: {
        tags: ['Fleet'],
        operationId: 'getFleet',
        summary: 'Connected Envoys per gateway group: the version each ACKed per resource type, and the last NACK with its message',
        security: [{ bearer: [] }],
        response: { 200: json('The fleet as this replica sees it', ref('Fleet')) },
      },
    },
    async () => fleet(),
  );
};

/** Prometheus scrape endpoint; public like /healthz, so bind the admin listener to a private address. */
export const metricsRoute: FastifyPluginAsyncTypebox<{ registry: Registry }> = async (app, { registry }) => {
  app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
};
