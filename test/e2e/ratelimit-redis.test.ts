// Redis counters against a real Redis: the Lua script agrees with the in-memory arithmetic, to the
// millisecond, across window boundaries; concurrent decisions share round trips yet stay exact;
// the script reloads after a flush; counters outlive the limiter; an outage fails fast, not hangs.
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import type { BucketSpec, CounterSpec, Evaluation, WindowSpec } from '../../src/ratelimit/algorithms.ts';
import { MemoryCounters } from '../../src/ratelimit/backend.ts';
import { RedisCounters, RedisUnavailableError } from '../../src/ratelimit/redis.ts';
import { startRedis, type RedisServer } from '../support/components.ts';

let redis: RedisServer | undefined;
let prefixes = 0;

/** One Redis for the file, started by the first test (skipped without Redis; failed under CI). */
async function needRedis(t: TestContext): Promise<boolean> {
  redis ??= await startRedis(t);
  return redis !== undefined;
}

function counters(opts: { clock?: () => number; onRoundTrip?: (n: number) => void; commandTimeoutMs?: number } = {}): RedisCounters {
  return new RedisCounters({ url: redis!.url, keyPrefix: `t${++prefixes}:`, ...opts });
}

/** A small deterministic PRNG so a failing sequence can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('Redis counters', { concurrency: false }, () => {
  after(async () => redis?.stop());

  it('the Lua script and the memory counters give identical answers (buckets, burst, day and month windows)', async (t) => {
    if (!(await needRedis(t))) return;
    const specs: CounterSpec[][] = [
      [{ kind: 'bucket', key: 'a', requests: 10, periodMs: 1000, capacity: 12 } satisfies BucketSpec],
      [{ kind: 'bucket', key: 'b', requests: 3, periodMs: 60_000, capacity: 3 }, { kind: 'window', key: 'b', limit: 25, per: 'day' } satisfies WindowSpec],
      [
        { kind: 'bucket', key: 'c', requests: 7, periodMs: 3_600_000, capacity: 9 },
        { kind: 'window', key: 'cd', limit: 40, per: 'day' },
        { kind: 'window', key: 'cm', limit: 60, per: 'month' },
      ],
    ];
    // Start just before a month end (a 28-day February) so day and month windows roll over.
    const clock = { now: Date.UTC(2026, 1, 28, 23, 58, 0) };
    const mem = new MemoryCounters({ clock: () => clock.now, sweepIntervalMs: 0 });
    const red = counters({ clock: () => clock.now });
    await red.ready();
    const rnd = prng(42);
    const seen = { allowed: 0, refused: 0 };
    try {
      for (let i = 0; i < 600; i++) {
        clock.now += Math.floor(rnd() * 900);
        const s = specs[Math.floor(rnd() * specs.length)]!;
        const cost = rnd() < 0.1 ? 1 + Math.floor(rnd() * 4) : 1;
        const a = mem.evaluateNow(s, cost);
        const b: Evaluation = await red.evaluate(s, cost);
        assert.deepEqual(b, a, `step ${i} at ${new Date(clock.now).toISOString()}`);
        seen[a.allowed ? 'allowed' : 'refused']++;
      }
    } finally {
      await red.close();
    }
    assert.ok(clock.now > Date.UTC(2026, 2, 1, 0, 0), 'the sequence crossed the month boundary');
    assert.ok(seen.allowed > 50 && seen.refused > 50, `both outcomes exercised: ${JSON.stringify(seen)}`);
  });

  it('month windows in Lua: every month length, leap years, the year end', async (t) => {
    if (!(await needRedis(t))) return;
    const clock = { now: 0 };
    const red = counters({ clock: () => clock.now });
    await red.ready();
    try {
      for (const [y, m] of [
        [2024, 1],
        [2100, 1],
        [2000, 1],
        [2026, 3],
        [2026, 6],
        [2026, 11],
      ] as const) {
        const spec: WindowSpec = { kind: 'window', key: `m${y}-${m}`, limit: 1, per: 'month' };
        const end = Date.UTC(y, m + 1, 1);
        clock.now = Date.UTC(y, m, 1);
        assert.equal((await red.evaluate([spec], 1)).allowed, true);
        clock.now = end - 1;
        const r = await red.evaluate([spec], 1);
        assert.deepEqual({ allowed: r.allowed, resetMs: r.results[0]!.resetMs }, { allowed: false, resetMs: end }, `${y}-${m + 1}`);
        clock.now = end;
        assert.equal((await red.evaluate([spec], 1)).allowed, true, `${y}-${m + 2} starts fresh`);
      }
    } finally {
      await red.close();
    }
  });

  it('concurrent decisions are batched into few round trips and stay exact', async (t) => {
    if (!(await needRedis(t))) return;
    let trips = 0;
    let carried = 0;
    const red = counters({
      onRoundTrip: (n) => {
        trips++;
        carried += n;
      },
    });
    await red.ready();
    try {
      const spec: BucketSpec = { kind: 'bucket', key: 'hot', requests: 50, periodMs: 3_600_000, capacity: 50 };
      await red.client.config('RESETSTAT');
      const results = await Promise.all(Array.from({ length: 300 }, () => red.evaluate([spec], 1)));
      assert.equal(results.filter((r) => r.allowed).length, 50, 'exactly the capacity, under concurrency');
      assert.equal(carried, 300);
      assert.ok(trips <= 3, `300 concurrent decisions took ${trips} round trips`);
      // Redis saw EVALSHA once per round trip, not once per decision.
      const stats = String(await red.client.info('commandstats'));
      const evalsha = Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
      assert.equal(evalsha, trips, 'one EVALSHA per round trip');
    } finally {
      await red.close();
    }
  });

  it('reloads the script after SCRIPT FLUSH (NOSCRIPT)', async (t) => {
    if (!(await needRedis(t))) return;
    const red = counters();
    await red.ready();
    try {
      const spec: BucketSpec = { kind: 'bucket', key: 'x', requests: 2, periodMs: 3_600_000, capacity: 2 };
      assert.equal((await red.evaluate([spec], 1)).allowed, true);
      await red.client.script('FLUSH');
      assert.equal((await red.evaluate([spec], 1)).allowed, true);
      assert.equal((await red.evaluate([spec], 1)).allowed, false);
    } finally {
      await red.close();
    }
  });

  it('counters outlive the limiter: a new instance sees what the old one consumed; TTLs run past the window', async (t) => {
    if (!(await needRedis(t))) return;
    const prefix = `persist${Date.now()}:`;
    const quota: WindowSpec = { kind: 'window', key: 'q', limit: 3, per: 'month' };
    const first = new RedisCounters({ url: redis!.url, keyPrefix: prefix });
    await first.ready();
    const r = await first.evaluate([quota], 3);
    assert.equal(r.allowed, true);
    await first.close();
    const second = new RedisCounters({ url: redis!.url, keyPrefix: prefix });
    await second.ready();
    try {
      const again = await second.evaluate([quota], 1);
      assert.equal(again.allowed, false, 'the month quota is still used up');
      const [key] = await second.client.keys(`${prefix}q:m*`);
      const ttl = await second.client.pttl(key!);
      assert.ok(ttl > again.results[0]!.resetMs - again.now, 'expires after the window ends');
    } finally {
      await second.close();
    }
  });

  it('fails fast while Redis is down, without unhandled rejections, and recovers by itself', async (t) => {
    if (!(await needRedis(t))) return;
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const red = counters({ commandTimeoutMs: 200 });
    await red.ready();
    const spec: BucketSpec = { kind: 'bucket', key: 'down', requests: 100, periodMs: 1000, capacity: 100 };
    try {
      assert.equal((await red.evaluate([spec], 1)).allowed, true);
      await redis!.pause();
      const started = Date.now();
      const failures = await Promise.allSettled(Array.from({ length: 20 }, () => red.evaluate([spec], 1)));
      assert.ok(failures.every((f) => f.status === 'rejected' && f.reason instanceof RedisUnavailableError));
      assert.ok(Date.now() - started < 1000, `failed in ${Date.now() - started} ms`);
      await redis!.start();
      const back = await waitForAllowed(() => red.evaluate([spec], 1));
      assert.equal(back.allowed, true);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await red.close();
    }
  });
});

async function waitForAllowed(fn: () => Promise<Evaluation>): Promise<Evaluation> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
