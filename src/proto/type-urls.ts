// Type URLs: of the five resource types a gateway group is served (by the translator's plural kind
// names and by the singular names xDS code uses), and the message name inside any type URL.

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** Type URLs of the five resource types a gateway group is served, by resource kind. */
export const RESOURCE_TYPES = {
  clusters: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoints: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listeners: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  routes: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  secrets: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

/** Type URLs of the resources Portico serves (the translator's, by the singular names xDS code uses). */
export const TYPE_URLS = {
  cluster: RESOURCE_TYPES.clusters,
  endpoint: RESOURCE_TYPES.endpoints,
  listener: RESOURCE_TYPES.listeners,
  route: RESOURCE_TYPES.routes,
  secret: RESOURCE_TYPES.secrets,
} as const;
export type XdsTypeUrl = (typeof TYPE_URLS)[keyof typeof TYPE_URLS];

export function typeNameOfUrl(typeUrl: string): string {
  const i = typeUrl.lastIndexOf('/');
  return i >= 0 ? typeUrl.slice(i + 1) : typeUrl;
}
