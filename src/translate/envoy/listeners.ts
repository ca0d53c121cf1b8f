// IR → envoy.config.listener.v3.Listener: one HTTP connection manager per listener (routes over
// RDS, TLS certificates over SDS), its filter chain (each feature's part from filters/), JSON access
// log and JSON local replies; and the bare API listeners proxyless gRPC clients resolve.
import { LOCAL_REPLY_MAPPINGS, ROUTE_METADATA_NAMESPACE, type RateLimitReplyMapping } from '../../contract/index.ts';
import type { ApiListenerIR, FlowStepsIR, GroupIR, ListenerIR, ListenerTlsIR } from '../ir.ts';
import { adsConfigSource, any, duration, extension, sdsSecret, socketAddress, sortedRecord, type Json, type JsonObject } from './common.ts';
import { HTTP_FILTERS, routerFilter } from './filters/index.ts';
import { accessLogExtraFields, grpcAccessLogs, stdoutAccessLogSources, stepTracing, tracing, type CallerSource } from './observability.ts';

const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** What every access-log line carries; product and route come from the matched route's metadata. */
function accessLogFields(group: string, listener: string, correlationHeaders: readonly string[], caller: CallerSource): JsonObject {
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
    // The flow that answered (product/route), on routes the flow runtime serves.
    ['flow', `%METADATA(ROUTE:${ROUTE_METADATA_NAMESPACE}:flow)%`],
    ['client_address', '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%'],
    ['user_agent', '%REQ(USER-AGENT)%'],
    ['gateway_group', group],
    ['listener', listener],
    ...accessLogExtraFields(caller),
    // Correlation ids the routes mint (`${uuid}` header values), as the upstream received them.
    ...(correlationHeaders.length ? [['correlation_ids', sortedRecord(correlationHeaders.map((h) => [h, `%REQ(${h})%`]))] as [string, Json]] : []),
  ]);
}

/** The JSON stdout access log: one logger, or two splitting requests by where the caller is named (observability.ts). */
function accessLogs(g: GroupIR, listener: string): JsonObject[] {
  const withExtAuthz = g.filters.extAuthz !== undefined || g.filters.extAuthzLimits !== undefined;
  return stdoutAccessLogSources(withExtAuthz).map(({ source, filter }) => ({
    ...extension('envoy.access_loggers.stdout', 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog', {
      log_format: { json_format: accessLogFields(g.name, listener, g.correlationHeaders ?? [], source) },
    }),
    ...(filter ? { filter } : {}),
  }));
}

const status = (code: number): JsonObject => ({
  status_code_filter: { comparison: { op: 'EQ', value: { default_value: code, runtime_key: `portico.local_reply.status_${code}` } } },
});

/** Matches a reply by its response code details, or their start (CEL: a string literal, so no quoting concerns). */
function codeDetailsFilter(details: string, retryAfterOne = false, prefix = false): JsonObject {
  if (!/^[A-Za-z0-9_[\]{}]+$/.test(details)) throw new Error(`unexpected response code details ${details}`);
  const test = prefix ? `response.code_details.startsWith('${details}')` : `response.code_details == '${details}'`;
  const expression = `${test}${retryAfterOne ? " && response.headers['retry-after'] == '1'" : ''}`;
  // Wrapped in a TypedStruct (Envoy converts it to the named type): the CEL filter's own proto is not
  // among those the xDS encoder loads.
  return extension('envoy.access_loggers.extension_filters.cel', 'xds.type.v3.TypedStruct', {
    type_url: 'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter',
    value: { expression },
  });
}

/** A refusal Envoy writes itself, in the rate-limit contract's shape (matched by status and flag only). */
function rateLimitMapper(m: RateLimitReplyMapping): JsonObject {
  return {
    filter: {
      and_filter: {
        filters: [
          status(m.status),
          m.flags
            ? { response_flag_filter: { flags: [...m.flags] } }
            : { extension_filter: m.codeDetailsPrefix !== undefined ? codeDetailsFilter(m.codeDetailsPrefix, m.retryAfterOne, true) : codeDetailsFilter(m.codeDetails!, m.retryAfterOne) },
        ],
      },
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
  const rateLimits = HTTP_FILTERS.flatMap((f) => f.localReplies?.(g.filters) ?? []);
  const generatedByEnvoy: JsonObject = {
    or_filter: {
      filters: [{ response_flag_filter: {} }, { header_filter: { header: { name: 'x-request-id', present_match: false } } }],
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

export function httpFilters(g: GroupIR): JsonObject[] {
  return HTTP_FILTERS.flatMap((f) => f.chain(g));
}

function connectionManager(g: GroupIR, l: ListenerIR): JsonObject {
  return {
    stat_prefix: l.statPrefix,
    codec_type: 'AUTO',
    rds: { config_source: adsConfigSource(), route_config_name: l.routeTable },
    http_filters: httpFilters(g),
    access_log: [...accessLogs(g, l.name), ...grpcAccessLogs(g)],
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
        http_filters: [routerFilter()],
      }),
    },
  };
}

/**
 * The listener the flow runtime's step calls come back to: routes (RDS) by the service the call names,
 * the router only. It authenticates nobody (the flow's request was authenticated at the edge), so it
 * binds where only the runtime reaches it (loopback by default). Traced like the edge when tracing is
 * on, each call a span tagged with its step, joined to the request's trace by the propagated headers.
 */
export function flowStepListener(g: GroupIR, s: FlowStepsIR): JsonObject {
  const hcm: JsonObject = {
    stat_prefix: `${g.name}_flow_steps`,
    codec_type: 'AUTO',
    rds: { config_source: adsConfigSource(), route_config_name: s.routeTable },
    http_filters: [routerFilter()],
    // The runtime's step calls come from loopback: they may carry x-envoy-* and tracing headers on.
    internal_address_config: {
      cidr_ranges: [
        { address_prefix: '127.0.0.0', prefix_len: 8 },
        { address_prefix: '::1', prefix_len: 128 },
      ],
    },
    common_http_protocol_options: { idle_timeout: duration(3_600_000), headers_with_underscores_action: 'DROP_HEADER' },
    ...stepTracing(g),
  };
  return {
    name: s.name,
    address: socketAddress(s.address, s.port),
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: any(HCM_TYPE, hcm) }] }],
  };
}
