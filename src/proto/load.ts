// Where Envoy's API comes from, and nothing else: the FileDescriptorSet of Envoy 1.40's API that
// scripts/envoy-api.sh builds from the Go module proxy's go-control-plane (tools/envoy-api), loaded
// whole into one protobufjs root at first use; finds types and services in it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';

/** Built by scripts/setup.sh (scripts/envoy-api.sh); gitignored: generated descriptors are never committed. */
export const ENVOY_API_FILE = fileURLToPath(new URL('../../.cache/envoy-api/envoy-api.binpb', import.meta.url));

function readDescriptorSet(): Uint8Array {
  try {
    return readFileSync(ENVOY_API_FILE);
  } catch (e) {
    throw new Error(`Envoy's API descriptors are missing (${ENVOY_API_FILE}): run scripts/setup.sh, which builds them with Go (${(e as Error).message})`);
  }
}

let loaded: protobuf.Root | undefined;

/** The protobufjs root holding Envoy's whole v3 API and its dependencies (loaded once, synchronously, on first use). */
export function protoRoot(): protobuf.Root {
  if (loaded) return loaded;
  const set = descriptor.FileDescriptorSet.decode(readDescriptorSet());
  // Field names stay as declared (snake_case), the names the codec and the translator use.
  const root = (protobuf.Root as unknown as { fromDescriptor(set: unknown): protobuf.Root }).fromDescriptor(set);
  restoreMaps(root);
  root.resolveAll();
  loaded = root;
  return root;
}

/**
 * protobufjs's descriptor import leaves a map as a repeated field of its `XxxEntry` message (as the
 * wire sees it); the codec needs map fields (JSON objects, not arrays), as .proto parsing makes them.
 */
function restoreMaps(ns: protobuf.NamespaceBase): void {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) {
      for (const field of [...nested.fieldsArray]) {
        const entry = field.resolvedType;
        // (It also marks the entry's parent map_entry, so the entry is recognised by where it sits too.)
        if (!field.repeated || !(entry instanceof protobuf.Type) || entry.options?.map_entry !== true || entry.parent !== nested) continue;
        const key = entry.fields.key;
        const value = entry.fields.value;
        if (key?.id !== 1 || value?.id !== 2) continue;
        nested.remove(field);
        nested.add(new protobuf.MapField(field.name, field.id, key.type, value.resolvedType ? value.resolvedType.fullName : value.type, field.options));
      }
    }
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) restoreMaps(nested);
  }
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
