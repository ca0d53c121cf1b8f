// Validation schemas for every resource in the model, one per kind. The same schema validates
// REST bodies, declarative files and feeds the OpenAPI document, so the three never disagree.
// Over 400 lines on purpose: it is the model's one catalogue, read as a whole when a field changes.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { BodyTransform, Flow } from './flow-schema.ts';
import { Idempotency } from './idempotency-schema.ts';

const closed = { additionalProperties: false } as const;

/** Resource names are DNS-label-like slugs: they appear in Envoy resource names and URLs. */
export const Name = Type.String({
  pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$',
  description: 'lowercase letters, digits and dashes; 1-63 characters; starts and ends with a letter or digit',
});
export const Tag = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.:/=-]{0,62}$',
  description: 'an owner label such as team:payments; 1-63 characters',
});
const Tags = Type.Array(Tag, { maxItems: 32, uniqueItems: true });
const Description = Type.String({ maxLength: 1024 });
const Hostname = Type.String({
  pattern: '^(\\*\\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:[0-9]{1,5})?$|^\\*$',
  maxLength: 253,
  description: 'a DNS name, optionally with a leading *. wildcard, or * for any host',
});
const UpstreamHost = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: '^[A-Za-z0-9.:_\\[\\]-]+$',
  description: 'an IPv4/IPv6 address or a DNS name',
});
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const Millis = (max: number) => Type.Integer({ minimum: 1, maximum: max });
const HeaderName = Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$", description: 'an HTTP header name' });
const HeaderValue = Type.String({ maxLength: 4096, pattern: '^[^\\r\\n\\x00]*$', description: 'no CR, LF or NUL' });
const HttpMethod = Type.Union(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'].map((m) => Type.Literal(m)));
const Path = Type.String({ pattern: '^/[^\\s?#]*$', maxLength: 1024, description: 'an absolute path without query' });
const Regex = Type.String({ minLength: 1, maxLength: 1024, format: 're2', description: 'an RE2 regular expression' });
const Timestamp = Type.String({ format: 'date-time' });
const Pem = Type.String({ minLength: 1, maxLength: 65536 });

export const CredentialType = Type.Union([Type.Literal('none'), Type.Literal('api_key'), Type.Literal('jwt'), Type.Literal('mtls')]);
export type CredentialType = Static<typeof CredentialType>;

const Auth = Type.Object(
  {
    accept: Type.Array(CredentialType, {
      minItems: 1,
      uniqueItems: true,
      description: "credential types a caller may present (any one suffices); ['none'] makes the route public",
    }),
  },
  closed,
);

const Common = {
  tags: Type.Optional(Tags),
  description: Type.Optional(Description),
};

/** Requests per period plus a burst above the steady rate: a token bucket. */
export const RateLimit = Type.Object(
  {
    requests: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
    per: Type.Union([Type.Literal('second'), Type.Literal('minute'), Type.Literal('hour')]),
    burst: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000, description: 'extra requests allowed above the steady rate' })),
  },
  closed,
);
export type RateLimit = Static<typeof RateLimit>;

/** A token bucket Envoy enforces by itself, with no callout: a safety net under the plans. */
export const LocalRateLimit = { ...RateLimit, description: 'enforced by each Envoy instance alone: requests per period, plus burst' };
export type LocalRateLimit = RateLimit;

// ── gateway groups ────────────────────────────────────────────────────────────
export const FailureMode = Type.Union([Type.Literal('closed'), Type.Literal('open')]);
export type FailureMode = Static<typeof FailureMode>;

export const Listener = Type.Object(
  {
    name: Name,
    port: Port,
    address: Type.Optional(Type.String({ format: 'ipv4-or-ipv6', description: 'bind address; default 0.0.0.0' })),
    protocol: Type.Optional(Type.Union([Type.Literal('http'), Type.Literal('https')], { description: 'default http' })),
    hostnames: Type.Optional(Type.Array(Hostname, { maxItems: 256, uniqueItems: true })),
    tls: Type.Optional(
      Type.Object(
        {
          certificate: Name,
          clientCa: Type.Optional(Name),
          requireClientCertificate: Type.Optional(Type.Boolean({ description: 'default true when clientCa is set' })),
        },
        closed,
      ),
    ),
  },
  closed,
);
export type Listener = Static<typeof Listener>;

const Callout = Type.Object(
  {
    failureMode: Type.Optional(FailureMode),
    timeoutMs: Type.Optional(Millis(10_000)),
  },
  closed,
);

export const GatewayGroup = Type.Object(
  {
    name: Name,
    ...Common,
    kind: Type.Optional(
      Type.Union([Type.Literal('envoy'), Type.Literal('proxyless-grpc')], {
        description: 'envoy: Envoy proxies with listeners (default); proxyless-grpc: gRPC clients that read xDS themselves (xds:///<product host>)',
      }),
    ),
    listeners: Type.Optional(Type.Array(Listener, { minItems: 1, maxItems: 64, description: 'required for envoy groups' })),
    authz: Type.Optional(
      Type.Object(
        {
          ...Callout.properties,
          mode: Type.Optional(
            Type.Union([Type.Literal('exact'), Type.Literal('native')], {
              description:
                'native (default): Envoy decides itself (api_key_auth, jwt_authn, mTLS principals and the access RBAC, credentials pushed over xDS); routes it cannot decide alone stay on the callout, and GET /api/v1/gateway-groups/<name> says which and why; exact: every authenticated request is checked by the ext_authz callout',
            }),
          ),
        },
        closed,
      ),
    ),
    rateLimit: Type.Optional(
      Type.Object(
        {
          ...Callout.properties,
          mode: Type.Optional(
            Type.Union([Type.Literal('native'), Type.Literal('combined'), Type.Literal('service')], {
              description:
                "native (default): Envoy's local token buckets count plan limits with no callout (global limits divided among the group's connected Envoys, quotas counted from access logs); unset, a group whose plans native cannot count (a plan with exact: true, quotas by client address or header, more than 10 distinct limits) runs combined, and GET /api/v1/gateway-groups/<name> says why; combined: the ext_authz callout also counts the request, one callout per request; service: Envoy's rate-limit filter calls the rate-limit service (a second callout)",
            }),
          ),
        },
        closed,
      ),
    ),
    localRateLimit: Type.Optional(LocalRateLimit),
  },
  closed,
);
export type GatewayGroup = Static<typeof GatewayGroup>;

// ── certificates ──────────────────────────────────────────────────────────────
export const Certificate = Type.Object(
  {
    name: Name,
    ...Common,
    certificate: Pem,
    privateKey: Type.Optional({ ...Pem, writeOnly: true, description: 'PEM private key; stored encrypted, never returned' }),
  },
  closed,
);
export type Certificate = Static<typeof Certificate>;

// ── services (upstreams) ──────────────────────────────────────────────────────
const Endpoint = Type.Object({ host: UpstreamHost, port: Port, weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 128 })) }, closed);
const RetryOn = Type.Union(
  ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'unavailable', 'resource-exhausted'].map((v) =>
    Type.Literal(v),
  ),
);
export const RetryPolicy = Type.Object(
  {
    attempts: Type.Integer({ minimum: 0, maximum: 10 }),
    retryOn: Type.Optional(Type.Array(RetryOn, { minItems: 1, uniqueItems: true })),
    perTryTimeoutMs: Type.Optional(Millis(600_000)),
    retriableStatusCodes: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { uniqueItems: true })),
  },
  closed,
);
export type RetryPolicy = Static<typeof RetryPolicy>;

export const Service = Type.Object(
  {
    name: Name,
    ...Common,
    protocol: Type.Optional(Type.Union([Type.Literal('http1'), Type.Literal('http2')], { description: 'http2 for gRPC upstreams; default http1' })),
    discovery: Type.Optional(
      Type.Union([Type.Literal('static'), Type.Literal('dns')], {
        description: 'static endpoints must be IP addresses; dns resolves names; default: dns when any host is a name',
      }),
    ),
    endpoints: Type.Array(Endpoint, { minItems: 1, maxItems: 1024 }),
    lbPolicy: Type.Optional(Type.Union(['round_robin', 'least_request', 'random', 'ring_hash', 'maglev'].map((v) => Type.Literal(v)))),
    connectTimeoutMs: Type.Optional(Millis(60_000)),
    requestTimeoutMs: Type.Optional(Millis(3_600_000)),
    retries: Type.Optional(RetryPolicy),
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          maxConnections: Type.Optional(Type.Integer({ minimum: 1 })),
          maxPendingRequests: Type.Optional(Type.Integer({ minimum: 1 })),
          maxRequests: Type.Optional(Type.Integer({ minimum: 1 })),
          maxRetries: Type.Optional(Type.Integer({ minimum: 0 })),
        },
        closed,
      ),
    ),
    outlierDetection: Type.Optional(
      Type.Object(
        {
          consecutive5xx: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          intervalMs: Type.Optional(Millis(3_600_000)),
          baseEjectionTimeMs: Type.Optional(Millis(3_600_000)),
          maxEjectionPercent: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
        },
        closed,
      ),
    ),
    healthCheck: Type.Optional(
      Type.Object(
        {
          path: Path,
          host: Type.Optional(Hostname),
          intervalMs: Type.Optional(Millis(3_600_000)),
          timeoutMs: Type.Optional(Millis(60_000)),
          healthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
          unhealthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
          expectedStatuses: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1, uniqueItems: true })),
        },
        closed,
      ),
    ),
    tls: Type.Optional(
      Type.Object(
        {
          sni: Type.Optional(Hostname),
          ca: Type.Optional(Name),
          clientCertificate: Type.Optional(Name),
          verify: Type.Optional(Type.Boolean({ description: 'verify the upstream certificate against ca; default true' })),
        },
        closed,
      ),
    ),
    grpc: Type.Optional(
      Type.Object(
        {
          descriptorSet: Type.String({
            maxLength: 8_000_000,
            pattern: '^[A-Za-z0-9+/]+={0,2}$',
            description: 'the service API as a protobuf FileDescriptorSet, base64 (`portico protoset` builds one from .proto files), google.api.http annotations included',
          }),
        },
        { ...closed, description: 'a gRPC upstream (protocol http2) whose methods routes may expose as JSON over HTTP (Route.transcode)' },
      ),
    ),
  },
  closed,
);
export type Service = Static<typeof Service>;

// ── products and routes ───────────────────────────────────────────────────────
const DynamicHeaderValue = {
  ...HeaderValue,
  description:
    'literal text and ${variable}s: uuid, request_id, partner, plan, credential_type, client_address, route, product, time, jwt.claim.<claim>, request.header.<name>, response.header.<name> (responses); $${ is a literal ${',
};
const HeaderMutation = Type.Object(
  {
    set: Type.Optional(Type.Record(HeaderName, DynamicHeaderValue)),
    add: Type.Optional(Type.Record(HeaderName, DynamicHeaderValue)),
    remove: Type.Optional(Type.Array(HeaderName, { uniqueItems: true })),
    rename: Type.Optional(Type.Record(HeaderName, HeaderName, { description: 'old name → new name: the value is copied to the new name and the old header removed' })),
  },
  closed,
);
export type HeaderMutation = Static<typeof HeaderMutation>;

export const CompressionAlgorithm = Type.Union([Type.Literal('br'), Type.Literal('zstd'), Type.Literal('gzip')]);
export type CompressionAlgorithm = Static<typeof CompressionAlgorithm>;
export const Compression = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: "default true; false on a route turns its product's compression off" })),
    algorithms: Type.Optional(Type.Array(CompressionAlgorithm, { minItems: 1, uniqueItems: true, description: 'what the gateway may answer with, as Accept-Encoding allows; default all three' })),
    contentTypes: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$' }), {
        minItems: 1,
        maxItems: 50,
        uniqueItems: true,
        description: "response media types compressed; default Envoy's text, JSON, XML, JavaScript and SVG types",
      }),
    ),
    minSizeBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_073_741_824, description: 'smaller responses (by Content-Length) stay uncompressed; default 1024' })),
  },
  { ...closed, description: 'compress responses (already encoded ones never again)' },
);
export type Compression = Static<typeof Compression>;

export const RouteCache = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'default true once `cache` is set; false keeps the settings but serves every request from the service' })),
    defaultTtlSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 31_536_000, description: 'freshness of a response whose service sent no Cache-Control (its own max-age / s-maxage / no-store / private win); default 60' }),
    ),
    varyHeaders: Type.Optional(
      Type.Array(HeaderName, { minItems: 1, maxItems: 8, uniqueItems: true, description: 'request headers whose values are part of the cache key (for example accept-language)' }),
    ),
    varyQuery: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Za-z0-9._~-]{1,128}$' }), {
        minItems: 1,
        maxItems: 32,
        uniqueItems: true,
        description: 'only these query parameters are part of the cache key; default the whole query string',
      }),
    ),
    maxObjectBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 67_108_864, description: 'larger responses are passed on but not stored; default 1 MiB' })),
    scope: Type.Optional(
      Type.Union([Type.Literal('partner'), Type.Literal('shared')], {
        description: 'partner: one entry per calling partner (the default on routes that need a credential); shared: every caller gets the same entry (the default on public routes)',
      }),
    ),
    generation: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'part of every key of the route; a purge raises it, so every Envoy of the group stops finding the old entries' }),
    ),
  },
  { ...closed, description: "cache GET responses in Envoy, honouring the service's Cache-Control; identical requests arriving together make one upstream call" },
);
export type RouteCache = Static<typeof RouteCache>;

export const Cors = Type.Object(
  {
    allowOrigins: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1 }),
    allowMethods: Type.Optional(Type.Array(HttpMethod, { uniqueItems: true })),
    allowHeaders: Type.Optional(Type.Array(HeaderName, { uniqueItems: true })),
    exposeHeaders: Type.Optional(Type.Array(HeaderName, { uniqueItems: true })),
    maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
    allowCredentials: Type.Optional(Type.Boolean()),
  },
  closed,
);
export type Cors = Static<typeof Cors>;

export const Product = Type.Object(
  {
    name: Name,
    ...Common,
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    gatewayGroups: Type.Array(Name, { minItems: 1, uniqueItems: true }),
    hosts: Type.Optional(Type.Array(Hostname, { maxItems: 256, uniqueItems: true, description: 'default: any host' })),
    basePath: Type.Optional(Path),
    auth: Type.Optional(Auth),
    apiKey: Type.Optional(
      Type.Object(
        {
          header: Type.Optional(HeaderName),
          queryParameter: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' })),
        },
        { ...closed, description: 'where callers send API keys; default header x-api-key' },
      ),
    ),
    jwtIssuers: Type.Optional(Type.Array(Name, { uniqueItems: true, description: 'issuers accepted; default: all' })),
    publicPlan: Type.Optional({ ...Name, description: 'plan for callers without a partner identity (routes accepting none); default: no plan limits' }),
    cors: Type.Optional(Cors),
    requestHeaders: Type.Optional({ ...HeaderMutation, description: "header rules for every route of the product (a route's own rules win for the same header)" }),
    responseHeaders: Type.Optional({ ...HeaderMutation, description: "header rules for every route of the product (a route's own rules win for the same header)" }),
    compression: Type.Optional(Compression),
  },
  closed,
);
export type Product = Static<typeof Product>;

const ValueMatch = {
  exact: Type.Optional(HeaderValue),
  prefix: Type.Optional(HeaderValue),
  regex: Type.Optional(Regex),
  present: Type.Optional(Type.Boolean()),
  invert: Type.Optional(Type.Boolean()),
};
export const HeaderMatch = Type.Object({ name: HeaderName, ...ValueMatch }, closed);
export type HeaderMatch = Static<typeof HeaderMatch>;
export const QueryMatch = Type.Object({ name: Type.String({ minLength: 1, maxLength: 128 }), ...ValueMatch }, closed);
export type QueryMatch = Static<typeof QueryMatch>;

export const PathMatch = Type.Object(
  {
    type: Type.Union([Type.Literal('prefix'), Type.Literal('exact'), Type.Literal('template'), Type.Literal('regex')]),
    value: Type.String({ minLength: 1, maxLength: 1024 }),
    segmentBoundary: Type.Optional(
      Type.Boolean({
        description:
          'prefix matches only: the prefix ends at a path segment boundary, so /api/orders matches /api/orders and /api/orders/… but not /api/ordersXYZ (default true; a prefix ending in / is on a boundary already); false matches any path starting with the characters',
      }),
    ),
  },
  closed,
);
export type PathMatch = Static<typeof PathMatch>;

export const Route = Type.Object(
  {
    name: Name,
    ...Common,
    match: Type.Object(
      {
        path: PathMatch,
        methods: Type.Optional(Type.Array(HttpMethod, { minItems: 1, uniqueItems: true })),
        headers: Type.Optional(Type.Array(HeaderMatch, { maxItems: 32 })),
        query: Type.Optional(Type.Array(QueryMatch, { maxItems: 32 })),
      },
      closed,
    ),
    service: Type.Optional(Name),
    backends: Type.Optional(
      Type.Array(Type.Object({ service: Name, weight: Type.Integer({ minimum: 0, maximum: 10_000 }) }, closed), {
        minItems: 1,
        maxItems: 32,
        description: 'weighted services, for canaries',
      }),
    ),
    directResponse: Type.Optional(
      Type.Object(
        {
          status: Type.Integer({ minimum: 200, maximum: 599 }),
          body: Type.Optional(Type.String({ maxLength: 65536 })),
          contentType: Type.Optional(Type.String({ maxLength: 128 })),
        },
        closed,
      ),
    ),
    flow: Type.Optional({ ...Flow, description: 'a flow answers the route: calls to services, switches, transforms, a sandboxed code step, a custom response (src/flows/README.md)' }),
    transform: Type.Optional({ ...BodyTransform, description: 'rewrite the bodies of a route sent to one service: remove/rename fields, JSON ↔ XML (runs in the flow runtime)' }),
    rewrite: Type.Optional(
      Type.Object(
        {
          stripPrefix: Type.Optional(Path),
          prefix: Type.Optional(Path),
          regex: Type.Optional(Type.Object({ pattern: Regex, substitution: Type.String({ maxLength: 1024 }) }, closed)),
          host: Type.Optional(Hostname),
        },
        closed,
      ),
    ),
    timeoutMs: Type.Optional(Millis(3_600_000)),
    retries: Type.Optional(RetryPolicy),
    requestHeaders: Type.Optional(HeaderMutation),
    responseHeaders: Type.Optional(HeaderMutation),
    auth: Type.Optional(Auth),
    localRateLimit: Type.Optional(LocalRateLimit),
    compression: Type.Optional({ ...Compression, description: "replaces the product's compression settings for this route" }),
    transcode: Type.Optional(
      Type.Object(
        {
          services: Type.Array(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$' }), {
            minItems: 1,
            maxItems: 32,
            uniqueItems: true,
            description: "fully-qualified gRPC services of the route's service descriptor set",
          }),
          methods: Type.Optional(
            Type.Array(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$' }), {
              minItems: 1,
              maxItems: 1000,
              uniqueItems: true,
              description: 'only these methods (package.Service/Method); default all',
            }),
          ),
          streaming: Type.Optional(Type.Union([Type.Literal('array'), Type.Literal('ndjson')], { description: 'server-streaming answers as one JSON array (default) or one JSON object per line' })),
        },
        { ...closed, description: 'JSON over HTTP to a gRPC upstream: google.api.http annotations, POST /package.Service/Method where a method has none' },
      ),
    ),
    grpcWeb: Type.Optional(Type.Boolean({ description: 'accept gRPC-Web (browser clients) on this route to a gRPC upstream' })),
    cache: Type.Optional(RouteCache),
    idempotency: Type.Optional(Idempotency),
  },
  closed,
);
export type Route = Static<typeof Route> & { product: string };

// ── partners, plans, subscriptions ────────────────────────────────────────────
export const Partner = Type.Object(
  {
    name: Name,
    ...Common,
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    kind: Type.Optional(Type.Union([Type.Literal('team'), Type.Literal('service_account'), Type.Literal('tenant')])),
    contact: Type.Optional(Type.String({ maxLength: 320 })),
    suspended: Type.Optional(Type.Boolean()),
  },
  closed,
);
export type Partner = Static<typeof Partner>;

export const CountBy = Type.Object(
  {
    kind: Type.Union([Type.Literal('partner'), Type.Literal('client_ip'), Type.Literal('header'), Type.Literal('route')]),
    header: Type.Optional(HeaderName),
  },
  closed,
);
export type CountBy = Static<typeof CountBy>;

export const Quota = Type.Object(
  {
    requests: Type.Integer({ minimum: 1, maximum: 1_000_000_000_000 }),
    per: Type.Union([Type.Literal('day'), Type.Literal('month')]),
  },
  closed,
);
export type Quota = Static<typeof Quota>;

export const PlanOverride = Type.Object(
  {
    product: Name,
    route: Name,
    limits: Type.Optional(Type.Array(RateLimit, { maxItems: 3 })),
    quotas: Type.Optional(Type.Array(Quota, { maxItems: 2 })),
    countBy: Type.Optional(CountBy),
  },
  closed,
);
export type PlanOverride = Static<typeof PlanOverride>;

export const Plan = Type.Object(
  {
    name: Name,
    ...Common,
    limits: Type.Optional(Type.Array(RateLimit, { maxItems: 3 })),
    quotas: Type.Optional(Type.Array(Quota, { maxItems: 2 })),
    countBy: Type.Optional(CountBy),
    shadow: Type.Optional(Type.Boolean({ description: 'count and report, never reject' })),
    exact: Type.Optional(
      Type.Boolean({
        description: 'count this plan strictly globally: gateway groups serving a product it is subscribed to, and not stating rateLimit.mode, count with the callout (combined) instead of natively',
      }),
    ),
    overrides: Type.Optional(Type.Array(PlanOverride, { maxItems: 1000 })),
  },
  closed,
);
export type Plan = Static<typeof Plan>;

export const Subscription = Type.Object(
  {
    product: Name,
    ...Common,
    plan: Name,
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('suspended')])),
    access: Type.Optional(
      Type.Object(
        {
          methods: Type.Optional(Type.Array(HttpMethod, { minItems: 1, uniqueItems: true })),
          routes: Type.Optional(Type.Array(Name, { minItems: 1, uniqueItems: true })),
        },
        { ...closed, description: 'the access level: which methods and routes; default all' },
      ),
    ),
    expiresAt: Type.Optional(Timestamp),
  },
  closed,
);
export type Subscription = Static<typeof Subscription> & { partner: string };

// ── credentials ───────────────────────────────────────────────────────────────
export const ApiKeyPrefix = Type.String({ pattern: '^[a-z0-9]{8}$' });
export const ApiKey = Type.Object(
  {
    name: Name,
    ...Common,
    expiresAt: Type.Optional(Timestamp),
    revoked: Type.Optional(Type.Boolean()),
    // Import paths: a key minted elsewhere (hashed on arrival), or a hash exported by Portico.
    key: Type.Optional({ ...Type.String({ pattern: '^ptk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$' }), writeOnly: true }),
    prefix: Type.Optional(ApiKeyPrefix),
    hash: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' })),
  },
  closed,
);
export type ApiKeyInput = Static<typeof ApiKey>;
/**
 * An API key as held by the model: its keyed hash, and the whole key (`secret`, in memory only,
 * stored sealed) when it was minted or imported whole; keys imported as a hash have no secret.
 * `secret` never leaves the process except towards Envoy over the authenticated xDS channel.
 */
export type ApiKey = Omit<ApiKeyInput, 'key' | 'prefix' | 'hash'> & { partner: string; prefix: string; hash: string; secret?: string };

export const JwtAlgorithm = Type.Union(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'].map((a) => Type.Literal(a)));
export type JwtAlgorithm = Static<typeof JwtAlgorithm>;

export const JwtIssuer = Type.Object(
  {
    name: Name,
    ...Common,
    issuer: Type.String({ minLength: 1, maxLength: 1024 }),
    audiences: Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { minItems: 1, uniqueItems: true }),
    jwksUri: Type.Optional(Type.String({ format: 'uri', pattern: '^https?://' })),
    jwks: Type.Optional(Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.Unknown()), { minItems: 1, maxItems: 64 }) }, closed)),
    algorithms: Type.Optional(Type.Array(JwtAlgorithm, { minItems: 1, uniqueItems: true })),
    partnerClaim: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'claim whose value is the partner name' })),
    partner: Type.Optional(Name),
    forwardClaims: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 128 }), HeaderName, { description: 'claim → upstream header' })),
    excludedPaths: Type.Optional(Type.Array(Path, { maxItems: 256, uniqueItems: true })),
    forwardToken: Type.Optional(
      Type.Boolean({
        description: "forward the caller's token to the upstream in Authorization; default false: the gateway removes it once the token has authenticated the request",
      }),
    ),
    clockSkewSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
  },
  closed,
);
export type JwtIssuer = Static<typeof JwtIssuer>;

export const MtlsIdentity = Type.Object(
  {
    name: Name,
    ...Common,
    match: Type.Object(
      {
        type: Type.Union([Type.Literal('subject'), Type.Literal('san'), Type.Literal('spiffe_id'), Type.Literal('fingerprint')]),
        value: Type.String({ minLength: 1, maxLength: 1024 }),
      },
      closed,
    ),
  },
  closed,
);
export type MtlsIdentity = Static<typeof MtlsIdentity> & { partner: string };

// ── admin tokens ──────────────────────────────────────────────────────────────
export const AdminRole = Type.Union([Type.Literal('admin'), Type.Literal('viewer')]);
export type AdminRole = Static<typeof AdminRole>;
export const AdminTokenInput = Type.Object({ name: Name, role: AdminRole, expiresAt: Type.Optional(Timestamp), description: Type.Optional(Description) }, closed);
export type AdminTokenInput = Static<typeof AdminTokenInput>;

export type { Static, TSchema };
