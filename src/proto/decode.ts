// Protobuf → proto3 JSON over the loaded types (snake_case names, defaults omitted, 64-bit integers
// as strings, map keys sorted): for debug views, tests and the generic gRPC codec.
import protobuf from 'protobufjs';
import type { JsonObject, JsonValue } from './json.ts';
import { findType, lookupType } from './load.ts';
import { SPECIAL_JSON, WRAPPERS, fullName, info, lowerCamel } from './reflect.ts';
import { INT64_RANGE } from './scalars.ts';
import { typeNameOfUrl } from './type-urls.ts';

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
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return int64ToString(v, false);
    case 'uint64':
    case 'fixed64':
      return int64ToString(v, true);
    case 'double':
    case 'float':
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
      // Envoy's descriptor set declares the well-known types too, so their fields keep proto names.
      if (own(r, 'number_value')) return floatJson(r.number_value as number);
      if (own(r, 'string_value')) return r.string_value as string;
      if (own(r, 'bool_value')) return r.bool_value as boolean;
      if (own(r, 'struct_value')) return messageJson(lookupType('google.protobuf.Struct'), r.struct_value as protobuf.Message);
      if (own(r, 'list_value')) return messageJson(lookupType('google.protobuf.ListValue'), r.list_value as protobuf.Message);
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
