// Shared proto3-JSON building blocks for the Envoy emitters: durations, Any, the ADS config source,
// HTTP filter names, and the StatusCode names filters are configured with.
import { EXT_AUTHZ_FILTERS } from '../../contract/index.ts';
import { TYPE_URL_PREFIX, type Json, type JsonObject } from '../../proto/index.ts';

export type { Json, JsonObject };

/** HTTP filter names; per-route configuration is keyed by them. */
export const FILTERS = {
  stripIdentity: 'envoy.filters.http.header_mutation',
  cors: 'envoy.filters.http.cors',
  /** Native mode's API key check (off in the chain, on per route). */
  apiKeyAuth: 'envoy.filters.http.api_key_auth',
  /** Native mode's JWT verification (off in the chain, on per route with the route's issuers). */
  jwtAuthn: 'envoy.filters.http.jwt_authn',
  /** Native JWT routes: refuses forwarded claims that are no valid header value (RBAC, per route). */
  claimCheck: 'portico.rbac.claims',
  /**
   * Native mode's access RBAC (who may call, per route). Named as Envoy's RBAC filter itself: the
   * plan header reads its shadow match from dynamic metadata under this name (PLAN_FROM_ACCESS).
   */
  access: 'envoy.filters.http.rbac',
  /** Identity routes whose callers are on different plans: shadow rules only, the matching one names the plan (PLAN_FROM_PLAN_ACCESS). */
  planFromAccess: 'portico.access.plan',
  /** Native mTLS routes with plan limits: sets the partner header from the access RBAC's match, before the buckets read it. */
  partnerFromAccess: 'portico.header_mutation.partner',
  /** The gateway group's token bucket (GatewayGroup.localRateLimit). */
  localRateLimitGroup: 'portico.local_ratelimit.group',
  /** Routes' own token buckets (Route.localRateLimit, per-route config). */
  localRateLimitRoute: 'portico.local_ratelimit.route',
  /** Native mode's quota refusals (RBAC, per-route DENY policies for callers whose quota is used up). */
  quotaRbac: 'portico.rbac.quota',
  /** Native mode's plan limits: one instance per distinct limit, named `<this>.<stage>`. */
  localRateLimitPlans: 'portico.local_ratelimit.plans',
  extAuthz: EXT_AUTHZ_FILTERS.main,
  /** Combined mode's second ext_authz instance: counting only, for routes open to anonymous callers. */
  extAuthzLimits: EXT_AUTHZ_FILTERS.limits,
  rateLimit: 'envoy.filters.http.ratelimit',
  grpcWeb: 'envoy.filters.http.grpc_web',
  grpcJsonTranscoder: 'envoy.filters.http.grpc_json_transcoder',
  /** gRPC errors of transcoded routes in the gateway's JSON error shape (custom_response). */
  grpcErrors: 'portico.grpc_errors',
  /** Response compressors: one per profile and algorithm, `portico.compressor.<algorithm>.<profile>`. */
  compressorPrefix: 'portico.compressor',
  /** Flows that run in Envoy: the flows Wasm filter (on in the chain, off on routes without such a flow; flows-wasm/). */
  nativeFlows: 'portico.flows.wasm',
  /** Header renames of routes and products (a second header_mutation, just before the router). */
  headerRename: 'portico.header_rename',
  /** Response caching: the Lua filter that puts the caller and the purge generation into the key… */
  cacheKey: 'portico.cache.key',
  /** …one cache filter per profile, `portico.cache.<profile>`… */
  cachePrefix: 'portico.cache',
  /** …and the upstream filter of the clusters cached routes use, restoring the Host. */
  cacheKeyRestore: 'portico.cache.restore',
  router: 'envoy.filters.http.router',
} as const;

/** envoy.type.v3.StatusCode names of the statuses the translator configures filters with. */
const STATUS_NAMES: Readonly<Record<number, string>> = {
  429: 'TooManyRequests',
  503: 'ServiceUnavailable',
  507: 'InsufficientStorage',
};

export function statusName(code: number): string {
  const name = STATUS_NAMES[code];
  if (!name) throw new Error(`no envoy.type.v3.StatusCode name for ${code}`);
  return name;
}

/** A google.protobuf.Any in proto3 JSON: the message's fields beside its type URL. */
export function any(messageType: string, body: JsonObject = {}): JsonObject {
  return { '@type': `${TYPE_URL_PREFIX}${messageType}`, ...body };
}

/** A google.protobuf.Duration in proto3 JSON: "5s", "0.250s". */
export function duration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`duration must be a whole number of milliseconds, got ${ms}`);
  const s = Math.floor(ms / 1000);
  const frac = ms % 1000;
  return frac === 0 ? `${s}s` : `${s}.${String(frac).padStart(3, '0')}s`;
}

/** A google.protobuf.Duration from nanoseconds: "1200s", "0.050s", "8.571428571s". */
export function durationNs(ns: number): string {
  if (!Number.isSafeInteger(ns) || ns < 0) throw new Error(`duration must be a whole number of nanoseconds, got ${ns}`);
  if (ns % 1_000_000 === 0) return duration(ns / 1_000_000);
  const s = Math.floor(ns / 1e9);
  return `${s}.${String(ns % 1e9).padStart(9, '0')}s`;
}

/** Resources come over the same ADS stream as everything else. */
export function adsConfigSource(): JsonObject {
  return { ads: {}, resource_api_version: 'V3' };
}

/** SDS reference to a secret served over ADS. */
export function sdsSecret(name: string): JsonObject {
  return { name, sds_config: adsConfigSource() };
}

/** A TypedExtensionConfig. */
export function extension(name: string, messageType: string, body: JsonObject = {}): JsonObject {
  return { name, typed_config: any(messageType, body) };
}

/** A core.v3.SocketAddress inside an Address. */
export function socketAddress(address: string, port: number): JsonObject {
  return { socket_address: { address, port_value: port } };
}

/** Objects keyed by data (maps, metadata) are built in sorted key order so output never depends on input order. */
export function sortedRecord(entries: Iterable<[string, Json]>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) out[k] = v;
  return out;
}
