// Model → IR for one route: its match, action (forward, weighted, direct), header mutations, CORS,
// ext_authz settings and limits, the same in every virtual host that carries it; and the gateway's
// own JSON responses (404, 405).
import {
  apiKeyHeader,
  effectiveAccept,
  narrowDescriptorSet,
  fullPath,
  segmentPrefix,
  runsInEnvoy,
  type ModelSnapshot,
  type CredentialType,
  type HeaderMatch,
  type Product,
  type QueryMatch,
  type Route,
  type Service,
  type RateLimitMode,
  FLOW_DEFAULTS,
} from '../../model/index.ts';
import { COMBINED_CONTEXT_KEY, COMBINED_CONTEXT_VALUE, FLOW_HEADERS, FLOW_NAMES, GATEWAY_HEADERS } from '../../contract/index.ts';
import { localBucket, routeLimits } from './limits.ts';
import type {
  ActionIR,
  CorsIR,
  HeaderMatchIR,
  HeaderMutationIR,
  MatchIR,
  PathMatchIR,
  QueryMatchIR,
  QuotaDenyIR,
  RetryIR,
  RouteAccessIR,
  RouteAuthzIR,
  RouteIR,
  RouteLimitEntryIR,
  ValueMatchIR,
} from '../ir.ts';
import { compareStrings, stripPrefixRewrite } from '../paths.ts';
import { DEFAULTS, sortMethods } from './common.ts';
import { headerRulesIr, literalHeaderValue } from './headers.ts';
import { cacheIr, withKeyCluster } from './cache.ts';
import { compressionIr } from './compression.ts';
import { idempotencyIr } from './idempotency.ts';
import { nativeApiKeyAuth, onePlan, PLAN_FROM_ACCESS, PLAN_FROM_PLAN_ACCESS, type NativeAuthContext } from './native-auth.ts';
import { nativeJwtAuth, payloadClaimHeader, waivedRoutes, type NativeJwtContext } from './native-jwt.ts';
import { nativeMtlsAccess, peerHeadersOf } from './native-mtls.ts';
import { NATIVE_FLOW_GUARD, nativeFlowIr } from './native-flows.ts';

// ── routes ────────────────────────────────────────────────────────────────────
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
    path: { kind: segmentPrefix(product, route) ? 'segment_prefix' : m.path.type, value: fullPath(product, route) },
    ...(m.methods ? { methods: sortMethods(m.methods) } : {}),
    headers: (m.headers ?? []).map(headerMatchIr),
    query: (m.query ?? []).map(queryMatchIr),
  };
}

export function retryIr(r: Route['retries']): RetryIR | undefined {
  if (!r || r.attempts === 0) return undefined;
  return {
    retryOn: [...(r.retryOn ?? DEFAULTS.retryOn)],
    numRetries: r.attempts,
    ...(r.perTryTimeoutMs !== undefined ? { perTryTimeoutMs: r.perTryTimeoutMs } : {}),
    retriableStatusCodes: [...(r.retriableStatusCodes ?? [])].sort((a, b) => a - b),
  };
}

/** The service whose timeout and retries a route inherits: its service, or its heaviest backend (first on a tie). */
export function primaryService(route: Route): string | undefined {
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
  const timeoutMs = route.timeoutMs ?? svc?.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  // Answered by the flows Wasm filter before the router: the action only guards against the filter being off.
  if (runsInEnvoy(route.flow)) return NATIVE_FLOW_GUARD;
  if (route.flow || route.transform) {
    // Sent to the flow runtime. Never retried here (a flow's calls may change things upstream);
    // its calls get their services' retries through the step listener.
    return {
      kind: 'forward',
      clusters: [{ name: FLOW_NAMES.cluster, weight: 1 }],
      weighted: false,
      ...(route.transform && rewrite ? { rewrite } : {}),
      timeoutMs: (route.flow ? (route.flow.timeoutMs ?? FLOW_DEFAULTS.flowTimeoutMs) : timeoutMs) + DEFAULTS.flowRouteMarginMs,
      flow: `${route.product}/${route.name}`,
    };
  }
  const retry = retryIr(route.retries ?? svc?.retries);
  return {
    kind: 'forward',
    clusters,
    weighted: route.backends !== undefined,
    ...(rewrite ? { rewrite } : {}),
    ...(rw?.host ? { hostRewrite: rw.host } : {}),
    timeoutMs,
    ...(retry ? { retry } : {}),
  };
}

export function corsIr(p: Product): CorsIR | undefined {
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
  /** Native mode: the products whose plans the callout counts (combined) all the same (modes.ts: calloutProducts). */
  calloutProducts?: ReadonlySet<string>;
  /** Native mode: the rate limit entries of each route (by IR name) that plan limits apply to. */
  planLimits?: ReadonlyMap<string, RouteLimitEntryIR[]>;
  /** Native mode: quota refusals of each route (by IR name). */
  quotaDeny?: ReadonlyMap<string, QuotaDenyIR[]>;
  /** Native authorization mode: what the group's native routes share. */
  nativeAuth?: NativeAuthContext;
  /** Native authorization mode: the issuers Envoy verifies alone. */
  nativeJwt?: NativeJwtContext;
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
  const responseHeaders = headerRulesIr(model, product, route, 'response');
  if (route.directResponse) {
    const d = route.directResponse;
    const contentType = d.contentType ?? (d.body !== undefined ? 'text/plain; charset=utf-8' : undefined);
    if (contentType !== undefined && !responseHeaders.set.some(([k]) => k === 'content-type')) {
      responseHeaders.set = [...responseHeaders.set, ['content-type', literalHeaderValue(contentType)] as [string, string]].sort((a, b) => compareStrings(a[0], b[0]));
    }
  }
  const accept = effectiveAccept(product, route);
  // The group's mode, or combined for a product of a native group whose plans need the callout.
  const rateLimitMode: RateLimitMode | undefined = filters?.calloutProducts?.has(product.name) ? 'combined' : filters?.rateLimitMode;
  const cors = corsIr(product);
  const limits = filters ? routeLimits(model, product, route) : undefined;
  const publicOnly = accept.every((a) => a === 'none');
  const compression = compressionIr(product, route);
  const cacheSettings = filters && action.kind === 'forward' && !action.flow ? cacheIr(route, !accept.every((a) => a === 'none')) : undefined;
  // A cache needing no key filter forwards to its own cluster (to-ir/cache.ts).
  const { cache, action: routeAction } = cacheSettings && action.kind === 'forward' ? withKeyCluster(cacheSettings, action) : { cache: cacheSettings, action };
  const idempotency = filters ? idempotencyIr(product, route) : undefined;
  const flow = action.kind === 'forward' ? action.flow : undefined;
  let requestHeaders = filters ? withoutApiKey(headerRulesIr(model, product, route, 'request'), product, accept) : headerRulesIr(model, product, route, 'request');
  // The runtime learns which flow to run from the route (the edge strips any client-sent copy).
  if (flow) requestHeaders = { ...requestHeaders, set: [...requestHeaders.set, [FLOW_HEADERS.flow, flow] as [string, string]].sort((a, b) => compareStrings(a[0], b[0])) };
  const name = `${product.name}/${route.name}`;
  const nativeFlow = filters ? nativeFlowIr(model, route) : undefined;
  const planLimits = filters?.planLimits?.get(name);
  const quotaDeny = filters?.quotaDeny?.get(name);
  // Limits counted natively (rateLimit.mode native) need no callout; the callout's own counting does.
  const countedByCallout = limits?.limited === true && rateLimitMode !== 'native';
  const native = filters?.nativeAuth && limits ? nativeApiKeyAuth(model, product, route, accept, countedByCallout, filters.nativeAuth) : undefined;
  const jwt = filters?.nativeAuth && filters.nativeJwt && limits ? nativeJwtAuth(model, product, route, accept, countedByCallout, filters.nativeJwt, filters.nativeAuth) : undefined;
  const mtls = filters?.nativeAuth && limits ? nativeMtlsAccess(model, product, route, accept, countedByCallout, filters.nativeAuth) : undefined;
  const ir: RouteIR = {
    name,
    metadata: { product: product.name, route: route.name, ...(flow ? { flow } : nativeFlow ? { flow: name } : {}) },
    match,
    action: routeAction,
    requestHeaders,
    responseHeaders,
    ...(cors ? { cors } : {}),
    ...(filters && limits && rateLimitMode ? { authz: routeAuthz(product, route, accept, limits.limited, rateLimitMode) } : {}),
    ...(filters && limits?.limited && rateLimitMode === 'service' ? { rateLimit: { product: product.name, route: route.name, partnerFromAuthz: !publicOnly, countHeaders: limits.countHeaders } } : {}),
    ...(filters && route.localRateLimit ? { localRateLimit: localBucket(route.localRateLimit) } : {}),
    ...(filters && compression ? { compression } : {}),
    ...(cache ? { cache } : {}),
    ...(planLimits ? { planLimits } : {}),
    ...(quotaDeny ? { quotaDeny } : {}),
    ...(filters ? grpcIr(model, route) : {}),
    ...(idempotency ? { idempotency } : {}),
    ...(nativeFlow ? { nativeFlow } : {}),
  };
  if (native) return nativeRoute(ir, product, route, 'api_key', native.access, { apiKeyAuth: native.apiKeyAuth });
  if (jwt) {
    // Paths where the issuers waive the token: anonymous, as the callout lets them through.
    const anonymous: Array<[string, string]> = [
      [GATEWAY_HEADERS.credential, 'none'],
      [GATEWAY_HEADERS.product, product.name],
      [GATEWAY_HEADERS.route, route.name],
      ...(product.publicPlan !== undefined ? [[GATEWAY_HEADERS.plan, literalHeaderValue(product.publicPlan)] as [string, string]] : []),
    ];
    const waived = waivedRoutes(model, product, ir, anonymous);
    return { ...nativeRoute(ir, product, route, 'jwt', jwt.access, { jwtAuth: jwt.jwtAuth }), ...(waived.length ? { waived } : {}) };
  }
  return mtls ? nativeRoute(ir, product, route, 'mtls', mtls, {}) : ir;
}

/** A route's gRPC-JSON transcoding and gRPC-Web (Envoy groups). */
function grpcIr(model: ModelSnapshot, route: Route): Pick<RouteIR, 'transcoder' | 'grpcWeb'> {
  const t = route.transcode;
  const descriptor = route.service ? model.services.get(route.service)?.grpc?.descriptorSet : undefined;
  return {
    ...(t && descriptor ? { transcoder: { descriptorSet: narrowDescriptorSet(descriptor, t.methods), services: [...t.services].sort(compareStrings), ndjson: t.streaming === 'ndjson' } } : {}),
    ...(route.grpcWeb ? { grpcWeb: true } : {}),
  };
}

/**
 * A route Envoy authorizes itself: api_key_auth or jwt_authn and the access RBAC on, ext_authz off.
 * The authentication filter forwards the partner (x-portico-partner, for later filters and the
 * upstream) and hides the credential; the route adds the identity headers the callout would have
 * set, the plan from the access RBAC's match.
 */
function nativeRoute(ir: RouteIR, product: Product, route: Route, credential: CredentialType, access: RouteAccessIR, authn: Pick<RouteIR, 'apiKeyAuth' | 'jwtAuth'>): RouteIR {
  const plan = onePlan(access);
  const identity: Array<[string, string]> = [
    [GATEWAY_HEADERS.credential, credential],
    [GATEWAY_HEADERS.product, product.name],
    [GATEWAY_HEADERS.route, route.name],
    // The plan all callers share as a literal; else the access RBAC's shadow match names it.
    ...(plan !== undefined ? [[GATEWAY_HEADERS.plan, literalHeaderValue(plan)] as [string, string]] : []),
    ...(plan === undefined && access.allowed.length && !access.identities ? [[GATEWAY_HEADERS.plan, PLAN_FROM_ACCESS] as [string, string]] : []),
    ...(plan === undefined && access.allowed.length && access.identities ? [[GATEWAY_HEADERS.plan, PLAN_FROM_PLAN_ACCESS] as [string, string]] : []),
    // Dotted forwarded claims: the top-level claim overwrites what jwt_authn read on the nested path.
    ...(authn.jwtAuth?.payloadClaims ?? []).map(([h, p, c]): [string, string] => [h, payloadClaimHeader(p, c)!]),
    // Identity routes (no filter sets the partner header for every caller): the shadow match names the partner.
    ...(access.allowed.length && access.identities ? [[GATEWAY_HEADERS.partner, PLAN_FROM_ACCESS] as [string, string]] : []),
  ];
  const m = ir.requestHeaders;
  // The peer headers are for the access RBAC only: the upstream never sees them.
  const peer = peerHeadersOf(access).map(([h]) => h);
  const remove = peer.length ? [...new Set([...m.remove, ...peer])].sort(compareStrings) : m.remove;
  return { ...ir, requestHeaders: { ...m, set: [...m.set, ...identity].sort((a, b) => compareStrings(a[0], b[0])), remove }, authz: { disabled: true }, ...authn, access };
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

export function emptyMutation(): HeaderMutationIR {
  return { set: [], add: [], remove: [] };
}

export function gatewayResponse(name: string, path: PathMatchIR, status: number, body: string, extraHeaders: Array<[string, string]>, withAuthz: boolean): RouteIR {
  return {
    name,
    match: { path, headers: [], query: [] },
    action: { kind: 'direct', status, body },
    requestHeaders: emptyMutation(),
    responseHeaders: { set: [['content-type', 'application/json'] as [string, string], ...extraHeaders].sort((a, b) => compareStrings(a[0], b[0])), add: [], remove: [] },
    ...(withAuthz ? { authz: { disabled: true as const } } : {}),
  };
}
