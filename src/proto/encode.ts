// Strict proto3 JSON → protobuf over the loaded types: an unknown field, a wrong type or an out-of-range
// value is an error naming its JSON path (protobufjs's fromObject would drop it silently); fields are
// written in number order and map keys sorted, so equal JSON always gives equal bytes.
import protobuf from 'protobufjs';
import { decodeMessage } from './decode.ts';
import { ProtoJsonError } from './json.ts';
import { findType, lookupType } from './load.ts';
import { SPECIAL_JSON, WRAPPERS, fullName, info } from './reflect.ts';
import { DURATION_MAX_SECONDS, WIRE, describe, isDefaultScalar, isPlainObject, keyPath, longBits, parseScalar, writeScalarValue, type Scalar } from './scalars.ts';
import { typeNameOfUrl } from './type-urls.ts';

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

/**
 * Encodings of sub-messages remembered by the identity of their JSON object, for chosen message types:
 * a resource rebuilt around objects it shared with an earlier one (a route configuration whose other
 * routes did not change) re-encodes only the new parts. The objects must not change once encoded.
 */
export class EncodedParts {
  private readonly types: ReadonlySet<string>;
  private readonly memo = new WeakMap<object, { type: protobuf.Type; bytes: Uint8Array }>();
  /** Sub-messages encoded (misses), for tests and benchmarks. */
  encoded = 0;

  /** `typeNames`: full message names (e.g. envoy.config.route.v3.Route) whose encodings are kept. */
  constructor(typeNames: readonly string[]) {
    this.types = new Set(typeNames);
  }

  /** Whether `v` was encoded before (as any kept type): a container of such parts costs little to encode again. */
  holds(v: unknown): boolean {
    return typeof v === 'object' && v !== null && this.memo.has(v);
  }

  /** The encoding of `v` as `type`, from memory or written now. */
  bytes(type: protobuf.Type, v: object, p: string): Uint8Array | undefined {
    // Asked for every sub-message written: the cached name, not protobufjs's fullName (built anew per read).
    if (!this.types.has(info(type).name)) return undefined;
    const hit = this.memo.get(v);
    if (hit?.type === type) return hit.bytes;
    const w = protobuf.Writer.create();
    writeMessageBody(w, type, v, p);
    const bytes = w.finish();
    this.memo.set(v, { type, bytes });
    this.encoded++;
    return bytes;
  }

  /**
   * Points the remembered encoding of `v` at `bytes` when they are equal: a view into the resource
   * that was written from it, so the part and the resource share one buffer instead of each holding
   * a copy (7 MB each for a virtual host of 10k routes). Anything else is left as it was.
   */
  share(v: unknown, bytes: Uint8Array): void {
    if (typeof v !== 'object' || v === null) return;
    const hit = this.memo.get(v);
    if (!hit || hit.bytes.buffer === bytes.buffer || !Buffer.from(hit.bytes.buffer, hit.bytes.byteOffset, hit.bytes.length).equals(bytes)) return;
    this.memo.set(v, { type: hit.type, bytes });
  }
}

/**
 * A sub-message handed over as its encoding, written as these bytes wherever a message of its type
 * is expected: a translator remembering what it emitted keeps this instead of the JSON (a tenth of
 * the memory). `share` may point it at an equal view inside the buffer of the resource written from
 * it, so the two hold one copy.
 */
export class EncodedMessage {
  // The bytes as (buffer, offset, length), a view made when asked: the memo keeps 20k of these at
  // 10k routes, and a Uint8Array view each cost ~90 bytes more than the two numbers (~1.8 MB).
  private buffer: ArrayBufferLike;
  private offset: number;
  private length: number;

  constructor(
    /** Full message name, e.g. envoy.config.route.v3.Route. */
    readonly typeName: string,
    encoded: Uint8Array,
  ) {
    this.buffer = encoded.buffer;
    this.offset = encoded.byteOffset;
    this.length = encoded.byteLength;
  }

  get bytes(): Uint8Array {
    return new Uint8Array(this.buffer, this.offset, this.length);
  }

  /** Points at `bytes` when they are equal (a view into the resource written from this message). */
  share(bytes: Uint8Array): void {
    if (bytes.buffer !== this.buffer && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(this.bytes)) {
      this.buffer = bytes.buffer;
      this.offset = bytes.byteOffset;
      this.length = bytes.byteLength;
    }
  }

  /** Its own copy of the bytes, so it no longer keeps the buffer of a resource that is gone alive. */
  detach(): void {
    if (this.length !== this.buffer.byteLength) {
      this.buffer = this.bytes.slice().buffer;
      this.offset = 0;
    }
  }

  /** Seen by JSON.stringify as the proto3 JSON it encodes. */
  toJSON(): unknown {
    return decodeMessage(this.typeName, this.bytes);
  }
}

/** The parts memory of the encodeMessage call under way (encoding is synchronous). */
let parts: EncodedParts | undefined;

/** Writes one field element (tag included) for a non-repeated, non-packed occurrence. */
function writeElement(w: protobuf.Writer, f: protobuf.Field, v: unknown, p: string, skipDefault: boolean): void {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) {
    if (v instanceof EncodedMessage) {
      if (v.typeName !== info(rt).name) throw new ProtoJsonError(p, `expected ${info(rt).name}, got an encoded ${v.typeName}`);
      w.uint32((f.id << 3) | 2).bytes(v.bytes);
      return;
    }
    const kept = parts && isPlainObject(v) ? parts.bytes(rt, v, p) : undefined;
    if (kept) {
      w.uint32((f.id << 3) | 2).bytes(kept);
      return;
    }
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
  const m = typeof v === 'string' ? /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|([+-])(\d{2}):(\d{2}))$/.exec(v) : null;
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

/**
 * Strict proto3-JSON → protobuf for a message type name; fields are written in number order (deterministic).
 * With `reuse`, sub-messages of its types already encoded (the same objects) are copied, not re-encoded.
 */
export function encodeMessage(typeName: string, json: unknown, reuse?: EncodedParts): Uint8Array {
  const type = lookupType(typeName);
  const w = protobuf.Writer.create();
  const outer = parts;
  parts = reuse;
  try {
    writeMessageBody(w, type, json, '$');
  } finally {
    parts = outer;
  }
  return w.finish();
}

/** Strict proto3-JSON → protobuf for a resource; throws ProtoJsonError naming the JSON path on any mismatch. */
export function encodeResource(typeUrl: string, json: unknown, reuse?: EncodedParts): Uint8Array {
  return encodeMessage(typeNameOfUrl(typeUrl), json, reuse);
}
