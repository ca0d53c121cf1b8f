// The ext_proc wire format as the processor needs it: which part of the HTTP exchange a
// ProcessingRequest carries, its headers as [name, value] pairs, its body bytes and end-of-stream.
// Field numbers come from the loaded Envoy protos (no generated code); everything else is skipped.
import protobuf from 'protobufjs';
import { LEN, VARINT, fieldNumber as field, tag } from '../proto/index.ts';

const PR = 'envoy.service.ext_proc.v3.ProcessingRequest';
const F = {
  requestHeaders: tag(field(PR, 'request_headers'), LEN),
  responseHeaders: tag(field(PR, 'response_headers'), LEN),
  requestBody: tag(field(PR, 'request_body'), LEN),
  responseBody: tag(field(PR, 'response_body'), LEN),
  requestTrailers: tag(field(PR, 'request_trailers'), LEN),
  responseTrailers: tag(field(PR, 'response_trailers'), LEN),
  headersMap: tag(field('envoy.service.ext_proc.v3.HttpHeaders', 'headers'), LEN),
  headersEnd: tag(field('envoy.service.ext_proc.v3.HttpHeaders', 'end_of_stream'), VARINT),
  bodyBytes: tag(field('envoy.service.ext_proc.v3.HttpBody', 'body'), LEN),
  bodyEnd: tag(field('envoy.service.ext_proc.v3.HttpBody', 'end_of_stream'), VARINT),
  mapHeaders: tag(field('envoy.config.core.v3.HeaderMap', 'headers'), LEN),
  hvKey: tag(field('envoy.config.core.v3.HeaderValue', 'key'), LEN),
  hvValue: tag(field('envoy.config.core.v3.HeaderValue', 'value'), LEN),
  hvRawValue: tag(field('envoy.config.core.v3.HeaderValue', 'raw_value'), LEN),
};

export type PartKind = 'request_headers' | 'request_body' | 'request_trailers' | 'response_headers' | 'response_body' | 'response_trailers';

/** One ProcessingRequest, reduced to what the processor reads. `kind` is undefined for a message carrying none of the parts. */
export interface Incoming {
  kind: PartKind | undefined;
  /** Headers' [name, value] pairs (raw values read as latin1, as Envoy passes bytes through). */
  headers: Array<[string, string]>;
  body: Uint8Array | undefined;
  endOfStream: boolean;
}

const PARTS = new Map<number, PartKind>([
  [F.requestHeaders, 'request_headers'],
  [F.responseHeaders, 'response_headers'],
  [F.requestBody, 'request_body'],
  [F.responseBody, 'response_body'],
  [F.requestTrailers, 'request_trailers'],
  [F.responseTrailers, 'response_trailers'],
]);

/** A length-delimited field's bytes as latin1 text, read in place (no intermediate view or UTF-8 decoder). */
function latin1(r: protobuf.Reader, buf: Buffer): string {
  const len = r.uint32();
  const start = r.pos;
  r.pos += len;
  return len === 0 ? '' : buf.toString('latin1', start, start + len);
}

function readHeaderValue(r: protobuf.Reader, buf: Buffer, end: number, out: Array<[string, string]>): void {
  let key = '';
  let value = '';
  let raw = '';
  while (r.pos < end) {
    const t = r.uint32();
    // Header names are ASCII (Envoy lowercases them): latin1 reads them as UTF-8 would.
    if (t === F.hvKey) key = latin1(r, buf);
    else if (t === F.hvValue) value = r.string();
    else if (t === F.hvRawValue) raw = latin1(r, buf);
    else r.skipType(t & 7);
  }
  out.push([key, raw.length > 0 ? raw : value]);
}

function readHeaders(r: protobuf.Reader, buf: Buffer, end: number, m: Incoming): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.headersMap) {
      const mapEnd = r.uint32() + r.pos;
      while (r.pos < mapEnd) {
        const u = r.uint32();
        if (u === F.mapHeaders) readHeaderValue(r, buf, r.uint32() + r.pos, m.headers);
        else r.skipType(u & 7);
      }
    } else if (t === F.headersEnd) m.endOfStream = r.bool();
    else r.skipType(t & 7);
  }
}

function readBody(r: protobuf.Reader, end: number, m: Incoming): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (t === F.bodyBytes) m.body = r.bytes();
    else if (t === F.bodyEnd) m.endOfStream = r.bool();
    else r.skipType(t & 7);
  }
}

/** Reads a ProcessingRequest (attributes, metadata and protocol settings are skipped). */
export function readProcessingRequest(bytes: Uint8Array): Incoming {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = protobuf.Reader.create(buf);
  const m: Incoming = { kind: undefined, headers: [], body: undefined, endOfStream: false };
  while (r.pos < r.len) {
    const t = r.uint32();
    const kind = PARTS.get(t);
    if (kind === undefined) {
      r.skipType(t & 7);
      continue;
    }
    m.kind = kind;
    const end = r.uint32() + r.pos;
    if (kind === 'request_body' || kind === 'response_body') readBody(r, end, m);
    else if (kind === 'request_headers' || kind === 'response_headers') readHeaders(r, buf, end, m);
    else r.pos = end;
  }
  return m;
}
