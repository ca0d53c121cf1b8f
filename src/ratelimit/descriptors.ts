// The rate-limit service's side of the descriptor contract (src/contract/descriptors.ts): the parser
// that turns a ShouldRateLimit request into a DecisionRequest, or a precise error.
import { isIP } from 'node:net';
import { DESCRIPTOR_KEYS, ENVOY_ADDRESS_KEYS, RATE_LIMIT_DOMAIN } from '../contract/index.ts';
import type { DecisionRequest } from './decision.ts';

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
  const entries = descriptors[0]!.entries ?? [];
  // Hot path: an indexed loop, and the few fixed keys tracked in a bit set instead of a Set.
  let seen = 0;
  let seenHeaders: Set<string> | undefined;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const key = e.key ?? '';
    const value = e.value ?? '';
    const bit = KEY_BITS[key] ?? 0;
    if (bit) {
      if (seen & bit) throw new DescriptorError(`${where(i, key)}: the key appears twice`);
      seen |= bit;
    }
    if (value === '') throw new DescriptorError(`${where(i, key)}: empty value`);
    if (value.length > MAX_VALUE_BYTES / 4 && Buffer.byteLength(value) > MAX_VALUE_BYTES) {
      throw new DescriptorError(`${where(i, key)}: value longer than ${MAX_VALUE_BYTES} bytes`);
    }
    switch (key) {
      case DESCRIPTOR_KEYS.route: {
        const r = routeValue(value);
        if (!r) throw new DescriptorError(`${where(i, key)}: expected "<product>/<route>" (two resource names), got ${JSON.stringify(value.slice(0, 200))}`);
        req.product = r.product;
        req.route = r.route;
        break;
      }
      case DESCRIPTOR_KEYS.partner:
        if (!isName(value)) throw new DescriptorError(`${where(i, key)}: not a partner name: ${JSON.stringify(value.slice(0, 200))}`);
        req.partner = value;
        break;
      case DESCRIPTOR_KEYS.clientIp:
      case ENVOY_ADDRESS_KEYS.remote:
      case ENVOY_ADDRESS_KEYS.masked:
        if (!isAddress(value)) throw new DescriptorError(`${where(i, key)}: not an IP address: ${JSON.stringify(value.slice(0, 200))}`);
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
        if (key.startsWith(HEADER_PREFIX)) {
          const name = key.slice(HEADER_PREFIX.length);
          if (!HEADER_NAME.test(name)) throw new DescriptorError(`${where(i, key)}: ${JSON.stringify(name)} is not a lower-case header name`);
          seenHeaders ??= new Set();
          if (seenHeaders.has(name)) throw new DescriptorError(`${where(i, key)}: the key appears twice`);
          seenHeaders.add(name);
          (headers ??= {})[name] = value;
          break;
        }
        throw new DescriptorError(
          `${where(i, key)}: unknown key (expected ${Object.values(DESCRIPTOR_KEYS).join(', ')}, ${HEADER_PREFIX}<header>, ${ENVOY_ADDRESS_KEYS.remote} or ${ENVOY_ADDRESS_KEYS.masked})`,
        );
    }
  }
  if (!req.product) throw new DescriptorError(`the descriptor has no ${DESCRIPTOR_KEYS.route} entry`);
  if (ip !== undefined) req.clientIp = ip;
  if (headers) req.headers = headers;
  return req;
}

const HEADER_PREFIX = `${DESCRIPTOR_KEYS.header}.`;
const KEY_BITS: Record<string, number> = {
  [DESCRIPTOR_KEYS.route]: 1,
  [DESCRIPTOR_KEYS.partner]: 2,
  [DESCRIPTOR_KEYS.clientIp]: 4,
  [DESCRIPTOR_KEYS.header]: 8,
  [ENVOY_ADDRESS_KEYS.remote]: 16,
  [ENVOY_ADDRESS_KEYS.masked]: 32,
};

function where(i: number, key: string): string {
  return `descriptor entry ${i} (${JSON.stringify(key)})`;
}

// Route and partner values come from the gateway's own config, so there are few distinct ones:
// remember the valid ones (bounded) instead of re-running the regular expressions per request.
const MAX_REMEMBERED = 10_000;
const routes = new Map<string, { product: string; route: string }>();
const names = new Set<string>();

function routeValue(value: string): { product: string; route: string } | undefined {
  const hit = routes.get(value);
  if (hit) return hit;
  const slash = value.indexOf('/');
  const product = slash < 0 ? '' : value.slice(0, slash);
  const route = slash < 0 ? '' : value.slice(slash + 1);
  if (!NAME.test(product) || !NAME.test(route)) return undefined;
  const r = { product, route };
  if (routes.size < MAX_REMEMBERED) routes.set(value, r);
  return r;
}

function isName(value: string): boolean {
  if (names.has(value)) return true;
  if (!NAME.test(value)) return false;
  if (names.size < MAX_REMEMBERED) names.add(value);
  return true;
}

function rank(key: string): number {
  return key === DESCRIPTOR_KEYS.clientIp ? 0 : key === ENVOY_ADDRESS_KEYS.remote ? 1 : 2;
}
