// Model → IR (pure): which products, routes, services and certificates each gateway group (Envoy or
// proxyless gRPC) serves, with every default resolved and every list ordered, so the Envoy emitters
// need no model knowledge.
import { sortedValues, DEFAULT_ACCEPT, apiKeyHeader, effectiveAccept, identityHeaders, fullPath, isIpLiteral, serviceDiscovery, type ModelSnapshot, type CredentialType, type GatewayGroup, type HeaderMatch, type Listener, type HeaderMutation, type Product, type QueryMatch, type RetryPolicy, type Route, type Service } from '../model/index.ts';
import { FILTERS } from './envoy/common.ts';
import { COMBINED_CONTEXT_KEY, COMBINED_CONTEXT_VALUE, LIMITS_UNAVAILABLE_STATUS, NOT_FOUND_BODY, NOT_FOUND_ROUTE, RATE_LIMIT_DOMAIN, methodNotAllowedBody } from '../contract/index.ts';
import { localBucket, rateLimitMode, routeLimits, type RateLimitMode } from './limits.ts';
import type {
  ActionIR,
  ClusterIR,
  CorsIR,
  GroupIR,
  HeaderMatchIR,
  HeaderMutationIR,
  LbPolicyIR,
  ListenerIR,
  MatchIR,
  PathMatchIR,
  QueryMatchIR,
  RetryIR,
  RouteAuthzIR,
  RouteIR,
  RouteTableIR,
  SecretIR,
  ValueMatchIR,
  TelemetryOptions,
  VirtualHostIR,
} from './ir.ts';
import { compareRoutes, compareStrings, samePath, stripPrefixRewrite, type RouteOrderKey } from './paths.ts';
import { telemetryClusters, telemetryIr } from './envoy/observability.ts';

/** Name of the cluster of Portico's gRPC callouts; a dot can never appear in a service name. */
export const CALLOUT_CLUSTER = 'portico.callouts';

/** What the model leaves unset, resolved here so the emitted config never relies on Envoy's defaults silently. */
export const DEFAULTS = {
  requestTimeoutMs: 15_000,
  connectTimeoutMs: 5_000,
  authzTimeoutMs: 250,
  authzFailureMode: 'closed',
  /** Rate limiting's part of a callout; without an answer in time, the rate-limit failure mode applies. */
  rateLimitTimeoutMs: 100,
  /** The limiter's own default (src/ratelimit): an outage lets requests pass unlimited. */
  rateLimitFailureMode: 'open',
  /** Routes and products without `auth` require one of these credentials (secure by default). */
  accept: DEFAULT_ACCEPT,
  /** Retry conditions when a policy sets attempts but not retryOn: only failures before the request reached the upstream. */
  retryOn: ['connect-failure', 'refused-stream'] as readonly string[],
  listenerAddress: '0.0.0.0',
  healthCheck: { intervalMs: 10_000, timeoutMs: 2_000, healthyThreshold: 2, unhealthyThreshold: 3 },
  outlierDetection: { consecutive5xx: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 },
} as const;

const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];

export interface IrOptions {
  /** host:port of Portico's gRPC callout services (ext_authz and rate limit). */
  calloutAddress: string;
  /** Access-log streaming and tracing; off when unset. */
  telemetry?: TelemetryOptions;
}

/** Splits `host:port` or `[v6]:port`; throws on anything else (a settings error, not a model error). */
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new Error(`calloutAddress '${address}' must be host:port`);
  return { host: (m[1] ?? m[2])!, port };
}

export function sortMethods(methods: readonly string[]): string[] {
  return [...new Set(methods)].sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b));
}

/** The credential types a route accepts: its own, else its product's, else the default. */
export { effectiveAccept } from '../model/index.ts';

/** Products a gateway group serves, by name. */
export function groupProducts(model: ModelSnapshot, group: string): Product[] {
  return sortedValues(model, 'products').filter((p) => p.gatewayGroups.includes(group));
}

// Snapshots are immutable, so the per-product index of one routes map can be kept beside it.
const routeIndex = new WeakMap<ReadonlyMap<string, Route>, Map<string, Route[]>>();

/** Routes of a product, by name. */
export function productRoutes(model: ModelSnapshot, product: string): readonly Route[] {
  let index = routeIndex.get(model.routes);
  if (!index) {
    index = new Map();
    for (const r of sortedValues(model, 'routes')) {
      const list = index.get(r.product);
      if (list) list.push(r);
      else index.set(r.product, [r]);
    }
    routeIndex.set(model.routes, index);
  }
  return index.get(product) ?? [];
}

/** The host patterns a product claims, lower-case; undefined when it serves any host. */
export function productHosts(product: Pick<Product, 'hosts'>): string[] | undefined {
  const hosts = product.hosts;
  if (!hosts || hosts.length === 0 || hosts.includes('*')) return undefined;
  return [...new Set(hosts.map((h) => h.toLowerCase()))].sort(compareStrings);
}

/** Whether every host matching `domain` also matches `pattern` (Envoy wildcards match one or more characters). */
export function hostCovers(pattern: string, domain: string): boolean {
  if (pattern === domain) return true;
  if (!pattern.startsWith('*')) return false;
  const suffix = pattern.slice(1);
  const rest = domain.startsWith('*') ? domain.slice(1) : domain;
  return domain.startsWith('*') ? rest.endsWith(suffix) && rest.length >= suffix.length : rest.endsWith(suffix) && rest.length > suffix.length;
}

/** Exact hosts first, then wildcards (longest first), each group alphabetically. */
function compareDomains(a: string, b: string): number {
  const wa = a.startsWith('*') ? 1 : 0;
  const wb = b.startsWith('*') ? 1 : 0;
  if (wa !== wb) return wa - wb;
  if (wa === 1 && a.length !== b.length) return b.length - a.length;
  return compareStrings(a, b);
}

// ── routes ────────────────────────────────────────────────────────────────────
/** Header values pass through Envoy's formatter, where % starts a command: keep them literal. */
function literalHeaderValue(v: string): string {
  return v.replace(/%/g, '%%');
}

function mutationIr(m: HeaderMutation | undefined): HeaderMutationIR {
  const pairs = (r: Record<string, string> | undefined): Array<[string, string]> =>
    Object.entries(r ?? {})
      .map(([k, v]): [string, string] => [k.toLowerCase(), literalHeaderValue(v)])
      .sort((a, b) => compareStrings(a[0], b[0]) || compareStrings(a[1], b[1]));
  return {
    set: pairs(m?.set),
    add: pairs(m?.add),
    remove: [...new Set((m?.remove ?? []).map((h) => h.toLowerCase()))].sort(compareStrings),
  };
}

function valueMatchIr(m: HeaderMatch | QueryMatch): ValueMatchIR {
  if (m.exact !== undefined) return { kind: 'exact', value: m.exact };
  // Every value starts with '', and Envoy refuses an empty prefix: that is a presence check.
  if (m.prefix !== undefined) return m.prefix === '' ? { kind: 'present', present: true } : { kind: 'prefix', value: m.prefix };
  if (m.regex !== undefined) return { kind: 'regex', value: m.regex };
  return { kind: 'present', present: m.present ?? true };
}

function headerMatchIr(h: HeaderMatch): HeaderMatchIR {
  const name = h.name.toLowerCase();
  return { name: name === 'host' ? ':authority' : name, match: valueMatchIr(h), invert: h.invert ?? false };
}

/** Envoy cannot invert a query matcher; presence can be flipped instead (validateTranslation refuses the rest). */
function queryMatchIr(q: QueryMatch): QueryMatchIR {
  const match = valueMatchIr(q);
  if (q.invert && match.kind === 'present') return { name: q.name, match: { kind: 'present', present: !match.present } };
  return { name: q.name, match };
}

export function matchIr(product: Product, route: Route): MatchIR {
  const m = route.match;
  return {
    path: { kind: m.path.type, value: fullPath(product, route) },
    ...(m.methods ? { methods: sortMethods(m.methods) } : {}),
    headers: (m.headers ?? []).map(headerMatchIr),
    query: (m.query ?? []).map(queryMatchIr),
  };
}

function retryIr(r: Route['retries']): RetryIR | undefined {
  if (!r || r.attempts === 0) return undefined;
  return {
    retryOn: [...(r.retryOn ?? DEFAULTS.retryOn)],
    numRetries: r.attempts,
    ...(r.perTryTimeoutMs !== undefined ? { perTryTimeoutMs: r.perTryTimeoutMs } : {}),
    retriableStatusCodes: [...(r.retriableStatusCodes ?? [])].sort((a, b) => a - b),
  };
}

/** The service whose timeout and retries a route inherits: its service, or its heaviest backend (first on a tie). */
function primaryService(route: Route): string | undefined {
  if (route.service) return route.service;
  let best: { service: string; weight: number } | undefined;
  for (const b of route.backends ?? []) if (!best || b.weight > best.weight) best = b;
  return best?.service;
}

function actionIr(model: ModelSnapshot, match: MatchIR, route: Route): ActionIR {
  if (route.directResponse) {
    const d = route.directResponse;
    return { kind: 'direct', status: d.status, ...(d.body !== undefined ? { body: d.body } : {}) };
  }
  const primary = primaryService(route);
  const svc: Service | undefined = primary ? model.services.get(primary) : undefined;
  const clusters = route.backends ? route.backends.map((b) => ({ name: b.service, weight: b.weight })) : [{ name: route.service ?? '', weight: 1 }];
  const rw = route.rewrite;
  const rewrite = rw?.stripPrefix
    ? stripPrefixRewrite(match.path, rw.stripPrefix)
    : rw?.prefix
      ? { kind: 'prefix' as const, value: rw.prefix }
      : rw?.regex
        ? { kind: 'regex' as const, pattern: rw.regex.pattern, substitution: rw.regex.substitution }
        : undefined;
  const retry = retryIr(route.retries ?? svc?.retries);
  return {
    kind: 'forward',
    clusters,
    weighted: route.backends !== undefined,
    ...(rewrite ? { rewrite } : {}),
    ...(rw?.host ? { hostRewrite: rw.host } : {}),
    timeoutMs: route.timeoutMs ?? svc?.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    ...(retry ? { retry } : {}),
  };
}

function corsIr(p: Product): CorsIR | undefined {
  const c = p.cors;
  if (!c) return undefined;
  return {
    allowOrigins: [...c.allowOrigins],
    allowMethods: sortMethods(c.allowMethods ?? []),
    allowHeaders: [...(c.allowHeaders ?? [])],
    exposeHeaders: [...(c.exposeHeaders ?? [])],
    ...(c.maxAgeSeconds !== undefined ? { maxAgeSeconds: c.maxAgeSeconds } : {}),
    ...(c.allowCredentials !== undefined ? { allowCredentials: c.allowCredentials } : {}),
  };
}

/** What an Envoy group's filter chain does for its product routes. */
export interface RouteFilters {
  /** How plan limits are enforced: counted by ext_authz in its callout, or by Envoy's rate-limit filter. */
  rateLimitMode: RateLimitMode;
}

/**
 * ext_authz for a route: routes that take credentials are checked by the main instance; in
 * combined mode, routes open to anonymous callers that a plan limits are checked (only counted) by
 * the limits instance; every other route skips ext_authz (no callout). `ratelimit: combined` tells
 * the callout to count the request after allowing it.
 */
function routeAuthz(product: Product, route: Route, accept: readonly CredentialType[], limited: boolean, mode: RateLimitMode): RouteAuthzIR {
  const publicOnly = accept.every((a) => a === 'none');
  const counted = limited && mode === 'combined';
  if (publicOnly && !counted) return { disabled: true };
  const contextExtensions: Record<string, string> = { accept: accept.join(','), product: product.name, route: route.name };
  if (counted) contextExtensions[COMBINED_CONTEXT_KEY] = COMBINED_CONTEXT_VALUE;
  return { disabled: false, filter: publicOnly ? 'limits' : 'authz', contextExtensions };
}

/**
 * One model route as an Envoy route (the same in every virtual host that carries it). `filters`
 * is set for Envoy groups (ext_authz, rate limits, local buckets) and unset for proxyless gRPC.
 */
export function routeIr(model: ModelSnapshot, product: Product, route: Route, filters: RouteFilters | undefined): RouteIR {
  const match = matchIr(product, route);
  const action = actionIr(model, match, route);
  const responseHeaders = mutationIr(route.responseHeaders);
  if (route.directResponse) {
    const d = route.directResponse;
    const contentType = d.contentType ?? (d.body !== undefined ? 'text/plain; charset=utf-8' : undefined);
    if (contentType !== undefined && !responseHeaders.set.some(([k]) => k === 'content-type')) {
      responseHeaders.set = [...responseHeaders.set, ['content-type', literalHeaderValue(contentType)] as [string, string]].sort((a, b) =>
        compareStrings(a[0], b[0]),
      );
    }
  }
  const accept = effectiveAccept(product, route);
  const cors = corsIr(product);
  const limits = filters ? routeLimits(model, product, route) : undefined;
  const publicOnly = accept.every((a) => a === 'none');
  return {
    name: `${product.name}/${route.name}`,
    metadata: { product: product.name, route: route.name },
    match,
    action,
    requestHeaders: filters ? withoutApiKey(mutationIr(route.requestHeaders), product, accept) : mutationIr(route.requestHeaders),
    responseHeaders,
    ...(cors ? { cors } : {}),
    ...(filters && limits ? { authz: routeAuthz(product, route, accept, limits.limited, filters.rateLimitMode) } : {}),
    ...(filters && limits?.limited && filters.rateLimitMode === 'service'
      ? { rateLimit: { product: product.name, route: route.name, partnerFromAuthz: !publicOnly, countHeaders: limits.countHeaders } }
      : {}),
    ...(filters && route.localRateLimit ? { localRateLimit: localBucket(route.localRateLimit) } : {}),
  };
}

/**
 * The router drops the API key header of a route that takes keys. ext_authz removes it from an
 * allowed request already; this covers the request it never answered (failure mode open), so an
 * upstream never holds a caller's key. (A key sent as a query parameter cannot be removed here.)
 */
function withoutApiKey(m: HeaderMutationIR, product: Product, accept: readonly CredentialType[]): HeaderMutationIR {
  const header = accept.includes('api_key') ? apiKeyHeader(product) : undefined;
  if (header === undefined || m.remove.includes(header)) return m;
  return { ...m, remove: [...m.remove, header].sort(compareStrings) };
}

function emptyMutation(): HeaderMutationIR {
  return { set: [], add: [], remove: [] };
}

function gatewayResponse(name: string, path: PathMatchIR, status: number, body: string, extraHeaders: Array<[string, string]>, withAuthz: boolean): RouteIR {
  return {
    name,
    match: { path, headers: [], query: [] },
    action: { kind: 'direct', status, body },
    requestHeaders: emptyMutation(),
    responseHeaders: { set: [['content-type', 'application/json'] as [string, string], ...extraHeaders].sort((a, b) => compareStrings(a[0], b[0])), add: [], remove: [] },
    ...(withAuthz ? { authz: { disabled: true as const } } : {}),
  };
}

interface PlacedRoute {
  ir: RouteIR;
  key: RouteOrderKey;
}

function orderKey(ir: RouteIR, hostRank: number): RouteOrderKey {
  const m = ir.match;
  return {
    path: m.path,
    constraints: (m.methods ? 1 : 0) + m.headers.length + m.query.length,
    methodCount: m.methods ? m.methods.length : Infinity,
    hostRank,
    name: ir.name,
  };
}

/**
 * Orders a virtual host's routes most-specific-first, adds a 405 fallback after each path whose
 * routes all restrict methods, and ends with the 404 catch-all. `shared` keeps one object per
 * generated route across the virtual hosts of a group (they repeat the same paths).
 */
export function orderVirtualHostRoutes(placed: readonly PlacedRoute[], withAuthz: boolean, shared = new Map<string, RouteIR>()): RouteIR[] {
  const once = (key: string, make: () => RouteIR): RouteIR => {
    let r = shared.get(key);
    if (!r) shared.set(key, (r = make()));
    return r;
  };
  const sorted = [...placed].sort((a, b) => compareRoutes(a.key, b.key));
  const out: RouteIR[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j < sorted.length && samePath(sorted[j]!.key.path, sorted[i]!.key.path)) j++;
    const samePathRoutes = sorted.slice(i, j).map((p) => p.ir);
    const id = JSON.stringify(samePathRoutes.map((r) => r.name).concat(samePathRoutes[0]!.match.path.kind, samePathRoutes[0]!.match.path.value));
    const restricted = samePathRoutes.filter((r) => r.match.methods);
    const catchesAll = samePathRoutes.some((r) => !r.match.methods && r.match.headers.length === 0 && r.match.query.length === 0);
    const fallback = restricted.length > 0 && !catchesAll;
    // Envoy's CORS filter skips direct responses, so their preflights (and those that would hit
    // the 405 fallback) need a forwarding route of their own; the filter answers them itself.
    const cors = samePathRoutes.find((r) => r.cors)?.cors;
    if (cors && (fallback || samePathRoutes.some((r) => r.action.kind === 'direct'))) out.push(once(`preflight ${id}`, () => corsPreflight(samePathRoutes, cors, withAuthz)));
    out.push(...samePathRoutes);
    if (fallback) out.push(once(`405 ${id}`, () => methodFallback(samePathRoutes, withAuthz)));
    i = j;
  }
  out.push(once('404', () => gatewayResponse(NOT_FOUND_ROUTE, { kind: 'prefix', value: '/' }, 404, NOT_FOUND_BODY, [], withAuthz)));
  return out;
}

/** The product of gateway-generated routes, when all routes on the path belong to one. */
function singleProduct(routes: readonly RouteIR[]): { metadata: { product: string } } | Record<string, never> {
  const products = [...new Set(routes.map((r) => r.metadata?.product))];
  return products.length === 1 && products[0] !== undefined ? { metadata: { product: products[0] } } : {};
}

function methodFallback(routes: readonly RouteIR[], withAuthz: boolean): RouteIR {
  const allowed = sortMethods(routes.flatMap((r) => r.match.methods ?? []));
  const fallback = gatewayResponse('portico/method-not-allowed', routes[0]!.match.path, 405, methodNotAllowedBody(allowed), [['allow', allowed.join(', ')]], withAuthz);
  return { ...fallback, ...singleProduct(routes) };
}

/** Matches CORS preflights (OPTIONS with Origin and Access-Control-Request-Method) on one path. */
function corsPreflight(routes: readonly RouteIR[], cors: CorsIR, withAuthz: boolean): RouteIR {
  const forward = routes.find((r) => r.action.kind === 'forward')?.action;
  // Never contacted (the CORS filter answers every preflight), but a route needs a real cluster.
  const cluster = forward?.kind === 'forward' ? forward.clusters[0]!.name : CALLOUT_CLUSTER;
  const present = (name: string): HeaderMatchIR => ({ name, match: { kind: 'present', present: true }, invert: false });
  return {
    name: 'portico/cors-preflight',
    ...singleProduct(routes),
    match: { path: routes[0]!.match.path, methods: ['OPTIONS'], headers: [present('origin'), present('access-control-request-method')], query: [] },
    action: { kind: 'forward', clusters: [{ name: cluster, weight: 1 }], weighted: false, timeoutMs: DEFAULTS.requestTimeoutMs },
    requestHeaders: emptyMutation(),
    responseHeaders: emptyMutation(),
    cors,
    ...(withAuthz ? { authz: { disabled: true as const } } : {}),
  };
}

/** The virtual hosts of a group: one per named host (with the host-agnostic routes merged in), then `*`. */
export function virtualHostsIr(model: ModelSnapshot, products: readonly Product[], filters: RouteFilters): VirtualHostIR[] {
  const withAuthz = true;
  // Every route once, in the order it takes in any virtual host (up to host specificity), so the
  // per-host sort below only has to move a few routes: a gateway has many hosts and many routes.
  const all = products
    .flatMap((p) => {
      const hosts = productHosts(p);
      return productRoutes(model, p.name).map((r) => ({ hosts, ir: routeIr(model, p, r, filters) }));
    })
    .map((x) => ({ ...x, key: orderKey(x.ir, 0) }))
    .sort((a, b) => compareRoutes(a.key, b.key));
  const place = (domain: string | undefined): PlacedRoute[] => {
    const placed: PlacedRoute[] = [];
    for (const { hosts, ir } of all) {
      const claim = hosts === undefined ? 2 : domain === undefined ? -1 : hosts.includes(domain) ? 0 : hosts.some((h) => hostCovers(h, domain)) ? 1 : -1;
      if (claim >= 0) placed.push({ ir, key: orderKey(ir, claim) });
    }
    return placed;
  };
  const shared = new Map<string, RouteIR>();
  const domains = [...new Set(all.flatMap((x) => x.hosts ?? []))].sort(compareDomains);
  const hosts: VirtualHostIR[] = domains.map((domain) => ({ name: domain, domains: [domain], routes: orderVirtualHostRoutes(place(domain), withAuthz, shared) }));
  hosts.push({ name: 'any_host', domains: ['*'], routes: orderVirtualHostRoutes(place(undefined), withAuthz, shared) });
  return hosts;
}

// ── clusters ──────────────────────────────────────────────────────────────────
const LB_POLICY: Readonly<Record<NonNullable<Service['lbPolicy']>, LbPolicyIR>> = {
  round_robin: 'ROUND_ROBIN',
  least_request: 'LEAST_REQUEST',
  random: 'RANDOM',
  ring_hash: 'RING_HASH',
  maglev: 'MAGLEV',
};

/** IPv6 literals may be written in brackets in the model; Envoy wants the bare address. */
function bareHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export function clusterIr(s: Service): ClusterIR {
  const od = s.outlierDetection;
  const hc = s.healthCheck;
  const cb = s.circuitBreaker;
  const tls = s.tls;
  const verify = tls ? tls.verify !== false : false;
  // Without an explicit SNI, a service whose endpoints all share one DNS name is addressed by that name.
  const names = [...new Set(s.endpoints.map((e) => e.host).filter((h) => !isIpLiteral(h)))];
  const sni = tls?.sni ?? (names.length === 1 && s.endpoints.every((e) => e.host === names[0]) ? names[0] : undefined);
  return {
    name: s.name,
    discovery: serviceDiscovery(s) === 'static' ? 'eds' : 'strict_dns',
    endpoints: s.endpoints.map((e) => ({ host: bareHost(e.host), port: e.port, ...(e.weight !== undefined ? { weight: e.weight } : {}) })),
    lbPolicy: LB_POLICY[s.lbPolicy ?? 'round_robin'] ?? 'ROUND_ROBIN',
    connectTimeoutMs: s.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    http2: s.protocol === 'http2',
    ...(cb && Object.keys(cb).length > 0
      ? {
          circuitBreaker: {
            ...(cb.maxConnections !== undefined ? { maxConnections: cb.maxConnections } : {}),
            ...(cb.maxPendingRequests !== undefined ? { maxPendingRequests: cb.maxPendingRequests } : {}),
            ...(cb.maxRequests !== undefined ? { maxRequests: cb.maxRequests } : {}),
            ...(cb.maxRetries !== undefined ? { maxRetries: cb.maxRetries } : {}),
          },
        }
      : {}),
    ...(od
      ? {
          outlierDetection: {
            consecutive5xx: od.consecutive5xx ?? DEFAULTS.outlierDetection.consecutive5xx,
            intervalMs: od.intervalMs ?? DEFAULTS.outlierDetection.intervalMs,
            baseEjectionTimeMs: od.baseEjectionTimeMs ?? DEFAULTS.outlierDetection.baseEjectionTimeMs,
            maxEjectionPercent: od.maxEjectionPercent ?? DEFAULTS.outlierDetection.maxEjectionPercent,
          },
        }
      : {}),
    ...(hc
      ? {
          healthCheck: {
            path: hc.path,
            ...(hc.host !== undefined ? { host: hc.host } : {}),
            intervalMs: hc.intervalMs ?? DEFAULTS.healthCheck.intervalMs,
            timeoutMs: hc.timeoutMs ?? DEFAULTS.healthCheck.timeoutMs,
            healthyThreshold: hc.healthyThreshold ?? DEFAULTS.healthCheck.healthyThreshold,
            unhealthyThreshold: hc.unhealthyThreshold ?? DEFAULTS.healthCheck.unhealthyThreshold,
            expectedStatuses: [...(hc.expectedStatuses ?? [])].sort((a, b) => a - b),
          },
        }
      : {}),
    ...(tls
      ? {
          tls: {
            ...(sni !== undefined ? { sni } : {}),
            verify,
            ...(verify && tls.ca ? { caSecret: `ca/${tls.ca}` } : {}),
            ...(verify && sni !== undefined ? { verifySubjectAltName: sni } : {}),
            ...(tls.clientCertificate ? { clientCertificateSecret: `tls/${tls.clientCertificate}` } : {}),
          },
        }
      : {}),
  };
}

function calloutCluster(address: string): ClusterIR {
  const { host, port } = parseHostPort(address);
  return {
    name: CALLOUT_CLUSTER,
    // A name (e.g. a Kubernetes service) cannot be a STATIC address; resolve it instead.
    discovery: isIpLiteral(host) ? 'static' : 'strict_dns',
    endpoints: [{ host, port }],
    lbPolicy: 'ROUND_ROBIN',
    connectTimeoutMs: 1_000,
    http2: true,
  };
}

// ── groups ────────────────────────────────────────────────────────────────────
function listenerIr(group: GatewayGroup, l: Listener): ListenerIR {
  const hostnames = l.hostnames ?? [];
  return {
    name: l.name,
    address: l.address ?? DEFAULTS.listenerAddress,
    port: l.port,
    statPrefix: group.name,
    routeTable: l.name,
    ...(l.tls && (l.protocol ?? 'http') === 'https'
      ? {
          tls: {
            certificateSecret: `tls/${l.tls.certificate}`,
            ...(l.tls.clientCa ? { clientCaSecret: `ca/${l.tls.clientCa}` } : {}),
            requireClientCertificate: l.tls.clientCa ? (l.tls.requireClientCertificate ?? true) : false,
            serverNames: hostnames.includes('*') ? [] : [...new Set(hostnames.map((h) => h.toLowerCase()))].sort(compareStrings),
          },
        }
      : {}),
  };
}

function secretsIr(model: ModelSnapshot, listeners: readonly ListenerIR[], clusters: readonly ClusterIR[]): SecretIR[] {
  const names = new Set<string>();
  for (const l of listeners) {
    if (l.tls) names.add(l.tls.certificateSecret);
    if (l.tls?.clientCaSecret) names.add(l.tls.clientCaSecret);
  }
  for (const c of clusters) {
    if (c.tls?.caSecret) names.add(c.tls.caSecret);
    if (c.tls?.clientCertificateSecret) names.add(c.tls.clientCertificateSecret);
  }
  const out: SecretIR[] = [];
  for (const name of [...names].sort(compareStrings)) {
    const [kind, cert] = name.split('/') as ['tls' | 'ca', string];
    const c = model.certificates.get(cert);
    if (!c) continue;
    if (kind === 'ca') out.push({ name, kind, trustedCa: c.certificate });
    else if (c.privateKey !== undefined) out.push({ name, kind, certificateChain: c.certificate, privateKey: c.privateKey });
  }
  return out;
}


export function groupToIr(model: ModelSnapshot, group: GatewayGroup, options: IrOptions): GroupIR {
  if (group.kind === 'proxyless-grpc') return proxylessGroupToIr(model, group);
  const products = groupProducts(model, group.name);
  const mode = rateLimitMode(group);
  const virtualHosts = virtualHostsIr(model, products, { rateLimitMode: mode });
  // What the routes need decides which filters the chain holds.
  let checked = false;
  let counted = false;
  let countedAnonymous = false;
  let serviceLimited = false;
  let routeLocal = false;
  for (const vh of virtualHosts) {
    for (const r of vh.routes) {
      if (r.authz && !r.authz.disabled) {
        if (r.authz.filter === 'authz') checked = true;
        else countedAnonymous = true;
        if (r.authz.filter === 'authz' && r.authz.contextExtensions[COMBINED_CONTEXT_KEY] !== undefined) counted = true;
      }
      if (r.rateLimit) serviceLimited = true;
      if (r.localRateLimit) routeLocal = true;
    }
  }
  const listeners = (group.listeners ?? []).map((l) => listenerIr(group, l)).sort((a, b) => compareStrings(a.name, b.name));

  let maxBody = 0;
  for (const vh of virtualHosts) {
    for (const r of vh.routes) if (r.action.kind === 'direct' && r.action.body) maxBody = Math.max(maxBody, Buffer.byteLength(r.action.body));
  }
  const routeTables: RouteTableIR[] = listeners.map((l) => ({
    name: l.routeTable,
    maxDirectResponseBodyBytes: maxBody,
    virtualHosts,
  }));

  const serviceNames = new Set<string>();
  for (const vh of virtualHosts) {
    for (const r of vh.routes) if (r.action.kind === 'forward') for (const c of r.action.clusters) serviceNames.add(c.name);
  }
  const clusters = [...serviceNames]
    .sort(compareStrings)
    .map((n) => model.services.get(n))
    .filter((s): s is Service => s !== undefined)
    .map(clusterIr);
  clusters.push(calloutCluster(options.calloutAddress), ...telemetryClusters(options.telemetry));
  clusters.sort((a, b) => compareStrings(a.name, b.name));

  const authz = group.authz;
  const authzTimeoutMs = authz?.timeoutMs ?? DEFAULTS.authzTimeoutMs;
  const rateLimitTimeoutMs = group.rateLimit?.timeoutMs ?? DEFAULTS.rateLimitTimeoutMs;
  const rateLimitFailOpen = (group.rateLimit?.failureMode ?? DEFAULTS.rateLimitFailureMode) === 'open';
  return {
    name: group.name,
    kind: 'envoy',
    filters: {
      cors: products.some((p) => p.cors !== undefined),
      ...(group.localRateLimit ? { localRateLimit: localBucket(group.localRateLimit) } : {}),
      routeLocalRateLimit: routeLocal,
      ...(checked
        ? {
            extAuthz: {
              name: FILTERS.extAuthz,
              cluster: CALLOUT_CLUSTER,
              // A callout that also counts has the rate limiter's time on top of authorization's.
              timeoutMs: authzTimeoutMs + (counted ? rateLimitTimeoutMs : 0),
              failureModeAllow: (authz?.failureMode ?? DEFAULTS.authzFailureMode) === 'open',
              statusOnError: 503,
            },
          }
        : {}),
      ...(countedAnonymous
        ? {
            extAuthzLimits: {
              name: FILTERS.extAuthzLimits,
              statPrefix: 'limits',
              cluster: CALLOUT_CLUSTER,
              timeoutMs: rateLimitTimeoutMs,
              failureModeAllow: rateLimitFailOpen,
              statusOnError: LIMITS_UNAVAILABLE_STATUS,
            },
          }
        : {}),
      ...(serviceLimited
        ? { rateLimit: { cluster: CALLOUT_CLUSTER, domain: RATE_LIMIT_DOMAIN, timeoutMs: rateLimitTimeoutMs, failureModeDeny: !rateLimitFailOpen } }
        : {}),
    },
    stripRequestHeaders: identityHeaders(model),
    listeners,
    apiListeners: [],
    routeTables,
    clusters,
    secrets: secretsIr(model, listeners, clusters),
    ...telemetryIr(options.telemetry),
  };
}

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
 * A group of proxyless gRPC clients: per product host, an API listener named as the host and a route
 * table with that host's virtual host; the clusters its routes use, always HTTP/2 and EDS with a
 * weighted locality. No catch-all 404, 405 fallback or other direct response: gRPC clients refuse a
 * route table holding one (an RPC no route matches fails with UNAVAILABLE on the client).
 */
function proxylessGroupToIr(model: ModelSnapshot, group: GatewayGroup): GroupIR {
  const byHost = new Map<string, PlacedRoute[]>();
  const serviceNames = new Set<string>();
  for (const p of groupProducts(model, group.name)) {
    const routes = productRoutes(model, p.name).map((r) => proxylessRouteIr(model, p, r));
    for (const r of routes) if (r.action.kind === 'forward') for (const c of r.action.clusters) serviceNames.add(c.name);
    for (const host of productHosts(p) ?? []) {
      let list = byHost.get(host);
      if (!list) byHost.set(host, (list = []));
      for (const ir of routes) list.push({ ir, key: orderKey(ir, 0) });
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
    filters: { cors: false, routeLocalRateLimit: false },
    stripRequestHeaders: [],
    listeners: [],
    apiListeners: hosts.map((host) => ({ name: host, routeTable: host })),
    routeTables,
    clusters,
    secrets: [],
  };
}

/** Every gateway group's IR, by group name. */
export function modelToIr(model: ModelSnapshot, options: IrOptions): GroupIR[] {
  return sortedValues(model, 'gatewayGroups').map((g) => groupToIr(model, g, options));
}
