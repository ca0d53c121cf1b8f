// Counter backends behind one interface, and the in-memory one (the embedded default for a single
// limiter replica): checks every counter of a decision, then consumes all of them or none.
import { bucketStep, windowBounds, windowKey, windowStep, type BucketState, type CheckResult, type CounterSpec, type Evaluation } from './algorithms.ts';

export interface CounterBackend {
  readonly kind: 'memory' | 'redis';
  /**
   * Checks every counter and, only when all of them admit `cost` requests, consumes it from each —
   * atomically with respect to other decisions. Rejects (never throws synchronously) when the
   * backend cannot answer; the limiter turns that into a fail-open or fail-closed decision.
   */
  evaluate(specs: readonly CounterSpec[], cost: number): Promise<Evaluation>;
  /** Resolves once the backend can answer (rejects after timeoutMs); decisions before that use the failure mode. */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface MemoryCountersOptions {
  /** ms clock; injectable for tests. */
  clock?: () => number;
  /** How often expired counters are swept (ms); 0 disables the timer (sweep() by hand). */
  sweepIntervalMs?: number;
}

interface Entry {
  /** Scaled tokens (bucket) or requests used (window). */
  value: number;
  /** Bucket: when `value` was computed. */
  at: number;
  /** Past this instant (ms) the entry is the same as no entry (bucket full / window over). */
  expiresAt: number;
}

/** Counters in a Map, for one limiter replica; expired entries are swept so memory stays bounded by live callers. */
export class MemoryCounters implements CounterBackend {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  private readonly clock: () => number;
  private readonly timer: NodeJS.Timeout | undefined;
  // Reused per decision: evaluate is synchronous inside, so one scratch array is enough.
  private readonly keys: string[] = [];
  private readonly values: number[] = [];
  private readonly ttls: number[] = [];
  private readonly unconsumed: CheckResult[] = [];

  constructor(opts: MemoryCountersOptions = {}) {
    this.clock = opts.clock ?? Date.now;
    const every = opts.sweepIntervalMs ?? 10_000;
    if (every > 0) {
      this.timer = setInterval(() => this.sweep(), every);
      this.timer.unref();
    }
  }

  get size(): number {
    return this.entries.size;
  }

  evaluate(specs: readonly CounterSpec[], cost: number): Promise<Evaluation> {
    return Promise.resolve(this.evaluateNow(specs, cost));
  }

  /** The synchronous core of evaluate. */
  evaluateNow(specs: readonly CounterSpec[], cost: number): Evaluation {
    const now = this.clock();
    const results: CheckResult[] = new Array(specs.length);
    let allowed = true;
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      if (spec.kind === 'bucket') {
        const e = this.live(spec.key, now);
        const state: BucketState | undefined = e ? { tokens: e.value, at: e.at } : undefined;
        const step = bucketStep(spec, state, cost, now);
        results[i] = step.result;
        this.unconsumed[i] = step.unconsumed;
        this.keys[i] = spec.key;
        this.values[i] = step.next.tokens;
        this.ttls[i] = step.ttlMs;
      } else {
        const bounds = windowBounds(spec.per, now);
        const key = windowKey(spec, bounds);
        const e = this.live(key, now);
        const step = windowStep(spec, e?.value, cost, now, bounds);
        results[i] = step.result;
        this.unconsumed[i] = step.unconsumed;
        this.keys[i] = key;
        this.values[i] = step.next;
        this.ttls[i] = step.ttlMs;
      }
      if (!results[i]!.ok) allowed = false;
    }
    // A refused request consumes nothing from any counter.
    if (allowed) {
      for (let i = 0; i < specs.length; i++) {
        const key = this.keys[i]!;
        const e = this.entries.get(key);
        if (e) {
          e.value = this.values[i]!;
          e.at = now;
          e.expiresAt = now + this.ttls[i]!;
        } else this.entries.set(key, { value: this.values[i]!, at: now, expiresAt: now + this.ttls[i]! });
      }
    } else {
      for (let i = 0; i < specs.length; i++) results[i] = this.unconsumed[i]!;
    }
    return { now, allowed, results };
  }

  async ready(): Promise<void> {}

  /** Drops every expired counter. */
  sweep(): number {
    const now = this.clock();
    let n = 0;
    for (const [k, e] of this.entries) {
      if (e.expiresAt <= now) {
        this.entries.delete(k);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.entries.clear();
  }

  private live(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    return e && e.expiresAt > now ? e : undefined;
  }
}
