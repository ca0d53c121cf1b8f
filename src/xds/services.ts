// gRPC service definitions built from the loaded protobuf reflection (no generated code): xDS
// discovery services with codecs that splice pre-encoded resources, and a proto3-JSON codec for the rest.
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { decodeMessage, encodeMessage, lookupService, lookupType, messageToJson, type JsonObject, type JsonValue } from '../proto/index.ts';
import type { DeltaRequest, DeltaResponse, ErrorDetail, NodeInfo, SotwRequest, SotwResponse } from './stream.ts';
import { joinBody, responseBody, type Body } from './body.ts';

/** Full names of the discovery services Portico hosts, with the type each per-type service carries. */
export const DISCOVERY_SERVICES = {
  ads: { service: 'envoy.service.discovery.v3.AggregatedDiscoveryService', typeUrl: undefined },
  cds: { service: 'envoy.service.cluster.v3.ClusterDiscoveryService', typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' },
  eds: { service: 'envoy.service.endpoint.v3.EndpointDiscoveryService', typeUrl: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment' },
  lds: { service: 'envoy.service.listener.v3.ListenerDiscoveryService', typeUrl: 'type.googleapis.com/envoy.config.listener.v3.Listener' },
  rds: { service: 'envoy.service.route.v3.RouteDiscoveryService', typeUrl: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration' },
  sds: { service: 'envoy.service.secret.v3.SecretDiscoveryService', typeUrl: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret' },
} as const;
export type DiscoveryServiceKey = keyof typeof DISCOVERY_SERVICES;

const toBuffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

// ── server side of the discovery messages ────────────────────────────────────

function nodeInfo(node: protobuf.Message | null | undefined): NodeInfo | undefined {
  if (!node) return undefined;
  const raw = messageToJson(lookupType('envoy.config.core.v3.Node'), node) as JsonObject;
  const str = (v: JsonValue | undefined) => (typeof v === 'string' ? v : '');
  const build = raw.user_agent_build_version as JsonObject | undefined;
  const bv = build?.version as JsonObject | undefined;
  const buildVersion = bv ? `${bv.major_number ?? 0}.${bv.minor_number ?? 0}.${bv.patch ?? 0}` : '';
  const ua = [str(raw.user_agent_name), str(raw.user_agent_version) || buildVersion].filter(Boolean).join('/');
  return { id: str(raw.id), cluster: str(raw.cluster), userAgent: ua, raw };
}

function errorDetail(status: protobuf.Message | null | undefined): ErrorDetail | undefined {
  if (!status) return undefined;
  const s = status as unknown as { code?: number; message?: string };
  return { code: s.code ?? 0, message: s.message ?? '' };
}

export function decodeSotwRequest(buf: Buffer): SotwRequest {
  const m = lookupType('envoy.service.discovery.v3.DiscoveryRequest').decode(buf) as unknown as Record<string, unknown>;
  return {
    version_info: (m.version_info as string) ?? '',
    node: nodeInfo(m.node as protobuf.Message | undefined),
    resource_names: (m.resource_names as string[]) ?? [],
    type_url: (m.type_url as string) ?? '',
    response_nonce: (m.response_nonce as string) ?? '',
    error_detail: errorDetail(m.error_detail as protobuf.Message | undefined),
  };
}

export function decodeDeltaRequest(buf: Buffer): DeltaRequest {
  const m = lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest').decode(buf) as unknown as Record<string, unknown>;
  return {
    node: nodeInfo(m.node as protobuf.Message | undefined),
    type_url: (m.type_url as string) ?? '',
    resource_names_subscribe: (m.resource_names_subscribe as string[]) ?? [],
    resource_names_unsubscribe: (m.resource_names_unsubscribe as string[]) ?? [],
    initial_resource_versions: { ...((m.initial_resource_versions as Record<string, string>) ?? {}) },
    response_nonce: (m.response_nonce as string) ?? '',
    error_detail: errorDetail(m.error_detail as protobuf.Message | undefined),
  };
}

/** DiscoveryResponse written around the cache's shared encodings (no per-stream re-encoding). */
export function encodeSotwResponse(r: SotwResponse): Body {
  // A shared, fully encoded response is handed over as it is (written behind each stream's own prefix, never copied).
  return r.body ?? responseBody(r.version_info, r.resources, r.type_url, r.nonce);
}

export function encodeDeltaResponse(r: DeltaResponse): Body {
  return r.body ?? responseBody(r.system_version_info, r.resources, r.type_url, r.nonce, r.removed_resources);
}

// ── client side (tests, benchmarks, tools) ───────────────────────────────────

/** A discovery request as proto3 JSON (node as envoy.config.core.v3.Node JSON). */
export interface ClientSotwRequest {
  version_info?: string;
  node?: JsonObject;
  resource_names?: string[];
  type_url: string;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}
export interface ClientDeltaRequest {
  node?: JsonObject;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}

/** Reads only the top level of a DiscoveryResponse; resources stay encoded (decode with unpackAny). */
export function decodeSotwResponse(buf: Buffer): SotwResponse {
  const m = readResponse(buf, false);
  return { version_info: m.version, resources: m.resources, type_url: m.typeUrl, nonce: m.nonce };
}

export function decodeDeltaResponse(buf: Buffer): DeltaResponse {
  const m = readResponse(buf, true);
  return { system_version_info: m.version, resources: m.resources, removed_resources: m.removed, type_url: m.typeUrl, nonce: m.nonce };
}

/** Both responses number version (1), resources (2), type URL (4) and nonce (5) alike; Delta adds removed_resources (6). */
function readResponse(buf: Buffer, delta: boolean): { version: string; resources: Uint8Array[]; typeUrl: string; nonce: string; removed: string[] } {
  const r = protobuf.Reader.create(buf);
  const out = { version: '', resources: [] as Uint8Array[], typeUrl: '', nonce: '', removed: [] as string[] };
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field === 1) out.version = r.string();
    else if (field === 2) out.resources.push(r.bytes());
    else if (field === 4) out.typeUrl = r.string();
    else if (field === 5) out.nonce = r.string();
    else if (field === 6 && delta) out.removed.push(r.string());
    else r.skipType(tag & 7);
  }
  return out;
}

/** An encoded google.protobuf.Any → proto3 JSON with "@type". */
export function unpackAny(bytes: Uint8Array): JsonObject {
  return decodeMessage('google.protobuf.Any', bytes) as JsonObject;
}

/** An encoded envoy.service.discovery.v3.Resource → its name, version and resource JSON. */
export function unpackDeltaResource(bytes: Uint8Array): { name: string; version: string; resource: JsonObject } {
  const j = decodeMessage('envoy.service.discovery.v3.Resource', bytes) as JsonObject;
  return { name: String(j.name ?? ''), version: String(j.version ?? ''), resource: (j.resource ?? {}) as JsonObject };
}

// ── definitions ──────────────────────────────────────────────────────────────

interface Codec<T> {
  serialize(v: T): Buffer;
  deserialize(b: Buffer): T;
}

/** A discovery request: encoded from proto3 JSON (clients), decoded to the stream's request type (server). */
function requestCodec(typeName: string, deserialize: (b: Buffer) => unknown): Codec<unknown> {
  return { serialize: (v) => toBuffer(encodeMessage(typeName, v)), deserialize };
}

/** A discovery response: the server may hand over an already serialized one (to account its size before writing). */
function responseCodec<R>(encode: (r: R) => Body, deserialize: (b: Buffer) => unknown): Codec<unknown> {
  return { serialize: (v) => (Buffer.isBuffer(v) ? v : joinBody(encode(v as R))), deserialize };
}

const DISCOVERY_CODECS: Record<string, Codec<unknown>> = {
  'envoy.service.discovery.v3.DiscoveryRequest': requestCodec('envoy.service.discovery.v3.DiscoveryRequest', decodeSotwRequest),
  'envoy.service.discovery.v3.DiscoveryResponse': responseCodec(encodeSotwResponse, decodeSotwResponse),
  'envoy.service.discovery.v3.DeltaDiscoveryRequest': requestCodec('envoy.service.discovery.v3.DeltaDiscoveryRequest', decodeDeltaRequest),
  'envoy.service.discovery.v3.DeltaDiscoveryResponse': responseCodec(encodeDeltaResponse, decodeDeltaResponse),
};

function jsonCodec(typeName: string): Codec<unknown> {
  return {
    serialize: (v) => toBuffer(encodeMessage(typeName, v)),
    deserialize: (b) => decodeMessage(typeName, b),
  };
}

function build(serviceName: string, codecFor: (typeName: string) => Codec<unknown>): grpc.ServiceDefinition {
  const svc = lookupService(serviceName);
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of svc.methodsArray) {
    m.resolve();
    const req = codecFor(m.resolvedRequestType!.fullName.slice(1));
    const res = codecFor(m.resolvedResponseType!.fullName.slice(1));
    def[m.name] = {
      path: `/${serviceName}/${m.name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: m.name.charAt(0).toLowerCase() + m.name.slice(1),
    };
  }
  return def;
}

/**
 * A discovery service definition: requests decode to SotwRequest/DeltaRequest (server) or encode
 * from proto3 JSON (client); responses carry pre-encoded resources (see SotwResponse/DeltaResponse).
 */
export function discoveryServiceDefinition(serviceName: string): grpc.ServiceDefinition {
  return build(serviceName, (t) => DISCOVERY_CODECS[t] ?? jsonCodec(t));
}

/**
 * Any loaded service (e.g. envoy.service.auth.v3.Authorization, envoy.service.ratelimit.v3.RateLimitService)
 * with proto3-JSON messages both ways: handlers receive decoded JSON (snake_case, defaults omitted)
 * and return JSON that is encoded strictly (an unknown field is an error, not silently dropped).
 */
export function serviceDefinition(serviceName: string): grpc.ServiceDefinition {
  return build(serviceName, jsonCodec);
}
