// Names the Envoy config, the callouts and the access-log reader must spell alike: the identity
// headers the gateway sets, the ext_authz filter instances (their dynamic metadata is filed under
// these names), the context extensions the translator hands the callout, the access log's name and
// tags, route metadata, and the gateway's own catch-all route.

/**
 * Request headers starting with this are the gateway's own: the edge removes every one a client
 * sends, whatever its name, and the model may not set, add or match one.
 */
export const RESERVED_HEADER_PREFIX = 'x-portico-';

/** Upstream headers the gateway sets on an allowed request (all under RESERVED_HEADER_PREFIX); clients' copies are stripped at the edge. */
export const GATEWAY_HEADERS = {
  partner: 'x-portico-partner',
  product: 'x-portico-product',
  route: 'x-portico-route',
  plan: 'x-portico-plan',
  credential: 'x-portico-credential',
} as const;

/** HTTP filter names of the ext_authz instances: the main one, and combined mode's counting-only one. */
export const EXT_AUTHZ_FILTERS = {
  main: 'envoy.filters.http.ext_authz',
  limits: 'portico.ext_authz.limits',
} as const;

/** Envoy files an ext_authz answer's dynamic metadata under its filter's name: Portico's own instances start so. */
export const PORTICO_EXT_AUTHZ_PREFIX = 'portico.ext_authz';

/** context_extensions key the translator sets on routes whose requests the ext_authz callout also counts… */
export const COMBINED_CONTEXT_KEY = 'ratelimit';
/** …and its value there. */
export const COMBINED_CONTEXT_VALUE = 'combined';

/** Route metadata namespace holding the product and route (read by access logs and tracing). */
export const ROUTE_METADATA_NAMESPACE = 'portico';

/** The access-log service's log name (StreamAccessLogsMessage.identifier.log_name). */
export const ACCESS_LOG_NAME = 'portico';

/** Custom tags every streamed access-log entry carries. */
export const ACCESS_LOG_TAGS = { group: 'group', product: 'product', route: 'route', partner: 'partner' } as const;

/** The route answering what no model route matches (the gateway's JSON 404). */
export const NOT_FOUND_ROUTE = 'portico/not-found';

/**
 * Flows: Envoy sends a flow route to the flow runtime naming it in `flow` (product/route); the
 * runtime's step calls come back to the group's step listener naming the service in `service` and
 * the step in `step` (a span tag when tracing). All are under the reserved prefix: clients cannot set them.
 */
export const FLOW_HEADERS = {
  flow: 'x-portico-flow',
  service: 'x-portico-service',
  step: 'x-portico-flow-step',
} as const;

/** The cluster of the flow runtime, and the listener and route table of each Envoy's step calls (a dot never appears in a model name). */
export const FLOW_NAMES = {
  cluster: 'portico.flows',
  stepListener: 'portico.flows.steps',
  stepRoutes: 'portico.flows.steps',
} as const;
