// Model → IR for a group of proxyless gRPC clients: an API listener and a route table per product
// host, routes as gRPC clients read them, clusters always HTTP/2 with a weighted locality.
import { escapeRegex, type ModelSnapshot, type GatewayGroup, type Product, type RetryPolicy, type Route, type Service } from '../../model/index.ts';
import type { GroupIR, RetryIR, RouteIR, RouteTableIR } from '../ir.ts';
import { compareRoutes, compareStrings } from '../paths.ts';
import { groupProducts, productRoutes, productHosts } from './common.ts';
import { routeIr, primaryService, retryIr } from './routes.ts';
import { orderKey, type PlacedRoute } from './virtual-hosts.ts';
import { clusterIr } from './clusters.ts';

// ── proxyless gRPC groups ─────────────────────────────────────────────────────
/** Retry conditions gRPC clients act on (gRFC A44): status codes; the HTTP ones mean nothing to them. */
export const GRPC_RETRY_ON: readonly string[] = ['cancelled', 'deadline-exceeded', 'resource-exhausted', 'unavailable'];

/** The proxyless gRPC groups among those serving a product. */
export function proxylessGroupsOf(model: ModelSnapshot, product: Pick<Product, 'gatewayGroups'>): GatewayGroup[] {
  return product.gatewayGroups.map((g) => model.gatewayGroups.get(g)).filter((g): g is GatewayGroup => g?.kind === 'proxyless-grpc');
}

/**
 * A model route as a gRPC client reads it: no route timeout (an explicit route or service timeout
 * becomes the RPC deadline, max_stream_duration; otherwise the caller's deadline rules) and only the
 * retry conditions gRPC knows. validateTranslation keeps out what gRPC clients cannot do.
 */
export function proxylessRouteIr(model: ModelSnapshot, product: Product, route: Route): RouteIR {
  const ir = routeIr(model, product, route, undefined);
  if (ir.action.kind !== 'forward') return ir;
  const primary = primaryService(route);
  const svc = primary ? model.services.get(primary) : undefined;
  const { timeoutMs: _timeout, retry: _retry, ...forward } = ir.action;
  const deadline = route.timeoutMs ?? svc?.requestTimeoutMs;
  const policy = route.retries ?? svc?.retries;
  const retryOn = (policy?.retryOn ?? []).filter((c) => GRPC_RETRY_ON.includes(c));
  let retry: RetryIR | undefined;
  if (policy && retryOn.length > 0) {
    const { retriableStatusCodes: _codes, ...rest } = policy;
    retry = retryIr({ ...rest, retryOn: retryOn as NonNullable<RetryPolicy['retryOn']> });
  }
  return {
    ...ir,
    action: { ...forward, ...(deadline !== undefined ? { maxStreamDurationMs: deadline } : {}), ...(retry ? { retry } : {}) },
  };
}

/**
 * gRPC clients read prefix, exact and regex paths only (they refuse a route table with another
 * kind): a prefix on a segment boundary becomes the regex matching the same paths.
 */
function withGrpcPath(ir: RouteIR): RouteIR {
  const p = ir.match.path;
  if (p.kind !== 'segment_prefix') return ir;
  return { ...ir, match: { ...ir.match, path: { kind: 'regex', value: `${escapeRegex(p.value)}(/.*)?` } } };
}

/**
 * A group of proxyless gRPC clients: per product host, an API listener named as the host and a route
 * table with that host's virtual host; the clusters its routes use, always HTTP/2 and EDS with a
 * weighted locality. No catch-all 404, 405 fallback or other direct response: gRPC clients refuse a
 * route table holding one (an RPC no route matches fails with UNAVAILABLE on the client).
 */
export function proxylessGroupToIr(model: ModelSnapshot, group: GatewayGroup): GroupIR {
  const byHost = new Map<string, PlacedRoute[]>();
  const serviceNames = new Set<string>();
  for (const p of groupProducts(model, group.name)) {
    // Ordered by the route's own path, served with the path gRPC clients can read.
    const routes = productRoutes(model, p.name)
      .map((r) => proxylessRouteIr(model, p, r))
      .map((ir) => ({ ir: withGrpcPath(ir), key: orderKey(ir, 0) }));
    for (const { ir: r } of routes) if (r.action.kind === 'forward') for (const c of r.action.clusters) serviceNames.add(c.name);
    for (const host of productHosts(p) ?? []) {
      let list = byHost.get(host);
      if (!list) byHost.set(host, (list = []));
      list.push(...routes);
    }
  }
  const hosts = [...byHost.keys()].sort(compareStrings);
  const routeTables: RouteTableIR[] = hosts.map((host) => ({
    name: host,
    maxDirectResponseBodyBytes: 0,
    virtualHosts: [{ name: host, domains: [host], routes: [...byHost.get(host)!].sort((a, b) => compareRoutes(a.key, b.key)).map((p) => p.ir) }],
  }));
  const clusters = [...serviceNames]
    .sort(compareStrings)
    .map((n) => model.services.get(n))
    .filter((s): s is Service => s !== undefined)
    .map((s) => {
      // gRPC is HTTP/2; clients do no active health checking (outlier detection they do).
      const { healthCheck: _hc, ...c } = clusterIr(s);
      return { ...c, http2: true, localityWeight: 1 };
    });
  return {
    name: group.name,
    kind: 'proxyless-grpc',
    filters: { cors: false, routeLocalRateLimit: false, planLimits: [], quotas: [] },
    stripRequestHeaders: [],
    stripRequestHeaderPrefixes: [],
    listeners: [],
    apiListeners: hosts.map((host) => ({ name: host, routeTable: host })),
    routeTables,
    clusters,
    secrets: [],
  };
}
