// The translator's intermediate representation: one gateway group's data plane with every
// default resolved and every list in its final order, so the Envoy emitters only change shape.
import type { AccessRefusal, IdempotencyRouteSettings } from '../contract/index.ts';
import type { NativeFlowCall, NativeFlowPlan } from '../model/index.ts';

/** A gateway group as Envoy (or a proxyless gRPC client) will see it. */
export interface GroupIR {
  name: string;
  /** envoy: socket listeners with the full filter chain; proxyless-grpc: API listeners only. */
  kind: 'envoy' | 'proxyless-grpc';
  /** HTTP filters shared by every listener of the group. */
  filters: HttpFiltersIR;
  /** Request headers the first HTTP filter removes (identity headers only the gateway may set)… */
  stripRequestHeaders: string[];
  /** …and every request header starting with one of these (the gateway's reserved prefix). */
  stripRequestHeaderPrefixes: string[];
  listeners: ListenerIR[];
  /** Proxyless gRPC groups: one API listener per product host (what `xds:///<host>` resolves). */
  apiListeners: ApiListenerIR[];
  /**
   * Envoy groups: one route table per listener, named after it (all listeners serve the same routes).
   * Proxyless groups: one per API listener, holding that host's virtual host only.
   */
  routeTables: RouteTableIR[];
  clusters: ClusterIR[];
  secrets: SecretIR[];
  /** Request headers routes set to a fresh UUID (correlation ids): each access-log line records them. */
  correlationHeaders?: string[];
  /** Access-log streaming and tracing (src/translate/envoy/observability.ts); absent when both are off. */
  telemetry?: TelemetryIR;
  /** The listener the flow runtime's step calls come back to (its routes are `routeTables`' FLOW_NAMES.stepRoutes); absent without flow routes. */
  flowSteps?: FlowStepsIR;
}

/** Each Envoy's listener for the flow runtime's step calls: routes by the x-portico-service header to the services' clusters. */
export interface FlowStepsIR {
  name: string;
  address: string;
  port: number;
  routeTable: string;
}

export interface HttpFiltersIR {
  /** Some product in the group has a CORS policy. */
  cors: boolean;
  /** The group's own token bucket (GatewayGroup.localRateLimit): every request on a listener draws from it. */
  localRateLimit?: LocalBucketIR;
  /** Some route has its own token bucket (Route.localRateLimit, in its per-route config). */
  routeLocalRateLimit: boolean;
  /** Native mode: some route is checked by Envoy's api_key_auth (off in the chain, on per route). */
  apiKeyAuth?: true;
  /** Native mode: some route's callers are authorized by the access RBAC filter (off in the chain, on per route). */
  access?: true;
  /** Native mTLS: some route knows a partner by its certificate's fingerprint, email or IP SAN (the first filter writes them into headers there). */
  peerHeaders?: true;
  /** Native mTLS: some route counted by plan limits or quotas needs the partner header from the access RBAC's match. */
  partnerFromAccess?: true;
  /** Native mode: some identity route's callers are on different plans (a second RBAC's shadow match names the plan). */
  planFromAccess?: true;
  /** Native mode: some route takes only client certificates (the access RBAC refuses a missing or unknown one as the callout does). */
  mtlsAccess?: true;
  /** Native mode: the JWT issuers native routes accept, as jwt_authn providers (off in the chain, on per route). */
  jwtAuthn?: JwtAuthnIR;
  /** Native mode: some JWT route forwards claims, whose values the claim check refuses when they are no header value. */
  claimCheck?: true;
  /** Present when some route in the group requires a credential (or, in combined mode, is counted). */
  extAuthz?: ExtAuthzIR;
  /**
   * Combined mode: a second ext_authz instance for routes open to anonymous callers that a plan
   * limits. The callout there only counts, so it fails open or closed as rate limiting does.
   */
  extAuthzLimits?: ExtAuthzIR;
  /** Service mode: Envoy's rate-limit filter, present when some route carries rate-limit actions. */
  rateLimit?: RateLimitFilterIR;
  /** Some route renames a header (the header-rename filter, off elsewhere). */
  headerRename?: boolean;
  /** JSON ↔ gRPC transcoding: the chain's (disabled) instance holds the first transcoding route's config. */
  transcoder?: TranscoderIR;
  /** Some route accepts gRPC-Web. */
  grpcWeb?: boolean;
  /** Compressor profiles routes use (one filter per profile and algorithm, off unless a route switches it on). */
  compression?: CompressionIR[];
  /** Response caching: one cache filter per profile (routes switch theirs on), behind the key filter. */
  cache?: CacheProfileIR[];
  /** Native mode: plan limits as local token buckets, one filter instance per distinct limit (stage order). */
  planLimits: PlanLimitFilterIR[];
  /** Native mode: the quotas of the group's plans (their refusals' numbers); the quota RBAC filter is in the chain when any. */
  quotas: QuotaShapeIR[];
  /** Some route is protected by Idempotency-Key: the ext_proc filter calling the idempotency processor (off unless a route turns it on). */
  idempotency?: IdempotencyFilterIR;
  /** Some route's flow runs in Envoy: the flows Wasm filter (on in the chain, off on the group's other routes) with every such route's plan. */
  nativeFlows?: NativeFlowsFilterIR;
}

/** The flows Wasm filter: its module and the plans of the group's `execution: envoy` routes, by route name. */
export interface NativeFlowsFilterIR {
  module: FlowsWasmModule;
  /** [route name, plan], sorted by route name. */
  plans: Array<[string, NativeFlowPlanIR]>;
}

/** The flows Wasm module as the config carries it. */
export interface FlowsWasmModule {
  base64: string;
  sha256: string;
}

/** What the filter runs for one route: src/model/native-flow.ts's plan with each call bound to its service's cluster. */
export interface NativeFlowPlanIR {
  calls: Array<NativeFlowCall & { cluster: string }>;
  reply: NativeFlowPlan['reply'];
  identity?: NativeFlowPlan['identity'];
}

/** The ext_proc filter of duplicate-request protection. */
export interface IdempotencyFilterIR {
  cluster: string;
  /** How long Envoy waits for each of the processor's answers. */
  messageTimeoutMs: number;
}

export interface QuotaShapeIR {
  requests: number;
  per: 'day' | 'month';
}

/** A budget that used its quota (counted by the control plane from access logs): translate input. */
export interface QuotaExhaustedIR {
  group: string;
  /** The limit id (`<plan>:<product>:<route|*>:<per>`). */
  budget: string;
  partner?: string;
  route?: string;
}

/** Who a route's quota refusal applies to: these partners, partners matching a pattern (or not), or everybody. */
/** Who a quota refuses: these partners (or, `invert`, every caller but them, anonymous ones too), or everybody. */
export type QuotaPrincipalIR = { kind: 'partners'; names: string[]; invert?: boolean } | { kind: 'any' };

/** One DENY policy of a route's quota RBAC: named after the quota, so its refusal says that quota's numbers. */
export interface QuotaDenyIR {
  policy: string;
  principals: QuotaPrincipalIR[];
}

/** Envoy's gRPC-JSON transcoder for one route: its whole config (a route's replaces the filter's). */
export interface TranscoderIR {
  /** FileDescriptorSet, base64, narrowed to the route's methods. */
  descriptorSet: string;
  services: string[];
  /** Server streaming as one JSON object per line instead of a JSON array. */
  ndjson: boolean;
}

/** Response compression: the algorithms offered, the smallest response compressed, the media types (empty: Envoy's default list). */
export interface CompressionIR {
  algorithms: Array<'br' | 'zstd' | 'gzip'>;
  minSizeBytes: number;
  contentTypes: string[];
}

/** What Envoy's cache filter cannot change per route: the largest stored body. */
export interface CacheProfileIR {
  maxObjectBytes: number;
}

/** A route's response cache (see src/translate/envoy/filters/cache.ts for how the key is made). */
export interface CacheIR extends CacheProfileIR {
  /** partner: the caller's partner is part of the key; shared: one entry for every caller. */
  scope: 'partner' | 'shared';
  /** Raised by a purge: part of every key, so old entries are never found again. */
  generation: number;
  /** Freshness when the service sends no Cache-Control. */
  defaultTtlSeconds: number;
  /** Lower-case, sorted: request headers whose values are part of the key. */
  varyHeaders: string[];
  /** Sorted: the only query parameters in the key; empty: the whole query string. */
  varyQuery: string[];
  /**
   * Set when the key needs no filter (shared, varying on nothing, one service): the route forwards to
   * this copy of its service's cluster, named after the generation (Envoy's key includes the cluster).
   */
  keyCluster?: { name: string; service: string };
}

/** A descriptor entry of a native bucket; without a value, each distinct value gets its own bucket. */
export interface DescriptorEntryIR {
  key: string;
  value?: string;
}

/**
 * One local_ratelimit instance of native mode: the buckets of every limit with the same numbers
 * (requests, per, burst), read from route rate_limits entries of its stage. Its 429 says those numbers.
 */
export interface PlanLimitFilterIR {
  stage: number;
  /** X-RateLimit-Limit of its refusals: the plan's requests per period (the whole fleet's, undivided). */
  requests: number;
  /** Retry-After of its refusals: the longest wait for the next fill of this Envoy's share. */
  retryAfterSeconds: number;
  /** Every descriptor's token bucket (this Envoy's share of the limit). */
  bucket: LocalBucketIR;
  /** The budgets: descriptor entries, in the order the route actions produce them. */
  descriptors: DescriptorEntryIR[][];
}

/** A rate limit action of native mode (RouteAction.rate_limits[].actions[]). */
export type LimitActionIR =
  | { kind: 'generic'; key: string; value: string }
  | { kind: 'header'; header: string; key: string }
  | { kind: 'remote_address' }
  /** An entry when the header matches `regex` (or is present, without one) — or, `expect: false`, when it does not. */
  | { kind: 'header_match'; header: string; key: string; value: string; expect: boolean; regex?: string };

/** One RouteAction.rate_limits entry of native mode: a descriptor for the instance of its stage. */
export interface RouteLimitEntryIR {
  stage: number;
  actions: LimitActionIR[];
}

export interface ExtAuthzIR {
  /** The HTTP filter's name (per-route configuration is keyed by it). */
  name: string;
  /** Stats prefix (`http.<hcm>.ext_authz.<statPrefix>.…`); unset for the main instance. */
  statPrefix?: string;
  cluster: string;
  timeoutMs: number;
  failureModeAllow: boolean;
  /** HTTP status of the local reply when the callout fails and the failure mode is closed. */
  statusOnError: number;
}

/** envoy.filters.http.ratelimit, calling Portico's rate-limit service (the descriptor contract of src/ratelimit). */
export interface RateLimitFilterIR {
  cluster: string;
  domain: string;
  timeoutMs: number;
  failureModeDeny: boolean;
}

/** A LocalRateLimit as Envoy's token bucket (see localBucket in limits.ts). */
export interface LocalBucketIR {
  /** Requests per period, without the burst: what X-RateLimit-Limit says on a refusal. */
  requests: number;
  per: 'second' | 'minute' | 'hour';
  maxTokens: number;
  tokensPerFill: number;
  /** Nanoseconds (whole ms for most rates; 7 per minute is one token every 8.571428571 s). */
  fillIntervalNs: number;
  /** Retry-After (and retry_after in the body) of a refusal: the longest wait for the next fill. */
  retryAfterSeconds: number;
}

export interface ListenerIR {
  name: string;
  address: string;
  port: number;
  /** Stats prefix of the HTTP connection manager: the group name. */
  statPrefix: string;
  routeTable: string;
  tls?: ListenerTlsIR;
}

/** A listener a gRPC client resolves by name: the target host, its HTTP connection manager and RDS table. */
export interface ApiListenerIR {
  /** The product host, exactly as the client dials it (`xds:///<name>`). */
  name: string;
  routeTable: string;
}

export interface ListenerTlsIR {
  /** SDS name of the server certificate (`tls/<certificate>`). */
  certificateSecret: string;
  /** SDS name of the CA that verifies client certificates (`ca/<certificate>`). */
  clientCaSecret?: string;
  requireClientCertificate: boolean;
  /** SNI names the filter chain answers; empty means any. */
  serverNames: string[];
}

export interface RouteTableIR {
  name: string;
  /** Largest direct-response body in bytes (Envoy refuses bodies over its 4 KiB default unless the table raises it). */
  maxDirectResponseBodyBytes: number;
  /** Named hosts first (exact, then wildcards), the `*` host last. */
  virtualHosts: VirtualHostIR[];
}

export interface VirtualHostIR {
  name: string;
  domains: string[];
  /** Most specific first; ends with the 404 catch-all. */
  routes: RouteIR[];
}

/** segment_prefix: a prefix ending at a segment boundary (Envoy's path_separated_prefix); its value never ends in '/'. */
export type PathKind = 'exact' | 'template' | 'regex' | 'prefix' | 'segment_prefix';

export interface PathMatchIR {
  kind: PathKind;
  /** The effective path: product base path plus route path. */
  value: string;
}

export type ValueMatchIR = { kind: 'exact' | 'prefix' | 'regex'; value: string } | { kind: 'present'; present: boolean };

export interface HeaderMatchIR {
  /** Lower-case; `host` is matched as `:authority`. */
  name: string;
  match: ValueMatchIR;
  invert: boolean;
}

export interface QueryMatchIR {
  name: string;
  match: ValueMatchIR;
}

export interface MatchIR {
  path: PathMatchIR;
  /** Undefined: any method. Sorted in a fixed order. */
  methods?: string[];
  headers: HeaderMatchIR[];
  query: QueryMatchIR[];
}

export type PathRewriteIR = { kind: 'prefix'; value: string } | { kind: 'regex'; pattern: string; substitution: string };

export interface RetryIR {
  retryOn: string[];
  numRetries: number;
  perTryTimeoutMs?: number;
  retriableStatusCodes: number[];
}

export interface ForwardActionIR {
  kind: 'forward';
  /** The service, or the backends in the model's order (weighted). */
  clusters: Array<{ name: string; weight: number }>;
  weighted: boolean;
  rewrite?: PathRewriteIR;
  hostRewrite?: string;
  /** Envoy's route timeout; unset for proxyless gRPC, which only reads maxStreamDurationMs. */
  timeoutMs?: number;
  /** Proxyless gRPC: the RPC deadline the client applies (max_stream_duration). */
  maxStreamDurationMs?: number;
  retry?: RetryIR;
  /** Flow routes: the flow (`product/route`) the runtime behind the cluster runs. */
  flow?: string;
}

export interface DirectActionIR {
  kind: 'direct';
  status: number;
  body?: string;
}

export type ActionIR = ForwardActionIR | DirectActionIR;

export interface HeaderMutationIR {
  /** [name, value] pairs sorted by name; names lower-case. */
  set: Array<[string, string]>;
  add: Array<[string, string]>;
  remove: string[];
  /** [old, new] names, sorted: the value copied to the new name, the old header removed (the header-rename filter). */
  rename?: Array<[string, string]>;
}

export interface CorsIR {
  allowOrigins: string[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds?: number;
  allowCredentials?: boolean;
}

/**
 * Per-route ext_authz settings (only when the group has an ext_authz filter): disabled on every
 * instance, or checked by one of them (`authz`: the main one; `limits`: combined mode's counting-only
 * instance for anonymous routes) and disabled on the other.
 */
export type RouteAuthzIR = { disabled: true } | { disabled: false; filter: 'authz' | 'limits'; contextExtensions: Record<string, string> };

/** One key Envoy's api_key_auth accepts, and the partner it authenticates (the filter's client id). */
export interface ApiKeyCredentialIR {
  key: string;
  client: string;
}

export interface RouteApiKeyAuthIR {
  /** Where the key arrives: the product's header and/or query parameter. */
  keySources: Array<{ header: string } | { query: string }>;
  /** Every usable key of the group: the filter authenticates, the access RBAC decides who may call. */
  credentials: ApiKeyCredentialIR[];
}

/**
 * Who may call a native route, on the partner an authentication filter established (x-portico-partner).
 * The partner sets of `deny` and `allowed` are disjoint; anyone in none of them has no subscription.
 */
export interface RouteAccessIR {
  /** Partners refused on the route, by reason (only reasons with partners, in AccessRefusal order). */
  deny: Array<{ reason: Exclude<AccessRefusal, 'unknown_partner' | 'no_subscription' | 'method_not_in_subscription'>; partners: string[] }>;
  /** JWT providers (issuers) with neither partner nor partnerClaim: any of their tokens is refused as unknown_partner. */
  unmappedTokens?: string[];
  /** Partners allowed on the route, with the plan they call it under and the methods they may use (all when absent). */
  allowed: Array<{ partner: string; plan: string; methods?: string[] }>;
  /**
   * Routes where no filter sets the partner header for every caller: each partner is the principal
   * names of its client certificates and the facts the edge writes from them (mTLS), or its tokens
   * (JWT issuers naming the partner in the payload), sorted by partner; the shadow rules then name
   * the partner (x-portico-partner reads the match) instead of the plan.
   */
  identities?: Array<{
    partner: string;
    principals: string[];
    fingerprints?: string[];
    emails?: string[];
    ips?: string[];
    /** Fingerprints other partners pinned: a certificate with one of them is never this partner's by its names (the callout's precedence). */
    notFingerprints?: string[];
    /**
     * The callout's precedence between two partners' identities on one certificate: a SPIFFE ID, then
     * the SANs, then the subject. `sans` and `subjects` are this partner's principal names of those
     * ranks; `notSpiffe` other partners' SPIFFE IDs (they outrank this partner's SANs and subject),
     * `notSans` other partners' SANs (they outrank its subject).
     */
    sans?: string[];
    subjects?: string[];
    notSpiffe?: string[];
    notSans?: { names: string[]; emails: string[]; ips: string[]; emailSans: string[] };
    /** Email SANs holding a comma (Envoy's header joins email SANs with commas): matched one SAN at a time by Envoy's mtls_authenticated principal. */
    emailSans?: string[];
    /** The partner header names the partner (JWT issuers whose top-level claim jwt_authn copies into it). */
    partnerHeader?: true;
    /** A verified token of the provider whose payload names the partner: by `claim`, or any token (fixed partner). */
    tokens?: Array<{ provider: string; claim?: string }>;
  }>;
  /**
   * JWT routes whose issuers name the partner by a claim: tokens whose claim names no partner are
   * refused as the callout refuses them (403 unknown_partner naming the claim), one entry per claim
   * name. `fromHeader`: the issuers copy the claim into the partner header, so a token of theirs
   * without it (absent or empty) leaves the header unset; `except` are the route's issuers whose
   * tokens never set it (the partner read from the payload), `inChain` says the group's no_subscription
   * filter knows this claim (every header-read partner claim of the model has this name). Otherwise
   * the claim is dotted and read in the payload of `providers` (absent, empty or no string).
   */
  claimless?: Array<{ claim: string; providers: string[]; fromHeader?: { except: string[]; inChain?: true } }>;
  /**
   * Routes taking only client certificates: every identity of the model's partners (principal names,
   * fingerprints, email and IP SANs, comma-holding email SANs), so that a certificate naming none is
   * refused as the callout refuses it (401 unknown_certificate), and a plain connection too (401 missing_credentials).
   */
  certificates?: { names: string[]; fingerprints: string[]; emails: string[]; ips: string[]; emailSans: string[] };
}

/** One JWT issuer as a jwt_authn provider (named after the issuer), its key set pushed inline. */
export interface JwtProviderIR {
  name: string;
  issuer: string;
  audiences: string[];
  /** The issuer's public signing keys (JWKS JSON), each pinned to one allowed algorithm. */
  jwks: string;
  clockSkewSeconds: number;
  /** The caller's token goes on to the upstream (issuer.forwardToken). */
  forwardToken: boolean;
  /** [header, claim] pairs, sorted by header: the partner claim first becomes x-portico-partner, then forwarded claims. */
  claimHeaders: Array<[string, string]>;
  /**
   * The partner is not a claim header: a fixed partner, a dotted claim name (read from the payload,
   * which jwt_authn writes to dynamic metadata under the provider's name), or none (the issuer names
   * no partner: its tokens are refused as unknown_partner). Which provider verified the token is its
   * issuer header (envoy/filters/jwt-authn.ts). Absent: the partner claim is a header.
   */
  partner?: { fixed: string; claim?: undefined; none?: undefined } | { claim: string; fixed?: undefined; none?: undefined } | { none: true; fixed?: undefined; claim?: undefined };
  /** Forwarded claims with a dotted name ([header, claim]): the payload goes to metadata for them too. */
  payloadClaims?: Array<[string, string]>;
}

export interface JwtAuthnIR {
  providers: JwtProviderIR[];
  /** Requirement name → the providers any of which must verify the token (sorted by name). */
  requirements: Array<[string, string[]]>;
  cacheSize: number;
  maxTokenBytes: number;
}

/** Native mode: a route whose token Envoy's jwt_authn verifies (the access RBAC then checks the partner claim). */
export interface RouteJwtAuthIR {
  /** A key of JwtAuthnIR.requirements. */
  requirement: string;
  /** Headers the route's issuers set from claims (besides the partner): a value that is no valid header value is refused. */
  claimHeaders: string[];
  /**
   * Forwarded claims with a dotted name, as [header, provider, claim]: jwt_authn reads only the nested
   * path, the callout the top-level claim of that name first, so the route overwrites the header with
   * the top-level claim from the payload in metadata when there is one (see payloadClaimHeader).
   */
  payloadClaims?: Array<[string, string, string]>;
}

/** What Envoy's rate-limit filter sends for a route (service mode): see routeRateLimit in src/ratelimit/descriptors.ts. */
export interface RouteRateLimitIR {
  product: string;
  route: string;
  /** The partner comes from ext_authz's dynamic metadata on routes that call it. */
  partnerFromAuthz: boolean;
  /** Lower-case header names the route's plans count by. */
  countHeaders: string[];
}

export interface RouteIR {
  name: string;
  /** Route metadata under the `portico` namespace; absent for gateway-generated routes without a product. */
  metadata?: { product: string; route?: string; flow?: string };
  match: MatchIR;
  action: ActionIR;
  requestHeaders: HeaderMutationIR;
  responseHeaders: HeaderMutationIR;
  cors?: CorsIR;
  authz?: RouteAuthzIR;
  /** Native mode: Envoy's api_key_auth checks the key (ext_authz is off on the route). */
  apiKeyAuth?: RouteApiKeyAuthIR;
  /** Native mode: the access RBAC's per-route policies (who may call, why not, under which plan). */
  access?: RouteAccessIR;
  /** Native mode: Envoy's jwt_authn verifies the token (ext_authz is off on the route; the access RBAC checks its partner claim). */
  jwtAuth?: RouteJwtAuthIR;
  /** Native JWT routes: copies for the paths where the issuers waive the token (anonymous), placed right before the route. */
  waived?: RouteIR[];
  /** Service mode: the rate-limit actions of a route plan limits apply to. */
  rateLimit?: RouteRateLimitIR;
  /** The route's own token bucket, enforced by Envoy alone. */
  localRateLimit?: LocalBucketIR;
  /** Responses compressed as Accept-Encoding allows. */
  compression?: CompressionIR;
  /** Responses cached by Envoy (forwarding routes of Envoy groups). */
  cache?: CacheIR;
  transcoder?: TranscoderIR;
  /** true: accepts gRPC-Web; false: the group's gRPC-Web filter is off here (set only in groups where some route accepts it). */
  grpcWeb?: boolean;
  /** Native mode: the rate limit actions choosing the caller's plan buckets. */
  planLimits?: RouteLimitEntryIR[];
  /** Native mode: callers refused because their quota is used up (until its window ends). */
  quotaDeny?: QuotaDenyIR[];
  /** Duplicate-request protection: the settings the idempotency processor reads from the route's ext_proc stream. */
  idempotency?: IdempotencyRouteSettings;
  /** The route's flow runs in Envoy (the flows Wasm filter answers it); the action is only a guard. */
  nativeFlow?: NativeFlowPlanIR;
  /** The group's flows Wasm filter is off here (set only in groups where some route's flow runs in Envoy). */
  nativeFlowsOff?: true;
}

export type LbPolicyIR = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV';

export interface EndpointIR {
  host: string;
  port: number;
  weight?: number;
}

export interface ClusterIR {
  name: string;
  /** eds: endpoints served as a ClusterLoadAssignment; strict_dns/static: endpoints inline. */
  discovery: 'eds' | 'strict_dns' | 'static';
  endpoints: EndpointIR[];
  lbPolicy: LbPolicyIR;
  connectTimeoutMs: number;
  http2: boolean;
  /**
   * When set, the endpoints form one locality with this weight: proxyless gRPC clients drop
   * endpoints outside a weighted locality. Envoy groups leave it unset.
   */
  localityWeight?: number;
  circuitBreaker?: {
    maxConnections?: number;
    maxPendingRequests?: number;
    maxRequests?: number;
    maxRetries?: number;
  };
  outlierDetection?: {
    consecutive5xx: number;
    intervalMs: number;
    baseEjectionTimeMs: number;
    maxEjectionPercent: number;
  };
  healthCheck?: {
    path: string;
    host?: string;
    intervalMs: number;
    timeoutMs: number;
    healthyThreshold: number;
    unhealthyThreshold: number;
    /** Sorted; empty means Envoy's default (200 only). */
    expectedStatuses: number[];
  };
  tls?: UpstreamTlsIR;
  /** Some cached route sends misses here: its upstream filter restores the Host the cache key replaced and applies the default TTL. */
  cacheKeyRestore?: boolean;
  /** A cached route's own cluster (CacheIR.keyCluster): its upstream filter adds this max-age to responses without Cache-Control. */
  cacheDefaultTtlSeconds?: number;
  /** One of the control plane's own channels under mTLS: the node certificate from this SDS file on the Envoy host. */
  channelSdsDir?: string;
}

export interface UpstreamTlsIR {
  sni?: string;
  /** False: the upstream certificate is not verified at all. */
  verify: boolean;
  /** SDS name of the trusted CA (`ca/<certificate>`), when verifying. */
  caSecret?: string;
  /** When verifying with an SNI name, the upstream certificate must carry it as a DNS SAN. */
  verifySubjectAltName?: string;
  /** SDS name of the client certificate presented upstream (`tls/<certificate>`). */
  clientCertificateSecret?: string;
}

export type SecretIR = { name: string; kind: 'tls'; certificateChain: string; privateKey: string } | { name: string; kind: 'ca'; trustedCa: string };

/** Translator options for observability (TranslateOptions.telemetry); every part is off when unset. */
export interface TelemetryOptions {
  /** host:port of Portico's access-log service (its gRPC/xDS listener): Envoys stream every request there. */
  accessLogAddress?: string;
  /** host:port of an OpenTelemetry collector (OTLP over gRPC): Envoys send traces there. */
  otelCollectorAddress?: string;
  /** Percentage of requests traced (0–100) when a collector is set; default 10. */
  otelSamplePercent?: number;
}

/** Where the idempotency processor runs (TranslateOptions.idempotency). */
export interface IdempotencyOptions {
  /** host:port of the processor (Envoy's ext_proc gRPC service). */
  address: string;
}

/** Where flows run (TranslateOptions.flows): the runtime Envoy sends flow routes to, and where each Envoy takes step calls. */
export interface FlowOptions {
  /** host:port of the flow runtime. */
  address: string;
  /** host:port each Envoy of a group with flows binds for the runtime's step calls (loopback by default: it skips authentication). */
  stepAddress: string;
  /** The flows Wasm module for `execution: envoy` flows; such a route without it is a translation error. */
  wasmModule?: FlowsWasmModule;
}

/** A gateway group's observability settings, resolved (GroupIR.telemetry). */
export interface TelemetryIR {
  /** Cluster of the access-log service, when Envoys stream access logs. */
  accessLogCluster?: string;
  tracing?: { cluster: string; samplePercent: number };
}
