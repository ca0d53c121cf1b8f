// Partner tokens, minted by an admin for one partner: the only credential the partner portal
// accepts. Stored like admin tokens (keyed hash, shown once), listed without the secret, revocable.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AdminTokenInput } from '../model/index.ts';
import type { ModelStore } from '../store/index.ts';
import { json } from './openapi.ts';
import { AdminTokenCreated, AdminTokenList } from './operations.ts';
import { problems, validBody } from './problem.ts';
import { refTo } from './schemas.ts';

export const PartnerTokenInput = Type.Object(
  {
    name: AdminTokenInput.properties.name,
    expiresAt: AdminTokenInput.properties.expiresAt,
    description: AdminTokenInput.properties.description,
  },
  { additionalProperties: false },
);

const params = Type.Object({ parent: Type.String({ description: 'partner name' }) });
const itemParams = Type.Object({ parent: Type.String({ description: 'partner name' }), name: Type.String() });
const tags = ['Partners'];

/** A partner's portal tokens: list, create (the secret shown once), revoke. */
export const partnerTokenRoutes: FastifyPluginAsyncTypebox<{ store: ModelStore }> = async (app, opts) => {
  const { store } = opts;
  const requirePartner = (name: string) => {
    if (!store.current().partners.has(name)) throw problems.notFound(`partner '${name}'`, 'path parameter parent');
  };

  app.get(
    '/api/v1/partners/:parent/portal-tokens',
    {
      config: { role: 'admin' },
      schema: { tags, summary: "List a partner's portal tokens (never their secrets)", params, security: [{ bearer: [] }], response: { 200: json('The tokens', refTo(AdminTokenList)) } },
    },
    async (request) => {
      requirePartner(request.params.parent);
      return { items: store.adminTokens.list().filter((t) => t.role === 'partner' && t.partner === request.params.parent) };
    },
  );

  app.post(
    '/api/v1/partners/:parent/portal-tokens',
    {
      config: { role: 'admin' },
      schema: {
        tags,
        summary: 'Create a partner token for the partner portal; the token is returned once',
        description: 'A partner token may call only /api/v1/portal/… (and sign in to the console, which then shows the portal): its partner’s subscriptions, usage and keys.',
        params,
        body: PartnerTokenInput,
        security: [{ bearer: [] }],
        response: { 201: json('Created; `token` is shown in this answer only', refTo(AdminTokenCreated)) },
      },
      // An unknown partner (404) and a body that is no object answer before the schema's errors.
      attachValidation: true,
    },
    async (request, reply) => {
      const partner = request.params.parent;
      requirePartner(partner);
      const body = request.body;
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw problems.validation([{ field: '(body)', message: 'must be a JSON object' }]);
      const input = validBody(request);
      if (input.expiresAt && Date.parse(input.expiresAt) <= Date.now()) throw problems.validation([{ field: 'expiresAt', message: 'must be in the future' }]);
      if (store.adminTokens.list().some((t) => t.name === input.name))
        throw problems.conflict(`a token named '${input.name}' already exists`, [{ field: 'name', message: 'is taken by another token' }]);
      const { token, info } = await store.adminTokens.create({ ...input, role: 'partner', partner }, request.principal!.name);
      return reply.code(201).send({ ...info, token });
    },
  );

  app.delete(
    '/api/v1/partners/:parent/portal-tokens/:name',
    {
      config: { role: 'admin' },
      schema: {
        tags,
        summary: 'Revoke a partner token (its console sessions end with it)',
        params: itemParams,
        security: [{ bearer: [] }],
        response: { 204: { description: 'Revoked', type: 'null' } },
      },
    },
    async (request, reply) => {
      const { parent, name } = request.params;
      if (!(await store.adminTokens.delete(name, request.principal!.name, parent))) throw problems.notFound(`portal token '${name}' of partner '${parent}'`, 'path parameter name');
      return reply.code(204).send();
    },
  );
};
