// The access-log service Envoys stream to (envoy.service.accesslog.v3.AccessLogService/
// StreamAccessLogs, client streaming, hosted on the xDS port's node:http2 server): every HTTP entry becomes a
// count and a duration in RequestMetrics (per product × partner). Entries are decoded partially
// (access-log-wire.ts) and never stored; nothing from them is logged but ids, names and statuses.
import type * as grpc from '@grpc/grpc-js';
import { plaintextGuard, type ChannelGuard, type PeerIdentity } from '../grpc/index.ts';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ModelSnapshot } from '../model/index.ts';
import type { Logger } from './log.ts';
import { decodeAccessLogMessage, type AccessLogBatch, type AccessLogRecord } from './access-log-wire.ts';
import { classify, RequestMetrics } from './request-metrics.ts';
import { CacheMetrics } from './cache-metrics.ts';
import { registeredMetric } from './metrics.ts';

export const ACCESS_LOG_SERVICE = 'envoy.service.accesslog.v3.AccessLogService';
export const STREAM_METHOD = `/${ACCESS_LOG_SERVICE}/StreamAccessLogs`;

export interface AccessLogServiceOptions {
  registry: Registry;
  logger?: Logger;
  /** Distinct partner label values before folding into "other" (default 200). */
  maxPartnerLabels?: number;
  /** Under mTLS: a stream's node must hold a certificate allowing the gateway group it reports. */
  guard?: ChannelGuard;
}

/** Anything that hosts gRPC services before it listens (XdsServer, a plain grpc.Server). */
export interface ServiceHost {
  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void;
}

/** One open StreamAccessLogs call: what its first message said about the Envoy. */
interface StreamState {
  nodeId: string;
  group: string;
  peer: string;
  /** The verified certificate (mTLS) and whether the node's group was checked against it. */
  certificate: PeerIdentity | undefined;
  authorized: boolean;
  /** Ends the call with OK (the Envoy opens a new stream on its next flush). */
  finish(): void;
  warned: boolean;
}

const EMPTY_RESPONSE = Buffer.alloc(0);

export class AccessLogService {
  readonly metrics: RequestMetrics;
  readonly cacheMetrics: CacheMetrics;
  private readonly streams = new Set<StreamState>();
  private readonly log: Logger | undefined;
  private readonly open: Gauge;
  private readonly entries: Counter;
  private readonly errors: Counter;
  private readonly guard: ChannelGuard;
  private readonly entryListeners = new Set<(group: string, entries: readonly AccessLogRecord[]) => void>();
  private closed = false;

  constructor(opts: AccessLogServiceOptions) {
    const registers = [opts.registry];
    this.log = opts.logger;
    this.guard = opts.guard ?? plaintextGuard();
    this.metrics = new RequestMetrics({ registry: opts.registry, maxPartnerLabels: opts.maxPartnerLabels });
    this.cacheMetrics = new CacheMetrics(opts.registry);
    this.open = registeredMetric(opts.registry, 'portico_access_log_streams', () => new Gauge({ name: 'portico_access_log_streams', help: 'Open access-log streams from Envoys', registers }));
    this.entries = registeredMetric(
      opts.registry,
      'portico_access_log_entries_total',
      () => new Counter({ name: 'portico_access_log_entries_total', help: 'HTTP access-log entries received from Envoys', registers }),
    );
    this.errors = registeredMetric(
      opts.registry,
      'portico_access_log_errors_total',
      () => new Counter({ name: 'portico_access_log_errors_total', help: 'Access-log messages that could not be decoded', registers }),
    );
  }

  /** Label values follow the model: call with every snapshot. */
  setModel(model: ModelSnapshot): void {
    this.metrics.setModel(model);
    this.cacheMetrics.setModel(model);
  }

  /** Calls `fn` with every batch of entries and the group that sent them (native quotas count them); returns the unsubscribe function. */
  onEntries(fn: (group: string, entries: readonly AccessLogRecord[]) => void): () => void {
    this.entryListeners.add(fn);
    return () => this.entryListeners.delete(fn);
  }

  /** Open streams (tests, shutdown). */
  streamCount(): number {
    return this.streams.size;
  }

  /** Decodes one StreamAccessLogsMessage and records its entries. Returns the decoded batch. */
  ingest(bytes: Uint8Array, stream?: Pick<StreamState, 'group' | 'nodeId'>): AccessLogBatch {
    return this.record(decodeAccessLogMessage(bytes), stream);
  }

  private record(batch: AccessLogBatch, stream?: Pick<StreamState, 'group' | 'nodeId'>): AccessLogBatch {
    if (batch.identifier && stream) {
      stream.nodeId = batch.identifier.nodeId;
      stream.group = batch.identifier.cluster;
    }
    for (const e of batch.entries) {
      this.metrics.record(e, stream?.group);
      this.cacheMetrics.record(e, stream?.group);
      if (e.status >= 500 && this.log?.isLevelEnabled('debug')) {
        // Only ids, names and statuses: never headers, paths or credentials.
        this.log.debug(
          {
            requestId: e.requestId,
            group: e.tags.get('group') ?? stream?.group,
            product: e.tags.get('product') || e.authz.get('product'),
            route: e.routeName,
            partner: e.authz.get('partner'),
            status: e.status,
            outcome: classify(e),
            details: e.responseCodeDetails,
          },
          'access log: request failed',
        );
      }
    }
    this.entries.inc(batch.entries.length);
    const group = stream?.group;
    if (group && batch.entries.length) for (const fn of this.entryListeners) fn(group, batch.entries);
    return batch;
  }

  /** The grpc-js service definition: messages stay bytes (decoded partially by ingest). */
  definition(): grpc.ServiceDefinition {
    const raw = (b: Buffer) => b;
    return {
      StreamAccessLogs: {
        path: STREAM_METHOD,
        requestStream: true,
        responseStream: false,
        originalName: 'streamAccessLogs',
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    } as grpc.ServiceDefinition;
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      StreamAccessLogs: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => this.serve(call, callback),
    };
  }

  private serve(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    let done = false;
    const admitted = this.guard.authenticateCall(call.getAuthContext());
    if (!admitted.ok) {
      this.guard.refuse(admitted, { service: 'access_log', peer: call.getPeer() });
      callback({ code: admitted.code, details: admitted.message });
      return;
    }
    const s: StreamState = {
      nodeId: '',
      group: '',
      peer: call.getPeer(),
      certificate: admitted.identity,
      authorized: this.guard.security === 'plaintext',
      warned: false,
      finish: () => {
        if (done) return;
        done = true;
        this.streams.delete(s);
        this.open.dec();
        callback(null, EMPTY_RESPONSE);
      },
    };
    if (this.closed) {
      callback(null, EMPTY_RESPONSE);
      return;
    }
    this.streams.add(s);
    this.open.inc();
    const end = (status: { code: number; details: string }) => {
      if (done) return;
      done = true;
      this.streams.delete(s);
      this.open.dec();
      callback(status);
    };
    call.on('data', (b: Buffer) => {
      if (done) return;
      try {
        const decoded = decodeAccessLogMessage(b);
        // A message naming the node: its group must be one the certificate allows, before any entry counts.
        if (decoded.identifier) {
          const { nodeId, cluster } = decoded.identifier;
          const z = this.guard.authorize(s.certificate, cluster);
          if (!z.ok) {
            this.guard.refuse(z, { service: 'access_log', peer: s.peer, nodeId, group: cluster });
            return end({ code: z.code, details: z.message });
          }
          s.authorized = true;
          s.nodeId = nodeId;
          s.group = cluster;
        } else if (!s.authorized) {
          return end({ code: 3, details: 'the first access-log message must carry the node' });
        }
        // Entries tagged with another group than the one the node was admitted for do not count.
        const own = s.certificate ? decoded.entries.filter((e) => (e.tags.get('group') ?? s.group) === s.group) : decoded.entries;
        if (own.length !== decoded.entries.length) this.errors.inc(decoded.entries.length - own.length);
        const batch = this.record(own === decoded.entries ? decoded : { ...decoded, entries: own }, s);
        if (batch.identifier) this.log?.debug({ nodeId: s.nodeId, group: s.group, peer: s.peer, logName: batch.identifier.logName }, 'access log: stream opened');
      } catch (e) {
        this.errors.inc();
        if (!s.warned) {
          s.warned = true;
          this.log?.warn({ peer: s.peer, nodeId: s.nodeId, reason: (e as Error).message }, 'access log: undecodable message (further ones on this stream are only counted)');
        }
      }
    });
    call.on('end', () => s.finish());
    const drop = () => {
      if (done) return;
      done = true;
      this.streams.delete(s);
      this.open.dec();
    };
    call.on('error', drop);
    call.on('cancelled', drop);
  }

  /** Ends every open stream with OK and refuses new ones (shutdown: Envoys move to another replica). */
  close(): void {
    this.closed = true;
    for (const s of [...this.streams]) s.finish();
  }
}

export function registerAccessLogService(host: ServiceHost, service: AccessLogService): void {
  host.addService(service.definition(), service.handlers());
}
