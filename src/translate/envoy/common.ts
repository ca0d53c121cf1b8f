// Shared proto3-JSON building blocks for the Envoy emitters: durations, Any, the ADS config source,
// HTTP filter names and local token buckets.
import { EXT_AUTHZ_FILTERS } from '../../contract/index.ts';
import { TYPE_URL_PREFIX, type Json, type JsonObject } from '../../proto/index.ts';
import type { LocalBucketIR } from '../ir.ts';

export type { Json, JsonObject };

/** HTTP filter names; per-route configuration is keyed by them. */
export const FILTERS = {
  stripIdentity: 'envoy.filters.http.header_mutation',
  cors: 'envoy.filters.http.cors',
  /** The gateway group's token bucket (GatewayGroup.localRateLimit). */
  localRateLimitGroup: 'portico.local_ratelimit.group',
  /** Routes' own token buckets (Route.localRateLimit, per-route config). */
  localRateLimitRoute: 'portico.local_ratelimit.route',
  extAuthz: EXT_AUTHZ_FILTERS.main,
  /** Combined mode's second ext_authz instance: counting only, for routes open to anonymous callers. */
  extAuthzLimits: EXT_AUTHZ_FILTERS.limits,
  rateLimit: 'envoy.filters.http.ratelimit',
  router: 'envoy.filters.http.router',
} as const;

export const LOCAL_RATE_LIMIT_TYPE = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

/** envoy.type.v3.StatusCode names of the statuses the translator configures filters with. */
const STATUS_NAMES: Readonly<Record<number, string>> = {
  429: 'TooManyRequests',
  503: 'ServiceUnavailable',
  507: 'InsufficientStorage',
};

export function statusName(code: number): string {
  const name = STATUS_NAMES[code];
  if (!name) throw new Error(`no envoy.type.v3.StatusCode name for ${code}`);
  return name;
}

const ALWAYS: Json = { default_value: { numerator: 100, denominator: 'HUNDRED' } };

/**
 * A LocalRateLimit enforcing one token bucket on every request it sees; its refusals (429) carry the
 * contract's headers, and get its body from the local-reply mapper keyed on their response code
 * details.
 */
export function localRateLimitConfig(statPrefix: string, b: LocalBucketIR): JsonObject {
  const header = (key: string, value: string): Json => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  return {
    stat_prefix: statPrefix,
    token_bucket: { max_tokens: b.maxTokens, tokens_per_fill: b.tokensPerFill, fill_interval: durationNs(b.fillIntervalNs) },
    filter_enabled: ALWAYS,
    filter_enforced: ALWAYS,
    response_headers_to_add: [
      header('retry-after', String(b.retryAfterSeconds)),
      header('x-ratelimit-limit', String(b.requests)),
      header('x-ratelimit-remaining', '0'),
    ],
  };
}

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

/** A google.protobuf.Duration from nanoseconds: "1200s", "0.050s", "8.571428571s". */
export function durationNs(ns: number): string {
  if (!Number.isSafeInteger(ns) || ns < 0) throw new Error(`duration must be a whole number of nanoseconds, got ${ns}`);
  if (ns % 1_000_000 === 0) return duration(ns / 1_000_000);
  const s = Math.floor(ns / 1e9);
  return `${s}.${String(ns % 1e9).padStart(9, '0')}s`;
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
