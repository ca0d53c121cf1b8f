// Shared proto3-JSON building blocks for the Envoy emitters: JSON value types, durations, Any,
// the ADS config source, and the type URLs of every resource and extension the translator emits.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** Type URLs of the five resource types a gateway group is served. */
export const RESOURCE_TYPES = {
  clusters: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoints: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listeners: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  routes: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  secrets: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

/** HTTP filter names; per-route configuration is keyed by them. */
export const FILTERS = {
  stripIdentity: 'envoy.filters.http.header_mutation',
  cors: 'envoy.filters.http.cors',
  extAuthz: 'envoy.filters.http.ext_authz',
  router: 'envoy.filters.http.router',
} as const;

/** Route metadata namespace read by the access log (and by anyone else who needs product/route). */
export const METADATA_NAMESPACE = 'portico';

/** A google.protobuf.Any in proto3 JSON: the message's fields beside its type URL. */
export function any(messageType: string, body: JsonObject = {}): JsonObject {
  return { '@type': `${TYPE_URL_PREFIX}${messageType}`, ...body };
}

/** A google.protobuf.Duration in proto3 JSON: "5s", "0.250s". */
export function duration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`duration must be a whole number of milliseconds, got ${ms}`);
  const s = Math.floor(ms / 1000);
  const frac = ms % 1000;
  return frac === 0 ? `${s}s` : `${s}.${String(frac).padStart(3, '0')}s`;
}

/** Resources come over the same ADS stream as everything else. */
export function adsConfigSource(): JsonObject {
  return { ads: {}, resource_api_version: 'V3' };
}

/** SDS reference to a secret served over ADS. */
export function sdsSecret(name: string): JsonObject {
  return { name, sds_config: adsConfigSource() };
}

/** A TypedExtensionConfig. */
export function extension(name: string, messageType: string, body: JsonObject = {}): JsonObject {
  return { name, typed_config: any(messageType, body) };
}

/** A core.v3.SocketAddress inside an Address. */
export function socketAddress(address: string, port: number): JsonObject {
  return { socket_address: { address, port_value: port } };
}

/** Objects keyed by data (maps, metadata) are built in sorted key order so output never depends on input order. */
export function sortedRecord(entries: Iterable<[string, Json]>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) out[k] = v;
  return out;
}
