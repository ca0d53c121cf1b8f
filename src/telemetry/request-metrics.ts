// Per-product × per-partner request metrics built from Envoy's access-log entries: a request
// counter by gateway group, product, partner, status class and outcome, a duration histogram by
// group, product and partner, and by group and product how much of it was Envoy's own and the upstream's. Label values are bounded: products, partners and groups must be in
// the current model ("unknown" otherwise), partners past a configurable cap fold into "other".
import { Counter, Histogram, type Registry } from 'prom-client';
import { ACCESS_LOG_TAGS, NOT_FOUND_ROUTE, PARTNER_LABEL, PartnerLabels } from '../contract/index.ts';
import type { ModelSnapshot } from '../model/index.ts';
import { RESPONSE_FLAG, type AccessLogRecord } from './access-log-wire.ts';
import { registeredMetric } from './metrics.ts';

/**
 * Label values that are not names from the model, the same for products and groups as for partners:
 * none (no product: the gateway's 404; no partner: public routes, anonymous callers, denials before
 * identification), unknown (a name the current model does not know), other (partners past the cap).
 */
export const LABEL = PARTNER_LABEL;

/**
 * What happened to a request, from the gateway's point of view:
 * ok (1xx–3xx), client_error (other 4xx), authz_denied (ext_authz said 401/403), rate_limited (a
 * rate limit answered 429), no_route (nothing matched), upstream_error (5xx from or about the
 * upstream), gateway_error (5xx Envoy made without an upstream: callout failure, overload…),
 * cancelled (the client left before a response).
 */
export type Outcome = 'ok' | 'client_error' | 'authz_denied' | 'rate_limited' | 'no_route' | 'upstream_error' | 'gateway_error' | 'cancelled';
export const OUTCOMES: readonly Outcome[] = ['ok', 'client_error', 'authz_denied', 'rate_limited', 'no_route', 'upstream_error', 'gateway_error', 'cancelled'];

const bit = (name: string): number => {
  const id = RESPONSE_FLAG[name];
  if (id === undefined) throw new Error(`ResponseFlags has no ${name}`);
  return 1 << id;
};
const RATE_LIMITED = bit('rate_limited');
const UNAUTHORIZED = bit('unauthorized_details');
const RATE_LIMIT_SERVICE_ERROR = bit('rate_limit_service_error');
const NO_ROUTE = bit('no_route_found');
/** Flags that say the upstream (or reaching it) failed. */
const UPSTREAM_FAILURE =
  bit('no_healthy_upstream') |
  bit('upstream_request_timeout') |
  bit('upstream_remote_reset') |
  bit('upstream_connection_failure') |
  bit('upstream_connection_termination') |
  bit('upstream_overflow') |
  bit('upstream_retry_limit_exceeded') |
  bit('upstream_max_stream_duration_reached') |
  bit('upstream_protocol_error');
const CANCELLED = bit('downstream_remote_reset') | bit('downstream_connection_termination');

/** The gateway's own 404 route (src/translate/to-ir.ts). */

/** The outcome of one logged request (pure). */
export function classify(e: Pick<AccessLogRecord, 'status' | 'flags' | 'routeName' | 'upstreamCluster' | 'authz'>): Outcome {
  const s = e.status;
  const deniedByAuthz = (e.flags & UNAUTHORIZED) !== 0 || e.authz.has('error');
  if (e.flags & RATE_LIMITED || (s === 429 && deniedByAuthz)) return 'rate_limited';
  if (s === 0) return e.flags & CANCELLED || !(e.flags & UPSTREAM_FAILURE) ? 'cancelled' : 'upstream_error';
  if (deniedByAuthz && (s === 401 || s === 403)) return 'authz_denied';
  if (e.flags & NO_ROUTE || e.routeName === NOT_FOUND_ROUTE) return 'no_route';
  if (s >= 500) {
    if (e.flags & (UNAUTHORIZED | RATE_LIMIT_SERVICE_ERROR)) return 'gateway_error';
    if (e.flags & UPSTREAM_FAILURE) return 'upstream_error';
    // No flag: the upstream answered with this status itself, or Envoy made it locally (direct response, overload).
    return e.upstreamCluster !== '' ? 'upstream_error' : 'gateway_error';
  }
  if (s >= 400) return 'client_error';
  return 'ok';
}

/**
 * Whether the request was admitted and forwarded: the upstream answered, or failed after Envoy sent
 * it there (what a quota counts). Local replies (refusals, direct responses) were not.
 */
export function forwarded(e: Pick<AccessLogRecord, 'responseCodeDetails'>): boolean {
  return e.responseCodeDetails === 'via_upstream' || e.responseCodeDetails.startsWith('upstream_');
}

/** "2xx" for 200…299; "none" without a status. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : LABEL.none;
}

export interface RequestMetricsOptions {
  registry: Registry;
  /** Distinct partner label values kept (first come); later ones are counted as "other". Default 200. */
  maxPartnerLabels?: number;
}

interface Series {
  /** Counts per `${class}\0${outcome}` since the last scrape. */
  counts: Map<string, { labels: Record<string, string>; n: number }>;
  duration: { observe(v: number): void };
  gateway: { observe(v: number): void };
  upstream: { observe(v: number): void };
}

/** Every RequestMetrics sharing a registry's counter flushes into it when scraped. */
const flushers = new WeakMap<object, Set<RequestMetrics>>();

export const REQUESTS_METRIC = 'portico_http_requests_total';
export const DURATION_METRIC = 'portico_http_request_duration_seconds';
export const GATEWAY_LATENCY_METRIC = 'portico_gateway_latency_seconds';
export const UPSTREAM_LATENCY_METRIC = 'portico_upstream_latency_seconds';
/** Envoy's own part is usually well under a millisecond: buckets from 50 µs, in 1-2-5 steps. */
const GATEWAY_LATENCY_BUCKETS = [0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1];

export class RequestMetrics {
  private readonly requests: Counter<'group' | 'product' | 'partner' | 'code_class' | 'outcome'>;
  private readonly duration: Histogram<'group' | 'product' | 'partner'>;
  private readonly gatewayLatency: Histogram<'group' | 'product'>;
  private readonly upstreamLatency: Histogram<'group' | 'product'>;
  private readonly partners: PartnerLabels;
  private products: ReadonlySet<string> = new Set();
  private groups: ReadonlySet<string> = new Set();
  private readonly series = new Map<string, Series>();

  constructor(opts: RequestMetricsOptions) {
    const registers = [opts.registry];
    this.partners = new PartnerLabels(opts.maxPartnerLabels);
    this.requests = registeredMetric(
      opts.registry,
      REQUESTS_METRIC,
      () =>
        new Counter({
          name: REQUESTS_METRIC,
          help: 'Requests through Envoy (from its access-log stream) by gateway group, product, partner (capped: "none", "unknown", "other"), status class and outcome',
          labelNames: ['group', 'product', 'partner', 'code_class', 'outcome'],
          registers,
          // Counted in plain cells per entry and added here, at scrape time (prom-client hashes labels per call).
          collect(this: Counter) {
            for (const m of flushers.get(this) ?? []) m.flush();
          },
        }),
    );
    let group = flushers.get(this.requests);
    if (!group) flushers.set(this.requests, (group = new Set()));
    group.add(this);
    this.duration = registeredMetric(
      opts.registry,
      DURATION_METRIC,
      () =>
        new Histogram({
          name: DURATION_METRIC,
          help: 'Request duration at Envoy (first byte in to last byte out) by gateway group, product and partner',
          labelNames: ['group', 'product', 'partner'],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers,
        }),
    );
    // What the gateway adds, apart from what the upstream takes (the split of each request's time
    // to its response's first byte: access-log-wire.ts splitLatency). By product, not partner: the
    // gateway's work depends on the route's filters, not on who calls.
    this.gatewayLatency = registeredMetric(
      opts.registry,
      GATEWAY_LATENCY_METRIC,
      () =>
        new Histogram({
          name: GATEWAY_LATENCY_METRIC,
          help: "Envoy's own time per request (request filters to the upstream, response filters back; local replies whole) by gateway group and product, without the upstream's time",
          labelNames: ['group', 'product'],
          buckets: GATEWAY_LATENCY_BUCKETS,
          registers,
        }),
    );
    this.upstreamLatency = registeredMetric(
      opts.registry,
      UPSTREAM_LATENCY_METRIC,
      () =>
        new Histogram({
          name: UPSTREAM_LATENCY_METRIC,
          help: "The upstream's time per request as Envoy saw it (request's last byte sent to the response's first byte) by gateway group and product",
          labelNames: ['group', 'product'],
          buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers,
        }),
    );
  }

  /** The names label values may take: only what the model holds (anything Envoy reports may be stale or forged). */
  setModel(model: Pick<ModelSnapshot, 'products' | 'partners' | 'gatewayGroups'>): void {
    this.products = new Set(model.products.keys());
    this.partners.setKnown(model.partners.keys());
    this.groups = new Set(model.gatewayGroups.keys());
  }

  /** The partner label: "none" without one, "unknown" if not in the model, the name while under the cap, else "other". */
  partnerLabel(partner: string | undefined): string {
    return this.partners.label(partner);
  }

  productLabel(product: string | undefined): string {
    if (product === undefined || product === '') return LABEL.none;
    return this.products.has(product) ? product : LABEL.unknown;
  }

  groupLabel(group: string | undefined): string {
    if (group === undefined || group === '') return LABEL.unknown;
    return this.groups.has(group) ? group : LABEL.unknown;
  }

  /** Counts one request. `fallbackGroup` is the stream's node cluster, for entries without a group tag. */
  record(e: AccessLogRecord, fallbackGroup?: string): void {
    const group = this.groupLabel(e.tags.get('group') ?? fallbackGroup);
    const product = this.productLabel(e.tags.get('product') || e.authz.get('product'));
    // Native authentication names the partner in a header (its tag; client copies are stripped first),
    // the callouts in ext_authz's metadata: the same source the quota ledger counts by.
    const partner = this.partnerLabel(e.tags.get(ACCESS_LOG_TAGS.partner) || e.authz.get('partner'));
    const key = `${group}\0${product}\0${partner}`;
    let s = this.series.get(key);
    if (!s) {
      s = {
        counts: new Map(),
        duration: this.duration.labels(group, product, partner),
        gateway: this.gatewayLatency.labels(group, product),
        upstream: this.upstreamLatency.labels(group, product),
      };
      this.series.set(key, s);
    }
    const cls = statusClass(e.status);
    const outcome = classify(e);
    const ck = `${cls}\0${outcome}`;
    let c = s.counts.get(ck);
    if (!c) s.counts.set(ck, (c = { labels: { group, product, partner, code_class: cls, outcome }, n: 0 }));
    c.n++;
    s.duration.observe(e.durationSeconds);
    if (e.gatewaySeconds >= 0) s.gateway.observe(e.gatewaySeconds);
    if (e.upstreamSeconds >= 0) s.upstream.observe(e.upstreamSeconds);
  }

  /** Adds the requests counted since the last scrape to the prom-client counter. */
  flush(): void {
    for (const s of this.series.values()) {
      for (const c of s.counts.values()) {
        if (c.n > 0) {
          this.requests.inc(c.labels, c.n);
          c.n = 0;
        }
      }
    }
  }
}
