// gRPC API descriptions for JSON transcoding: a service's FileDescriptorSet (base64, as the model
// holds it) decoded to list its services and methods, narrowed to the methods a route exposes, and
// built from .proto sources (the CLI's `portico protoset`). Pure, except loadProtoSources (reads files).
// `google.api.http` annotations survive every step: protobufjs drops fields it does not know, so
// MethodOptions here knows the annotation's field (72295728, a google.api.HttpRule).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';
import 'protobufjs/ext/descriptor/index.js';

const require = createRequire(import.meta.url);
const HTTP_RULE_FIELD = 72295728;

const root = protobuf.Root.fromJSON(require('protobufjs/google/protobuf/descriptor.json'));
root.addJSON((require('protobufjs/google/api/http.json') as { nested: Record<string, protobuf.AnyNestedObject> }).nested);
root.lookupType('google.protobuf.MethodOptions').add(new protobuf.Field('googleApiHttp', HTTP_RULE_FIELD, '.google.api.HttpRule'));
const FileDescriptorSet = root.lookupType('google.protobuf.FileDescriptorSet');

interface MethodProto {
  name?: string;
  options?: { googleApiHttp?: Record<string, unknown> };
}
interface FileProto {
  name?: string;
  package?: string;
  dependency?: string[];
  service?: Array<{ name?: string; method?: MethodProto[] }>;
}
interface DescriptorSet {
  file?: FileProto[];
}

/** A descriptor set as plain objects, or why it is not one. */
export function decodeDescriptorSet(base64: string): DescriptorSet | string {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length === 0 || bytes.toString('base64').replace(/=+$/, '') !== base64.replace(/=+$/, '')) return 'is not base64';
  try {
    const set = FileDescriptorSet.toObject(FileDescriptorSet.decode(bytes), { defaults: false }) as DescriptorSet;
    if (!set.file?.length) return 'holds no .proto file';
    return set;
  } catch (e) {
    return `is not a protobuf FileDescriptorSet (${(e as Error).message})`;
  }
}

/** Fully-qualified service name → its method names. */
export function grpcMethods(set: DescriptorSet): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of set.file ?? []) {
    for (const s of f.service ?? [])
      out.set(
        f.package ? `${f.package}.${s.name}` : String(s.name),
        (s.method ?? []).map((m) => String(m.name)),
      );
  }
  return out;
}

/**
 * The descriptor set a route hands Envoy: every method of the named services, or only the listed
 * ones (`package.Service/Method`) when it names some, so Envoy transcodes nothing else.
 */
export function narrowDescriptorSet(base64: string, methods: readonly string[] | undefined): string {
  if (!methods?.length) return base64;
  const set = decodeDescriptorSet(base64);
  if (typeof set === 'string') throw new Error(`descriptor set ${set}`);
  const keep = new Set(methods);
  for (const f of set.file ?? []) {
    for (const s of f.service ?? []) {
      const service = f.package ? `${f.package}.${s.name}` : String(s.name);
      if ([...keep].some((m) => m.startsWith(`${service}/`))) s.method = (s.method ?? []).filter((m) => keep.has(`${service}/${m.name}`));
    }
  }
  return Buffer.from(FileDescriptorSet.encode(FileDescriptorSet.fromObject(set)).finish()).toString('base64');
}

/** Where protobufjs keeps its copies of google/api/*.proto and google/protobuf/*.proto (for imports of .proto sources). */
export const BUNDLED_PROTO_DIR = path.dirname(require.resolve('protobufjs/package.json'));

/**
 * Parses .proto files with protobufjs (no protoc): imports resolve against the include directories,
 * then the importing file's own directory; google/api and google/protobuf imports use protobufjs's copies.
 */
export function loadProtoSources(files: readonly string[], includeDirs: readonly string[] = []): protobuf.Root {
  const parsed = new protobuf.Root();
  parsed.resolvePath = (origin, target) => {
    if (target.startsWith('google/api/') || target.startsWith('google/protobuf/')) return path.join(BUNDLED_PROTO_DIR, target);
    if (path.isAbsolute(target) || !origin) return target;
    for (const dir of includeDirs) if (existsSync(path.join(dir, target))) return path.join(dir, target);
    return protobuf.util.path.resolve(origin, target);
  };
  parsed.loadSync([...files], { keepCase: true });
  return parsed;
}

/**
 * A FileDescriptorSet (base64) from .proto sources protobufjs has parsed, `google.api.http`
 * annotations included (protobufjs's own descriptor writer drops custom options).
 */
export function descriptorSetFromRoot(parsed: protobuf.Root): string {
  const built = (parsed as unknown as { toDescriptor(syntax: string): protobuf.Message }).toDescriptor('proto3');
  const set = (built.constructor as unknown as protobuf.Type).toObject(built, { defaults: false }) as DescriptorSet;
  // protobufjs writes one file per package (no imports listed). The google.api file only declares the
  // annotation, which Envoy knows already; every other file imports the files whose packages it uses,
  // and comes after them (Envoy builds the files in order).
  const files = (set.file ?? []).filter((f) => f.package !== 'google.api');
  const uses = (f: FileProto, g: FileProto) => f !== g && g.package !== undefined && JSON.stringify({ m: (f as Record<string, unknown>).messageType, s: f.service }).includes(`${g.package}.`);
  for (const f of files) f.dependency = files.filter((g) => uses(f, g)).map((g) => String(g.name));
  const ordered: FileProto[] = [];
  const visit = (f: FileProto, path: Set<FileProto>) => {
    if (ordered.includes(f) || path.has(f)) return;
    path.add(f);
    for (const d of f.dependency ?? []) visit(files.find((g) => g.name === d)!, path);
    ordered.push(f);
  };
  for (const f of files) visit(f, new Set());
  set.file = ordered.filter((f) => f.package !== 'google.protobuf' || ordered.some((g) => g.dependency?.includes(String(f.name))));
  for (const f of set.file) {
    for (const s of f.service ?? []) {
      const service = parsed.lookupService(f.package ? `${f.package}.${s.name}` : String(s.name));
      for (const m of s.method ?? []) {
        const rule = service.methods[String(m.name)]?.parsedOptions?.find((o: Record<string, unknown>) => '(google.api.http)' in o)?.['(google.api.http)'];
        if (rule) m.options = { ...m.options, googleApiHttp: rule as Record<string, unknown> };
      }
    }
  }
  return Buffer.from(FileDescriptorSet.encode(FileDescriptorSet.fromObject(set)).finish()).toString('base64');
}

/** Problems of a route's gRPC settings (transcode, grpcWeb) against its service: [field, message]. */
export function grpcRouteProblems(
  route: { service?: string; backends?: unknown; transcode?: { services: string[]; methods?: string[] }; grpcWeb?: boolean },
  service: { name: string; protocol?: string; grpc?: { descriptorSet: string } } | undefined,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const field of ['transcode', 'grpcWeb'] as const) {
    if (!route[field]) continue;
    if (!route.service) out.push([field, 'needs a route to one service (not backends or a direct response)']);
    else if (service && service.protocol !== 'http2') out.push([field, `needs a gRPC upstream: service '${service.name}' must have protocol http2`]);
  }
  const t = route.transcode;
  if (!t || !service || out.length) return out;
  if (!service.grpc) return [...out, ['transcode', `service '${service.name}' has no grpc.descriptorSet describing its API`]];
  const set = decodeDescriptorSet(service.grpc.descriptorSet);
  if (typeof set === 'string') return out; // reported on the service
  const methods = grpcMethods(set);
  t.services.forEach((s, i) => {
    if (!methods.has(s)) out.push([`transcode.services[${i}]`, `service '${s}' is not in the descriptor set of '${service.name}' (it has ${[...methods.keys()].join(', ') || 'none'})`]);
  });
  t.methods?.forEach((m, i) => {
    const [svc = '', name = ''] = m.split('/');
    if (!t.services.includes(svc)) out.push([`transcode.methods[${i}]`, `method '${m}' is not of a service listed in transcode.services`]);
    else if (methods.has(svc) && !methods.get(svc)!.includes(name))
      out.push([`transcode.methods[${i}]`, `method '${m}' is not in the descriptor set of '${service.name}' (${svc} has ${methods.get(svc)!.join(', ')})`]);
  });
  return out;
}
