// The access-log service's wire format: reads only what request metrics need from an encoded
// envoy.service.accesslog.v3.StreamAccessLogsMessage (HTTP entries: status, duration and its split
// between Envoy and the upstream, response flags, route name, Portico's custom tags and the ext_authz
// dynamic metadata) and skips the rest
// unread (and, for the cache's coalescing count, start time, authority and path). Field numbers come from the loaded Envoy protos (no generated code).
import protobuf from 'protobufjs';
import { EXT_AUTHZ_FILTERS, PORTICO_EXT_AUTHZ_PREFIX } from '../contract/index.ts';
import { lookupType, LEN, MAP_KEY, MAP_VALUE, VARINT, fieldNumber as field, readStringMapEntry, tag } from '../proto/index.ts';

const MSG = 'envoy.service.accesslog.v3.StreamAccessLogsMessage';
const ENTRY = 'envoy.data.accesslog.v3.HTTPAccessLogEntry';
const COMMON = 'envoy.data.accesslog.v3.AccessLogCommon';
const F = {
  identifier: tag(field(MSG, 'identifier'), LEN),
  httpLogs: tag(field(MSG, 'http_logs'), LEN),
  idNode: tag(field(`${MSG}.Identifier`, 'node'), LEN),
  idLogName: tag(field(`${MSG}.Identifier`, 'log_name'), LEN),
  nodeId: tag(field('envoy.config.core.v3.Node', 'id'), LEN),
  nodeCluster: tag(field('envoy.config.core.v3.Node', 'cluster'), LEN),
  logEntry: tag(field(`${MSG}.HTTPAccessLogEntries`, 'log_entry'), LEN),
  common: tag(field(ENTRY, 'common_properties'), LEN),
  request: tag(field(ENTRY, 'request'), LEN),
  response: tag(field(ENTRY, 'response'), LEN),
  responseFlags: tag(field(COMMON, 'response_flags'), LEN),
  metadata: tag(field(COMMON, 'metadata'), LEN),
  routeName: tag(field(COMMON, 'route_name'), LEN),
  customTags: tag(field(COMMON, 'custom_tags'), LEN),
  duration: tag(field(COMMON, 'duration'), LEN),
  lastTx: tag(field(COMMON, 'time_to_last_downstream_tx_byte'), LEN),
  firstUpstreamTx: tag(field(COMMON, 'time_to_first_upstream_tx_byte'), LEN),
  lastUpstreamTx: tag(field(COMMON, 'time_to_last_upstream_tx_byte'), LEN),
  firstUpstreamRx: tag(field(COMMON, 'time_to_first_upstream_rx_byte'), LEN),
  firstDownstreamTx: tag(field(COMMON, 'time_to_first_downstream_tx_byte'), LEN),
  startTime: tag(field(COMMON, 'start_time'), LEN),
  upstreamCluster: tag(field(COMMON, 'upstream_cluster'), LEN),
  requestId: tag(field('envoy.data.accesslog.v3.HTTPRequestProperties', 'request_id'), LEN),
  authority: tag(field('envoy.data.accesslog.v3.HTTPRequestProperties', 'authority'), LEN),
  path: tag(field('envoy.data.accesslog.v3.HTTPRequestProperties', 'path'), LEN),
  responseCode: tag(field('envoy.data.accesslog.v3.HTTPResponseProperties', 'response_code'), LEN),
  responseCodeDetails: tag(field('envoy.data.accesslog.v3.HTTPResponseProperties', 'response_code_details'), LEN),
  filterMetadata: tag(field('envoy.config.core.v3.Metadata', 'filter_metadata'), LEN),
  // google.protobuf: Duration { seconds = 1; nanos = 2 }, UInt32Value { value = 1 },
  // Struct { map<string, Value> fields = 1 }, Value { string_value = 3 }.
  seconds: tag(1, VARINT),
  nanos: tag(2, VARINT),
  wrappedValue: tag(1, VARINT),
  structFields: tag(1, LEN),
  valueString: tag(3, LEN),
};

/** ResponseFlags fields, by number: a set flag sets bit (1 << number) in AccessLogRecord.flags. */
const FLAG_FIELDS = lookupType('envoy.data.accesslog.v3.ResponseFlags').fieldsArray;
export const RESPONSE_FLAG = Object.fromEntries(FLAG_FIELDS.map((f) => [f.name, f.id])) as Record<string, number>;
for (const f of FLAG_FIELDS) if (f.id > 30) throw new Error(`ResponseFlags.${f.name} = ${f.id} does not fit the flag bitmask`);
const UNAUTHORIZED_DETAILS = RESPONSE_FLAG.unauthorized_details!;

/** Envoy files metadata under the filter instance's name: the main ext_authz, or Portico's other instances (`portico.ext_authz.*`). */
function isAuthzNamespace(ns: string): boolean {
  return ns === EXT_AUTHZ_FILTERS.main || ns.startsWith(PORTICO_EXT_AUTHZ_PREFIX);
}

/** One HTTP request as far as request metrics are concerned. */
export interface AccessLogRecord {
  /** HTTP status sent downstream; 0 when none was (the client went away first). */
  status: number;
  /** From the start of the request to its last byte out, in seconds. */
  durationSeconds: number;
  /**
   * Envoy's own part of the time to the response's first byte, in seconds: from the request's first
   * byte in to its first byte sent upstream (filters, routing, a connection), plus from the
   * upstream's first response byte to the first byte out (response filters). The upstream's time and
   * the bodies' streaming are not in it. Local replies: the time to their first byte. -1 when Envoy
   * logged no such timings (the client left first).
   */
  gatewaySeconds: number;
  /** From the request's last byte sent upstream to the upstream's first response byte, in seconds; -1 without an upstream response. */
  upstreamSeconds: number;
  /** Bit (1 << ResponseFlags field number) per flag Envoy set. */
  flags: number;
  /** Envoy's route name (`product/route` for model routes, `portico/…` for the gateway's own). */
  routeName: string;
  upstreamCluster: string;
  requestId: string;
  /** When the request started, in ms since the epoch (0 when not logged). */
  startMs: number;
  /** :authority and :path as they were when logged (on cached routes: the cache key the key filter wrote). */
  authority: string;
  path: string;
  responseCodeDetails: string;
  /** CommonGrpcAccessLogConfig.custom_tags (Portico sets group, listener, product, route). */
  tags: Map<string, string>;
  /** String values the ext_authz callouts left in dynamic metadata (partner, plan, product, route, credential, error). */
  authz: Map<string, string>;
}

/** What one StreamAccessLogsMessage carried. */
export interface AccessLogBatch {
  /** Present on the first message of a stream only. */
  identifier?: { nodeId: string; cluster: string; logName: string };
  entries: AccessLogRecord[];
}

export class AccessLogDecodeError extends Error {}

function readDurationSeconds(r: protobuf.Reader, end: number): number {
  let s = 0;
  let n = 0;
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.seconds) s = Number(r.int64());
    else if (t === F.nanos) n = r.int32();
    else r.skipType(t & 7);
  }
  return s + n / 1e9;
}

/** A Value: its string, or undefined for other kinds (numbers, structs…: not what Portico writes). */
function readStringValue(r: protobuf.Reader, end: number): string | undefined {
  let v: string | undefined;
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.valueString) v = r.string();
    else r.skipType(t & 7);
  }
  return v;
}

function readStruct(r: protobuf.Reader, end: number, into: Map<string, string>): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (t !== F.structFields) {
      r.skipType(t & 7);
      continue;
    }
    const e = r.uint32() + r.pos;
    let k = '';
    let v: string | undefined;
    while (r.pos < e) {
      const t2 = r.uint32();
      if (t2 === MAP_KEY) k = r.string();
      else if (t2 === MAP_VALUE) v = readStringValue(r, r.uint32() + r.pos);
      else r.skipType(t2 & 7);
    }
    if (v !== undefined) into.set(k, v);
  }
}

/** Metadata.filter_metadata: only the ext_authz namespaces are read. */
function readMetadata(r: protobuf.Reader, end: number, into: Map<string, string>): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (t !== F.filterMetadata) {
      r.skipType(t & 7);
      continue;
    }
    const e = r.uint32() + r.pos;
    let ns = '';
    while (r.pos < e) {
      const t2 = r.uint32();
      if (t2 === MAP_KEY) ns = r.string();
      // Map entries put the key first (Envoy's serializer does); a value before its key is skipped.
      else if (t2 === MAP_VALUE && isAuthzNamespace(ns)) readStruct(r, r.uint32() + r.pos, into);
      else r.skipType(t2 & 7);
    }
  }
}

function readFlags(r: protobuf.Reader, end: number): number {
  let flags = 0;
  while (r.pos < end) {
    const t = r.uint32();
    const id = t >>> 3;
    if ((t & 7) === VARINT) {
      if (r.uint32() !== 0 && id <= 30) flags |= 1 << id;
    } else {
      if (id === UNAUTHORIZED_DETAILS) flags |= 1 << id;
      r.skipType(t & 7);
    }
  }
  return flags;
}

/**
 * Envoy's and the upstream's parts of a request's time (seconds since its start, -1 for a time Envoy
 * did not log), pure. Negative spans (a response that began before the request body ended) count as 0.
 */
export function splitLatency(t: { firstUpstreamTx: number; lastUpstreamTx: number; firstUpstreamRx: number; firstDownstreamTx: number }): { gateway: number; upstream: number } {
  const { firstUpstreamTx, lastUpstreamTx, firstUpstreamRx, firstDownstreamTx } = t;
  if (firstDownstreamTx < 0) return { gateway: -1, upstream: -1 };
  if (firstUpstreamTx < 0 || firstUpstreamRx < 0) return { gateway: firstDownstreamTx, upstream: -1 };
  const requestPath = firstUpstreamTx;
  const responsePath = Math.max(0, firstDownstreamTx - firstUpstreamRx);
  const upstream = Math.max(0, firstUpstreamRx - Math.max(firstUpstreamTx, lastUpstreamTx));
  return { gateway: requestPath + responsePath, upstream };
}

type Timings = Parameters<typeof splitLatency>[0];
/** The timings splitLatency reads, by their field's tag. */
const TIMING_FIELDS = new Map<number, keyof Timings>([
  [F.firstUpstreamTx, 'firstUpstreamTx'],
  [F.lastUpstreamTx, 'lastUpstreamTx'],
  [F.firstUpstreamRx, 'firstUpstreamRx'],
  [F.firstDownstreamTx, 'firstDownstreamTx'],
]);

function readCommon(r: protobuf.Reader, end: number, e: AccessLogRecord): void {
  let lastTx = -1;
  let duration = -1;
  const times: Timings = { firstUpstreamTx: -1, lastUpstreamTx: -1, firstUpstreamRx: -1, firstDownstreamTx: -1 };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t) {
      case F.responseFlags:
        e.flags = readFlags(r, r.uint32() + r.pos);
        break;
      case F.metadata:
        readMetadata(r, r.uint32() + r.pos, e.authz);
        break;
      case F.routeName:
        e.routeName = r.string();
        break;
      case F.upstreamCluster:
        e.upstreamCluster = r.string();
        break;
      case F.customTags: {
        const [k, v] = readStringMapEntry(r, r.uint32() + r.pos);
        e.tags.set(k, v);
        break;
      }
      case F.duration:
        duration = readDurationSeconds(r, r.uint32() + r.pos);
        break;
      case F.lastTx:
        lastTx = readDurationSeconds(r, r.uint32() + r.pos);
        break;
      case F.startTime:
        // A Timestamp has Duration's layout (seconds, nanos).
        e.startMs = readDurationSeconds(r, r.uint32() + r.pos) * 1000;
        break;
      default: {
        const timing = TIMING_FIELDS.get(t);
        if (timing) times[timing] = readDurationSeconds(r, r.uint32() + r.pos);
        else r.skipType(t & 7);
      }
    }
  }
  // biome-ignore lint/complexity/useMathMinMax: a NaN reading must become 0, which Math.max would not do
  e.durationSeconds = duration >= 0 ? duration : lastTx >= 0 ? lastTx : 0;
  const split = splitLatency(times);
  e.gatewaySeconds = split.gateway;
  e.upstreamSeconds = split.upstream;
}

function readRequest(r: protobuf.Reader, end: number, e: AccessLogRecord): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.requestId) e.requestId = r.string();
    else if (t === F.authority) e.authority = r.string();
    else if (t === F.path) e.path = r.string();
    else r.skipType(t & 7);
  }
}

function readResponse(r: protobuf.Reader, end: number, e: AccessLogRecord): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.responseCode) {
      const e2 = r.uint32() + r.pos;
      while (r.pos < e2) {
        const t2 = r.uint32();
        if (t2 === F.wrappedValue) e.status = r.uint32();
        else r.skipType(t2 & 7);
      }
    } else if (t === F.responseCodeDetails) e.responseCodeDetails = r.string();
    else r.skipType(t & 7);
  }
}

function readEntry(r: protobuf.Reader, end: number): AccessLogRecord {
  const e: AccessLogRecord = {
    status: 0,
    durationSeconds: 0,
    gatewaySeconds: -1,
    upstreamSeconds: -1,
    flags: 0,
    routeName: '',
    upstreamCluster: '',
    requestId: '',
    startMs: 0,
    authority: '',
    path: '',
    responseCodeDetails: '',
    tags: new Map(),
    authz: new Map(),
  };
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.common) readCommon(r, r.uint32() + r.pos, e);
    else if (t === F.request) readRequest(r, r.uint32() + r.pos, e);
    else if (t === F.response) readResponse(r, r.uint32() + r.pos, e);
    else r.skipType(t & 7);
  }
  return e;
}

function readIdentifier(r: protobuf.Reader, end: number): NonNullable<AccessLogBatch['identifier']> {
  const id = { nodeId: '', cluster: '', logName: '' };
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.idLogName) id.logName = r.string();
    else if (t === F.idNode) {
      const e = r.uint32() + r.pos;
      while (r.pos < e) {
        const t2 = r.uint32();
        if (t2 === F.nodeId) id.nodeId = r.string();
        else if (t2 === F.nodeCluster) id.cluster = r.string();
        else r.skipType(t2 & 7);
      }
    } else r.skipType(t & 7);
  }
  return id;
}

/**
 * Decodes the parts of a StreamAccessLogsMessage that request metrics use. TCP entries are skipped.
 * Throws AccessLogDecodeError on bytes that are not such a message.
 */
export function decodeAccessLogMessage(buf: Uint8Array): AccessLogBatch {
  const batch: AccessLogBatch = { entries: [] };
  try {
    const r = protobuf.Reader.create(buf);
    while (r.pos < r.len) {
      const t = r.uint32();
      if (t === F.identifier) batch.identifier = readIdentifier(r, r.uint32() + r.pos);
      else if (t === F.httpLogs) {
        const end = r.uint32() + r.pos;
        while (r.pos < end) {
          const t2 = r.uint32();
          if (t2 === F.logEntry) batch.entries.push(readEntry(r, r.uint32() + r.pos));
          else r.skipType(t2 & 7);
        }
      } else r.skipType(t & 7);
    }
    if (r.pos !== r.len) throw new Error('trailing bytes');
  } catch (e) {
    throw new AccessLogDecodeError(`not a StreamAccessLogsMessage: ${(e as Error).message}`);
  }
  return batch;
}
