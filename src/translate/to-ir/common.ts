// What the model → IR steps share: defaults the model leaves unset, the callout cluster's name, the
// host:port form of settings, method order, and the product/route/host lookups over a snapshot.
import { sortedValues, DEFAULT_ACCEPT, type ModelSnapshot, type Product, type Route, type Subscription } from '../../model/index.ts';
import type { FlowOptions, IdempotencyOptions, QuotaExhaustedIR, TelemetryOptions } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import type { EmitMemo } from '../memo.ts';

/** Name of the cluster of Portico's gRPC callouts; a dot can never appear in a service name. */
export const CALLOUT_CLUSTER = 'portico.callouts';

/** What the model leaves unset, resolved here so the emitted config never relies on Envoy's defaults silently. */
export const DEFAULTS = {
  requestTimeoutMs: 15_000,
  connectTimeoutMs: 5_000,
  /**
   * The whole authorization callout, a retry on another replica included. Under CPU pressure (the HA
   * test at load 20-25 on 2 cores) callouts took up to ~0.7 s: a deadline is for a control plane that
   * does not answer, not for one waiting for a CPU.
   */
  authzTimeoutMs: 1_000,
  authzFailureMode: 'closed',
  /** Rate limiting's part of a callout; without an answer in time, the rate-limit failure mode applies. */
  rateLimitTimeoutMs: 100,
  /** The limiter's own default (src/ratelimit): an outage lets requests pass unlimited. */
  rateLimitFailureMode: 'open',
  /** Routes and products without `auth` require one of these credentials (secure by default). */
  accept: DEFAULT_ACCEPT,
  /** Retry conditions when a policy sets attempts but not retryOn: only failures before the request reached the upstream. */
  retryOn: ['connect-failure', 'refused-stream'] as readonly string[],
  listenerAddress: '0.0.0.0',
  /** The embedded flow runtime (PORTICO_FLOWS_LISTEN_ADDR's default) and each Envoy's step listener. */
  flows: { address: '127.0.0.1:18002', stepAddress: '127.0.0.1:18003' },
  /** Envoy's route to the runtime waits this much past the flow's own deadline, so the runtime's answer (a 504 naming the step) arrives first. */
  flowRouteMarginMs: 1_000,
  /** The embedded idempotency processor (PORTICO_IDEMPOTENCY_LISTEN_ADDR's default); Envoy waits this long for each of its answers (a Redis round trip on a loaded host). */
  idempotency: { address: '127.0.0.1:18004', messageTimeoutMs: 2_000 },
  healthCheck: { intervalMs: 10_000, timeoutMs: 2_000, healthyThreshold: 2, unhealthyThreshold: 3 },
  outlierDetection: { consecutive5xx: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 },
} as const;

const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'];

export interface IrOptions {
  /** host:port of Portico's gRPC callout services (ext_authz and rate limit). */
  calloutAddress: string;
  /** Access-log streaming and tracing; off when unset. */
  telemetry?: TelemetryOptions;
  /** Where flows run; DEFAULTS.flows (the embedded runtime, a loopback step listener) when unset. */
  flows?: FlowOptions;
  /** Where the idempotency processor runs; DEFAULTS.idempotency (the embedded one) when unset. */
  idempotency?: IdempotencyOptions;
  /** Under mTLS: the Envoy hosts' channel SDS file (the callout and access-log clusters use it). */
  channelSdsDir?: string;
  /** Connected Envoys per gateway group (native mode divides each plan limit among them); 1 when absent. */
  envoys?: ReadonlyMap<string, number>;
  /** Native mode: budgets whose quota is used up (counted from access logs); their callers are refused. */
  quotaExhausted?: readonly QuotaExhaustedIR[];
  /**
   * Epoch ms that subscription and key expiries are judged at (native authorization); the pipeline
   * passes the clock and pushes again at nextExpiry(). Date.now() when unset, so nothing expired is
   * ever admitted by a caller that forgot it.
   */
  now?: number;
  /** Native mode: JWKS documents fetched for jwksUri issuers, by issuer name; their routes stay on the callout until fetched. */
  jwks?: ReadonlyMap<string, unknown>;
  /** The caller's memory across translations: unchanged products' route IR is reused (by identity of what it reads). */
  memo?: EmitMemo;
}

/** Splits `host:port` or `[v6]:port`; throws on anything else (a settings error, not a model error). */
export function parseHostPort(address: string, what = 'calloutAddress'): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new Error(`${what} '${address}' must be host:port`);
  return { host: (m[1] ?? m[2])!, port };
}

export function sortMethods(methods: readonly string[]): string[] {
  return [...new Set(methods)].sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b));
}

/** The credential types a route accepts: its own, else its product's, else the default. */
export { effectiveAccept } from '../../model/index.ts';

/** Products a gateway group serves, by name. */
export function groupProducts(model: ModelSnapshot, group: string): Product[] {
  return sortedValues(model, 'products').filter((p) => p.gatewayGroups.includes(group));
}

// Snapshots are immutable, so the per-product index of one routes map can be kept beside it.
const routeIndex = new WeakMap<ReadonlyMap<string, Route>, Map<string, Route[]>>();

/** Routes of a product, by name. */
export function productRoutes(model: ModelSnapshot, product: string): readonly Route[] {
  let index = routeIndex.get(model.routes);
  if (!index) {
    index = new Map();
    for (const r of sortedValues(model, 'routes')) {
      const list = index.get(r.product);
      if (list) list.push(r);
      else index.set(r.product, [r]);
    }
    routeIndex.set(model.routes, index);
  }
  return index.get(product) ?? [];
}

const subscriptionIndex = new WeakMap<ReadonlyMap<string, Subscription>, Map<string, Subscription[]>>();
const NO_SUBSCRIPTIONS: readonly Subscription[] = [];

/** Subscriptions to a product, in the model's order (an index per subscriptions map: per-route scans of every subscription were O(routes × subscriptions)). */
export function productSubscriptions(model: ModelSnapshot, product: string): readonly Subscription[] {
  let index = subscriptionIndex.get(model.subscriptions);
  if (!index) {
    index = new Map();
    for (const s of model.subscriptions.values()) {
      const list = index.get(s.product);
      if (list) list.push(s);
      else index.set(s.product, [s]);
    }
    subscriptionIndex.set(model.subscriptions, index);
  }
  return index.get(product) ?? NO_SUBSCRIPTIONS;
}

/** The host patterns a product claims, lower-case; undefined when it serves any host. */
export function productHosts(product: Pick<Product, 'hosts'>): string[] | undefined {
  const hosts = product.hosts;
  if (!hosts || hosts.length === 0 || hosts.includes('*')) return undefined;
  return [...new Set(hosts.map((h) => h.toLowerCase()))].sort(compareStrings);
}

/** Whether every host matching `domain` also matches `pattern` (Envoy wildcards match one or more characters). */
export function hostCovers(pattern: string, domain: string): boolean {
  if (pattern === domain) return true;
  if (!pattern.startsWith('*')) return false;
  const suffix = pattern.slice(1);
  const rest = domain.startsWith('*') ? domain.slice(1) : domain;
  return domain.startsWith('*') ? rest.endsWith(suffix) && rest.length >= suffix.length : rest.endsWith(suffix) && rest.length > suffix.length;
}

/** Exact hosts first, then wildcards (longest first), each group alphabetically. */
export function compareDomains(a: string, b: string): number {
  const wa = a.startsWith('*') ? 1 : 0;
  const wb = b.startsWith('*') ? 1 : 0;
  if (wa !== wb) return wa - wb;
  if (wa === 1 && a.length !== b.length) return b.length - a.length;
  return compareStrings(a, b);
}
