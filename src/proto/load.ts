// Where Envoy's API comes from, and nothing else: loads the .proto files of @grpc/grpc-js-xds's deps
// (imports followed) into one protobufjs root at first use, and finds types and services in it.
// Swapping the proto source (e.g. for a package that ships the Envoy 1.40 API) changes this file only.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

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
