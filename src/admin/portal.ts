// The partner portal under /api/v1/portal: what a partner token may see and do — its partner, its
// subscriptions with their plans' limits and quotas, its usage against them, its own API keys
// (create, rotate, revoke). Every route is for partner tokens only (auth.ts enforces it); the
// partner always comes from the token, never from the request.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { ApiKey, sortedValues, type ModelSnapshot, type Mutation, type Plan } from '../model/index.ts';
import { ModelValidationError, PreconditionFailedError, type ModelStore } from '../store/index.ts';
import { trafficSeries } from './console.ts';
import { present } from './present.ts';
import { modelProblem, problems, validBody } from './problem.ts';
import { ref } from './schemas.ts';

/** Reads a partner's usage against its budgets (src/ratelimit's readPartnerUsage, wired by the composition root). */
export type PortalUsageReader = (model: ModelSnapshot, partner: string) => Promise<PortalBudget[]>;

export interface PortalOptions {
  store: ModelStore;
  usage?: PortalUsageReader;
  registry?: Registry;
}

const tags = ['portal'];
const config = { partner: 'only' } as const;
const security = [{ bearer: [] }];

const KeyInput = Type.Object({ name: ApiKey.properties.name, description: ApiKey.properties.description, expiresAt: ApiKey.properties.expiresAt }, { additionalProperties: false });
const RotateInput = Type.Object(
  {
    name: Type.Optional({ ...ApiKey.properties.name, description: 'name of the new key (default: the old name with -2, -3, …)' }),
    revokeOld: Type.Optional(Type.Boolean({ description: 'revoke the old key in the same change (default false: both work until you revoke the old one)' })),
  },
  { additionalProperties: false },
);
const KeyParams = Type.Object({ name: Type.String({ maxLength: 63 }) });
const KeyPatch = Type.Object(
  {
    description: Type.Optional(Type.Union([ApiKey.properties.description, Type.Null()])),
    expiresAt: Type.Optional(Type.Union([ApiKey.properties.expiresAt, Type.Null()], { description: 'null removes the expiry' })),
  },
  { additionalProperties: false },
);
/** Keys a partner may hold (revoked ones included, until deleted): the portal cannot grow the model without bound. */
export const PORTAL_MAX_KEYS = 100;
const Obj = Type.Record(Type.String(), Type.Unknown());
// An API key as the portal shows it is the admin API's ApiKey (never a secret); a new one adds the key once.
const KeyView = ref('ApiKey');
const NewKey = ref('ApiKeyMinted');
const Budget = Type.Object(
  {
    product: Type.String(),
    plan: Type.String(),
    budget: Type.String(),
    route: Type.Optional(Type.String()),
    kind: Type.Union([Type.Literal('rate'), Type.Literal('quota')]),
    per: Type.String(),
    limit: Type.Number(),
    countBy: Type.String(),
    group: Type.Optional(Type.String()),
    source: Type.Union([Type.Literal('rate-limiter'), Type.Literal('quota-ledger'), Type.Literal('envoy')]),
    used: Type.Optional(Type.Number()),
    remaining: Type.Optional(Type.Number()),
    resetAt: Type.Optional(Type.String()),
    shadow: Type.Boolean(),
    note: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
/** One limit or quota of a partner's plans with its usage, as the portal shows it. */
export type PortalBudget = Static<typeof Budget>;
const Usage = Type.Object({
  at: Type.String({ format: 'date-time' }),
  budgets: Type.Array(Budget),
  traffic: Type.Array(Type.Object({ product: Type.String(), requests: Type.Number(), outcomes: Type.Record(Type.String(), Type.Number()), codeClasses: Type.Record(Type.String(), Type.Number()) }), {
    description: "requests through Envoy per product since this replica started (the access-log stream's metrics)",
  }),
});
const Me = Type.Object({
  partner: Type.Intersect([Type.Object({ name: Type.String(), displayName: Type.Optional(Type.String()), suspended: Type.Optional(Type.Boolean()) }), Obj]),
  token: Type.Object({ name: Type.String(), expiresAt: Type.Optional(Type.String()) }),
});
const Subscription = Type.Object({
  product: Type.String(),
  plan: Type.String(),
  status: Type.String(),
  expiresAt: Type.Optional(Type.String()),
  access: Type.Optional(Obj),
  productInfo: Type.Object({ displayName: Type.Optional(Type.String()), hosts: Type.Optional(Type.Array(Type.String())), basePath: Type.Optional(Type.String()) }),
  planRules: Type.Object({
    limits: Type.Array(Obj),
    quotas: Type.Array(Obj),
    shadow: Type.Boolean(),
    countBy: Type.String(),
    overrides: Type.Array(Obj, { description: 'per-route rules of the plan on this product' }),
  }),
});

const Subscriptions = Type.Object({ items: Type.Array(Subscription) });
const Keys = Type.Object({ items: Type.Array(KeyView) });
/** The portal's answer schemas by component name (server.ts registers them; the routes pass them as they are). */
export const PORTAL_SCHEMAS = { PortalMe: Me, PortalUsage: Usage, PortalSubscriptions: Subscriptions, PortalKeys: Keys };

function partnerOf(request: FastifyRequest): string {
  return request.principal!.partner!;
}

/** Who the audit log says did it: the partner, and which of its tokens. */
function actorOf(request: FastifyRequest): string {
  return `partner:${partnerOf(request)} (token ${request.principal!.name})`;
}

function planRules(plan: Plan | undefined, product: string) {
  return {
    limits: plan?.limits ?? [],
    quotas: plan?.quotas ?? [],
    shadow: plan?.shadow === true,
    countBy: plan?.countBy?.kind ?? 'partner',
    overrides: (plan?.overrides ?? []).filter((o) => o.product === product).map(({ product: _p, ...o }) => o),
  };
}

/** A name for the rotated key that no key of the partner has yet. */
export function nextKeyName(base: string, taken: (name: string) => boolean): string {
  const stem = base.replace(/-\d+$/, '');
  for (let i = 2; ; i++) {
    const suffix = `-${i}`;
    const name = `${stem.slice(0, 63 - suffix.length)}${suffix}`;
    if (!taken(name)) return name;
  }
}

/** The partner portal's endpoints (partner tokens only). */
export const portalRoutes: FastifyPluginAsyncTypebox<PortalOptions> = async (app, opts) => {
  const { store } = opts;
  // No body is an empty one (every write's fields are optional but a new key's name), also for the schema.
  app.addHook('preValidation', async (request) => {
    request.body ??= {};
  });
  const keyOf = (request: FastifyRequest, name: string) => `${partnerOf(request)}/${name}`;
  const ownKey = (request: FastifyRequest, name: string) => {
    const k = store.current().apiKeys.get(keyOf(request, name));
    // Another partner's key is as absent as one that never existed.
    if (!k) throw problems.notFound(`API key '${name}'`, 'path parameter name');
    return k;
  };
  const writable = (request: FastifyRequest) => {
    if (store.current().partners.get(partnerOf(request))?.suspended) throw problems.forbidden(`partner '${partnerOf(request)}' is suspended: its keys cannot change`);
  };
  // Anything but an object is refused before its fields are checked (as other checks, after a suspension's 403 or a key's 404).
  const body = (request: FastifyRequest): void => {
    const b = request.body;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw problems.validation([{ field: '(body)', message: 'must be a JSON object' }]);
  };
  const commit = async (request: FastifyRequest, mutations: Mutation[], summary: string, absent?: { key: string; field: string }) => {
    try {
      return await store.commit({ mutations, actor: actorOf(request), summary, ...(absent ? { preconditions: [{ kind: 'apiKeys', key: absent.key, revision: 'absent' }] } : {}) });
    } catch (e) {
      if (e instanceof PreconditionFailedError && absent) throw problems.conflict(e.message, [{ field: absent.field, message: 'names a key you already have' }]);
      if (e instanceof ModelValidationError) throw modelProblem(e);
      throw e;
    }
  };
  const ownKeyCount = (request: FastifyRequest) => {
    const n = sortedValues(store.current(), 'apiKeys').filter((k) => k.partner === partnerOf(request)).length;
    if (n >= PORTAL_MAX_KEYS)
      throw problems.conflict(`you hold ${n} keys, the most the portal allows`, [{ field: 'name', message: `no more than ${PORTAL_MAX_KEYS} keys: delete revoked ones first` }]);
  };
  const mint = () => {
    const m = store.apiKeyHasher().mint('ptk');
    return { secret: m.secret, fields: { prefix: m.prefix, hash: m.hash, secret: m.secret } };
  };
  const shown = (res: FastifyReply, model: ModelSnapshot, key: string, extra: Record<string, unknown>, status = 201) =>
    res.code(status).send({ ...present('apiKeys', model.apiKeys.get(key)!, model), ...extra });

  app.get('/api/v1/portal/me', { config, schema: { tags, summary: 'The partner this token acts for, and the token', security, response: { 200: Me } } }, async (request) => {
    const model = store.current();
    const p = model.partners.get(partnerOf(request))!;
    const info = store.adminTokens.list().find((t) => t.name === request.principal!.name);
    return { partner: { ...present('partners', p, model), name: p.name }, token: { name: request.principal!.name, ...(info?.expiresAt ? { expiresAt: info.expiresAt } : {}) } };
  });

  app.get(
    '/api/v1/portal/subscriptions',
    { config, schema: { tags, summary: "The partner's subscriptions with their plans' limits and quotas", security, response: { 200: Subscriptions } } },
    async (request) => {
      const model = store.current();
      const items = sortedValues(model, 'subscriptions')
        .filter((s) => s.partner === partnerOf(request))
        .map((s) => {
          const product = model.products.get(s.product);
          return {
            product: s.product,
            plan: s.plan,
            status: s.status ?? 'active',
            ...(s.expiresAt ? { expiresAt: s.expiresAt } : {}),
            ...(s.access ? { access: s.access } : {}),
            productInfo: {
              ...(product?.displayName ? { displayName: product.displayName } : {}),
              ...(product?.hosts ? { hosts: product.hosts } : {}),
              ...(product?.basePath ? { basePath: product.basePath } : {}),
            },
            planRules: planRules(model.plans.get(s.plan), s.product),
          };
        });
      return { items };
    },
  );

  app.get(
    '/api/v1/portal/usage',
    {
      config,
      schema: {
        tags,
        summary: 'Usage against each limit and quota of the partner’s plans, read where it is counted (the rate limiter’s counters, or the quota ledger in native mode), and requests per product',
        security,
        response: { 200: Usage },
      },
    },
    async (request) => {
      const partner = partnerOf(request);
      const model = store.current();
      const budgets = opts.usage ? await opts.usage(model, partner) : [];
      const traffic = opts.registry
        ? (await trafficSeries(opts.registry)).filter((s) => s.partner === partner).map(({ product, requests, outcomes, codeClasses }) => ({ product, requests, outcomes, codeClasses }))
        : [];
      return { at: new Date().toISOString(), budgets, traffic };
    },
  );

  app.get('/api/v1/portal/keys', { config, schema: { tags, summary: "The partner's API keys (never their secrets)", security, response: { 200: Keys } } }, async (request) => {
    const model = store.current();
    return {
      items: sortedValues(model, 'apiKeys')
        .filter((k) => k.partner === partnerOf(request))
        .map((k) => present('apiKeys', k, model)),
    };
  });

  app.post(
    '/api/v1/portal/keys',
    { config, schema: { tags, summary: 'Create an API key; the key is returned once', security, body: KeyInput, response: { 201: NewKey } }, attachValidation: true },
    async (request, res) => {
      writable(request);
      body(request);
      const input = validBody(request);
      if (typeof input.expiresAt === 'string' && Date.parse(input.expiresAt) <= Date.now()) throw problems.validation([{ field: 'expiresAt', message: 'must be in the future' }]);
      ownKeyCount(request);
      const key = keyOf(request, input.name);
      const m = mint();
      const resource = { ...input, partner: partnerOf(request), ...m.fields };
      const result = await commit(request, [{ kind: 'apiKeys', op: 'put', key, resource }], `create API key ${key} (partner portal)`, { key, field: 'name' });
      return shown(res, result.snapshot, key, { key: m.secret });
    },
  );

  app.post(
    '/api/v1/portal/keys/:name/rotate',
    {
      config,
      schema: {
        tags,
        summary: 'Rotate an API key: a new key beside the old one (returned once); the old one works until revoked, or is revoked at once with revokeOld',
        security,
        params: KeyParams,
        body: RotateInput,
        response: { 201: NewKey },
      },
      attachValidation: true,
    },
    async (request, res) => {
      writable(request);
      const old = ownKey(request, request.params.name);
      if (old.revoked) throw problems.conflict(`API key '${old.name}' is revoked`, [{ field: 'path parameter name', message: 'names a revoked key; create a new one instead' }]);
      body(request);
      const input = validBody(request);
      ownKeyCount(request);
      const model = store.current();
      const name = typeof input.name === 'string' ? input.name : nextKeyName(old.name, (n) => model.apiKeys.has(keyOf(request, n)));
      const key = keyOf(request, name);
      const m = mint();
      const { prefix: _p, hash: _h, secret: _s, revoked: _r, ...kept } = old;
      const mutations: Mutation[] = [{ kind: 'apiKeys', op: 'put', key, resource: { ...kept, name, ...m.fields } }];
      if (input.revokeOld === true) mutations.push({ kind: 'apiKeys', op: 'put', key: keyOf(request, old.name), resource: { ...old, revoked: true } });
      const result = await commit(request, mutations, `rotate API key ${keyOf(request, old.name)} → ${name}${input.revokeOld === true ? ' (old revoked)' : ''} (partner portal)`, {
        key,
        field: 'name',
      });
      return shown(res, result.snapshot, key, { key: m.secret, replaces: old.name });
    },
  );

  app.post(
    '/api/v1/portal/keys/:name/revoke',
    { config, schema: { tags, summary: 'Revoke an API key: Envoy refuses it after the next push', security, params: KeyParams, response: { 200: KeyView } } },
    async (request, res) => {
      writable(request);
      const old = ownKey(request, request.params.name);
      const key = keyOf(request, old.name);
      if (old.revoked) return shown(res, store.current(), key, {}, 200);
      const result = await commit(request, [{ kind: 'apiKeys', op: 'put', key, resource: { ...old, revoked: true } }], `revoke API key ${key} (partner portal)`);
      return shown(res, result.snapshot, key, {}, 200);
    },
  );

  app.patch(
    '/api/v1/portal/keys/:name',
    { config, schema: { tags, summary: 'Change a key’s description or expiry (null removes it)', security, params: KeyParams, body: KeyPatch, response: { 200: KeyView } }, attachValidation: true },
    async (request, res) => {
      writable(request);
      const old = ownKey(request, request.params.name);
      body(request);
      const input = validBody(request);
      if (typeof input.expiresAt === 'string' && Date.parse(input.expiresAt) <= Date.now()) throw problems.validation([{ field: 'expiresAt', message: 'must be in the future' }]);
      // null removes the field, a value replaces it, absent leaves it.
      const next = { ...old };
      if (input.description === null) delete next.description;
      else if (input.description !== undefined) next.description = input.description;
      if (input.expiresAt === null) delete next.expiresAt;
      else if (input.expiresAt !== undefined) next.expiresAt = input.expiresAt;
      const key = keyOf(request, old.name);
      const result = await commit(request, [{ kind: 'apiKeys', op: 'put', key, resource: next }], `update API key ${key} (partner portal)`);
      return shown(res, result.snapshot, key, {}, 200);
    },
  );

  app.delete(
    '/api/v1/portal/keys/:name',
    { config, schema: { tags, summary: 'Delete a key (revoked or not): callers using it are refused after the next push', security, params: KeyParams } },
    async (request, res) => {
      writable(request);
      const old = ownKey(request, request.params.name);
      const key = keyOf(request, old.name);
      await commit(request, [{ kind: 'apiKeys', op: 'delete', key }], `delete API key ${key} (partner portal)`);
      return res.code(204).send();
    },
  );
};
