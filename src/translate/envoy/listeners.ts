// IR → envoy.config.listener.v3.Listener: one HTTP connection manager per listener (routes over
// RDS, TLS certificates over SDS), its filter chain, JSON access log and JSON local replies; and
// the bare API listeners proxyless gRPC clients resolve.
import { LOCAL_REPLY_MAPPINGS, RATE_LIMIT_REPLY_MAPPINGS, ROUTE_METADATA_NAMESPACE, type RateLimitReplyMapping } from '../../contract/index.ts';
import type { ApiListenerIR, ExtAuthzIR, GroupIR, ListenerIR, ListenerTlsIR, RateLimitFilterIR } from '../ir.ts';
import { FILTERS, LOCAL_RATE_LIMIT_TYPE, adsConfigSource, any, duration, extension, localRateLimitConfig, sdsSecret, socketAddress, sortedRecord, statusName, type Json, type JsonObject } from './common.ts';
import { accessLogExtraFields, grpcAccessLogs, tracing } from './observability.ts';

const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** What every access-log line carries; product and route come from the matched route's metadata. */
function accessLogFields(group: string, listener: string): JsonObject {
  return sortedRecord([
    ['start_time', '%START_TIME%'],
    ['request_id', '%REQ(X-REQUEST-ID)%'],
    ['method', '%REQ(:METHOD)%'],
    // The path as the client sent it (before rewrites), without the query string: it may carry an API key.
    ['path', '%PATH(NQ)%'],
    ['authority', '%REQ(:AUTHORITY)%'],
    ['protocol', '%PROTOCOL%'],
    ['status', '%RESPONSE_CODE%'],
    ['response_flags', '%RESPONSE_FLAGS%'],
    ['duration_ms', '%DURATION%'],
    ['upstream_host', '%UPSTREAM_HOST%'],
    ['upstream_cluster', '%UPSTREAM_CLUSTER%'],
    ['bytes_received', '%BYTES_RECEIVED%'],
    ['bytes_sent', '%BYTES_SENT%'],
    ['route_name', '%ROUTE_NAME%'],
    ['product', `%METADATA(ROUTE:${ROUTE_METADATA_NAMESPACE}:product)%`],
    ['route', `%METADATA(ROUTE:${ROUTE_METADATA_NAMESPACE}:route)%`],
    ['client_address', '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%'],
    ['user_agent', '%REQ(USER-AGENT)%'],
    ['gateway_group', group],
    ['listener', listener],
    ...accessLogExtraFields(),
  ]);
}

function accessLog(group: string, listener: string): JsonObject {
  return extension('envoy.access_loggers.stdout', 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog', {
    log_format: { json_format: accessLogFields(group, listener) },
  });
}

const status = (code: number): JsonObject => ({
  status_code_filter: { comparison: { op: 'EQ', value: { default_value: code, runtime_key: `portico.local_reply.status_${code}` } } },
});

/** Matches a reply by its response code details (CEL: a string literal, so no quoting concerns). */
function codeDetailsFilter(details: string): JsonObject {
  if (!/^[a-z_]+$/.test(details)) throw new Error(`unexpected response code details ${details}`);
  // Wrapped in a TypedStruct (Envoy converts it to the named type): the CEL filter's own proto is not
  // among those the xDS encoder loads.
  return extension('envoy.access_loggers.extension_filters.cel', 'xds.type.v3.TypedStruct', {
    type_url: 'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter',
    value: { expression: `response.code_details == '${details}'` },
  });
}

/** A refusal Envoy writes itself, in the rate-limit contract's shape (matched by status and flag only). */
function rateLimitMapper(m: RateLimitReplyMapping): JsonObject {
  return {
    filter: {
      and_filter: { filters: [status(m.status), m.flags ? { response_flag_filter: { flags: [...m.flags] } } : { extension_filter: codeDetailsFilter(m.codeDetails!) }] },
    },
    ...(m.rewriteStatus !== undefined ? { status_code: m.rewriteStatus } : {}),
    ...(m.headers.length ? { headers_to_add: m.headers.map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })) } : {}),
    body_format_override: { text_format_source: { inline_string: m.body }, content_type: 'application/json' },
  };
}

/**
 * Envoy's own error replies (no healthy upstream, timeouts, malformed requests…) in the gateway's
 * JSON shape. Direct responses are local replies too and must keep their bodies: Envoy's own
 * errors carry a response flag (UF, UH, UT, NR…) or, for codec errors, come before a request id
 * was assigned; a direct response has neither. The refusals of the rate-limit callouts (429 from
 * ext_authz or the rate-limit service) match no mapper and reach the client exactly as answered;
 * the refusals Envoy makes itself (local buckets, fail-closed outages) get the same contract.
 */
function localReplyConfig(g: GroupIR): JsonObject {
  const f = g.filters;
  const rateLimits: RateLimitReplyMapping[] = [];
  if (f.localRateLimit || f.routeLocalRateLimit) rateLimits.push(RATE_LIMIT_REPLY_MAPPINGS.localLimit);
  if (f.rateLimit?.failureModeDeny) rateLimits.push(RATE_LIMIT_REPLY_MAPPINGS.serviceUnavailable);
  if (f.extAuthzLimits && !f.extAuthzLimits.failureModeAllow) rateLimits.push(RATE_LIMIT_REPLY_MAPPINGS.limitsUnavailable);
  const generatedByEnvoy: JsonObject = {
    or_filter: {
      filters: [
        { response_flag_filter: {} },
        { header_filter: { header: { name: 'x-request-id', present_match: false } } },
      ],
    },
  };
  return {
    mappers: [
      ...rateLimits.map(rateLimitMapper),
      ...LOCAL_REPLY_MAPPINGS.map((m) => ({
      filter: {
        and_filter: { filters: [status(m.status), m.flags ? { response_flag_filter: { flags: [...m.flags] } } : generatedByEnvoy] },
      },
        body: { inline_string: m.message },
        body_format_override: { json_format: { error: m.error, message: '%LOCAL_REPLY_BODY%' } },
      })),
    ],
  };
}

/**
 * Retries for a callout that never got an answer: a control-plane replica that is draining or
 * gone refuses or resets the stream, and another replica can answer within the same timeout
 * (Envoy bounds the retries by it). Both checks are safe to repeat; a rate-limit hit repeated after
 * a reset may count twice, which beats failing the request during a rolling restart.
 * Envoy also takes `max_interval` as the per-try timeout, so it is the whole callout timeout: a
 * slow answer is waited for, not cut short and asked again.
 */
function calloutRetryPolicy(timeoutMs: number): JsonObject {
  return {
    retry_on: 'connect-failure,refused-stream,reset,unavailable',
    num_retries: 2,
    retry_back_off: { base_interval: duration(10), max_interval: duration(Math.max(10, timeoutMs)) },
  };
}

function extAuthzFilter(a: ExtAuthzIR): JsonObject {
  return extension(a.name, 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz', {
    grpc_service: { envoy_grpc: { cluster_name: a.cluster }, timeout: duration(a.timeoutMs), retry_policy: calloutRetryPolicy(a.timeoutMs) },
    transport_api_version: 'V3',
    failure_mode_allow: a.failureModeAllow,
    // When the callout cannot answer (and failure mode is closed), say so rather than 403.
    status_on_error: { code: statusName(a.statusOnError) },
    include_peer_certificate: true,
    ...(a.statPrefix !== undefined ? { stat_prefix: a.statPrefix } : {}),
  });
}

/**
 * Envoy's rate-limit filter with the settings that keep the 429 contract exact: Portico's own
 * headers (none of Envoy's draft ones, no x-envoy-ratelimited), and a closed-mode outage answered
 * as the contract's 429 `rate_limit_unavailable` (mapped in localReplyConfig).
 */
function rateLimitFilter(r: RateLimitFilterIR): JsonObject {
  return extension(FILTERS.rateLimit, 'envoy.extensions.filters.http.ratelimit.v3.RateLimit', {
    domain: r.domain,
    timeout: duration(r.timeoutMs),
    failure_mode_deny: r.failureModeDeny,
    rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: r.cluster }, retry_policy: calloutRetryPolicy(r.timeoutMs) }, transport_api_version: 'V3' },
    enable_x_ratelimit_headers: 'OFF',
    disable_x_envoy_ratelimited_header: true,
    status_on_error: { code: 'TooManyRequests' },
  });
}

/** A filter that is not in a request's chain unless its route configures it (typed_per_filter_config). */
function disabledByDefault(filter: JsonObject): JsonObject {
  return { ...filter, disabled: true };
}

export function httpFilters(g: GroupIR): JsonObject[] {
  const filters: JsonObject[] = [];
  // Identity headers only the gateway may set: removed before anyone reads them, so ext_authz is
  // the only one who can set them and public routes never pass a forged one upstream.
  if (g.stripRequestHeaders.length) {
    filters.push(
      extension(FILTERS.stripIdentity, 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation', {
        mutations: { request_mutations: g.stripRequestHeaders.map((h) => ({ remove: h })) },
      }),
    );
  }
  // CORS before ext_authz: it answers preflight requests before anyone asks for credentials (and
  // before the local buckets, so a browser can read their 429s).
  if (g.filters.cors) filters.push(extension(FILTERS.cors, 'envoy.extensions.filters.http.cors.v3.Cors'));
  // The safety net before any callout: what it refuses costs the control plane nothing.
  if (g.filters.localRateLimit) filters.push(extension(FILTERS.localRateLimitGroup, LOCAL_RATE_LIMIT_TYPE, localRateLimitConfig('portico_local_rate_limit_group', g.filters.localRateLimit)));
  // Route buckets live in each route's config; the filter itself is off where a route has none.
  if (g.filters.routeLocalRateLimit) filters.push(disabledByDefault(extension(FILTERS.localRateLimitRoute, LOCAL_RATE_LIMIT_TYPE, { stat_prefix: 'portico_local_rate_limit_route' })));
  if (g.filters.extAuthz) filters.push(extAuthzFilter(g.filters.extAuthz));
  if (g.filters.extAuthzLimits) filters.push(disabledByDefault(extAuthzFilter(g.filters.extAuthzLimits)));
  // After ext_authz: limits are counted per authenticated partner (its dynamic metadata) and by the
  // identity headers it sets.
  if (g.filters.rateLimit) filters.push(rateLimitFilter(g.filters.rateLimit));
  filters.push(extension(FILTERS.router, 'envoy.extensions.filters.http.router.v3.Router'));
  return filters;
}

function connectionManager(g: GroupIR, l: ListenerIR): JsonObject {
  return {
    stat_prefix: l.statPrefix,
    codec_type: 'AUTO',
    rds: { config_source: adsConfigSource(), route_config_name: l.routeTable },
    http_filters: httpFilters(g),
    access_log: [accessLog(g.name, l.name), ...grpcAccessLogs(g)],
    use_remote_address: true,
    generate_request_id: true,
    always_set_request_id_in_response: true,
    normalize_path: true,
    merge_slashes: true,
    // Route matching and the upstream must see the same path: %2F cannot hide a segment boundary.
    path_with_escaped_slashes_action: 'UNESCAPE_AND_FORWARD',
    max_request_headers_kb: 60,
    common_http_protocol_options: {
      idle_timeout: duration(3_600_000),
      max_headers_count: 100,
      // Some upstream frameworks read X_User_Id as X-User-Id: drop them rather than let identity headers slip in.
      headers_with_underscores_action: 'DROP_HEADER',
    },
    http2_protocol_options: { max_concurrent_streams: 100, initial_stream_window_size: 65_536, initial_connection_window_size: 1_048_576 },
    stream_idle_timeout: duration(300_000),
    request_headers_timeout: duration(10_000),
    ...tracing(g),
    local_reply_config: localReplyConfig(g),
  };
}

function downstreamTls(l: ListenerTlsIR): JsonObject {
  const common: JsonObject = {
    tls_certificate_sds_secret_configs: [sdsSecret(l.certificateSecret)],
    alpn_protocols: ['h2', 'http/1.1'],
  };
  if (l.clientCaSecret) common.validation_context_sds_secret_config = sdsSecret(l.clientCaSecret);
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: any('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
      common_tls_context: common,
      ...(l.clientCaSecret ? { require_client_certificate: l.requireClientCertificate } : {}),
    }),
  };
}

export function listener(g: GroupIR, l: ListenerIR): JsonObject {
  const chain: JsonObject = {};
  if (l.tls?.serverNames.length) chain.filter_chain_match = { server_names: l.tls.serverNames };
  chain.filters = [{ name: 'envoy.filters.network.http_connection_manager', typed_config: any(HCM_TYPE, connectionManager(g, l)) }];
  if (l.tls) chain.transport_socket = downstreamTls(l.tls);
  const out: JsonObject = { name: l.name, address: socketAddress(l.address, l.port) };
  // SNI (for server_names) and ALPN (for h2) are read by the TLS inspector.
  if (l.tls) out.listener_filters = [extension('envoy.filters.listener.tls_inspector', 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector')];
  out.filter_chains = [chain as Json];
  return out;
}

/**
 * A listener for proxyless gRPC clients, named as the host they dial: an HTTP connection manager
 * with RDS over ADS and the router only. gRPC clients support neither ext_authz nor access logs
 * nor local replies, and refuse a configuration whose last filter is not the router.
 */
export function apiListener(l: ApiListenerIR): JsonObject {
  return {
    name: l.name,
    api_listener: {
      api_listener: any(HCM_TYPE, {
        rds: { config_source: adsConfigSource(), route_config_name: l.routeTable },
        http_filters: [extension(FILTERS.router, 'envoy.extensions.filters.http.router.v3.Router')],
      }),
    },
  };
}
