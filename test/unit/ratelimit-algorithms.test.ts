// Limit arithmetic with an injected clock: token buckets (N allowed, N+1 refused, refill, burst,
// oversized costs) and UTC calendar windows (reset exactly at day and month boundaries).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bucketStep, reportedIndex, resetEpochSeconds, retryAfterSeconds, windowBounds, windowStep, type BucketSpec, type BucketState, type WindowSpec } from '../../src/ratelimit/algorithms.ts';
import { MemoryCounters } from '../../src/ratelimit/backend.ts';

const T0 = Date.UTC(2026, 3, 12, 16, 0, 0); // 2026-04-12T16:00:00Z

/** Runs `n` single-request decisions at `now` against one bucket; returns how many passed. */
function drain(spec: BucketSpec, state: { s: BucketState | undefined }, n: number, now: number): number {
  let passed = 0;
  for (let i = 0; i < n; i++) {
    const step = bucketStep(spec, state.s, 1, now);
    if (step.result.ok) {
      state.s = step.next;
      passed++;
    }
  }
  return passed;
}

describe('token bucket', () => {
  const perSecond: BucketSpec = { kind: 'bucket', key: 'k', requests: 10, periodMs: 1000, capacity: 10 };

  it('admits exactly N at once, refuses N+1, and starts full', () => {
    const st = { s: undefined as BucketState | undefined };
    const first = bucketStep(perSecond, undefined, 1, T0);
    assert.equal(first.result.remaining, 9);
    assert.equal(drain(perSecond, st, 10, T0), 10);
    const refused = bucketStep(perSecond, st.s, 1, T0);
    assert.equal(refused.result.ok, false);
    assert.equal(refused.result.remaining, 0);
    // One token takes 100 ms at 10/s.
    assert.equal(refused.result.resetMs, T0 + 100);
  });

  it('refills continuously: one token per period/requests, never above capacity', () => {
    const st = { s: undefined as BucketState | undefined };
    drain(perSecond, st, 10, T0);
    assert.equal(bucketStep(perSecond, st.s, 1, T0 + 99).result.ok, false);
    assert.equal(drain(perSecond, st, 5, T0 + 100), 1);
    assert.equal(drain(perSecond, st, 5, T0 + 350), 2, '250 ms later: 2.5 tokens → 2 requests');
    // Half a token was kept: 50 ms more makes the third.
    assert.equal(drain(perSecond, st, 5, T0 + 400), 1);
    // After a long idle the bucket is full, not fuller.
    assert.equal(drain(perSecond, st, 50, T0 + 3_600_000), 10);
  });

  it('burst: capacity requests + burst, refilled at the steady rate', () => {
    const seed: BucketSpec = { kind: 'bucket', key: 'k', requests: 100, periodMs: 1000, capacity: 120 };
    const st = { s: undefined as BucketState | undefined };
    assert.equal(drain(seed, st, 200, T0), 120);
    assert.equal(drain(seed, st, 200, T0 + 1000), 100, 'a second later: 100 more, not 120');
    assert.equal(drain(seed, st, 200, T0 + 1010), 1);
  });

  it('per-minute and per-hour rates', () => {
    const login: BucketSpec = { kind: 'bucket', key: 'k', requests: 10, periodMs: 60_000, capacity: 10 };
    const st = { s: undefined as BucketState | undefined };
    assert.equal(drain(login, st, 11, T0), 10);
    const r = bucketStep(login, st.s, 1, T0);
    assert.equal(r.result.resetMs, T0 + 6_000);
    assert.equal(retryAfterSeconds(r.result.resetMs, T0), 6);
    const hourly: BucketSpec = { kind: 'bucket', key: 'k', requests: 1_000_000_000, periodMs: 3_600_000, capacity: 2_000_000_000 };
    const h = bucketStep(hourly, undefined, 1, T0);
    assert.equal(h.result.remaining, 1_999_999_999, 'the largest buckets stay exact (below 2^53)');
  });

  it('a cost above capacity never passes, and says when the bucket is full', () => {
    const r = bucketStep(perSecond, undefined, 11, T0);
    assert.equal(r.result.ok, false);
    assert.equal(r.result.remaining, 10);
    assert.equal(r.result.resetMs, T0 + 1, 'already full: retry at the earliest instant');
    const st = { s: undefined as BucketState | undefined };
    drain(perSecond, st, 10, T0);
    assert.equal(bucketStep(perSecond, st.s, 11, T0).result.resetMs, T0 + 1000);
  });

  it('a clock stepping back refills nothing (and does not drain)', () => {
    const st = { s: undefined as BucketState | undefined };
    drain(perSecond, st, 10, T0);
    assert.equal(bucketStep(perSecond, st.s, 1, T0 - 5_000).result.ok, false);
  });

  it('reports when the bucket is full again for admitted requests', () => {
    const r = bucketStep(perSecond, undefined, 3, T0);
    assert.equal(r.result.resetMs, T0 + 300);
    assert.equal(r.unconsumed.remaining, 10);
  });
});

describe('calendar windows (UTC)', () => {
  it('day windows run from midnight to midnight UTC', () => {
    const b = windowBounds('day', Date.UTC(2026, 3, 12, 23, 59, 59, 999));
    assert.equal(b.start, Date.UTC(2026, 3, 12));
    assert.equal(b.end, Date.UTC(2026, 3, 13));
    assert.notEqual(windowBounds('day', Date.UTC(2026, 3, 13)).id, b.id);
  });

  it('month windows follow month lengths, leap years and the year end', () => {
    const cases: Array<[number, number, number]> = [
      [2026, 0, 31],
      [2026, 1, 28],
      [2024, 1, 29],
      [2000, 1, 29],
      [2100, 1, 28],
      [2026, 3, 30],
      [2026, 11, 31],
    ];
    for (const [y, m, days] of cases) {
      const b = windowBounds('month', Date.UTC(y, m, 15, 12));
      assert.equal(b.start, Date.UTC(y, m, 1), `${y}-${m + 1} start`);
      assert.equal((b.end - b.start) / 86_400_000, days, `${y}-${m + 1} has ${days} days`);
    }
    assert.equal(windowBounds('month', Date.UTC(2026, 11, 31, 23, 59, 59, 999)).end, Date.UTC(2027, 0, 1));
  });

  it('a quota resets exactly at the UTC day boundary', () => {
    const spec: WindowSpec = { kind: 'window', key: 'q', limit: 3, per: 'day' };
    const c = { now: Date.UTC(2026, 3, 12, 23, 59, 59, 998) };
    const mem = new MemoryCounters({ clock: () => c.now, sweepIntervalMs: 0 });
    for (let i = 0; i < 3; i++) assert.equal(mem.evaluateNow([spec], 1).allowed, true);
    const refused = mem.evaluateNow([spec], 1);
    assert.equal(refused.allowed, false);
    assert.equal(refused.results[0]!.resetMs, Date.UTC(2026, 3, 13));
    assert.equal(retryAfterSeconds(refused.results[0]!.resetMs, c.now), 1);
    c.now = Date.UTC(2026, 3, 12, 23, 59, 59, 999);
    assert.equal(mem.evaluateNow([spec], 1).allowed, false, 'one ms before midnight: still the old day');
    c.now = Date.UTC(2026, 3, 13);
    const fresh = mem.evaluateNow([spec], 1);
    assert.equal(fresh.allowed, true, 'at midnight UTC: a new day');
    assert.equal(fresh.results[0]!.remaining, 2);
  });

  it('a quota resets exactly at the UTC month boundary (30-day, 31-day, February)', () => {
    for (const [y, m] of [
      [2026, 3],
      [2026, 0],
      [2024, 1],
      [2026, 1],
      [2026, 11],
    ] as const) {
      const spec: WindowSpec = { kind: 'window', key: `q${y}${m}`, limit: 2, per: 'month' };
      const end = Date.UTC(y, m + 1, 1);
      const c = { now: Date.UTC(y, m, 1) };
      const mem = new MemoryCounters({ clock: () => c.now, sweepIntervalMs: 0 });
      assert.equal(mem.evaluateNow([spec], 2).allowed, true);
      c.now = end - 1;
      const r = mem.evaluateNow([spec], 1);
      assert.equal(r.allowed, false, `${y}-${m + 1}: last ms of the month is still exhausted`);
      assert.equal(r.results[0]!.resetMs, end);
      c.now = end;
      assert.equal(mem.evaluateNow([spec], 1).allowed, true, `${y}-${m + 1}: the next month starts fresh`);
    }
  });

  it('window arithmetic: limit, remaining, cost', () => {
    const spec: WindowSpec = { kind: 'window', key: 'q', limit: 5, per: 'day' };
    assert.deepEqual({ ok: windowStep(spec, 4, 1, T0).result.ok, remaining: windowStep(spec, 4, 1, T0).result.remaining }, { ok: true, remaining: 0 });
    const over = windowStep(spec, 4, 2, T0);
    assert.equal(over.result.ok, false);
    assert.equal(over.result.remaining, 1);
    assert.equal(over.next, 4);
  });
});

describe('atomic check-then-consume (memory counters)', () => {
  it('a request refused by one counter consumes nothing from the others', () => {
    const c = { now: T0 };
    const mem = new MemoryCounters({ clock: () => c.now, sweepIntervalMs: 0 });
    const rate: BucketSpec = { kind: 'bucket', key: 'r', requests: 2, periodMs: 1000, capacity: 2 };
    const quota: WindowSpec = { kind: 'window', key: 'q', limit: 10, per: 'day' };
    assert.equal(mem.evaluateNow([rate, quota], 1).allowed, true);
    assert.equal(mem.evaluateNow([rate, quota], 1).allowed, true);
    for (let i = 0; i < 5; i++) {
      const r = mem.evaluateNow([rate, quota], 1);
      assert.equal(r.allowed, false);
      assert.equal(r.results[1]!.remaining, 8, 'the quota is untouched by refused requests');
      assert.equal(r.results[1]!.ok, true);
    }
    c.now += 1000;
    assert.equal(mem.evaluateNow([rate, quota], 1).results[1]!.remaining, 7);
  });

  it('a request refused by the quota consumes no tokens', () => {
    const c = { now: T0 };
    const mem = new MemoryCounters({ clock: () => c.now, sweepIntervalMs: 0 });
    const rate: BucketSpec = { kind: 'bucket', key: 'r', requests: 100, periodMs: 1000, capacity: 100 };
    const quota: WindowSpec = { kind: 'window', key: 'q', limit: 2, per: 'day' };
    mem.evaluateNow([rate, quota], 2);
    const r = mem.evaluateNow([rate, quota], 1);
    assert.equal(r.allowed, false);
    assert.equal(r.results[0]!.remaining, 98);
  });

  it('expired counters are swept; a full bucket is the same as none', () => {
    const c = { now: T0 };
    const mem = new MemoryCounters({ clock: () => c.now, sweepIntervalMs: 0 });
    const rate: BucketSpec = { kind: 'bucket', key: 'r', requests: 10, periodMs: 1000, capacity: 10 };
    const quota: WindowSpec = { kind: 'window', key: 'q', limit: 2, per: 'day' };
    assert.equal(mem.evaluateNow([rate, quota], 2).allowed, true);
    assert.equal(mem.size, 2);
    c.now += 200 + 999; // bucket full again after 200 ms, kept for the grace second
    assert.equal(mem.sweep(), 0);
    c.now += 1;
    assert.equal(mem.sweep(), 1);
    c.now = Date.UTC(2026, 3, 13, 0, 1); // past the day window + grace
    assert.equal(mem.sweep(), 1);
    assert.equal(mem.size, 0);
  });
});

describe('reporting', () => {
  it('the refusing counter with the longest wait speaks for a refusal; else the fewest remaining', () => {
    assert.equal(reportedIndex([]), -1);
    assert.equal(
      reportedIndex([
        { ok: true, remaining: 5, resetMs: 0 },
        { ok: true, remaining: 2, resetMs: 0 },
        { ok: true, remaining: 2, resetMs: 9 },
      ]),
      1,
    );
    assert.equal(
      reportedIndex([
        { ok: true, remaining: 0, resetMs: 0 },
        { ok: false, remaining: 0, resetMs: 10 },
        { ok: false, remaining: 0, resetMs: 50 },
        { ok: false, remaining: 0, resetMs: 20 },
      ]),
      2,
    );
  });

  it('Retry-After is whole seconds, at least 1; Reset is the Unix second the budget is back', () => {
    assert.equal(retryAfterSeconds(T0 + 1, T0), 1);
    assert.equal(retryAfterSeconds(T0, T0), 1);
    assert.equal(retryAfterSeconds(T0 + 2001, T0), 3);
    assert.equal(resetEpochSeconds(T0 + 2001), T0 / 1000 + 3);
    assert.equal(resetEpochSeconds(T0 + 2000), T0 / 1000 + 2);
  });
});
