// Model → IR for clusters: a service's upstream (discovery, load balancing, timeouts, circuit
// breaker, outlier detection, health check, upstream TLS), and the gRPC clusters of Portico's own
// services (callouts, access logs, the OpenTelemetry collector).
import { isIpLiteral, serviceDiscovery, type Service } from '../../model/index.ts';
import type { ClusterIR, LbPolicyIR } from '../ir.ts';
import { CALLOUT_CLUSTER, parseHostPort, DEFAULTS } from './common.ts';

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

/**
 * The cluster of one of Portico's own gRPC services at `address` (host:port; `what` names the setting
 * in the error when it is not): the callouts, the access-log service, the OpenTelemetry collector.
 */
export function grpcServiceCluster(name: string, address: string, what: string, channelSdsDir?: string): ClusterIR {
  const { host, port } = parseHostPort(address, what);
  return {
    ...(channelSdsDir ? { channelSdsDir } : {}),
    name,
    // A name (e.g. a Kubernetes service) cannot be a STATIC address; resolve it instead.
    discovery: isIpLiteral(host) ? 'static' : 'strict_dns',
    endpoints: [{ host, port }],
    lbPolicy: 'ROUND_ROBIN',
    connectTimeoutMs: 1_000,
    http2: true,
  };
}

/** Envoy's default limit on requests in flight per cluster (circuit_breakers max_requests). */
const CALLOUT_MAX_REQUESTS = 1024;

/**
 * The callouts' cluster (ext_authz, rate limit). A stopping replica's GOAWAY refuses every callout
 * Envoy sent it after the last one it read, all at once, and each is retried elsewhere (the callouts'
 * retry_policy). Envoy's default allows 3 retries in flight per cluster: a fourth refused callout
 * would fail at once (upstream_rq_retry_overflow, seen in the HA test). Every callout in flight may
 * need one.
 */
export function calloutCluster(address: string, channelSdsDir?: string): ClusterIR {
  return { ...grpcServiceCluster(CALLOUT_CLUSTER, address, 'calloutAddress', channelSdsDir), circuitBreaker: { maxRetries: CALLOUT_MAX_REQUESTS } };
}
