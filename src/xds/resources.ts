// The contract between the translator and the xDS cache: one gateway group's Envoy resources as
// proto3 JSON, and the checks that a set of them can be encoded and served.
import { encodeResource, ProtoJsonError, TYPE_URLS, type XdsTypeUrl } from './protos.ts';

/**
 * One Envoy resource as proto3 JSON: snake_case field names, durations as "5s", `Any` as an object
 * with "@type". Typed loosely on purpose: the encoder checks it strictly against the proto schema.
 */
export type EnvoyResource = { readonly [field: string]: unknown };

/** Every Envoy resource of one gateway group, each list sorted by name (the translator's output). */
export interface GroupResources {
  /** envoy.config.cluster.v3.Cluster, named by `name`. */
  readonly clusters: readonly EnvoyResource[];
  /** envoy.config.endpoint.v3.ClusterLoadAssignment, named by `cluster_name`. */
  readonly endpoints: readonly EnvoyResource[];
  /** envoy.config.listener.v3.Listener. */
  readonly listeners: readonly EnvoyResource[];
  /** envoy.config.route.v3.RouteConfiguration. */
  readonly routes: readonly EnvoyResource[];
  /** envoy.extensions.transport_sockets.tls.v3.Secret. */
  readonly secrets: readonly EnvoyResource[];
}

export type ResourceKind = keyof GroupResources;

/** Kinds in make-before-break order: what a later kind refers to is delivered first. */
export const RESOURCE_KINDS: readonly ResourceKind[] = ['clusters', 'endpoints', 'secrets', 'listeners', 'routes'];

export const KIND_TYPE_URL: Readonly<Record<ResourceKind, XdsTypeUrl>> = {
  clusters: TYPE_URLS.cluster,
  endpoints: TYPE_URLS.endpoint,
  secrets: TYPE_URLS.secret,
  listeners: TYPE_URLS.listener,
  routes: TYPE_URLS.route,
};

export function emptyGroupResources(): GroupResources {
  return { clusters: [], endpoints: [], listeners: [], routes: [], secrets: [] };
}

/** The name a resource is known by in xDS (`cluster_name` for ClusterLoadAssignment). */
export function resourceName(kind: ResourceKind, r: EnvoyResource): string | undefined {
  const n = kind === 'endpoints' ? r.cluster_name : r.name;
  return typeof n === 'string' && n !== '' ? n : undefined;
}

/** Why one resource cannot be served. */
export interface ResourceProblem {
  kind: ResourceKind;
  /** Resource name, or `#index` when it has none. */
  name: string;
  /** JSON path inside the resource ($ when the problem is the resource as a whole). */
  path: string;
  message: string;
}

export class GroupResourcesError extends Error {
  constructor(
    readonly group: string,
    readonly problems: readonly ResourceProblem[],
  ) {
    const first = problems.slice(0, 5).map((p) => `${p.kind}/${p.name} ${p.path}: ${p.message}`);
    super(`gateway group ${group}: ${problems.length} invalid Envoy resource(s): ${first.join('; ')}${problems.length > 5 ? '; …' : ''}`);
    this.name = 'GroupResourcesError';
  }
}

/**
 * Encodes one resource, reporting instead of throwing. The translator's validation gate can call
 * this (through checkGroupResources) to refuse a model whose Envoy config could not be served.
 */
export function tryEncode(kind: ResourceKind, index: number, r: EnvoyResource): { name: string; bytes: Uint8Array } | ResourceProblem {
  const name = resourceName(kind, r);
  const label = name ?? `#${index}`;
  if (!name) return { kind, name: label, path: '$', message: `missing ${kind === 'endpoints' ? 'cluster_name' : 'name'}` };
  try {
    return { name, bytes: encodeResource(KIND_TYPE_URL[kind], r) };
  } catch (e) {
    if (e instanceof ProtoJsonError) return { kind, name: label, path: e.path, message: e.reason };
    throw e;
  }
}

/** Every problem that would stop these resources from being served (encoding errors, duplicate names). */
export function checkGroupResources(resources: GroupResources): ResourceProblem[] {
  const problems: ResourceProblem[] = [];
  for (const kind of RESOURCE_KINDS) {
    const seen = new Set<string>();
    const list = resources[kind];
    if (!Array.isArray(list)) {
      problems.push({ kind, name: '-', path: '$', message: `${kind} must be an array` });
      continue;
    }
    list.forEach((r, i) => {
      const out = tryEncode(kind, i, r);
      if ('message' in out) problems.push(out);
      else if (seen.has(out.name)) problems.push({ kind, name: out.name, path: '$', message: 'duplicate name' });
      else seen.add(out.name);
    });
  }
  return problems;
}
