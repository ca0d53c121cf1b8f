// Building blocks for the hand-written protobuf readers and writers on the hot paths (ext_authz,
// rate limits, access logs): field numbers looked up in the loaded Envoy protos, wire types, tags.
import type protobuf from 'protobufjs';
import { lookupType } from './load.ts';

/** Wire types used by Envoy's messages on the hot paths. */
export const VARINT = 0;
export const LEN = 2;

/** The number of field `name` in a loaded message type: a renamed or missing field fails at startup, not on the wire. */
export function fieldNumber(typeName: string, name: string): number {
  const f = lookupType(typeName).fields[name];
  if (!f) throw new Error(`${typeName} has no field ${name}`);
  return f.id;
}

/** A field's tag as it appears on the wire. */
export const tag = (id: number, wire: number): number => (id << 3) | wire;

/** Tags of a map<string, string> entry's key and value. */
export const MAP_KEY = tag(1, LEN);
export const MAP_VALUE = tag(2, LEN);

/** Reads one map<string, string> entry ending at `end`. */
export function readStringMapEntry(r: protobuf.Reader, end: number): [string, string] {
  let k = '';
  let v = '';
  while (r.pos < end) {
    const t = r.uint32();
    if (t === MAP_KEY) k = r.string();
    else if (t === MAP_VALUE) v = r.string();
    else r.skipType(t & 7);
  }
  return [k, v];
}
