// Response-cache metrics from Envoy's access-log entries: hits, misses and coalesced requests of
// Envoy's cache filter per gateway group, product and route. The filter marks each request it answered
// in the entry's response code details; labels are bounded by the current model (other names count as
// "unknown"). Envoy 1.40 logs a request that waited for an identical one in flight exactly like a hit;
// Envoy's own definition of such a follower is a lookup made while that key's insert (the miss) was
// under way, so an answer from the cache that started inside a miss's lifetime, on the same key
// (the authority and path the key filter wrote), is counted as coalesced.
import { Counter, type Registry } from 'prom-client';
import { PARTNER_LABEL } from '../contract/index.ts';
import type { ModelSnapshot } from '../model/index.ts';
import type { AccessLogRecord } from './access-log-wire.ts';
import { registeredMetric } from './metrics.ts';

export const CACHE_METRIC = 'portico_cache_requests_total';

/**
 * hit: answered from a stored entry; coalesced: waited for an identical request in flight and got its
 * answer; miss: fetched from the service and stored. Other requests (not cacheable, or on routes
 * without a cache) are not the cache's. cacheResult() cannot tell the first two apart (see above).
 */
export type CacheResult = 'hit' | 'coalesced' | 'miss';

/** The cache's part in one logged request (pure); undefined when the cache filter did not answer it. */
export function cacheResult(e: Pick<AccessLogRecord, 'responseCodeDetails'>): 'hit' | 'miss' | undefined {
  if (e.responseCodeDetails === 'cache.response_from_cache_filter') return 'hit';
  if (e.responseCodeDetails === 'cache.insert_via_upstream') return 'miss';
  return undefined;
}

/** An answer from the cache, waiting to learn whether a miss on its key was under way when it started. */
export interface PendingHit {
  key: string;
  startMs: number;
  labels: Labels;
  /** When it was recorded (ms): past the grace it counts as a hit. */
  seenMs: number;
  done?: boolean;
}
type Labels = { group: string; product: string; route: string };

/**
 * Tells coalesced requests from hits (pure; the caller passes the clock). Entries of one request and
 * of its followers arrive in any order (each Envoy worker streams its own log), so an answer from the
 * cache is held for `graceMs` in case the miss it waited for arrives later. At most `maxHeld` are held
 * (the oldest count as hits beyond that), so memory stays bounded at any hit rate.
 */
export class CoalescingClassifier {
  /** Misses' lifetimes by key, kept for `graceMs` after they were recorded. */
  private misses = new Map<string, Array<{ startMs: number; endMs: number; seenMs: number }>>();
  private lastMissSweep = 0;
  /** Held answers in arrival order (from `head`), and by key in the same order. */
  private queue: PendingHit[] = [];
  private head = 0;
  private readonly byKey = new Map<string, PendingHit[]>();

  constructor(
    private readonly graceMs = 5_000,
    private readonly maxHeld = 20_000,
  ) {}

  /** A miss: the held answers it covers come back as coalesced. */
  miss(key: string, startMs: number, durationMs: number, nowMs: number): PendingHit[] {
    const endMs = startMs + durationMs;
    const list = this.misses.get(key) ?? [];
    list.push({ startMs, endMs, seenMs: nowMs });
    this.misses.set(key, list);
    const covered: PendingHit[] = [];
    for (const h of this.byKey.get(key) ?? []) {
      if (!h.done && h.startMs >= startMs && h.startMs <= endMs) {
        h.done = true;
        covered.push(h);
      }
    }
    return covered;
  }

  /** An answer from the cache: coalesced at once when a known miss covers its start, else held. */
  hit(h: PendingHit): 'coalesced' | 'held' {
    if (this.misses.get(h.key)?.some((m) => h.startMs >= m.startMs && h.startMs <= m.endMs)) return 'coalesced';
    this.queue.push(h);
    const list = this.byKey.get(h.key);
    if (list) list.push(h);
    else this.byKey.set(h.key, [h]);
    return 'held';
  }

  /** Held answers past the grace (or beyond the bound): plain hits. Old misses are forgotten. */
  expire(nowMs: number): PendingHit[] {
    const cutoff = nowMs - this.graceMs;
    const due: PendingHit[] = [];
    while (this.head < this.queue.length && (this.queue[this.head]!.seenMs <= cutoff || this.queue.length - this.head > this.maxHeld)) {
      const h = this.queue[this.head++]!;
      if (!h.done) due.push(h);
      h.done = true;
      // Arrival order is kept per key too: the expired ones are at the front of their key's list (which
      // is gone already when a miss claimed this one and the list emptied before it came due).
      const list = this.byKey.get(h.key);
      if (!list) continue;
      while (list.length && list[0]!.done) list.shift();
      if (!list.length) this.byKey.delete(h.key);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (nowMs - this.lastMissSweep >= Math.min(1_000, this.graceMs)) {
      this.lastMissSweep = nowMs;
      for (const [k, list] of this.misses) {
        const kept = list.filter((m) => m.seenMs > cutoff);
        if (kept.length) this.misses.set(k, kept);
        else this.misses.delete(k);
      }
    }
    return due;
  }
}

/** Below this, an answer from the cache did not wait for a request in flight. */
const FOLLOWER_MIN_SECONDS = 0.001;

export class CacheMetrics {
  private readonly requests: Counter<'group' | 'product' | 'route' | 'result'>;
  private routes: ReadonlySet<string> = new Set();
  private groups: ReadonlySet<string> = new Set();
  private readonly coalescing: CoalescingClassifier;
  /**
   * Hits not yet added to the counter, by group and route name: added at each scrape. prom-client
   * hashes the labels on every inc (~1.5 µs, most of a hit's cost here; a hit costs the gateway ~33 µs).
   */
  private readonly pendingHits = new Map<string, { labels: Labels; n: number }>();

  constructor(
    registry: Registry,
    private readonly now: () => number = Date.now,
    graceMs = 5_000,
  ) {
    this.coalescing = new CoalescingClassifier(graceMs);
    const flush = () => {
      this.flushHits();
      for (const h of this.coalescing.expire(this.now())) this.requests.inc({ ...h.labels, result: 'hit' });
    };
    this.requests = registeredMetric(
      registry,
      CACHE_METRIC,
      () =>
        new Counter({
          name: CACHE_METRIC,
          help: "Requests Envoy's response cache answered, by gateway group, product, route and result (hit: from a stored entry; coalesced: waited for an identical request in flight; miss: fetched and stored). A hit that took 1 ms or more is counted up to 5 s late: until then it may still turn out to have waited for a miss.",
          labelNames: ['group', 'product', 'route', 'result'],
          registers: [registry],
          // Read at every scrape: held answers past the grace become hits.
          collect: flush,
        }),
    );
  }

  setModel(model: ModelSnapshot): void {
    // Counted hits keep the labels they were seen with.
    this.flushHits();
    this.routes = new Set(model.routes.keys());
    this.groups = new Set(model.gatewayGroups.keys());
  }

  private flushHits(): void {
    for (const p of this.pendingHits.values()) this.requests.inc({ ...p.labels, result: 'hit' }, p.n);
    this.pendingHits.clear();
  }

  private labelsOf(routeName: string, group: string | undefined): Labels {
    const [product, route] = this.routes.has(routeName) ? routeName.split('/') : [PARTNER_LABEL.unknown, PARTNER_LABEL.unknown];
    return { group: group && this.groups.has(group) ? group : PARTNER_LABEL.unknown, product: product!, route: route! };
  }

  record(e: AccessLogRecord, streamGroup: string | undefined): void {
    const result = cacheResult(e);
    if (!result) return;
    const group = e.tags.get('group') ?? streamGroup;
    // A follower waited for the service; an answer served in under a millisecond did not: a hit at
    // once, without holding it (most hits, and the cheapest path for the busiest routes).
    if (result === 'hit' && e.durationSeconds < FOLLOWER_MIN_SECONDS) {
      const k = `${group ?? ''}\n${e.routeName}`;
      const pending = this.pendingHits.get(k);
      if (pending) pending.n++;
      else {
        // Bounded: names come from Envoy's config, but a flush costs only a scrape's worth of work.
        if (this.pendingHits.size >= 10_000) this.flushHits();
        this.pendingHits.set(k, { labels: this.labelsOf(e.routeName, group), n: 1 });
      }
      return;
    }
    const labels = this.labelsOf(e.routeName, group);
    const now = this.now();
    const key = `${e.routeName} ${e.authority} ${e.path}`;
    if (result === 'miss') {
      this.requests.inc({ ...labels, result: 'miss' });
      for (const h of this.coalescing.miss(key, e.startMs, e.durationSeconds * 1000, now)) this.requests.inc({ ...h.labels, result: 'coalesced' });
    } else if (this.coalescing.hit({ key, startMs: e.startMs, labels, seenMs: now }) === 'coalesced') {
      this.requests.inc({ ...labels, result: 'coalesced' });
    }
    for (const h of this.coalescing.expire(now)) this.requests.inc({ ...h.labels, result: 'hit' });
  }
}
