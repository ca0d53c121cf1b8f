// Envoy/xDS protobuf types loaded at run time from @grpc/grpc-js-xds/deps, and a strict
// proto3-JSON ⇄ protobuf codec over them (protobufjs's fromObject silently drops unknown fields).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import { RESOURCE_TYPES, type Json, type JsonObject } from '../translate/envoy/common.ts';

/** Type URLs of the resources Portico serves (the translator's, by the singular names xDS code uses). */
export const TYPE_URLS = {
  cluster: RESOURCE_TYPES.clusters,
  endpoint: RESOURCE_TYPES.endpoints,
  listener: RESOURCE_TYPES.listeners,
  route: RESOURCE_TYPES.routes,
  secret: RESOURCE_TYPES.secrets,
} as const;
export type XdsTypeUrl = (typeof TYPE_URLS)[keyof typeof TYPE_URLS];

/** Every .proto file Portico needs, relative to the include paths; imports are followed. */
const PROTO_FILES = [
  // discovery: ADS (SotW + Delta) and the per-type services
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/cluster/v3/cds.proto',
  'envoy/service/endpoint/v3/eds.proto',
  'envoy/service/listener/v3/lds.proto',
  'envoy/service/route/v3/rds.proto',
  'envoy/service/secret/v3/sds.proto',
  // resources
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  // HCM and HTTP filters
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto',
  'envoy/extensions/filters/http/health_check/v3/health_check.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  // access loggers
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/grpc/v3/als.proto',
  // telemetry: the access-log service Envoys stream to, the OpenTelemetry tracer, stats tags
  'envoy/service/accesslog/v3/als.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/config/metrics/v3/stats.proto',
  // path templates, upstream protocol options
  'envoy/extensions/path/match/uri_template/v3/uri_template_match.proto',
  'envoy/extensions/path/rewrite/uri_template/v3/uri_template_rewrite.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  // callout services (ext_authz, rate limit)
  'envoy/service/auth/v3/external_auth.proto',
  'envoy/service/ratelimit/v3/rls.proto',
  // bootstrap (to check rendered bootstrap files) and its overload monitors
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/resource_monitors/fixed_heap/v3/fixed_heap.proto',
  'envoy/extensions/resource_monitors/downstream_connections/v3/downstream_connections.proto',
  // generic typed config, and well-known types an Any may hold (bundled with protobufjs)
  'xds/type/v3/typed_struct.proto',
  'google/protobuf/field_mask.proto',
  'google/protobuf/empty.proto',
  'google/protobuf/timestamp.proto',
  'udpa/type/v1/typed_struct.proto',
];

const require = createRequire(import.meta.url);

function includeDirs(): string[] {
  const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  // protobufjs bundles any/duration/struct/…; descriptor.proto (imported by validate.proto) sits in its package dir.
  const pbjs = path.dirname(require.resolve('protobufjs/package.json'));
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)), pbjs];
}

let loaded: protobuf.Root | undefined;

/** The protobufjs root holding every Portico type (loaded once, synchronously, on first use). */
export function protoRoot(): protobuf.Root {
  if (loaded) return loaded;
  const dirs = includeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const d of dirs) {
      const p = path.join(d, target);
      if (existsSync(p)) return p;
    }
    // Bundled well-known types (any, duration, struct, …) resolve inside protobufjs by this name.
    if (target.startsWith('google/protobuf/')) return target;
    throw new Error(`proto file ${target} not found under ${dirs.join(', ')}`);
  };
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  loaded = root;
  return root;
}

const typeCache = new Map<string, protobuf.Type | null>();

/** A message type by full name (with or without a leading dot), or undefined when not loaded. */
export function findType(name: string): protobuf.Type | undefined {
  const key = name.startsWith('.') ? name.slice(1) : name;
  let t = typeCache.get(key);
  if (t === undefined) {
    const found = protoRoot().lookup(key);
    t = found instanceof protobuf.Type ? found : null;
    typeCache.set(key, t);
  }
  return t ?? undefined;
}

export function lookupType(name: string): protobuf.Type {
  const t = findType(name);
  if (!t) throw new Error(`protobuf type ${name} is not loaded`);
  return t;
}

export function lookupService(name: string): protobuf.Service {
  const s = protoRoot().lookup(name);
  if (!(s instanceof protobuf.Service)) throw new Error(`protobuf service ${name} is not loaded`);
  return s;
}

export function typeNameOfUrl(typeUrl: string): string {
  const i = typeUrl.lastIndexOf('/');
  return i >= 0 ? typeUrl.slice(i + 1) : typeUrl;
}

/** A proto3-JSON value (what encode accepts and decode returns): the translator's own JSON types. */
export type JsonValue = Json;
export type { JsonObject };

/** Proto3-JSON that does not fit the schema; `path` is a JSON path like `$.filters[0].typed_config`. */
export class ProtoJsonError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'ProtoJsonError';
  }
}

// ── encoding ─────────────────────────────────────────────────────────────────

const WRAPPERS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};
/** Well-known types whose JSON form is not an object of their fields (inside Any they sit under "value"). */
const SPECIAL_JSON = new Set([
  'google.protobuf.Any',
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  ...Object.keys(WRAPPERS),
]);

const WIRE: Record<string, number> = {
  double: 1, float: 5, int32: 0, uint32: 0, sint32: 0, fixed32: 5, sfixed32: 5,
  int64: 0, uint64: 0, sint64: 0, fixed64: 1, sfixed64: 1, bool: 0, string: 2, bytes: 2,
};
const INT32_RANGE: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647],
  sint32: [-2147483648, 2147483647],
  sfixed32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  fixed32: [0, 4294967295],
};
const INT64_RANGE: Record<string, [bigint, bigint]> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};
const FLOAT_MAX = 3.4028234663852886e38;
const DURATION_MAX_SECONDS = 315576000000n;

interface TypeInfo {
  /** Fields by proto name and by JSON (lowerCamel) name. */
  byName: Map<string, protobuf.Field>;
  /** Fields in field-number order: encoding in this order makes the bytes deterministic. */
  ordered: protobuf.Field[];
  /** Real (non-synthetic) oneofs. */
  oneofs: protobuf.OneOf[];
  /** Per `ordered` field: does it track presence (messages, oneof members, proto3 optional)? */
  presence: boolean[];
  /** The full name when the type has a special JSON form (well-known types). */
  special: string | undefined;
}
const infoCache = new WeakMap<protobuf.Type, TypeInfo>();

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function info(type: protobuf.Type): TypeInfo {
  let i = infoCache.get(type);
  if (i) return i;
  const byName = new Map<string, protobuf.Field>();
  for (const f of type.fieldsArray) {
    f.resolve();
    byName.set(f.name, f);
    const jsonName = (f.options?.json_name as string | undefined) ?? lowerCamel(f.name);
    if (jsonName !== f.name) byName.set(jsonName, f);
  }
  const ordered = [...type.fieldsArray].sort((a, b) => a.id - b.id);
  const oneofs = type.oneofsArray.filter((o) => !o.isProto3Optional);
  const presence = ordered.map((f) => f.resolvedType instanceof protobuf.Type || f.hasPresence);
  const name = type.fullName.slice(1);
  i = { byName, ordered, oneofs, presence, special: SPECIAL_JSON.has(name) ? name : undefined };
  infoCache.set(type, i);
  return i;
}

function fullName(type: protobuf.Type): string {
  return type.fullName.slice(1);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function keyPath(base: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** {low, high} two's-complement halves, which protobufjs's Writer accepts for 64-bit fields. */
function longBits(v: bigint): { low: number; high: number } {
  const u = BigInt.asUintN(64, v);
  return { low: Number(u & 0xffffffffn), high: Number(u >> 32n) };
}

function parseInt32(kind: string, v: unknown, p: string): number {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = Number(v);
  else throw new ProtoJsonError(p, `expected ${kind} (integer), got ${describe(v)}`);
  const [lo, hi] = INT32_RANGE[kind]!;
  if (!Number.isInteger(n) || n < lo || n > hi) throw new ProtoJsonError(p, `expected ${kind} in [${lo}, ${hi}], got ${describe(v)}`);
  return n;
}

function parseInt64(kind: string, v: unknown, p: string): bigint {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) {
      throw new ProtoJsonError(p, `expected ${kind} (integer; use a decimal string beyond 2^53), got ${describe(v)}`);
    }
    n = BigInt(v);
  } else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = BigInt(v);
  else throw new ProtoJsonError(p, `expected ${kind} (integer or decimal string), got ${describe(v)}`);
  const [lo, hi] = INT64_RANGE[kind]!;
  if (n < lo || n > hi) throw new ProtoJsonError(p, `${kind} out of range: ${describe(v)}`);
  return n;
}

function parseFloating(kind: string, v: unknown, p: string): number {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (v === 'NaN') n = NaN;
  else if (v === 'Infinity') n = Infinity;
  else if (v === '-Infinity') n = -Infinity;
  else if (typeof v === 'string' && /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) n = Number(v);
  else throw new ProtoJsonError(p, `expected ${kind} (number), got ${describe(v)}`);
  if (kind === 'float' && Number.isFinite(n) && Math.abs(n) > FLOAT_MAX) throw new ProtoJsonError(p, `float out of range: ${describe(v)}`);
  return n;
}

function parseBytes(v: unknown, p: string): Uint8Array {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v) || v.length % 4 === 1) {
    throw new ProtoJsonError(p, `expected bytes (base64 string), got ${describe(v)}`);
  }
  return Buffer.from(v, 'base64');
}

type Scalar = number | bigint | boolean | string | Uint8Array;

function parseScalar(kind: string, v: unknown, p: string): Scalar {
  switch (kind) {
    case 'int32': case 'sint32': case 'sfixed32': case 'uint32': case 'fixed32':
      return parseInt32(kind, v, p);
    case 'int64': case 'sint64': case 'sfixed64': case 'uint64': case 'fixed64':
      return parseInt64(kind, v, p);
    case 'double': case 'float':
      return parseFloating(kind, v, p);
    case 'bool':
      if (typeof v !== 'boolean') throw new ProtoJsonError(p, `expected bool, got ${describe(v)}`);
      return v;
    case 'string':
      if (typeof v !== 'string') throw new ProtoJsonError(p, `expected string, got ${describe(v)}`);
      return v;
    case 'bytes':
      return parseBytes(v, p);
    default:
      throw new ProtoJsonError(p, `unsupported scalar type ${kind}`);
  }
}

function isDefaultScalar(v: Scalar): boolean {
  if (typeof v === 'number') return Object.is(v, 0);
  if (typeof v === 'bigint') return v === 0n;
  if (typeof v === 'boolean') return !v;
  return v.length === 0;
}

function writeScalarValue(w: protobuf.Writer, kind: string, v: Scalar): void {
  switch (kind) {
    case 'int64': w.int64(longBits(v as bigint) as unknown as number); break;
    case 'uint64': w.uint64(longBits(v as bigint) as unknown as number); break;
    case 'sint64': w.sint64(longBits(v as bigint) as unknown as number); break;
    case 'fixed64': w.fixed64(longBits(v as bigint) as unknown as number); break;
    case 'sfixed64': w.sfixed64(longBits(v as bigint) as unknown as number); break;
    case 'int32': w.int32(v as number); break;
    case 'uint32': w.uint32(v as number); break;
    case 'sint32': w.sint32(v as number); break;
    case 'fixed32': w.fixed32(v as number); break;
    case 'sfixed32': w.sfixed32(v as number); break;
    case 'double': w.double(v as number); break;
    case 'float': w.float(v as number); break;
    case 'bool': w.bool(v as boolean); break;
    case 'string': w.string(v as string); break;
    case 'bytes': w.bytes(v as Uint8Array); break;
  }
}

function enumValue(e: protobuf.Enum, v: unknown, p: string): number {
  if (typeof v === 'string') {
    const n = e.values[v];
    if (n === undefined) throw new ProtoJsonError(p, `unknown value ${JSON.stringify(v)} for enum ${e.fullName.slice(1)} (one of ${Object.keys(e.values).join(', ')})`);
    return n;
  }
  if (typeof v === 'number' && Number.isInteger(v)) {
    if (e.valuesById[v] === undefined) throw new ProtoJsonError(p, `unknown number ${v} for enum ${e.fullName.slice(1)}`);
    return v;
  }
  throw new ProtoJsonError(p, `expected enum ${e.fullName.slice(1)} (name), got ${describe(v)}`);
}

/** Writes one field element (tag included) for a non-repeated, non-packed occurrence. */
function writeElement(w: protobuf.Writer, f: protobuf.Field, v: unknown, p: string, skipDefault: boolean): void {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) {
    w.uint32((f.id << 3) | 2).fork();
    writeMessageBody(w, rt, v, p);
    w.ldelim();
    return;
  }
  if (rt instanceof protobuf.Enum) {
    // google.protobuf.NullValue is spelled null in JSON.
    const n = v === null && rt.fullName === '.google.protobuf.NullValue' ? 0 : enumValue(rt, v, p);
    if (skipDefault && n === 0) return;
    w.uint32(f.id << 3).int32(n);
    return;
  }
  const s = parseScalar(f.type, v, p);
  if (skipDefault && isDefaultScalar(s)) return;
  w.uint32((f.id << 3) | WIRE[f.type]!);
  writeScalarValue(w, f.type, s);
}

function writeField(w: protobuf.Writer, f: protobuf.Field, v: unknown, p: string): void {
  if (f.map) {
    const mf = f as unknown as protobuf.MapField;
    if (!isPlainObject(v)) throw new ProtoJsonError(p, `expected an object (map<${mf.keyType}, …>), got ${describe(v)}`);
    const keys = Object.keys(v).sort();
    for (const k of keys) {
      const kp = keyPath(p, k);
      const item = v[k];
      if (item === null && !(mf.resolvedType instanceof protobuf.Type && mf.resolvedType.fullName === '.google.protobuf.Value')) {
        throw new ProtoJsonError(kp, 'map values may not be null');
      }
      w.uint32((f.id << 3) | 2).fork();
      writeMapKey(w, mf.keyType, k, kp);
      const valueField = { id: 2, type: mf.type, resolvedType: mf.resolvedType } as protobuf.Field;
      writeElement(w, valueField, item, kp, false);
      w.ldelim();
    }
    return;
  }
  if (f.repeated) {
    if (!Array.isArray(v)) throw new ProtoJsonError(p, `expected an array, got ${describe(v)}`);
    const rt = f.resolvedType;
    const isValue = rt instanceof protobuf.Type && info(rt).special === 'google.protobuf.Value';
    v.forEach((item, i) => {
      if (item === null && !isValue) throw new ProtoJsonError(`${p}[${i}]`, 'array elements may not be null');
    });
    if (f.packed && !(rt instanceof protobuf.Type) && f.type !== 'string' && f.type !== 'bytes') {
      if (v.length === 0) return;
      w.uint32((f.id << 3) | 2).fork();
      v.forEach((item, i) => {
        if (rt instanceof protobuf.Enum) w.int32(enumValue(rt, item, `${p}[${i}]`));
        else writeScalarValue(w, f.type, parseScalar(f.type, item, `${p}[${i}]`));
      });
      w.ldelim();
      return;
    }
    v.forEach((item, i) => writeElement(w, f, item, `${p}[${i}]`, false));
    return;
  }
  const presence = f.resolvedType instanceof protobuf.Type || f.hasPresence;
  writeElement(w, f, v, p, !presence);
}

function writeMapKey(w: protobuf.Writer, keyType: string, k: string, p: string): void {
  let key: Scalar;
  if (keyType === 'string') key = k;
  else if (keyType === 'bool') {
    if (k !== 'true' && k !== 'false') throw new ProtoJsonError(p, `map key must be "true" or "false"`);
    key = k === 'true';
  } else key = parseScalar(keyType, k, p);
  w.uint32((1 << 3) | WIRE[keyType]!);
  writeScalarValue(w, keyType, key);
}

function parseDuration(v: unknown, p: string): { seconds: bigint; nanos: number } {
  const m = typeof v === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(v) : null;
  if (!m) throw new ProtoJsonError(p, `expected a duration like "1.5s", got ${describe(v)}`);
  const neg = m[1] === '-';
  const secs = BigInt(m[2]!);
  const nanos = Number((m[3] ?? '').padEnd(9, '0'));
  if (secs > DURATION_MAX_SECONDS) throw new ProtoJsonError(p, `duration out of range: ${describe(v)}`);
  return { seconds: neg ? -secs : secs, nanos: neg ? -nanos : nanos };
}

function parseTimestamp(v: unknown, p: string): { seconds: bigint; nanos: number } {
  const m =
    typeof v === 'string'
      ? /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|([+-])(\d{2}):(\d{2}))$/.exec(v)
      : null;
  if (!m) throw new ProtoJsonError(p, `expected an RFC 3339 timestamp like "2024-01-02T03:04:05Z", got ${describe(v)}`);
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m;
  const check = new Date(Date.UTC(2000, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
  check.setUTCFullYear(Number(y)); // Date.UTC maps years 0..99 to 19xx
  const ms = check.getTime();
  if (check.getUTCDate() !== Number(d) || check.getUTCMonth() !== Number(mo) - 1 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    throw new ProtoJsonError(p, `invalid timestamp ${describe(v)}`);
  }
  let seconds = BigInt(ms / 1000);
  if (sign) seconds -= BigInt((sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60));
  // 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z
  if (seconds < -62135596800n || seconds > 253402300799n) throw new ProtoJsonError(p, `timestamp out of range: ${describe(v)}`);
  return { seconds, nanos: Number((frac ?? '').padEnd(9, '0')) };
}

function writeSecondsNanos(w: protobuf.Writer, t: { seconds: bigint; nanos: number }): void {
  if (t.seconds !== 0n) w.uint32(8).int64(longBits(t.seconds) as unknown as number);
  if (t.nanos !== 0) w.uint32(16).int32(t.nanos);
}

function writeValue(w: protobuf.Writer, v: unknown, p: string): void {
  if (v === null) w.uint32(8).int32(0);
  else if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ProtoJsonError(p, 'google.protobuf.Value numbers must be finite');
    w.uint32(17).double(v);
  } else if (typeof v === 'string') w.uint32(26).string(v);
  else if (typeof v === 'boolean') w.uint32(32).bool(v);
  else if (Array.isArray(v)) {
    w.uint32(50).fork();
    writeListValue(w, v, p);
    w.ldelim();
  } else if (isPlainObject(v)) {
    w.uint32(42).fork();
    writeStruct(w, v, p);
    w.ldelim();
  } else throw new ProtoJsonError(p, `expected a JSON value, got ${describe(v)}`);
}

function writeStruct(w: protobuf.Writer, v: unknown, p: string): void {
  if (!isPlainObject(v)) throw new ProtoJsonError(p, `expected an object (google.protobuf.Struct), got ${describe(v)}`);
  for (const k of Object.keys(v).sort()) {
    w.uint32(10).fork();
    w.uint32(10).string(k);
    w.uint32(18).fork();
    writeValue(w, v[k], keyPath(p, k));
    w.ldelim();
    w.ldelim();
  }
}

function writeListValue(w: protobuf.Writer, v: unknown, p: string): void {
  if (!Array.isArray(v)) throw new ProtoJsonError(p, `expected an array (google.protobuf.ListValue), got ${describe(v)}`);
  v.forEach((item, i) => {
    w.uint32(10).fork();
    writeValue(w, item, `${p}[${i}]`);
    w.ldelim();
  });
}

function writeAny(w: protobuf.Writer, v: unknown, p: string): void {
  if (!isPlainObject(v)) throw new ProtoJsonError(p, `expected an object with "@type" (google.protobuf.Any), got ${describe(v)}`);
  const url = v['@type'];
  if (typeof url !== 'string' || url === '') throw new ProtoJsonError(p, 'google.protobuf.Any needs a "@type"');
  const inner = findType(typeNameOfUrl(url));
  if (!inner || !url.includes('/')) throw new ProtoJsonError(`${p}["@type"]`, `unknown type ${JSON.stringify(url)}`);
  w.uint32(10).string(url);
  w.uint32(18).fork();
  if (SPECIAL_JSON.has(fullName(inner))) {
    for (const k of Object.keys(v)) {
      if (k !== '@type' && k !== 'value') throw new ProtoJsonError(keyPath(p, k), `unknown field "${k}" (an Any holding ${fullName(inner)} has only "value")`);
    }
    if (!('value' in v)) throw new ProtoJsonError(p, `an Any holding ${fullName(inner)} needs "value"`);
    writeMessageBody(w, inner, v.value, `${p}.value`);
  } else {
    writeFields(w, inner, v, p, true);
  }
  w.ldelim();
}

/** Writes the fields of one message (no tag/length of its own). */
function writeMessageBody(w: protobuf.Writer, type: protobuf.Type, v: unknown, p: string): void {
  // The special name is cached per type: protobufjs builds fullName anew on every read.
  const name = info(type).special;
  if (name === undefined) {
    if (!isPlainObject(v)) throw new ProtoJsonError(p, `expected an object (${fullName(type)}), got ${describe(v)}`);
    return writeFields(w, type, v, p, false);
  }
  switch (name) {
    case 'google.protobuf.Any':
      return writeAny(w, v, p);
    case 'google.protobuf.Duration': {
      const d = parseDuration(v, p);
      return writeSecondsNanos(w, d);
    }
    case 'google.protobuf.Timestamp':
      return writeSecondsNanos(w, parseTimestamp(v, p));
    case 'google.protobuf.Struct':
      return writeStruct(w, v, p);
    case 'google.protobuf.ListValue':
      return writeListValue(w, v, p);
    case 'google.protobuf.Value':
      return writeValue(w, v, p);
    case 'google.protobuf.FieldMask': {
      if (typeof v !== 'string') throw new ProtoJsonError(p, `expected a field mask string like "a.b,c", got ${describe(v)}`);
      for (const path of v === '' ? [] : v.split(',')) {
        if (!/^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$/.test(path)) throw new ProtoJsonError(p, `invalid field mask path ${JSON.stringify(path)}`);
        w.uint32(10).string(path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
      }
      return;
    }
  }
  // The rest of SPECIAL_JSON: the wrappers.
  const wrapped = WRAPPERS[name]!;
  const s = parseScalar(wrapped, v, p);
  if (!isDefaultScalar(s)) {
    w.uint32((1 << 3) | WIRE[wrapped]!);
    writeScalarValue(w, wrapped, s);
  }
}

function writeFields(w: protobuf.Writer, type: protobuf.Type, v: Record<string, unknown>, p: string, inAny: boolean): void {
  const ti = info(type);
  const given = new Map<protobuf.Field, { value: unknown; key: string }>();
  for (const k of Object.keys(v)) {
    if (inAny && k === '@type') continue;
    const f = ti.byName.get(k);
    if (!f) throw new ProtoJsonError(keyPath(p, k), `unknown field "${k}" in ${fullName(type)}`);
    const prev = given.get(f);
    if (prev) throw new ProtoJsonError(keyPath(p, k), `field given twice (as "${prev.key}" and "${k}")`);
    given.set(f, { value: v[k], key: k });
  }
  for (const o of ti.oneofs) {
    const set = o.fieldsArray.filter((f) => {
      const g = given.get(f);
      return g !== undefined && (g.value !== null || isNullValueField(f));
    });
    if (set.length > 1) {
      throw new ProtoJsonError(p, `oneof "${o.name}" of ${fullName(type)}: only one of ${set.map((f) => f.name).join(', ')} may be set`);
    }
  }
  for (const f of ti.ordered) {
    const g = given.get(f);
    if (!g) continue;
    // null means "default" in proto3 JSON, except for google.protobuf.Value where it is a value.
    if (g.value === null && !isNullValueField(f)) continue;
    writeField(w, f, g.value, keyPath(p, g.key));
  }
}

function isNullValueField(f: protobuf.Field): boolean {
  const rt = f.resolvedType;
  return !f.repeated && !f.map && rt !== null && (rt.fullName === '.google.protobuf.Value' || rt.fullName === '.google.protobuf.NullValue');
}

/** Strict proto3-JSON → protobuf for a message type name; fields are written in number order (deterministic). */
export function encodeMessage(typeName: string, json: unknown): Uint8Array {
  const type = lookupType(typeName);
  const w = protobuf.Writer.create();
  writeMessageBody(w, type, json, '$');
  return w.finish();
}

/** Strict proto3-JSON → protobuf for a resource; throws ProtoJsonError naming the JSON path on any mismatch. */
export function encodeResource(typeUrl: string, json: unknown): Uint8Array {
  return encodeMessage(typeNameOfUrl(typeUrl), json);
}

// ── decoding ─────────────────────────────────────────────────────────────────

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
  toString(): string;
}

function int64ToString(v: unknown, unsigned: boolean): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v;
  const l = v as LongLike;
  const big = (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
  return (unsigned ? big : BigInt.asIntN(64, big)).toString();
}

function floatJson(n: number): JsonValue {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  return n;
}

function scalarJson(kind: string, v: unknown): JsonValue {
  switch (kind) {
    case 'int64': case 'sint64': case 'sfixed64':
      return int64ToString(v, false);
    case 'uint64': case 'fixed64':
      return int64ToString(v, true);
    case 'double': case 'float':
      return floatJson(v as number);
    case 'bytes':
      return Buffer.from(v as Uint8Array).toString('base64');
    default:
      return v as JsonValue;
  }
}

function fracDigits(nanos: number): string {
  if (nanos === 0) return '';
  const s = String(nanos).padStart(9, '0');
  if (s.endsWith('000000')) return `.${s.slice(0, 3)}`;
  if (s.endsWith('000')) return `.${s.slice(0, 6)}`;
  return `.${s}`;
}

function elementJson(f: { type: string; resolvedType: protobuf.ReflectionObject | null }, v: unknown): JsonValue {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return messageJson(rt, v as protobuf.Message);
  if (rt instanceof protobuf.Enum) {
    if (rt.fullName === '.google.protobuf.NullValue') return null;
    return rt.valuesById[v as number] ?? (v as number);
  }
  return scalarJson(f.type, v);
}

function isDefaultDecoded(f: protobuf.Field, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (f.resolvedType instanceof protobuf.Type) return false;
  if (typeof v === 'number') return v === 0;
  if (typeof v === 'boolean') return !v;
  if (typeof v === 'string') return v === '';
  if (v instanceof Uint8Array || Array.isArray(v)) return v.length === 0;
  const l = v as LongLike;
  return l.low === 0 && l.high === 0;
}

function messageJson(type: protobuf.Type, m: protobuf.Message): JsonValue {
  const ti = info(type);
  const r = m as unknown as Record<string, unknown>;
  if (ti.special) return specialJson(ti.special, r);
  const out: JsonObject = {};
  const fields = ti.ordered;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    const v = r[f.name];
    if (f.map) {
      if (!v) continue;
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (keys.length === 0) continue;
      const mo: JsonObject = {};
      const kt = (f as unknown as protobuf.MapField).keyType;
      for (const k of keys.sort()) mo[mapKeyJson(kt, k)] = elementJson(f, obj[k]);
      out[f.name] = mo;
    } else if (f.repeated) {
      const arr = v as unknown[] | undefined;
      if (!arr || arr.length === 0) continue;
      out[f.name] = arr.map((x) => elementJson(f, x));
    } else {
      if (ti.presence[i] ? !own(r, f.name) : isDefaultDecoded(f, v)) continue;
      out[f.name] = elementJson(f, v);
    }
  }
  return out;
}

function specialJson(name: string, r: Record<string, unknown>): JsonValue {
  switch (name) {
    case 'google.protobuf.Any': {
      const url = String(r.type_url ?? '');
      const value = (r.value as Uint8Array | undefined) ?? new Uint8Array();
      const inner = findType(typeNameOfUrl(url));
      // A type we do not know stays visible as raw bytes (debug views); it would not re-encode.
      if (!inner) return { '@type': url, value: Buffer.from(value).toString('base64') };
      const decoded = messageJson(inner, inner.decode(value));
      if (SPECIAL_JSON.has(fullName(inner))) return { '@type': url, value: decoded };
      return { '@type': url, ...(decoded as JsonObject) };
    }
    case 'google.protobuf.Duration': {
      const secs = BigInt(int64ToString(r.seconds ?? 0, false));
      const nanos = Number(r.nanos ?? 0);
      const neg = secs < 0n || nanos < 0;
      const abs = secs < 0n ? -secs : secs;
      return `${neg ? '-' : ''}${abs}${fracDigits(Math.abs(nanos))}s`;
    }
    case 'google.protobuf.Timestamp': {
      const secs = Number(int64ToString(r.seconds ?? 0, false));
      const iso = new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, '');
      return `${iso}${fracDigits(Number(r.nanos ?? 0))}Z`;
    }
    case 'google.protobuf.Struct': {
      const out: JsonObject = {};
      const fields = (r.fields ?? {}) as Record<string, protobuf.Message>;
      for (const k of Object.keys(fields).sort()) out[k] = messageJson(lookupType('google.protobuf.Value'), fields[k]!);
      return out;
    }
    case 'google.protobuf.ListValue':
      return ((r.values ?? []) as protobuf.Message[]).map((x) => messageJson(lookupType('google.protobuf.Value'), x));
    case 'google.protobuf.Value': {
      // protobufjs bundles the well-known types with camelCase field names.
      if (own(r, 'numberValue')) return floatJson(r.numberValue as number);
      if (own(r, 'stringValue')) return r.stringValue as string;
      if (own(r, 'boolValue')) return r.boolValue as boolean;
      if (own(r, 'structValue')) return messageJson(lookupType('google.protobuf.Struct'), r.structValue as protobuf.Message);
      if (own(r, 'listValue')) return messageJson(lookupType('google.protobuf.ListValue'), r.listValue as protobuf.Message);
      return null;
    }
    case 'google.protobuf.FieldMask':
      return ((r.paths ?? []) as string[]).map(lowerCamel).join(',');
  }
  const wrapped = WRAPPERS[name]!;
  return scalarJson(wrapped, r.value ?? (wrapped === 'string' ? '' : wrapped === 'bool' ? false : wrapped === 'bytes' ? new Uint8Array() : 0));
}

/** protobufjs keys 64-bit map entries by an 8-character hash of the bits; JSON wants the decimal. */
function mapKeyJson(keyType: string, k: string): string {
  if (!INT64_RANGE[keyType] || k.length !== 8) return k;
  const bits = protobuf.util.LongBits.fromHash(k);
  return int64ToString({ low: bits.lo, high: bits.hi }, keyType === 'uint64' || keyType === 'fixed64');
}

function own(r: Record<string, unknown>, k: string): boolean {
  return Object.hasOwn(r, k) && r[k] !== undefined && r[k] !== null;
}

/** A decoded protobufjs message → proto3-JSON. */
export function messageToJson(type: protobuf.Type, message: protobuf.Message): JsonValue {
  return messageJson(type, message);
}

/** Protobuf → proto3-JSON (snake_case names, defaults omitted, 64-bit ints as strings). */
export function decodeMessage(typeName: string, bytes: Uint8Array): JsonValue {
  const type = lookupType(typeName);
  return messageJson(type, type.decode(bytes));
}

export function decodeResource(typeUrl: string, bytes: Uint8Array): JsonObject {
  return decodeMessage(typeNameOfUrl(typeUrl), bytes) as JsonObject;
}
