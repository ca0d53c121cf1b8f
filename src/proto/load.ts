// Where Envoy's API comes from, and nothing else: the FileDescriptorSet of Envoy 1.40's API that
// scripts/envoy-api.sh builds from the Go module proxy's go-control-plane (tools/envoy-api); finds
// types and services in it, loading only the files Portico's packages need (and any other on demand).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';

/** Built by scripts/setup.sh (scripts/envoy-api.sh); gitignored: generated descriptors are never committed. */
export const ENVOY_API_FILE = fileURLToPath(new URL('../../.cache/envoy-api/envoy-api.binpb', import.meta.url));

/**
 * The packages whose files (and what they import) are loaded at first use: every type Portico names
 * or emits lives in one of them (test/unit/proto-load.test.ts checks the sources and the goldens).
 * Building all 544 files of the set cost ~0.6 CPU-s and ~30 MB of heap at every start, for the ~160
 * used. A type outside these packages still loads, on its first lookup (see `lookupName`), so this
 * list only decides what is ready at start, never what can be encoded.
 */
export const PRELOADED_PACKAGES: readonly string[] = [
  'envoy.config.cluster.v3',
  'envoy.config.core.v3',
  'envoy.config.endpoint.v3',
  'envoy.config.listener.v3',
  'envoy.config.route.v3',
  'envoy.config.trace.v3',
  'envoy.data.accesslog.v3',
  'envoy.extensions.access_loggers.filters.cel.v3',
  'envoy.extensions.access_loggers.grpc.v3',
  'envoy.extensions.access_loggers.stream.v3',
  'envoy.extensions.common.matching.v3',
  'envoy.extensions.compression.brotli.compressor.v3',
  'envoy.extensions.compression.gzip.compressor.v3',
  'envoy.extensions.compression.zstd.compressor.v3',
  'envoy.extensions.filters.common.matcher.action.v3',
  'envoy.extensions.filters.http.api_key_auth.v3',
  'envoy.extensions.filters.http.cache_v2.v3',
  'envoy.extensions.filters.http.compressor.v3',
  'envoy.extensions.filters.http.cors.v3',
  'envoy.extensions.filters.http.custom_response.v3',
  'envoy.extensions.filters.http.ext_authz.v3',
  'envoy.extensions.filters.http.ext_proc.v3',
  'envoy.extensions.filters.http.grpc_json_transcoder.v3',
  'envoy.extensions.filters.http.grpc_web.v3',
  'envoy.extensions.filters.http.header_mutation.v3',
  'envoy.extensions.filters.http.jwt_authn.v3',
  'envoy.extensions.filters.http.local_ratelimit.v3',
  'envoy.extensions.filters.http.lua.v3',
  'envoy.extensions.filters.http.ratelimit.v3',
  'envoy.extensions.filters.http.rbac.v3',
  'envoy.extensions.filters.http.router.v3',
  'envoy.extensions.filters.http.upstream_codec.v3',
  // The flows Wasm filter (flows run by Envoy: execution: envoy).
  'envoy.extensions.filters.http.wasm.v3',
  'envoy.extensions.filters.listener.tls_inspector.v3',
  'envoy.extensions.filters.network.http_connection_manager.v3',
  'envoy.extensions.http.cache_v2.simple_http_cache.v3',
  'envoy.extensions.http.custom_response.local_response_policy.v3',
  'envoy.extensions.path.match.uri_template.v3',
  // The access RBAC's email SAN principal (native mTLS: an address holding a comma).
  'envoy.extensions.rbac.principals.mtls_authenticated.v3',
  'envoy.extensions.resource_monitors.downstream_connections.v3',
  'envoy.extensions.resource_monitors.fixed_heap.v3',
  'envoy.extensions.transport_sockets.tls.v3',
  'envoy.extensions.upstreams.http.v3',
  'envoy.service.accesslog.v3',
  'envoy.service.auth.v3',
  'envoy.service.cluster.v3',
  'envoy.service.discovery.v3',
  'envoy.service.endpoint.v3',
  'envoy.service.ext_proc.v3',
  'envoy.service.listener.v3',
  'envoy.service.ratelimit.v3',
  'envoy.service.route.v3',
  'envoy.service.secret.v3',
  'envoy.type.matcher.v3',
  'envoy.type.v3',
  'google.protobuf',
  'google.rpc',
  'xds.type.v3',
];

interface FileProto {
  name?: string;
  package?: string;
  dependency?: string[];
  messageType?: Array<{ name?: string; nestedType?: unknown[]; enumType?: unknown[] }>;
  enumType?: Array<{ name?: string }>;
  service?: Array<{ name?: string }>;
}

function readDescriptorSet(): FileProto[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(ENVOY_API_FILE);
  } catch (e) {
    throw new Error(`Envoy's API descriptors are missing (${ENVOY_API_FILE}): run scripts/setup.sh, which builds them with Go (${(e as Error).message})`);
  }
  return (descriptor.FileDescriptorSet.decode(bytes) as unknown as { file: FileProto[] }).file;
}

/** The files some root holds: a name declared in one of them is answered by that root or by none. */
const loadedFiles = new Set<string>();

/** One protobufjs root holding `wanted` files and every file they import (a complete, resolvable set). */
function buildRoot(files: readonly FileProto[], wanted: (f: FileProto) => boolean): protobuf.Root {
  const byName = new Map(files.map((f) => [f.name, f]));
  const keep = new Set<FileProto>();
  const add = (f: FileProto | undefined) => {
    if (!f || keep.has(f)) return;
    keep.add(f);
    for (const d of f.dependency ?? []) add(byName.get(d));
  };
  for (const f of files) if (wanted(f)) add(f);
  for (const f of keep) loadedFiles.add(f.name ?? '');
  const set = descriptor.FileDescriptorSet.create({ file: files.filter((f) => keep.has(f)) } as never);
  // Field names stay as declared (snake_case), the names the codec and the translator use.
  const root = (protobuf.Root as unknown as { fromDescriptor(set: unknown): protobuf.Root }).fromDescriptor(set);
  restoreMaps(root);
  root.resolveAll();
  return root;
}

/** Every message, enum and service of the set (nested ones too) by full name → the file declaring it. */
function declarations(files: readonly FileProto[]): Map<string, string> {
  type Decl = { name?: string; nestedType?: Decl[]; enumType?: Decl[] };
  const out = new Map<string, string>();
  const walk = (prefix: string, decls: readonly Decl[] | undefined, file: string): void => {
    for (const d of decls ?? []) {
      const full = prefix ? `${prefix}.${d.name}` : String(d.name);
      out.set(full, file);
      walk(full, d.nestedType, file);
      walk(full, d.enumType, file);
    }
  };
  for (const f of files) for (const decls of [f.messageType, f.enumType, f.service]) walk(f.package ?? '', decls as Decl[], f.name ?? '');
  return out;
}

// The preloaded root first, then one root per file loaded on demand. A root is complete by itself
// (its files' imports included), so a type found in any of them encodes and decodes on its own; a
// type inside an Any is looked up again by its URL, so types from different roots never need to meet.
const roots: protobuf.Root[] = [];
/** Built at the first lookup the roots cannot answer, so a name the set lacks costs a map lookup after that. */
let declared: Map<string, string> | undefined;

/** The root holding Portico's packages (built once, synchronously, on first use); tests may add test-only types to it. */
export function protoRoot(): protobuf.Root {
  if (!roots[0]) {
    const preloaded = new Set(PRELOADED_PACKAGES);
    roots.push(buildRoot(readDescriptorSet(), (f) => preloaded.has(f.package ?? '')));
  }
  return roots[0]!;
}

/** How many roots were built on demand (for a type outside the preloaded packages): tests check start needs none. */
export function rootsLoadedOnDemand(): number {
  return Math.max(roots.length - 1, 0);
}

/**
 * A declaration by full name (`is` says which kind): from a root already built, or else from a root
 * built now for the file declaring it (the set is decoded again: this is rare, and keeping it decoded
 * for it would hold ~15 MB for nothing; only the name index is kept).
 */
function lookupName<T extends protobuf.ReflectionObject>(name: string, is: (o: protobuf.ReflectionObject) => o is T): T | undefined {
  protoRoot();
  for (const root of roots) {
    const found = root.lookup(name);
    if (found && is(found)) return found;
  }
  if (declared && !declared.has(name)) return undefined;
  const files = readDescriptorSet();
  declared ??= declarations(files);
  const file = declared.get(name);
  if (file === undefined || loadedFiles.has(file)) return undefined;
  const root = buildRoot(files, (f) => f.name === file);
  roots.push(root);
  const found = root.lookup(name);
  return found && is(found) ? found : undefined;
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

/** A message type by full name (with or without a leading dot), or undefined when Envoy's API has none. */
export function findType(name: string): protobuf.Type | undefined {
  const key = name.startsWith('.') ? name.slice(1) : name;
  let t = typeCache.get(key);
  if (t === undefined) {
    t = lookupName(key, (o): o is protobuf.Type => o instanceof protobuf.Type) ?? null;
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
  const s = lookupName(name, (o): o is protobuf.Service => o instanceof protobuf.Service);
  if (!s) throw new Error(`protobuf service ${name} is not loaded`);
  return s;
}
