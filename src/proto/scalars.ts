// Proto3-JSON scalars, both ways of the codec: parsing a JSON value as int32/int64/float/bytes… with
// range checks, writing it in its wire form, and describing a wrong value for an error message.
import type protobuf from 'protobufjs';
import { ProtoJsonError } from './json.ts';

export const WIRE: Record<string, number> = {
  double: 1,
  float: 5,
  int32: 0,
  uint32: 0,
  sint32: 0,
  fixed32: 5,
  sfixed32: 5,
  int64: 0,
  uint64: 0,
  sint64: 0,
  fixed64: 1,
  sfixed64: 1,
  bool: 0,
  string: 2,
  bytes: 2,
};
export const INT32_RANGE: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647],
  sint32: [-2147483648, 2147483647],
  sfixed32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  fixed32: [0, 4294967295],
};
export const INT64_RANGE: Record<string, [bigint, bigint]> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};
export const FLOAT_MAX = 3.4028234663852886e38;
export const DURATION_MAX_SECONDS = 315576000000n;

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

export function keyPath(base: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** {low, high} two's-complement halves, which protobufjs's Writer accepts for 64-bit fields. */
export function longBits(v: bigint): { low: number; high: number } {
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

export type Scalar = number | bigint | boolean | string | Uint8Array;

export function parseScalar(kind: string, v: unknown, p: string): Scalar {
  switch (kind) {
    case 'int32':
    case 'sint32':
    case 'sfixed32':
    case 'uint32':
    case 'fixed32':
      return parseInt32(kind, v, p);
    case 'int64':
    case 'sint64':
    case 'sfixed64':
    case 'uint64':
    case 'fixed64':
      return parseInt64(kind, v, p);
    case 'double':
    case 'float':
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

export function isDefaultScalar(v: Scalar): boolean {
  if (typeof v === 'number') return Object.is(v, 0);
  if (typeof v === 'bigint') return v === 0n;
  if (typeof v === 'boolean') return !v;
  return v.length === 0;
}

/** 64-bit values go to protobufjs's Writer as {low, high} halves (its typings say number). */
const long = (v: Scalar): number => longBits(v as bigint) as unknown as number;

/** How each scalar kind is written (its value already parsed to the kind's type). */
const WRITERS: Readonly<Record<string, (w: protobuf.Writer, v: Scalar) => void>> = {
  int64: (w, v) => w.int64(long(v)),
  uint64: (w, v) => w.uint64(long(v)),
  sint64: (w, v) => w.sint64(long(v)),
  fixed64: (w, v) => w.fixed64(long(v)),
  sfixed64: (w, v) => w.sfixed64(long(v)),
  int32: (w, v) => w.int32(v as number),
  uint32: (w, v) => w.uint32(v as number),
  sint32: (w, v) => w.sint32(v as number),
  fixed32: (w, v) => w.fixed32(v as number),
  sfixed32: (w, v) => w.sfixed32(v as number),
  double: (w, v) => w.double(v as number),
  float: (w, v) => w.float(v as number),
  bool: (w, v) => w.bool(v as boolean),
  string: (w, v) => w.string(v as string),
  bytes: (w, v) => w.bytes(v as Uint8Array),
};

export function writeScalarValue(w: protobuf.Writer, kind: string, v: Scalar): void {
  WRITERS[kind]?.(w, v);
}
