// IR → envoy.config.cluster.v3.Cluster: one per service the group routes to (EDS over ADS for
// static endpoints, STRICT_DNS for names), plus the callout cluster; TLS, HTTP/2 and resilience.
import { channelTransportSocket } from '../../contract/index.ts';
import type { ClusterIR, UpstreamTlsIR } from '../ir.ts';
import { adsConfigSource, any, duration, extension, sdsSecret, type Json, type JsonObject } from './common.ts';
import { cacheDefaultTtlFilter, cacheKeyRestoreFilter } from './filters/index.ts';
import { loadAssignment } from './endpoints.ts';
import { clusterStatName } from './observability.ts';

const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** Envoy's expected_statuses are half-open [start, end) ranges; consecutive codes share one. */
function statusRanges(codes: readonly number[]): JsonObject[] {
  const out: JsonObject[] = [];
  let start: number | undefined;
  let end = 0;
  for (const c of codes) {
    if (start !== undefined && c === end) {
      end = c + 1;
      continue;
    }
    if (start !== undefined) out.push({ start: String(start), end: String(end) });
    start = c;
    end = c + 1;
  }
  if (start !== undefined) out.push({ start: String(start), end: String(end) });
  return out;
}

function upstreamTls(t: UpstreamTlsIR, http2: boolean): JsonObject {
  const common: JsonObject = {};
  if (t.clientCertificateSecret) common.tls_certificate_sds_secret_configs = [sdsSecret(t.clientCertificateSecret)];
  if (t.verify) {
    const sans: Json[] = t.verifySubjectAltName !== undefined ? [{ san_type: 'DNS', matcher: { exact: t.verifySubjectAltName } }] : [];
    if (t.caSecret && sans.length) {
      common.combined_validation_context = {
        default_validation_context: { match_typed_subject_alt_names: sans },
        validation_context_sds_secret_config: sdsSecret(t.caSecret),
      };
    } else if (t.caSecret) {
      common.validation_context_sds_secret_config = sdsSecret(t.caSecret);
    } else {
      common.validation_context = { system_root_certs: {}, ...(sans.length ? { match_typed_subject_alt_names: sans } : {}) };
    }
  }
  if (http2) common.alpn_protocols = ['h2'];
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: any('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
      common_tls_context: common,
      ...(t.sni !== undefined ? { sni: t.sni } : {}),
    }),
  };
}

export function cluster(c: ClusterIR): JsonObject {
  const out: JsonObject = { name: c.name, ...clusterStatName(c.name) };
  if (c.discovery === 'eds') {
    out.type = 'EDS';
    out.eds_cluster_config = { eds_config: adsConfigSource() };
  } else {
    out.type = c.discovery === 'static' ? 'STATIC' : 'STRICT_DNS';
  }
  out.connect_timeout = duration(c.connectTimeoutMs);
  out.lb_policy = c.lbPolicy;
  if (c.discovery !== 'eds') out.load_assignment = loadAssignment(c);
  if (c.discovery === 'strict_dns') out.dns_lookup_family = 'V4_PREFERRED';
  if (c.circuitBreaker) {
    const b = c.circuitBreaker;
    out.circuit_breakers = {
      thresholds: [
        {
          ...(b.maxConnections !== undefined ? { max_connections: b.maxConnections } : {}),
          ...(b.maxPendingRequests !== undefined ? { max_pending_requests: b.maxPendingRequests } : {}),
          ...(b.maxRequests !== undefined ? { max_requests: b.maxRequests } : {}),
          ...(b.maxRetries !== undefined ? { max_retries: b.maxRetries } : {}),
        },
      ],
    };
  }
  if (c.outlierDetection) {
    const o = c.outlierDetection;
    out.outlier_detection = {
      consecutive_5xx: o.consecutive5xx,
      interval: duration(o.intervalMs),
      base_ejection_time: duration(o.baseEjectionTimeMs),
      max_ejection_percent: o.maxEjectionPercent,
    };
  }
  if (c.healthCheck) {
    const h = c.healthCheck;
    out.health_checks = [
      {
        timeout: duration(h.timeoutMs),
        interval: duration(h.intervalMs),
        // Check at the configured pace even before the cluster sees traffic (Envoy's default is 60s).
        no_traffic_interval: duration(h.intervalMs),
        unhealthy_threshold: h.unhealthyThreshold,
        healthy_threshold: h.healthyThreshold,
        http_health_check: {
          path: h.path,
          ...(h.host !== undefined ? { host: h.host } : {}),
          ...(h.expectedStatuses.length ? { expected_statuses: statusRanges(h.expectedStatuses) } : {}),
          ...(c.http2 ? { codec_client_type: 'HTTP2' } : {}),
        },
      },
    ];
  }
  if (c.tls) out.transport_socket = upstreamTls(c.tls, c.http2);
  if (c.channelSdsDir) out.transport_socket = channelTransportSocket(c.channelSdsDir);
  if (c.http2 || c.cacheKeyRestore || c.cacheDefaultTtlSeconds !== undefined) {
    const cacheFilter = c.cacheKeyRestore ? cacheKeyRestoreFilter() : c.cacheDefaultTtlSeconds !== undefined ? cacheDefaultTtlFilter(c.cacheDefaultTtlSeconds) : undefined;
    const upstreamFilters: JsonObject = cacheFilter
      ? { http_filters: [cacheFilter, extension('envoy.filters.http.upstream_codec', 'envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec')] }
      : {};
    out.typed_extension_protocol_options = {
      [HTTP_OPTIONS]: any(HTTP_OPTIONS, {
        explicit_http_config: c.http2 ? { http2_protocol_options: {} } : { http_protocol_options: {} },
        ...upstreamFilters,
      }),
    };
  }
  return out;
}
