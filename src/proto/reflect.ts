// What the codec needs to know of a message type, computed once per type: fields by proto and JSON
// name, in number order, presence, real oneofs, and whether it is a well-known type with its own JSON.
import protobuf from 'protobufjs';

export const WRAPPERS: Record<string, string> = {
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
export const SPECIAL_JSON = new Set([
  'google.protobuf.Any',
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  ...Object.keys(WRAPPERS),
]);

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
  /** The full name, without the leading dot (protobufjs's fullName walks the parents on every read). */
  name: string;
}
const infoCache = new WeakMap<protobuf.Type, TypeInfo>();

export function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function info(type: protobuf.Type): TypeInfo {
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
  i = { byName, ordered, oneofs, presence, special: SPECIAL_JSON.has(name) ? name : undefined, name };
  infoCache.set(type, i);
  return i;
}

export function fullName(type: protobuf.Type): string {
  return type.fullName.slice(1);
}
