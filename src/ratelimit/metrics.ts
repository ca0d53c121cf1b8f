// Prometheus metrics of the rate limiter: decisions by product/partner/outcome, latency, backend
// errors and Redis round trips. Partner label values are capped so cardinality stays bounded.
import { type Counter, type Gauge, type Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import { PartnerLabels } from '../contract/index.ts';
import type { Outcome } from './decision.ts';
import { counter, gauge, histogram } from '../telemetry/index.ts';

export interface RateLimitMetricsOptions {
  /** Default: prom-client's default registry. */
  registry?: Registry;
  /** Distinct partner label values kept; further partners are counted as "other" (src/contract's PartnerLabels). */
  maxPartnerLabels?: number;
}

/** A decisions-counter cell: counted locally per decision, added to prom-client when scraped. */
interface Cell {
  labels: { product: string; partner: string; outcome: Outcome };
  n: number;
}

/** Every RateLimitMetrics sharing a registry's decisions counter flushes into it when scraped. */
const flushers = new WeakMap<object, Set<RateLimitMetrics>>();

export class RateLimitMetrics {
  readonly decisions: Counter<'product' | 'partner' | 'outcome'>;
  readonly latency: Histogram;
  readonly backendErrors: Counter<'backend'>;
  readonly backendUp: Gauge<'backend'>;
  readonly redisRoundTrips: Counter;
  readonly redisBatchedDecisions: Counter;
  readonly invalidRequests: Counter;
  /** The partner label policy; the limiter tells it the model's partners. */
  readonly partners: PartnerLabels;
  private readonly cells = new Map<string, Map<string, Map<Outcome, Cell>>>();
  private readonly cellList: Cell[] = [];

  constructor(opts: RateLimitMetricsOptions = {}) {
    const registry = opts.registry ?? defaultRegistry;
    this.partners = new PartnerLabels(opts.maxPartnerLabels);
    this.decisions = counter(registry, {
      name: 'portico_ratelimit_decisions_total',
      help: 'Rate-limit decisions by product, partner (capped: "none", "unknown", "other") and outcome',
      labelNames: ['product', 'partner', 'outcome'],
      // Counted in plain cells per decision and added here, at scrape time: prom-client's per-call
      // label hashing cost more than a decision.
      collect(this: Counter) {
        for (const m of flushers.get(this) ?? []) m.flush();
      },
    });
    let group = flushers.get(this.decisions);
    if (!group) flushers.set(this.decisions, (group = new Set()));
    group.add(this);
    // Unlabelled on purpose (labels cost a hash per observation); the backend is in portico_ratelimit_backend_up.
    this.latency = histogram(registry, {
      name: 'portico_ratelimit_decision_seconds',
      help: 'Time to decide one request (table lookup, counters, response)',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    });
    this.backendErrors = counter(registry, {
      name: 'portico_ratelimit_backend_errors_total',
      help: 'Decisions the counter backend could not answer (answered by the failure mode instead)',
      labelNames: ['backend'],
    });
    this.backendUp = gauge(registry, { name: 'portico_ratelimit_backend_up', help: '1 while the counter backend answers, 0 during an outage', labelNames: ['backend'] });
    this.redisRoundTrips = counter(registry, { name: 'portico_ratelimit_redis_round_trips_total', help: 'EVALSHA round trips to Redis (each carries a batch of decisions)' });
    this.redisBatchedDecisions = counter(registry, { name: 'portico_ratelimit_redis_batched_decisions_total', help: 'Decisions sent to Redis (divide by round trips for the batch size)' });
    this.invalidRequests = counter(registry, { name: 'portico_ratelimit_invalid_requests_total', help: 'ShouldRateLimit requests refused as malformed (INVALID_ARGUMENT)' });
  }

  decision(product: string, partner: string | undefined, outcome: Outcome): void {
    const p = this.partners.label(partner);
    // Nested maps: no key string is built per call.
    let byPartner = this.cells.get(product);
    if (!byPartner) this.cells.set(product, (byPartner = new Map()));
    let byOutcome = byPartner.get(p);
    if (!byOutcome) byPartner.set(p, (byOutcome = new Map()));
    let c = byOutcome.get(outcome);
    if (!c) {
      byOutcome.set(outcome, (c = { labels: { product, partner: p, outcome }, n: 0 }));
      this.cellList.push(c);
    }
    c.n++;
  }

  /** Adds the decisions counted since the last scrape to the prom-client counter. */
  flush(): void {
    for (const c of this.cellList) {
      if (c.n > 0) {
        this.decisions.inc(c.labels, c.n);
        c.n = 0;
      }
    }
  }
}
