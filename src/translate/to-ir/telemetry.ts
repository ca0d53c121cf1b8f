// Model → IR for observability: the gRPC clusters Envoys stream access logs and send traces to, and
// GroupIR.telemetry (the emitters in envoy/observability.ts turn it into loggers and a tracer).
import type { ClusterIR, TelemetryIR, TelemetryOptions } from '../ir.ts';
import { grpcServiceCluster } from './clusters.ts';

/** The access-log service's cluster (the control plane's gRPC listener; the callout one is unary-only). */
export const TELEMETRY_CLUSTER = 'portico.telemetry';
/** The OpenTelemetry collector's cluster. */
export const OTEL_CLUSTER = 'portico.otel';

/** GroupIR.telemetry for an Envoy group (spread into the group). */
export function telemetryIr(o: TelemetryOptions | undefined): { telemetry?: TelemetryIR } {
  if (!o?.accessLogAddress && !o?.otelCollectorAddress) return {};
  return {
    telemetry: {
      ...(o.accessLogAddress ? { accessLogCluster: TELEMETRY_CLUSTER } : {}),
      ...(o.otelCollectorAddress ? { tracing: { cluster: OTEL_CLUSTER, samplePercent: o.otelSamplePercent ?? 10 } } : {}),
    },
  };
}

/** The clusters the telemetry settings need (the access-log service, the collector). */
export function telemetryClusters(o: TelemetryOptions | undefined, channelSdsDir?: string): ClusterIR[] {
  const out: ClusterIR[] = [];
  // The access-log service is the control plane's own channel (mTLS when it serves mTLS); the collector is not.
  if (o?.accessLogAddress) out.push(grpcServiceCluster(TELEMETRY_CLUSTER, o.accessLogAddress, 'accessLogAddress', channelSdsDir));
  if (o?.otelCollectorAddress) out.push(grpcServiceCluster(OTEL_CLUSTER, o.otelCollectorAddress, 'otelCollectorAddress'));
  return out;
}
