// The xDS Prometheus metrics, one StreamObserver of the streams (fleet.ts is another): connected
// streams per group and protocol, pushes and NACKs per type, and push → ACK/NACK latency.
import { type Counter, type Gauge, type Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { Refusal } from '../grpc/index.ts';
import { typeLabel } from './fleet.ts';
import type { StreamInfo, StreamObserver } from './stream.ts';
import { counter, gauge, histogram } from '../telemetry/index.ts';

export class XdsMetrics implements StreamObserver {
  private readonly connected: Gauge<'group' | 'protocol'>;
  private readonly pushes: Counter<'type'>;
  private readonly nackCount: Counter<'type'>;
  private readonly ackLatency: Histogram<'type'>;
  private readonly refusals: Counter<'service' | 'reason'>;
  /** Open streams, each with when it last pushed each type (a NACK's latency counts from there). */
  private readonly streams = new Map<number, Map<string, number>>();

  /** Metrics go to `registry` (prom-client's default registry when omitted). */
  constructor(registry: Registry = defaultRegistry) {
    this.connected = gauge(registry, { name: 'portico_xds_connected_streams', help: 'xDS streams connected, by gateway group and protocol', labelNames: ['group', 'protocol'] });
    this.pushes = counter(registry, { name: 'portico_xds_pushes_total', help: 'xDS responses sent, by resource type', labelNames: ['type'] });
    this.nackCount = counter(registry, { name: 'portico_xds_nacks_total', help: 'xDS responses rejected by Envoy, by resource type', labelNames: ['type'] });
    this.ackLatency = histogram(registry, {
      name: 'portico_xds_ack_latency_seconds',
      help: 'Time from an xDS push to its ACK or NACK, by resource type',
      labelNames: ['type'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.refusals = counter(registry, {
      name: 'portico_grpc_refused_total',
      help: 'Calls refused on the control-plane channels (xDS, access logs, callouts): no client certificate from the CA, no gateway-group identity, or another group asked for',
      labelNames: ['service', 'reason'],
    });
  }

  /** Counts a refused caller (the ChannelGuard tells every refusal). */
  onRefusal(r: Refusal): void {
    this.refusals.inc({ service: r.service, reason: r.reason });
  }

  onOpen(info: StreamInfo): void {
    this.streams.set(info.id, new Map());
    this.connected.inc({ group: info.group, protocol: info.protocol });
  }

  onClose(info: StreamInfo): void {
    if (this.streams.delete(info.id)) this.connected.dec({ group: info.group, protocol: info.protocol });
  }

  onPush(info: StreamInfo, typeUrl: string): void {
    const pushed = this.streams.get(info.id);
    if (!pushed) return;
    pushed.set(typeUrl, Date.now());
    this.pushes.inc({ type: typeLabel(typeUrl) });
  }

  onAck(info: StreamInfo, typeUrl: string, _version: string, latencyMs: number | undefined): void {
    if (!this.streams.has(info.id)) return;
    if (latencyMs !== undefined) this.ackLatency.observe({ type: typeLabel(typeUrl) }, latencyMs / 1000);
  }

  onNack(info: StreamInfo, typeUrl: string): void {
    const pushed = this.streams.get(info.id);
    if (!pushed) return;
    const at = pushed.get(typeUrl);
    if (at !== undefined) this.ackLatency.observe({ type: typeLabel(typeUrl) }, (Date.now() - at) / 1000);
    this.nackCount.inc({ type: typeLabel(typeUrl) });
  }
}
