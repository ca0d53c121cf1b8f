// Envoy's rate-limit v3 gRPC service (RateLimitService/ShouldRateLimit) over the limiter: hosted on
// the shared xDS gRPC server or on its own (separable, like ext_authz). Messages are encoded and
// decoded with the protobuf types loaded by src/xds/protos.ts, directly (no JSON detour): this is
// the hot path.
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { lookupService, lookupType } from '../xds/protos.ts';
import type { Decision, LimitStatus } from './decision.ts';
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
export function decodeRateLimitRequest(buf: Buffer): Incoming {
  try {
    return { ok: true, message: messageTypes().request.decode(buf) as unknown as RateLimitRequestMessage };
  } catch (e) {
    return { ok: false, error: `undecodable RateLimitRequest: ${(e as Error).message}` };
  }
}

export function encodeRateLimitResponse(msg: RateLimitResponseMessage): Buffer {
  const bytes = messageTypes().response.encode(msg as unknown as protobuf.Message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function encodeRateLimitRequest(msg: RateLimitRequestMessage): Buffer {
  const bytes = messageTypes().request.encode(msg as unknown as protobuf.Message).finish();
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
      responseSerialize: (m: RateLimitResponseMessage) => encodeRateLimitResponse(m),
      responseDeserialize: decodeRateLimitResponse,
      originalName: 'shouldRateLimit',
    },
  };
}

function clampU32(n: number): number {
  return n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : Math.floor(n);
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

/** The handler object for grpc.Server.addService / XdsServer.addService. */
export function rateLimitServiceImplementation(limiter: RateLimiter): grpc.UntypedServiceImplementation {
  return {
    ShouldRateLimit: (call: grpc.ServerUnaryCall<Incoming, RateLimitResponseMessage>, callback: grpc.sendUnaryData<RateLimitResponseMessage>) => {
      const incoming = call.request;
      if (!incoming.ok) {
        limiter.metrics.invalidRequests.inc();
        callback({ code: grpc.status.INVALID_ARGUMENT, details: incoming.error });
        return;
      }
      let req;
      try {
        req = parseRateLimitRequest(incoming.message);
      } catch (e) {
        limiter.metrics.invalidRequests.inc();
        if (e instanceof DescriptorError) callback({ code: grpc.status.INVALID_ARGUMENT, details: e.message });
        else callback({ code: grpc.status.INTERNAL, details: `rate limit: ${(e as Error).message}` });
        return;
      }
      limiter.decide(req).then(
        (d) => callback(null, toRateLimitResponse(d)),
        (e: unknown) => callback({ code: grpc.status.INTERNAL, details: `rate limit: ${(e as Error).message}` }),
      );
    },
  };
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
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(addr, opts.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
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
