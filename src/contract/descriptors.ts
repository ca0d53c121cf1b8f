// The descriptor contract between Envoy's rate-limit filter and Portico's rate-limit service: the
// domain and entry keys the translator must make Envoy send and the Envoy actions that send them
// (src/ratelimit/descriptors.ts parses what arrives).

/** The rate-limit domain Portico's Envoy filters use. */
export const RATE_LIMIT_DOMAIN = 'portico';

/** Descriptor entry keys. */
export const DESCRIPTOR_KEYS = {
  /** "<product>/<route>" — required; a generic_key action with this descriptor_key. */
  route: 'portico_route',
  /** The authenticated partner's name (set by ext_authz); absent for anonymous callers. */
  partner: 'portico_partner',
  /** Client address; Envoy's remote_address action sends `remote_address` instead, also accepted. */
  clientIp: 'portico_client_ip',
  /** Value of the header the plan counts by (when exactly one header name is relevant). */
  header: 'portico_header',
} as const;

/** Keys Envoy's built-in address actions use (fixed by Envoy, no descriptor_key field). */
export const ENVOY_ADDRESS_KEYS = { remote: 'remote_address', masked: 'masked_remote_address' } as const;

/** `portico_header.<lower-case header name>`: the value of that request header. */
export function headerDescriptorKey(headerName: string): string {
  return `${DESCRIPTOR_KEYS.header}.${headerName.toLowerCase()}`;
}

/** Where Envoy finds the partner name ext_authz established. */
export type PartnerSource =
  /** A request header ext_authz sets (and the edge strips from clients), e.g. x-portico-partner. */
  | { header: string }
  /** A string in ext_authz's dynamic metadata, e.g. namespace envoy.filters.http.ext_authz, key partner. */
  | { metadataNamespace: string; metadataKey: string };

export interface RouteActionsInput {
  product: string;
  route: string;
  /** Omit for routes no partner can reach (public-only products). */
  partner?: PartnerSource;
  /** Header names any applicable plan counts by on this route (plan defaults and overrides). */
  countHeaders?: readonly string[];
}

/**
 * The `rate_limits` entry (envoy.config.route.v3.RateLimit, proto3 JSON) for one route: one
 * descriptor holding the route, the partner, the client address and the counted headers. Every
 * optional entry uses skip_if_absent so a missing one drops only that entry, never the descriptor
 * (Envoy otherwise skips the whole call, and the request would go unlimited).
 */
export function routeRateLimit(input: RouteActionsInput): { actions: Array<Record<string, unknown>> } {
  const actions: Array<Record<string, unknown>> = [{ generic_key: { descriptor_key: DESCRIPTOR_KEYS.route, descriptor_value: `${input.product}/${input.route}` } }, { remote_address: {} }];
  const p = input.partner;
  if (p && 'header' in p) {
    actions.push({ request_headers: { header_name: p.header.toLowerCase(), descriptor_key: DESCRIPTOR_KEYS.partner, skip_if_absent: true } });
  } else if (p) {
    actions.push({
      metadata: {
        descriptor_key: DESCRIPTOR_KEYS.partner,
        metadata_key: { key: p.metadataNamespace, path: [{ key: p.metadataKey }] },
        source: 'DYNAMIC',
        skip_if_absent: true,
      },
    });
  }
  for (const h of [...new Set((input.countHeaders ?? []).map((x) => x.toLowerCase()))].sort()) {
    actions.push({ request_headers: { header_name: h, descriptor_key: headerDescriptorKey(h), skip_if_absent: true } });
  }
  return { actions };
}
