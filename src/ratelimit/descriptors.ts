// The descriptor contract between Envoy's rate-limit filter and Portico's rate-limit service: the
// domain and entry keys the translator must make Envoy send, the Envoy actions that send them, and
// the parser that turns a ShouldRateLimit request into a DecisionRequest (or a precise error).
import { isIP } from 'node:net';
import type { DecisionRequest } from './decision.ts';

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

/** A ShouldRateLimit request, as decoded from protobuf (snake_case, proto3 defaults may be absent). */
export interface RateLimitRequestMessage {
  domain?: string;
  descriptors?: ReadonlyArray<{ entries?: ReadonlyArray<{ key?: string; value?: string }> }>;
  hits_addend?: number;
}

export class DescriptorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DescriptorError';
  }
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
/** Caller-controlled values are accepted as they are (long ones are hashed in counter keys), up to this size. */
const MAX_VALUE_BYTES = 8192;
const MAX_HITS = 1_000_000;

function isAddress(v: string): boolean {
  const slash = v.indexOf('/');
  if (slash < 0) return isIP(v) !== 0;
  const family = isIP(v.slice(0, slash));
  const bits = v.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * Parses one ShouldRateLimit request. Exactly one descriptor is expected (the translator emits one
 * rate_limits entry per route); every problem is reported by what is wrong, never by crashing.
 * Partner, address and route come from the gateway and must be well-formed; header values come
 * from callers and are taken as they are (a malformed one must not switch limiting off).
 */
export function parseRateLimitRequest(msg: RateLimitRequestMessage): DecisionRequest {
  const domain = msg.domain ?? '';
  if (domain !== RATE_LIMIT_DOMAIN) {
    throw new DescriptorError(`unknown domain ${JSON.stringify(domain)}: this service answers domain "${RATE_LIMIT_DOMAIN}"`);
  }
  const descriptors = msg.descriptors ?? [];
  if (descriptors.length !== 1) {
    throw new DescriptorError(`expected exactly one descriptor, got ${descriptors.length}`);
  }
  const hits = msg.hits_addend ?? 0;
  if (!Number.isInteger(hits) || hits < 0 || hits > MAX_HITS) throw new DescriptorError(`hits_addend ${hits} is out of range (0..${MAX_HITS})`);

  const req: DecisionRequest = { product: '', route: '', hits: hits === 0 ? 1 : hits };
  let headers: Record<string, string> | undefined;
  let ip: string | undefined;
  let ipFrom = '';
  const seen = new Set<string>();
  for (const [i, e] of (descriptors[0]!.entries ?? []).entries()) {
    const key = e.key ?? '';
    const value = e.value ?? '';
    const where = `descriptor entry ${i} (${JSON.stringify(key)})`;
    if (seen.has(key)) throw new DescriptorError(`${where}: the key appears twice`);
    seen.add(key);
    if (value === '') throw new DescriptorError(`${where}: empty value`);
    if (Buffer.byteLength(value) > MAX_VALUE_BYTES) throw new DescriptorError(`${where}: value longer than ${MAX_VALUE_BYTES} bytes`);
    switch (key) {
      case DESCRIPTOR_KEYS.route: {
        const slash = value.indexOf('/');
        const product = slash < 0 ? '' : value.slice(0, slash);
        const route = slash < 0 ? '' : value.slice(slash + 1);
        if (!NAME.test(product) || !NAME.test(route)) {
          throw new DescriptorError(`${where}: expected "<product>/<route>" (two resource names), got ${JSON.stringify(value.slice(0, 200))}`);
        }
        req.product = product;
        req.route = route;
        break;
      }
      case DESCRIPTOR_KEYS.partner:
        if (!NAME.test(value)) throw new DescriptorError(`${where}: not a partner name: ${JSON.stringify(value.slice(0, 200))}`);
        req.partner = value;
        break;
      case DESCRIPTOR_KEYS.clientIp:
      case ENVOY_ADDRESS_KEYS.remote:
      case ENVOY_ADDRESS_KEYS.masked:
        if (!isAddress(value)) throw new DescriptorError(`${where}: not an IP address: ${JSON.stringify(value.slice(0, 200))}`);
        // Precedence when several are sent: explicit, then Envoy's exact address, then the masked one.
        if (!ip || rank(key) < rank(ipFrom)) {
          ip = value;
          ipFrom = key;
        }
        break;
      case DESCRIPTOR_KEYS.header:
        req.headerValue = value;
        break;
      default:
        if (key.startsWith(`${DESCRIPTOR_KEYS.header}.`)) {
          const name = key.slice(DESCRIPTOR_KEYS.header.length + 1);
          if (!HEADER_NAME.test(name)) throw new DescriptorError(`${where}: ${JSON.stringify(name)} is not a lower-case header name`);
          (headers ??= {})[name] = value;
          break;
        }
        throw new DescriptorError(
          `${where}: unknown key (expected ${Object.values(DESCRIPTOR_KEYS).join(', ')}, ${DESCRIPTOR_KEYS.header}.<header>, ${ENVOY_ADDRESS_KEYS.remote} or ${ENVOY_ADDRESS_KEYS.masked})`,
        );
    }
  }
  if (!req.product) throw new DescriptorError(`the descriptor has no ${DESCRIPTOR_KEYS.route} entry`);
  if (ip !== undefined) req.clientIp = ip;
  if (headers) req.headers = headers;
  return req;
}

function rank(key: string): number {
  return key === DESCRIPTOR_KEYS.clientIp ? 0 : key === ENVOY_ADDRESS_KEYS.remote ? 1 : 2;
}

// ── what the translator emits ────────────────────────────────────────────────

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
  const actions: Array<Record<string, unknown>> = [
    { generic_key: { descriptor_key: DESCRIPTOR_KEYS.route, descriptor_value: `${input.product}/${input.route}` } },
    { remote_address: {} },
  ];
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
