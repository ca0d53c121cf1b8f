// Cache purge: raising the generation of cached routes. The generation is part of every cache key
// Envoy builds for the route, so the write — pushed to every Envoy of the group like any other —
// makes all of them miss and refill from the service; old entries are never found again.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { sortedValues, type ModelSnapshot, type Mutation, type Route } from '../model/index.ts';
import { ModelValidationError, type ModelStore } from '../store/index.ts';
import { json } from './openapi.ts';
import { modelProblem, problems } from './problem.ts';
import { refTo } from './schemas.ts';

export interface PurgedRoute {
  product: string;
  route: string;
  generation: number;
}

const cached = (r: Route): boolean => r.cache !== undefined && r.cache.enabled !== false;

/** The writes a purge makes: every cached route whose `product/route` key starts with `prefix`, one generation up. */
export function purgeMutations(model: ModelSnapshot, prefix: string): { mutations: Mutation[]; purged: PurgedRoute[] } {
  const mutations: Mutation[] = [];
  const purged: PurgedRoute[] = [];
  for (const r of sortedValues(model, 'routes')) {
    if (!cached(r) || !`${r.product}/${r.name}`.startsWith(prefix)) continue;
    const generation = (r.cache!.generation ?? 0) + 1;
    mutations.push({ kind: 'routes', op: 'put', key: `${r.product}/${r.name}`, resource: { ...r, cache: { ...r.cache, generation } } });
    purged.push({ product: r.product, route: r.name, generation });
  }
  return { mutations, purged };
}

const PurgeBody = Type.Object(
  { prefix: Type.String({ minLength: 1, maxLength: 260, description: "`product/` purges a product's cached routes, `product/route` one route; any leading part of that key works" }) },
  { additionalProperties: false },
);

const route = Type.Object({ product: Type.String(), route: Type.String(), generation: Type.Integer({ description: 'the cache key generation now in force' }) }, { additionalProperties: false });
/** The purge endpoints' answer (registered by server.ts as a named schema). */
export const CachePurgeResult = Type.Object(
  { purged: Type.Array(route) },
  { $id: 'CachePurgeResult', title: 'CachePurgeResult', description: 'The routes whose cache was purged', additionalProperties: false },
);

/** The cache purge endpoints (an encapsulated plugin; handlers typed by the TypeBox type provider). */
export const cacheRoutes: FastifyPluginAsyncTypebox<{ store: ModelStore }> = async (app, opts) => {
  const { store } = opts;
  const tags = ['Cache'];
  const purge = async (request: FastifyRequest, prefix: string, field: string) => {
    const { mutations, purged } = purgeMutations(store.current(), prefix);
    if (!purged.length) throw problems.validation([{ field, message: `'${prefix}' matches no route with caching on` }]);
    try {
      await store.commit({ mutations, actor: request.principal?.name ?? 'unknown', summary: `cache purge ${prefix}` });
    } catch (e) {
      if (e instanceof ModelValidationError) throw modelProblem(e);
      throw e;
    }
    return { purged };
  };
  app.post(
    '/api/v1/products/:product/routes/:route/cache/purge',
    {
      config: { role: 'admin' },
      schema: {
        tags,
        summary: "Purge a route's cache on every Envoy of its groups (its key generation goes up)",
        params: Type.Object({ product: Type.String(), route: Type.String() }),
        security: [{ bearer: [] }],
        response: { 200: json('Purged', refTo(CachePurgeResult)) },
      },
    },
    async (request) => {
      const { product, route } = request.params;
      const r = store.current().routes.get(`${product}/${route}`);
      if (!r) throw problems.notFound(`route '${product}/${route}'`, 'path parameter route');
      if (!cached(r)) throw problems.validation([{ field: 'cache', message: `route '${product}/${route}' does not cache` }]);
      return purge(request, `${product}/${route}`, 'path parameter route');
    },
  );
  app.post(
    '/api/v1/cache/purge',
    {
      config: { role: 'admin' },
      schema: {
        tags,
        summary: 'Purge the cache of every cached route whose key (product/route) starts with a prefix',
        body: PurgeBody,
        security: [{ bearer: [] }],
        response: { 200: json('Purged', refTo(CachePurgeResult)) },
      },
    },
    async (request) => {
      const { prefix } = request.body;
      return purge(request, prefix, 'prefix');
    },
  );
};
