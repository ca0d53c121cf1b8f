// The contract between the translator and the xDS cache: one gateway group's Envoy resources as
// proto3 JSON, by kind (src/xds/check.ts tells whether a set of them can be encoded and served).

/**
 * One Envoy resource as proto3 JSON: snake_case field names, durations as "5s", `Any` as an object
 * with "@type". Typed loosely on purpose: the encoder checks it strictly against the proto schema.
 */
export type EnvoyResource = { readonly [field: string]: unknown };

/**
 * Every Envoy resource of one gateway group, each list sorted by name (the translator's output).
 * Immutable once handed over: the xDS cache remembers each resource's encoding by object identity,
 * so a producer reusing the objects of unchanged resources makes a change cost only what changed.
 */
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

export function emptyGroupResources(): GroupResources {
  return { clusters: [], endpoints: [], listeners: [], routes: [], secrets: [] };
}

/** The name a resource is known by in xDS (`cluster_name` for ClusterLoadAssignment). */
export function resourceName(kind: ResourceKind, r: EnvoyResource): string | undefined {
  const n = kind === 'endpoints' ? r.cluster_name : r.name;
  return typeof n === 'string' && n !== '' ? n : undefined;
}
