// Envoy's rate-limit v3 gRPC service (RateLimitService/ShouldRateLimit) over the limiter: hosted on
// the shared grpc-js server, on its own grpc-js server, or on the lean HTTP/2 unary listener (about
// half of grpc-js's CPU per call). Messages are encoded and decoded with the protobuf types loaded
// by src/proto, directly (no JSON detour): this is the hot path.
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { lookupService, lookupType, LEN, VARINT, fieldNumber } from '../proto/index.ts';
import type { Decision, DecisionRequest, LimitStatus } from './decision.ts';
import { DescriptorError, parseRateLimitRequest, type RateLimitRequestMessage } from './descriptors.ts';
import type { RateLimiter } from './limiter.ts';

export const RATE_LIMIT_SERVICE = 'envoy.service.ratelimit.v3.RateLimitService';
const REQUEST_TYPE = 'envoy.service.ratelimit.v3.RateLimitRequest';
const RESPONSE_TYPE = 'envoy.service.ratelimit.v3.RateLimitResponse';

/** RateLimitResponse.Code */
export const CODE = { UNKNOWN: 0, OK: 1, OVER_LIMIT: 2 } as const;
/** RateLimitResponse.RateLimit.Unit */
const UNIT: Record<LimitStatus['per'], number> = { second: 1, minute: 2, hour: 3, day: 4, month: 5 };
const UINT32_MAX = 4_294_967_295;

/** A RateLimitResponse as protobufjs encodes it (snake_case; enums as numbers). */
export interface RateLimitResponseMessage {
  overall_code: number;
  statuses: Array<{
    code: number;
    current_limit?: { name: string; requests_per_unit: number; unit: number };
    limit_remaining?: number;
    duration_until_reset?: { seconds: number; nanos: number };
  }>;
  response_headers_to_add: Array<{ key: string; value: string }>;
  raw_body?: Uint8Array;
}

/** What the request deserializer hands the handler: the message, or why it could not be decoded. */
type Incoming = { ok: true; message: RateLimitRequestMessage } | { ok: false; error: string };

let types: { request: protobuf.Type; response: protobuf.Type } | undefined;
function messageTypes() {
  return (types ??= { request: lookupType(REQUEST_TYPE), response: lookupType(RESPONSE_TYPE) });
}

/** Decodes a RateLimitRequest; never throws (garbage bytes become an INVALID_ARGUMENT answer). */
export function decodeRateLimitRequest(buf: Uint8Array): Incoming {
  try {
    return { ok: true, message: messageTypes().request.decode(buf) as unknown as RateLimitRequestMessage };
  } catch (e) {
    return { ok: false, error: `undecodable RateLimitRequest: ${(e as Error).message}` };
  }
}

export function encodeRateLimitResponse(msg: RateLimitResponseMessage): Buffer {
  const bytes = messageTypes()
    .response.encode(msg as unknown as protobuf.Message)
    .finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function encodeRateLimitRequest(msg: RateLimitRequestMessage): Buffer {
  const bytes = messageTypes()
    .request.encode(msg as unknown as protobuf.Message)
    .finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function decodeRateLimitResponse(buf: Buffer): RateLimitResponseMessage {
  const t = messageTypes().response;
  return t.toObject(t.decode(buf), { defaults: true, arrays: true, longs: Number, bytes: Buffer }) as unknown as RateLimitResponseMessage;
}

/** The service definition (client and server), with direct protobuf codecs. */
export function rateLimitServiceDefinition(): grpc.ServiceDefinition {
  const method = lookupService(RATE_LIMIT_SERVICE).methods.ShouldRateLimit!;
  return {
    ShouldRateLimit: {
      path: `/${RATE_LIMIT_SERVICE}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: RateLimitRequestMessage) => encodeRateLimitRequest(m),
      requestDeserialize: decodeRateLimitRequest,
      // The server hands over the Decision itself (encoded directly); clients and tests may pass a message.
      responseSerialize: (m: Decision | RateLimitResponseMessage) => ('outcome' in m ? encodeDecision(m) : encodeRateLimitResponse(m)),
      responseDeserialize: decodeRateLimitResponse,
      originalName: 'shouldRateLimit',
    },
  };
}

function clampU32(n: number): number {
  return n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : Math.floor(n);
}

// ── direct encoding ──────────────────────────────────────────────────────────
// The response is written straight from the Decision (no intermediate message object, no generic
// encoder): it is a third of the service's own cost per call. Field numbers are read from the
// loaded types, not written down here, so the proto stays the only source of the layout.

interface ResponseFields {
  overallCode: number;
  statuses: number;
  headers: number;
  rawBody: number;
  status: { code: number; currentLimit: number; remaining: number; untilReset: number };
  limit: { requests: number; unit: number; name: number };
  header: { key: number; value: number };
  duration: { seconds: number; nanos: number };
}

let fields: ResponseFields | undefined;
function responseFields(): ResponseFields {
  if (fields) return fields;
  const id = fieldNumber;
  const R = RESPONSE_TYPE;
  const S = `${R}.DescriptorStatus`;
  const L = `${R}.RateLimit`;
  fields = {
    overallCode: id(R, 'overall_code'),
    statuses: id(R, 'statuses'),
    headers: id(R, 'response_headers_to_add'),
    rawBody: id(R, 'raw_body'),
    status: { code: id(S, 'code'), currentLimit: id(S, 'current_limit'), remaining: id(S, 'limit_remaining'), untilReset: id(S, 'duration_until_reset') },
    limit: { requests: id(L, 'requests_per_unit'), unit: id(L, 'unit'), name: id(L, 'name') },
    header: { key: id('envoy.config.core.v3.HeaderValue', 'key'), value: id('envoy.config.core.v3.HeaderValue', 'value') },
    duration: { seconds: id('google.protobuf.Duration', 'seconds'), nanos: id('google.protobuf.Duration', 'nanos') },
  };
  return fields;
}

/** Encodes the decision as a RateLimitResponse (the same bytes' meaning as encoding toRateLimitResponse(d)). */
export function encodeDecision(d: Decision): Buffer {
  const F = responseFields();
  const w = protobuf.Writer.create();
  const code = d.allowed ? CODE.OK : CODE.OVER_LIMIT;
  w.uint32((F.overallCode << 3) | VARINT).int32(code);
  w.uint32((F.statuses << 3) | LEN).fork();
  w.uint32((F.status.code << 3) | VARINT).int32(code);
  const l = d.limit;
  if (l) {
    w.uint32((F.status.currentLimit << 3) | LEN).fork();
    const rpu = clampU32(l.requests);
    if (rpu) w.uint32((F.limit.requests << 3) | VARINT).uint32(rpu);
    w.uint32((F.limit.unit << 3) | VARINT).int32(UNIT[l.per]);
    w.uint32((F.limit.name << 3) | LEN).string(l.id);
    w.ldelim();
    const remaining = clampU32(l.remaining);
    if (remaining) w.uint32((F.status.remaining << 3) | VARINT).uint32(remaining);
    const untilMs = Math.max(0, l.resetMs - d.now);
    w.uint32((F.status.untilReset << 3) | LEN).fork();
    const seconds = Math.floor(untilMs / 1000);
    const nanos = (untilMs % 1000) * 1_000_000;
    if (seconds) w.uint32((F.duration.seconds << 3) | VARINT).int64(seconds);
    if (nanos) w.uint32((F.duration.nanos << 3) | VARINT).int32(nanos);
    w.ldelim();
  }
  w.ldelim();
  for (const h of d.headers) {
    w.uint32((F.headers << 3) | LEN).fork();
    w.uint32((F.header.key << 3) | LEN).string(h.key);
    w.uint32((F.header.value << 3) | LEN).string(h.value);
    w.ldelim();
  }
  if (d.body !== undefined) w.uint32((F.rawBody << 3) | LEN).string(d.body);
  const bytes = w.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The decision as Envoy's RateLimitResponse: code, one status, headers (always), raw_body (on 429). */
export function toRateLimitResponse(d: Decision): RateLimitResponseMessage {
  const code = d.allowed ? CODE.OK : CODE.OVER_LIMIT;
  const status: RateLimitResponseMessage['statuses'][number] = { code };
  const l = d.limit;
  if (l) {
    const untilMs = Math.max(0, l.resetMs - d.now);
    status.current_limit = { name: l.id, requests_per_unit: clampU32(l.requests), unit: UNIT[l.per] };
    status.limit_remaining = clampU32(l.remaining);
    status.duration_until_reset = { seconds: Math.floor(untilMs / 1000), nanos: (untilMs % 1000) * 1_000_000 };
  }
  const out: RateLimitResponseMessage = { overall_code: code, statuses: [status], response_headers_to_add: d.headers };
  if (d.body !== undefined) out.raw_body = Buffer.from(d.body);
  return out;
}

/** Parses a decoded request; a malformed one becomes a gRPC status naming the problem. */
function parseIncoming(limiter: RateLimiter, incoming: Incoming): DecisionRequest | grpc.StatusObject {
  if (!incoming.ok) {
    limiter.metrics.invalidRequests.inc();
    return { code: grpc.status.INVALID_ARGUMENT, details: incoming.error, metadata: new grpc.Metadata() };
  }
  try {
    return parseRateLimitRequest(incoming.message);
  } catch (e) {
    limiter.metrics.invalidRequests.inc();
    const code = e instanceof DescriptorError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL;
    return { code, details: e instanceof DescriptorError ? e.message : `rate limit: ${(e as Error).message}`, metadata: new grpc.Metadata() };
  }
}

function isStatus(x: DecisionRequest | grpc.StatusObject): x is grpc.StatusObject {
  return 'code' in x;
}

/** The handler object for grpc.Server.addService / XdsServer.addService. */
export function rateLimitServiceImplementation(limiter: RateLimiter): grpc.UntypedServiceImplementation {
  return {
    ShouldRateLimit: (call: grpc.ServerUnaryCall<Incoming, Decision>, callback: grpc.sendUnaryData<Decision>) => {
      const req = parseIncoming(limiter, call.request);
      if (isStatus(req)) {
        callback(req);
        return;
      }
      limiter.decide(req).then(
        (d) => callback(null, d),
        (e: unknown) => callback({ code: grpc.status.INTERNAL, details: `rate limit: ${(e as Error).message}` }),
      );
    },
  };
}

/** A unary answer for a transport that moves bytes (the lean HTTP/2 listener). */
export type UnaryAnswer = { ok: true; response: Buffer } | { ok: false; code: number; details: string };

/** ShouldRateLimit from request bytes to response bytes (or a gRPC status), independent of the transport. */
export function shouldRateLimitBytes(limiter: RateLimiter, bytes: Uint8Array): Promise<UnaryAnswer> {
  const req = parseIncoming(limiter, decodeRateLimitRequest(bytes));
  if (isStatus(req)) return Promise.resolve({ ok: false, code: req.code, details: req.details });
  return limiter.decide(req).then(answerOf, failedAnswer);
}

// Module-level (not per-call closures): this runs for every request.
function answerOf(d: Decision): UnaryAnswer {
  return { ok: true, response: encodeDecision(d) };
}

function failedAnswer(e: unknown): UnaryAnswer {
  return { ok: false, code: grpc.status.INTERNAL, details: `rate limit: ${(e as Error).message}` };
}

/** Full gRPC path of the method, as HTTP/2 listeners route it. */
export const SHOULD_RATE_LIMIT_PATH = `/${RATE_LIMIT_SERVICE}/ShouldRateLimit`;

/** Serves ShouldRateLimit on a lean unary gRPC listener (e.g. src/authz's UnaryGrpcServer). */
export function registerRateLimitUnary(server: { handle(path: string, handler: (request: Buffer) => Promise<UnaryAnswer>): void }, limiter: RateLimiter): void {
  server.handle(SHOULD_RATE_LIMIT_PATH, (bytes) => shouldRateLimitBytes(limiter, bytes));
}

/** Adds the service to a gRPC server that is not yet listening (the shared xDS server, or any). */
export function addRateLimitService(server: { addService(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void }, limiter: RateLimiter): void {
  server.addService(rateLimitServiceDefinition(), rateLimitServiceImplementation(limiter));
}

export interface RateLimitServer {
  server: grpc.Server;
  port: number;
  close(graceMs?: number): Promise<void>;
}

/** The service on its own gRPC server (the separable deployment, and tests). */
export async function startRateLimitServer(
  limiter: RateLimiter,
  opts: { host?: string; port?: number; credentials?: grpc.ServerCredentials; grpcOptions?: grpc.ServerOptions } = {},
): Promise<RateLimitServer> {
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
    // channelz bookkeeping costs measurable CPU per call on this hot path and nobody reads it here.
    'grpc.enable_channelz': 0,
    ...opts.grpcOptions,
  });
  addRateLimitService(server, limiter);
  const host = opts.host ?? '127.0.0.1';
  const addr = host.includes(':') && !host.startsWith('[') ? `[${host}]:${opts.port ?? 0}` : `${host}:${opts.port ?? 0}`;
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(addr, opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    server,
    port,
    close: (graceMs = 5_000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
