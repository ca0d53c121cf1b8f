// The access-log service Envoys stream to (envoy.service.accesslog.v3.AccessLogService/
// StreamAccessLogs, client streaming, hosted on the xDS grpc-js server): every HTTP entry becomes a
// count and a duration in RequestMetrics (per product × partner). Entries are decoded partially
// (access-log-wire.ts) and never stored; nothing from them is logged but ids, names and statuses.
import type * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ModelSnapshot } from '../model/index.ts';
import type { Logger } from './log.ts';
import { decodeAccessLogMessage, type AccessLogBatch } from './access-log-wire.ts';
import { classify, RequestMetrics } from './request-metrics.ts';
import { registeredMetric } from './metrics.ts';

export const ACCESS_LOG_SERVICE = 'envoy.service.accesslog.v3.AccessLogService';
export const STREAM_METHOD = `/${ACCESS_LOG_SERVICE}/StreamAccessLogs`;

export interface AccessLogServiceOptions {
  registry: Registry;
  logger?: Logger;
  /** Distinct partner label values before folding into "other" (default 200). */
  maxPartnerLabels?: number;
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
  /** Ends the call with OK (the Envoy opens a new stream on its next flush). */
  finish(): void;
  warned: boolean;
}

const EMPTY_RESPONSE = Buffer.alloc(0);

export class AccessLogService {
  readonly metrics: RequestMetrics;
  private readonly streams = new Set<StreamState>();
  private readonly log: Logger | undefined;
  private readonly open: Gauge;
  private readonly entries: Counter;
  private readonly errors: Counter;
  private closed = false;

  constructor(opts: AccessLogServiceOptions) {
    const registers = [opts.registry];
    this.log = opts.logger;
    this.metrics = new RequestMetrics({ registry: opts.registry, maxPartnerLabels: opts.maxPartnerLabels });
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
  }

  /** Open streams (tests, shutdown). */
  streamCount(): number {
    return this.streams.size;
  }

  /** Decodes one StreamAccessLogsMessage and records its entries. Returns the decoded batch. */
  ingest(bytes: Uint8Array, stream?: Pick<StreamState, 'group' | 'nodeId'>): AccessLogBatch {
    const batch = decodeAccessLogMessage(bytes);
    if (batch.identifier && stream) {
      stream.nodeId = batch.identifier.nodeId;
      stream.group = batch.identifier.cluster;
    }
    for (const e of batch.entries) {
      this.metrics.record(e, stream?.group);
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
    const s: StreamState = {
      nodeId: '',
      group: '',
      peer: call.getPeer(),
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
    call.on('data', (b: Buffer) => {
      try {
        const batch = this.ingest(b, s);
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
