// Admin API request metrics: a counter by method, route pattern and status, and a duration
// histogram by method and route pattern. Route patterns (`/api/v1/products/:product`), never raw
// URLs, so the label set stays as small as the API.
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { counter, histogram } from './metrics.ts';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Counts and times every admin API response (add before the routes are registered). */
export function instrumentAdminApi(app: FastifyInstance, registry: Registry): void {
  const _registers = [registry];
  const requests = counter(registry, {
    name: 'portico_admin_requests_total',
    help: 'Admin API requests by method, route pattern ("unmatched" for unknown paths) and status code',
    labelNames: ['method', 'route', 'status'],
  });
  const duration = histogram(registry, {
    name: 'portico_admin_request_duration_seconds',
    help: 'Admin API response time by method and route pattern',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  app.addHook('onResponse', async (request, reply) => {
    const method = METHODS.has(request.method) ? request.method : 'other';
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method, route, status: String(reply.statusCode) });
    duration.observe({ method, route }, reply.elapsedTime / 1000);
  });
}
