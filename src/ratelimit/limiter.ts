// The rate limiter: limit table (swapped whole per model snapshot) + counter backend + metrics →
// decide(request). Independent of gRPC, so ext_authz can call it in-process ("one callout" mode).
import { performance } from 'node:perf_hooks';
import { emptySnapshot, type ModelSnapshot } from '../model/index.ts';
import { MemoryCounters, type CounterBackend } from './backend.ts';
import { buildDecision, failureDecision, unlimitedDecision, type Decision, type DecisionRequest } from './decision.ts';
import { RateLimitMetrics, type RateLimitMetricsOptions } from './metrics.ts';
import { RedisCounters } from './redis.ts';
import { buildLimitTable, countKey, counterSpecs, type LimitTable } from './table.ts';
import type { Registry } from 'prom-client';

/** The slice of a pino logger the limiter uses. */
export interface LimiterLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silent: LimiterLogger = { info() {}, warn() {} };

export interface RateLimiterOptions {
  backend: CounterBackend;
  /** The first model; setModel() replaces it. Default: an empty model (nothing is limited). */
  model?: ModelSnapshot;
  /** What a decision is when the counters cannot be reached: allow ('open', default) or 429 ('closed'). */
  failureMode?: 'open' | 'closed';
  /** Metrics object, or options to create one (registry, partner label cap). */
  metrics?: RateLimitMetrics | RateLimitMetricsOptions;
  logger?: LimiterLogger;
  /** ms clock for subscription expiry (counters use their backend's clock). */
  clock?: () => number;
}

interface Incident {
  since: number;
  failures: number;
}

export class RateLimiter {
  readonly backend: CounterBackend;
  readonly metrics: RateLimitMetrics;
  /** Set by setModel(), first in the constructor. */
  private table!: LimitTable;
  private readonly failOpen: boolean;
  private readonly log: LimiterLogger;
  private readonly clock: () => number;
  private incident: Incident | undefined;
  private readonly latency: { observe(v: number): void };

  constructor(opts: RateLimiterOptions) {
    this.backend = opts.backend;
    this.metrics = opts.metrics instanceof RateLimitMetrics ? opts.metrics : new RateLimitMetrics(opts.metrics);
    this.failOpen = (opts.failureMode ?? 'open') === 'open';
    this.log = opts.logger ?? silent;
    this.clock = opts.clock ?? Date.now;
    this.setModel(opts.model ?? emptySnapshot());
    this.latency = this.metrics.latency;
    this.metrics.backendUp.labels(this.backend.kind).set(1);
  }

  /** Rebuilds the limit table from a new snapshot; decisions in flight finish on the old one. */
  setModel(model: ModelSnapshot): void {
    this.table = buildLimitTable(model);
    this.metrics.partners.setKnown(model.partners.keys());
  }

  /** The table decisions currently use. */
  get limitTable(): LimitTable {
    return this.table;
  }

  /** True while the counter backend answers. */
  get healthy(): boolean {
    return this.incident === undefined;
  }

  /**
   * Decides one request. Never rejects: a backend failure becomes a fail-open (or fail-closed)
   * decision with outcome 'error'.
   */
  async decide(req: DecisionRequest): Promise<Decision> {
    const started = performance.now();
    const table = this.table;
    const now = this.clock();
    const res = table.resolve(req.product, req.route, req.partner, now);
    const product = res.kind === 'none' && res.reason === 'unknown_product' ? 'unknown' : req.product;
    if (res.kind === 'none' || res.rules.limits.length === 0) {
      this.metrics.decision(product, req.partner, 'allowed');
      this.latency.observe((performance.now() - started) / 1000);
      return unlimitedDecision(now);
    }
    const rules = res.rules;
    const cb = rules.countBy;
    const headerValue = cb.kind === 'header' ? (req.headers?.[cb.header!.toLowerCase()] ?? req.headerValue) : undefined;
    const count = countKey(cb, req.route, { partner: req.partner, clientIp: req.clientIp, headerValue });
    const specs = counterSpecs(rules, count);
    let decision: Decision;
    try {
      const evaluation = await this.backend.evaluate(specs, req.hits ?? 1);
      if (this.incident) this.recovered();
      decision = buildDecision(rules, evaluation);
    } catch (e) {
      this.failed(e);
      decision = failureDecision(this.failOpen, this.clock(), rules);
    }
    this.metrics.decision(product, req.partner, decision.outcome);
    this.latency.observe((performance.now() - started) / 1000);
    return decision;
  }

  /** Resolves once the counters answer (Redis connected); rejects after timeoutMs. Optional: until then decisions follow the failure mode. */
  ready(timeoutMs = 5_000): Promise<void> {
    return this.backend.ready(timeoutMs);
  }

  async close(): Promise<void> {
    await this.backend.close();
  }

  private failed(e: unknown): void {
    this.metrics.backendErrors.labels(this.backend.kind).inc();
    if (this.incident) {
      this.incident.failures++;
      return;
    }
    // Logged once per incident, not per request: an outage must not flood the log.
    this.incident = { since: Date.now(), failures: 1 };
    this.metrics.backendUp.labels(this.backend.kind).set(0);
    this.log.warn(
      { backend: this.backend.kind, failureMode: this.failOpen ? 'open' : 'closed', err: e instanceof Error ? e.message : String(e) },
      `rate limit: counter backend unavailable; failing ${this.failOpen ? 'open (requests pass unlimited)' : 'closed (requests get 429)'} until it recovers`,
    );
  }

  private recovered(): void {
    const i = this.incident!;
    this.incident = undefined;
    this.metrics.backendUp.labels(this.backend.kind).set(1);
    this.log.info({ backend: this.backend.kind, failedDecisions: i.failures, outageMs: Date.now() - i.since }, 'rate limit: counter backend recovered');
  }
}

/** Settings the composition root passes in (read from the environment by src/settings.ts). */
export interface RateLimitSettings {
  /** REDIS_URL: counters in Redis, shared by every replica; absent → in-memory counters (one replica). */
  redisUrl?: string | undefined;
  /** PORTICO_RATELIMIT_FAILURE_MODE: 'open' (default) or 'closed' when the counters are unreachable. */
  failureMode?: 'open' | 'closed' | undefined;
  /** PORTICO_RATELIMIT_REDIS_TIMEOUT_MS: a Redis answer later than this fails the decision. Default 250. */
  redisTimeoutMs?: number | undefined;
  /** PORTICO_RATELIMIT_KEY_PREFIX: prefix of Redis counter keys. Default `portico:rl:`. */
  keyPrefix?: string | undefined;
  /** Distinct partner label values in metrics (PORTICO_METRICS_MAX_PARTNERS). Default 200. */
  maxPartnerLabels?: number | undefined;
}

/** Builds the limiter and its backend from settings. */
export function createRateLimiter(settings: RateLimitSettings, deps: { registry?: Registry; logger?: LimiterLogger; model?: ModelSnapshot } = {}): RateLimiter {
  const metrics = new RateLimitMetrics({
    ...(deps.registry ? { registry: deps.registry } : {}),
    ...(settings.maxPartnerLabels !== undefined ? { maxPartnerLabels: settings.maxPartnerLabels } : {}),
  });
  const backend: CounterBackend = settings.redisUrl
    ? new RedisCounters({
        url: settings.redisUrl,
        ...(settings.keyPrefix !== undefined ? { keyPrefix: settings.keyPrefix } : {}),
        ...(settings.redisTimeoutMs !== undefined ? { commandTimeoutMs: settings.redisTimeoutMs } : {}),
        onRoundTrip: (n) => {
          metrics.redisRoundTrips.inc();
          metrics.redisBatchedDecisions.inc(n);
        },
      })
    : new MemoryCounters();
  return new RateLimiter({
    backend,
    metrics,
    ...(settings.failureMode ? { failureMode: settings.failureMode } : {}),
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.model ? { model: deps.model } : {}),
  });
}
