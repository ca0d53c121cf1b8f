// The ext_authz wire format: reads only what a decision needs from a CheckRequest and writes the
// CheckResponse directly, with field numbers taken from the loaded Envoy protos (no generated code).
import protobuf from 'protobufjs';
import { lookupType, LEN, MAP_KEY, MAP_VALUE, VARINT, fieldNumber as field, readStringMapEntry, tag } from '../proto/index.ts';
import { denyBody, type Allow, type AuthzRequest, type Decision } from './decide.ts';

// Measured on a 1.2 KB Envoy-like CheckRequest: Type.decode ≈ 9 µs (every field, Long objects,
// message instances), this reader ≈ 5 µs; both are small next to a grpc-js unary call (~100 µs).

const AC = 'envoy.service.auth.v3.AttributeContext';
const F = {
  checkAttributes: tag(field('envoy.service.auth.v3.CheckRequest', 'attributes'), LEN),
  source: tag(field(AC, 'source'), LEN),
  request: tag(field(AC, 'request'), LEN),
  contextExtensions: tag(field(AC, 'context_extensions'), LEN),
  principal: tag(field(`${AC}.Peer`, 'principal'), LEN),
  peerAddress: tag(field(`${AC}.Peer`, 'address'), LEN),
  socketAddress: tag(field('envoy.config.core.v3.Address', 'socket_address'), LEN),
  socketAddressAddress: tag(field('envoy.config.core.v3.SocketAddress', 'address'), LEN),
  certificate: tag(field(`${AC}.Peer`, 'certificate'), LEN),
  http: tag(field(`${AC}.Request`, 'http'), LEN),
  id: tag(field(`${AC}.HttpRequest`, 'id'), LEN),
  method: tag(field(`${AC}.HttpRequest`, 'method'), LEN),
  headers: tag(field(`${AC}.HttpRequest`, 'headers'), LEN),
  headerMap: tag(field(`${AC}.HttpRequest`, 'header_map'), LEN),
  path: tag(field(`${AC}.HttpRequest`, 'path'), LEN),
  headerMapHeaders: tag(field('envoy.config.core.v3.HeaderMap', 'headers'), LEN),
  hvKey: tag(field('envoy.config.core.v3.HeaderValue', 'key'), LEN),
  hvValue: tag(field('envoy.config.core.v3.HeaderValue', 'value'), LEN),
  hvRawValue: tag(field('envoy.config.core.v3.HeaderValue', 'raw_value'), LEN),
};

const R = {
  status: field('envoy.service.auth.v3.CheckResponse', 'status'),
  denied: field('envoy.service.auth.v3.CheckResponse', 'denied_response'),
  ok: field('envoy.service.auth.v3.CheckResponse', 'ok_response'),
  metadata: field('envoy.service.auth.v3.CheckResponse', 'dynamic_metadata'),
  rpcCode: field('google.rpc.Status', 'code'),
  rpcMessage: field('google.rpc.Status', 'message'),
  deniedStatus: field('envoy.service.auth.v3.DeniedHttpResponse', 'status'),
  deniedHeaders: field('envoy.service.auth.v3.DeniedHttpResponse', 'headers'),
  deniedBody: field('envoy.service.auth.v3.DeniedHttpResponse', 'body'),
  httpStatusCode: field('envoy.type.v3.HttpStatus', 'code'),
  okHeaders: field('envoy.service.auth.v3.OkHttpResponse', 'headers'),
  okRemove: field('envoy.service.auth.v3.OkHttpResponse', 'headers_to_remove'),
  okRemoveQuery: field('envoy.service.auth.v3.OkHttpResponse', 'query_parameters_to_remove'),
  okResponseHeaders: field('envoy.service.auth.v3.OkHttpResponse', 'response_headers_to_add'),
  hvoHeader: field('envoy.config.core.v3.HeaderValueOption', 'header'),
  hvoAppendAction: field('envoy.config.core.v3.HeaderValueOption', 'append_action'),
  hvKey: field('envoy.config.core.v3.HeaderValue', 'key'),
  hvValue: field('envoy.config.core.v3.HeaderValue', 'value'),
  // google.protobuf.Struct { map<string, Value> fields = 1 }, Value { string string_value = 3 }
  structFields: 1,
  valueString: 3,
};
const OVERWRITE_IF_EXISTS_OR_ADD = (lookupType('envoy.config.core.v3.HeaderValueOption').lookupEnum('HeaderAppendAction').values as Record<string, number>).OVERWRITE_IF_EXISTS_OR_ADD!;

/** gRPC status codes carried in CheckResponse.status. */
const RPC = { OK: 0, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, UNAUTHENTICATED: 16 } as const;

export class CheckRequestDecodeError extends Error {}

// ── decoding ─────────────────────────────────────────────────────────────────

interface Draft {
  method: string;
  path: string;
  id: string;
  headers: Map<string, string>;
  context: Map<string, string>;
  principal: string;
  certificate: string;
  address: string;
}

/** Peer.address → Address.socket_address → SocketAddress.address (pipes and other forms stay ''). */
function readPeerAddress(r: protobuf.Reader, end: number): string {
  let out = '';
  while (r.pos < end) {
    const t = r.uint32();
    if (t !== F.socketAddress) {
      r.skipType(t & 7);
      continue;
    }
    const e = r.uint32() + r.pos;
    while (r.pos < e) {
      const t2 = r.uint32();
      if (t2 === F.socketAddressAddress) out = r.string();
      else r.skipType(t2 & 7);
    }
  }
  return out;
}

function addHeader(headers: Map<string, string>, k: string, v: string): void {
  const key = k.toLowerCase();
  const prev = headers.get(key);
  // Repeated headers are joined the way Envoy joins them in the `headers` map.
  headers.set(key, prev === undefined ? v : `${prev},${v}`);
}

function readHeaderMap(r: protobuf.Reader, end: number, headers: Map<string, string>): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (t !== F.headerMapHeaders) {
      r.skipType(t & 7);
      continue;
    }
    const e = r.uint32() + r.pos;
    let k = '';
    let v = '';
    while (r.pos < e) {
      const t2 = r.uint32();
      if (t2 === F.hvKey) k = r.string();
      else if (t2 === F.hvValue) v = r.string();
      else if (t2 === F.hvRawValue) v = Buffer.from(r.bytes()).toString('utf8');
      else r.skipType(t2 & 7);
    }
    addHeader(headers, k, v);
  }
}

function readHttp(r: protobuf.Reader, end: number, d: Draft): void {
  while (r.pos < end) {
    const t = r.uint32();
    switch (t) {
      case F.id:
        d.id = r.string();
        break;
      case F.method:
        d.method = r.string();
        break;
      case F.path:
        d.path = r.string();
        break;
      case F.headers: {
        const [k, v] = readStringMapEntry(r, r.uint32() + r.pos);
        addHeader(d.headers, k, v);
        break;
      }
      case F.headerMap:
        readHeaderMap(r, r.uint32() + r.pos, d.headers);
        break;
      default:
        r.skipType(t & 7);
    }
  }
}

function readAttributes(r: protobuf.Reader, end: number, d: Draft): void {
  while (r.pos < end) {
    const t = r.uint32();
    switch (t) {
      case F.source: {
        const e = r.uint32() + r.pos;
        while (r.pos < e) {
          const t2 = r.uint32();
          if (t2 === F.principal) d.principal = r.string();
          else if (t2 === F.certificate) d.certificate = r.string();
          else if (t2 === F.peerAddress) d.address = readPeerAddress(r, r.uint32() + r.pos);
          else r.skipType(t2 & 7);
        }
        break;
      }
      case F.request: {
        const e = r.uint32() + r.pos;
        while (r.pos < e) {
          const t2 = r.uint32();
          if (t2 === F.http) readHttp(r, r.uint32() + r.pos, d);
          else r.skipType(t2 & 7);
        }
        break;
      }
      case F.contextExtensions: {
        const [k, v] = readStringMapEntry(r, r.uint32() + r.pos);
        d.context.set(k, v);
        break;
      }
      default:
        r.skipType(t & 7);
    }
  }
}

/**
 * Reads the fields a decision needs from an encoded envoy.service.auth.v3.CheckRequest: method,
 * path and query, headers (map or header_map form), request id, context_extensions and the source
 * peer's principal, certificate and IP address. Everything else (metadata, body…) is skipped unread.
 * Throws CheckRequestDecodeError on bytes that are not a CheckRequest.
 */
export function decodeCheckRequest(buf: Uint8Array): AuthzRequest {
  const d: Draft = { method: '', path: '', id: '', headers: new Map(), context: new Map(), principal: '', certificate: '', address: '' };
  try {
    const r = protobuf.Reader.create(buf);
    while (r.pos < r.len) {
      const t = r.uint32();
      if (t === F.checkAttributes) readAttributes(r, r.uint32() + r.pos, d);
      else r.skipType(t & 7);
    }
    if (r.pos !== r.len) throw new Error('trailing bytes');
  } catch (e) {
    throw new CheckRequestDecodeError(`not a CheckRequest: ${(e as Error).message}`);
  }
  const target = d.path || d.headers.get(':path') || '';
  const q = target.indexOf('?');
  return {
    method: d.method || d.headers.get(':method') || '',
    path: q < 0 ? target : target.slice(0, q),
    query: q < 0 ? '' : target.slice(q + 1),
    headers: d.headers,
    requestId: d.id,
    context: d.context,
    peerPrincipal: d.principal,
    peerCertificate: d.certificate,
    sourceAddress: d.address,
  };
}

// ── encoding ─────────────────────────────────────────────────────────────────

function writeHeaderOption(w: protobuf.Writer, fieldId: number, key: string, value: string): void {
  w.uint32(tag(fieldId, LEN)).fork();
  w.uint32(tag(R.hvoHeader, LEN)).fork();
  w.uint32(tag(R.hvKey, LEN)).string(key);
  w.uint32(tag(R.hvValue, LEN)).string(value);
  w.ldelim();
  w.uint32(tag(R.hvoAppendAction, VARINT)).int32(OVERWRITE_IF_EXISTS_OR_ADD);
  w.ldelim();
}

function writeStringStruct(w: protobuf.Writer, fieldId: number, entries: Readonly<Record<string, string>>): void {
  w.uint32(tag(fieldId, LEN)).fork();
  for (const k of Object.keys(entries).sort()) {
    w.uint32(tag(R.structFields, LEN)).fork();
    w.uint32(MAP_KEY).string(k);
    w.uint32(MAP_VALUE).fork();
    w.uint32(tag(R.valueString, LEN)).string(entries[k]!);
    w.ldelim();
    w.ldelim();
  }
  w.ldelim();
}

function deniedMetadata(d: Extract<Decision, { allowed: false }>): Record<string, string> {
  const m: Record<string, string> = { error: d.error };
  if (d.product !== undefined) m.product = d.product;
  if (d.route !== undefined) m.route = d.route;
  if (d.partner !== undefined) m.partner = d.partner;
  if (d.credential !== undefined) m.credential = d.credential;
  return m;
}

// Frozen decisions are shared across requests (see allow() in decide.ts): their bytes are too.
const encodedShared = new WeakMap<Decision, Buffer>();

/** An envoy.service.auth.v3.CheckResponse for a decision. */
export function encodeCheckResponse(d: Decision): Buffer {
  if (!Object.isFrozen(d)) return encode(d);
  let b = encodedShared.get(d);
  if (!b) encodedShared.set(d, (b = encode(d)));
  return b;
}

/** What the rate limiter decided about an allowed request (combined mode): the parts the response needs. */
export interface LimitVerdict {
  allowed: boolean;
  /** 429 when refused. */
  status: number;
  /** Code for the body and the rpc status message (rate_limit_exceeded, quota_exceeded…), when refused. */
  error?: string | undefined;
  /** Response headers: added to the upstream's response when allowed, to the 429 when refused. */
  headers: ReadonlyArray<{ key: string; value: string }>;
  /** The exact body of the refusal. */
  body?: string | undefined;
  plan?: string | undefined;
}

/** An allow's OkHttpResponse body and dynamic_metadata field, encoded apart so fields can be added to the former. */
interface AllowParts {
  ok: Buffer;
  metadata: Buffer;
}

const sharedParts = new WeakMap<Allow, AllowParts>();

function toBuffer(out: Uint8Array): Buffer {
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

function allowParts(d: Allow): AllowParts {
  const frozen = Object.isFrozen(d);
  const hit = frozen ? sharedParts.get(d) : undefined;
  if (hit) return hit;
  const ok = protobuf.Writer.create();
  for (const [k, v] of d.setHeaders) writeHeaderOption(ok, R.okHeaders, k, v);
  for (const h of d.removeHeaders) ok.uint32(tag(R.okRemove, LEN)).string(h);
  for (const q of d.removeQuery) ok.uint32(tag(R.okRemoveQuery, LEN)).string(q);
  const md = protobuf.Writer.create();
  writeStringStruct(md, R.metadata, d.metadata);
  const parts = { ok: toBuffer(ok.finish()), metadata: toBuffer(md.finish()) };
  if (frozen) sharedParts.set(d, parts);
  return parts;
}

/**
 * The CheckResponse of an allowed request the rate limiter also decided on. Admitted: the allow's
 * OkHttpResponse with the limiter's headers added as response_headers_to_add (the allow's own
 * encoded parts are shared when the allow is); refused: a 429 denial with the limiter's headers and
 * body exactly.
 */
export function encodeLimitedCheckResponse(d: Allow, v: LimitVerdict): Buffer {
  if (!v.allowed) return encodeRefusal(d, v);
  if (v.headers.length === 0) return encodeCheckResponse(d);
  const parts = allowParts(d);
  const extra = protobuf.Writer.create();
  for (const h of v.headers) writeHeaderOption(extra, R.okResponseHeaders, h.key, h.value);
  const added = toBuffer(extra.finish());
  const head = protobuf.Writer.create();
  head.uint32(tag(R.status, LEN)).uint32(0); // code OK
  head.uint32(tag(R.ok, LEN)).uint32(parts.ok.length + added.length);
  const h = toBuffer(head.finish());
  return Buffer.concat([h, parts.ok, added, parts.metadata], h.length + parts.ok.length + added.length + parts.metadata.length);
}

function encodeRefusal(d: Allow, v: LimitVerdict): Buffer {
  const w = protobuf.Writer.create();
  const error = v.error ?? 'rate_limit_exceeded';
  w.uint32(tag(R.status, LEN)).fork();
  w.uint32(tag(R.rpcCode, VARINT)).int32(RPC.RESOURCE_EXHAUSTED);
  w.uint32(tag(R.rpcMessage, LEN)).string(error);
  w.ldelim();
  w.uint32(tag(R.denied, LEN)).fork();
  w.uint32(tag(R.deniedStatus, LEN)).fork().uint32(tag(R.httpStatusCode, VARINT)).int32(v.status).ldelim();
  for (const h of v.headers) writeHeaderOption(w, R.deniedHeaders, h.key, h.value);
  if (v.body !== undefined) w.uint32(tag(R.deniedBody, LEN)).string(v.body);
  w.ldelim();
  const m: Record<string, string> = { error, product: d.product, route: d.route, credential: d.credential };
  if (d.partner !== undefined) m.partner = d.partner;
  const plan = v.plan ?? d.plan;
  if (plan !== undefined) m.plan = plan;
  writeStringStruct(w, R.metadata, m);
  const out = w.finish();
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

function encode(d: Decision): Buffer {
  const w = protobuf.Writer.create();
  if (d.allowed) {
    w.uint32(tag(R.status, LEN)).fork().ldelim(); // code OK
    w.uint32(tag(R.ok, LEN)).fork();
    for (const [k, v] of d.setHeaders) writeHeaderOption(w, R.okHeaders, k, v);
    for (const h of d.removeHeaders) w.uint32(tag(R.okRemove, LEN)).string(h);
    for (const q of d.removeQuery) w.uint32(tag(R.okRemoveQuery, LEN)).string(q);
    w.ldelim();
    writeStringStruct(w, R.metadata, d.metadata);
  } else {
    w.uint32(tag(R.status, LEN)).fork();
    w.uint32(tag(R.rpcCode, VARINT)).int32(d.status === 401 ? RPC.UNAUTHENTICATED : RPC.PERMISSION_DENIED);
    w.uint32(tag(R.rpcMessage, LEN)).string(d.error);
    w.ldelim();
    w.uint32(tag(R.denied, LEN)).fork();
    w.uint32(tag(R.deniedStatus, LEN)).fork().uint32(tag(R.httpStatusCode, VARINT)).int32(d.status).ldelim();
    writeHeaderOption(w, R.deniedHeaders, 'content-type', 'application/json');
    if (d.wwwAuthenticate !== undefined) writeHeaderOption(w, R.deniedHeaders, 'www-authenticate', d.wwwAuthenticate);
    w.uint32(tag(R.deniedBody, LEN)).string(denyBody(d));
    w.ldelim();
    writeStringStruct(w, R.metadata, deniedMetadata(d));
  }
  const out = w.finish();
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}
