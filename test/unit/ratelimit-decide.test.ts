// The in-process decision API over memory counters with an injected clock: seed 003's limits and
// its exact 429 (headers and body), quotas, rejected requests consuming nothing, shadow plans,
// failure modes (logged once per incident), metrics, and model swaps.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { Evaluation } from '../../src/ratelimit/algorithms.ts';
import { MemoryCounters, type CounterBackend } from '../../src/ratelimit/backend.ts';
import { errorBody } from '../../src/contract/index.ts';
import type { Decision, DecisionRequest } from '../../src/ratelimit/decision.ts';
import { modelOf, seedEntries, seedModel } from '../support/ratelimit-fixtures.ts';
import { RateLimiter, type LimiterLogger } from '../../src/ratelimit/limiter.ts';

// 2024-04-12T15:59:59.500Z: the seed's X-RateLimit-Reset (1712937600) is half a second away.
const T0 = 1_712_937_599_500;

function setup(opts: { now?: number; failureMode?: 'open' | 'closed'; backend?: CounterBackend; maxPartnerLabels?: number; logger?: LimiterLogger } = {}) {
  const clock = { now: opts.now ?? T0 };
  const registry = new Registry();
  const backend = opts.backend ?? new MemoryCounters({ clock: () => clock.now, sweepIntervalMs: 0 });
  const limiter = new RateLimiter({
    backend,
    model: seedModel(),
    clock: () => clock.now,
    metrics: { registry, ...(opts.maxPartnerLabels !== undefined ? { maxPartnerLabels: opts.maxPartnerLabels } : {}) },
    ...(opts.failureMode ? { failureMode: opts.failureMode } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  return { clock, registry, limiter };
}

async function run(limiter: RateLimiter, req: DecisionRequest, n: number): Promise<Decision[]> {
  const out: Decision[] = [];
  for (let i = 0; i < n; i++) out.push(await limiter.decide(req));
  return out;
}

const headers = (d: Decision) => Object.fromEntries(d.headers.map((h) => [h.key, h.value]));

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v ? Number(v.value) : 0;
}

const acme = (route = 'orders', user = 'u1', ip = '203.0.113.7'): DecisionRequest => ({
  product: 'shop',
  route,
  partner: 'acme',
  clientIp: ip,
  headers: { 'x-user-id': user },
});

describe('decide: seed 003', () => {
  it('default 100/s burst 20 by user: 120 pass at once, the 121st gets the exact 429', async () => {
    const { limiter } = setup();
    const ok = await run(limiter, acme(), 120);
    assert.ok(ok.every((d) => d.allowed && d.status === 200));
    assert.deepEqual(ok[0]!.headers, [
      { key: 'X-RateLimit-Limit', value: '100' },
      { key: 'X-RateLimit-Remaining', value: '100' },
    ]);
    assert.deepEqual(headers(ok[119]!), { 'X-RateLimit-Limit': '100', 'X-RateLimit-Remaining': '0' });
    // Remaining is the window's quota left (IETF RateLimit draft): never above Limit, though the
    // burst lets 120 through; it stays at 100 while the burst is spent, then counts down.
    const remaining = ok.map((x) => Number(headers(x)['X-RateLimit-Remaining']));
    assert.ok(
      remaining.every((r) => r <= 100),
      'never more remaining than the limit',
    );
    assert.deepEqual([remaining[19], remaining[20], remaining[21]], [100, 99, 98]);
    assert.equal(ok[0]!.limit!.remaining, 100, 'the decision reports the same to the rate-limit service response');
    const d = await limiter.decide(acme());
    assert.equal(d.allowed, false);
    assert.equal(d.status, 429);
    assert.equal(d.outcome, 'limited');
    assert.equal(d.error, 'rate_limit_exceeded');
    assert.deepEqual(d.headers, [
      { key: 'Retry-After', value: '1' },
      { key: 'X-RateLimit-Limit', value: '100' },
      { key: 'X-RateLimit-Remaining', value: '0' },
      { key: 'X-RateLimit-Reset', value: '1712937600' },
      { key: 'content-type', value: 'application/json' },
    ]);
    assert.equal(d.body, '{"error":"rate_limit_exceeded","message":"Too many requests. Retry after 1 second.","retry_after":1}');
    assert.equal(d.limit?.id, 'standard:shop:*:second');
    // Another user of the same partner has a budget of its own.
    assert.equal((await limiter.decide(acme('orders', 'u2'))).allowed, true);
  });

  it('the body matches the seed byte for byte for any N', () => {
    assert.equal(errorBody('rate_limit_exceeded', 3), '{"error":"rate_limit_exceeded","message":"Too many requests. Retry after 3 seconds.","retry_after":3}');
    assert.deepEqual(JSON.parse(errorBody('quota_exceeded', 86400)), { error: 'quota_exceeded', message: 'Quota exceeded. Retry after 86400 seconds.', retry_after: 86400 });
  });

  it('login: 10/min by client IP (users share it; another IP does not; other routes unaffected)', async () => {
    const { limiter, clock } = setup();
    for (let i = 0; i < 10; i++) assert.equal((await limiter.decide(acme('login', `user${i}`))).allowed, true);
    const d = await limiter.decide(acme('login', 'someone-else'));
    assert.equal(d.status, 429);
    assert.equal(headers(d)['Retry-After'], '6', 'one token every 6 s');
    assert.equal(headers(d)['X-RateLimit-Limit'], '10');
    assert.equal(headers(d)['X-RateLimit-Reset'], String(Math.ceil((T0 + 6000) / 1000)));
    assert.equal((await limiter.decide(acme('login', 'u1', '198.51.100.1'))).allowed, true);
    assert.deepEqual(headers(await limiter.decide(acme('orders'))), { 'X-RateLimit-Limit': '100', 'X-RateLimit-Remaining': '100' });
    clock.now += 6000;
    assert.equal((await limiter.decide(acme('login'))).allowed, true);
    assert.equal((await limiter.decide(acme('login'))).allowed, false);
  });

  it('search: 20/s by user, a budget separate from the default', async () => {
    const { limiter } = setup();
    assert.equal((await run(limiter, acme('search'), 21)).filter((d) => d.allowed).length, 20);
    assert.equal((await limiter.decide(acme('orders'))).allowed, true);
  });

  it('a missing user header counts by client IP', async () => {
    const { limiter } = setup();
    const anon = { product: 'shop', route: 'search', partner: 'acme', clientIp: '192.0.2.1' };
    assert.equal((await run(limiter, anon, 21)).filter((d) => d.allowed).length, 20);
    assert.equal((await limiter.decide({ ...anon, clientIp: '192.0.2.2' })).allowed, true);
    // headerValue is the fallback when the caller does not pass the headers map.
    assert.equal((await run(limiter, { ...anon, headerValue: 'u9' }, 21)).filter((d) => d.allowed).length, 20);
  });
});

describe('decide: quotas', () => {
  it('quota exhaustion: the same shape with quota_exceeded, until the UTC day ends', async () => {
    const midnight = Date.UTC(2026, 3, 13);
    const { limiter, clock } = setup({ now: midnight - 10_000 });
    const g = { product: 'shop', route: 'orders', partner: 'globex' };
    // gold: 5/s burst 2, 20/day, 100/month; spread the 20 requests so the rate never refuses.
    for (let i = 0; i < 20; i++) {
      const d = await limiter.decide(g);
      assert.equal(d.allowed, true, `request ${i}`);
      clock.now += 250;
    }
    clock.now = midnight - 3_500;
    const d = await limiter.decide(g);
    assert.equal(d.status, 429);
    assert.equal(d.outcome, 'quota_exceeded');
    assert.equal(d.error, 'quota_exceeded');
    assert.deepEqual(d.headers, [
      { key: 'Retry-After', value: '4' },
      { key: 'X-RateLimit-Limit', value: '20' },
      { key: 'X-RateLimit-Remaining', value: '0' },
      { key: 'X-RateLimit-Reset', value: String(midnight / 1000) },
      { key: 'content-type', value: 'application/json' },
    ]);
    assert.equal(d.body, '{"error":"quota_exceeded","message":"Quota exceeded. Retry after 4 seconds.","retry_after":4}');
    clock.now = midnight - 1;
    assert.equal((await limiter.decide(g)).allowed, false);
    clock.now = midnight;
    const next = await limiter.decide(g);
    assert.equal(next.allowed, true);
    // The month quota kept counting across the day boundary: 100 - 21.
    assert.equal(next.limits.find((l) => l.per === 'month')?.remaining, 79);
    assert.equal(next.limits.find((l) => l.per === 'day')?.remaining, 19);
  });

  it('requests refused by the rate consume nothing from the quotas (and vice versa)', async () => {
    const { limiter, clock } = setup();
    const g = { product: 'shop', route: 'orders', partner: 'globex' };
    assert.equal((await run(limiter, g, 7)).filter((d) => d.allowed).length, 7, 'capacity 5 + burst 2');
    const refused = await run(limiter, g, 30);
    assert.ok(refused.every((d) => d.outcome === 'limited'));
    assert.equal(refused.at(-1)!.limits.find((l) => l.per === 'day')?.remaining, 13);
    clock.now += 1000;
    const d = await limiter.decide(g);
    assert.equal(d.allowed, true);
    assert.equal(d.limits.find((l) => l.per === 'day')?.remaining, 12);
  });

  it('the most restrictive limit speaks for allowed responses', async () => {
    const { limiter, clock } = setup();
    const g = { product: 'shop', route: 'orders', partner: 'globex' };
    let d = await limiter.decide(g);
    assert.deepEqual(headers(d), { 'X-RateLimit-Limit': '5', 'X-RateLimit-Remaining': '5' });
    for (let i = 0; i < 14; i++) {
      clock.now += 1000;
      d = await limiter.decide(g);
    }
    assert.deepEqual(headers(d), { 'X-RateLimit-Limit': '20', 'X-RateLimit-Remaining': '5' }, 'the day quota is now the tighter one');
  });

  it('hits (Envoy hits_addend) are consumed together or not at all', async () => {
    const { limiter } = setup();
    const g = { product: 'shop', route: 'orders', partner: 'globex', hits: 4 };
    assert.equal((await limiter.decide(g)).allowed, true);
    const d = await limiter.decide(g);
    assert.equal(d.allowed, false);
    assert.equal(d.limits[0]!.remaining, 3);
    assert.equal((await limiter.decide({ ...g, hits: 3 })).allowed, true);
  });
});

describe('decide: shadow plans', () => {
  it('counts and reports would-be refusals, never refuses, and consumes as enforcement would', async () => {
    const { limiter, registry, clock } = setup();
    const s = { product: 'shop', route: 'orders', partner: 'stark' };
    const ds = await run(limiter, s, 5);
    assert.ok(ds.every((d) => d.allowed && d.status === 200 && d.body === undefined));
    assert.deepEqual(
      ds.map((d) => d.outcome),
      ['allowed', 'allowed', 'allowed', 'shadow_limited', 'shadow_limited'],
    );
    assert.deepEqual(headers(ds[4]!), { 'X-RateLimit-Limit': '3', 'X-RateLimit-Remaining': '0' });
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { partner: 'stark', outcome: 'shadow_limited' }), 2);
    // 3/min: one token per 20 s, exactly as if the plan were enforced.
    clock.now += 20_000;
    assert.deepEqual(
      (await run(limiter, s, 2)).map((d) => d.outcome),
      ['allowed', 'shadow_limited'],
    );
  });
});

describe('decide: no limits', () => {
  it('callers with no plan pass with no headers; unknown products are labelled unknown', async () => {
    const m = modelOf(seedEntries().map(([k, r]) => [k, k === 'products' ? { ...(r as object), publicPlan: undefined } : r]));
    const { limiter, registry } = setup();
    limiter.setModel(m);
    const d = await limiter.decide({ product: 'shop', route: 'orders', clientIp: '192.0.2.1' });
    assert.deepEqual({ allowed: d.allowed, outcome: d.outcome, headers: d.headers, limits: d.limits }, { allowed: true, outcome: 'allowed', headers: [], limits: [] });
    await limiter.decide({ product: 'other', route: 'x', partner: 'acme' });
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { product: 'unknown', outcome: 'allowed' }), 1);
  });

  it('a new snapshot swaps the table: later decisions use the new limits', async () => {
    const { limiter } = setup();
    assert.equal(
      (await run(limiter, acme('search'), 20)).every((d) => d.allowed),
      true,
    );
    const m = modelOf(
      seedEntries().map(([k, r]) => [k, k === 'plans' && (r as { name: string }).name === 'standard' ? { ...(r as object), overrides: [] } : r]),
      2,
    );
    limiter.setModel(m);
    assert.equal(limiter.limitTable.revision, 2);
    const d = await limiter.decide(acme('search'));
    assert.deepEqual(headers(d), { 'X-RateLimit-Limit': '100', 'X-RateLimit-Remaining': '100' }, 'search now shares the default budget');
  });
});

class FlakyBackend implements CounterBackend {
  readonly kind = 'redis' as const;
  down = true;
  readonly inner = new MemoryCounters({ sweepIntervalMs: 0 });
  evaluate(specs: Parameters<CounterBackend['evaluate']>[0], cost: number): Promise<Evaluation> {
    return this.down ? Promise.reject(new Error('connect ECONNREFUSED')) : this.inner.evaluate(specs, cost);
  }
  async ready(): Promise<void> {}
  async close(): Promise<void> {}
}

function recordingLogger() {
  const lines: Array<{ level: string; msg: string; obj: object }> = [];
  const logger: LimiterLogger = {
    info: (obj, msg) => lines.push({ level: 'info', msg, obj }),
    warn: (obj, msg) => lines.push({ level: 'warn', msg, obj }),
  };
  return { lines, logger };
}

describe('decide: counter backend failures', () => {
  it('fails open by default: allowed, counted, logged once per incident, recovers by itself', async () => {
    const backend = new FlakyBackend();
    const { lines, logger } = recordingLogger();
    const { limiter, registry } = setup({ backend, logger });
    const ds = await run(limiter, acme(), 5);
    assert.ok(ds.every((d) => d.allowed && d.outcome === 'error' && d.headers.length === 0));
    assert.equal(limiter.healthy, false);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'warn');
    assert.match(lines[0]!.msg, /failing open/);
    assert.equal(await metricValue(registry, 'portico_ratelimit_backend_errors_total'), 5);
    assert.equal(await metricValue(registry, 'portico_ratelimit_backend_up'), 0);
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { outcome: 'error' }), 5);
    backend.down = false;
    assert.equal((await limiter.decide(acme())).outcome, 'allowed');
    assert.equal(limiter.healthy, true);
    assert.equal(lines.length, 2);
    assert.deepEqual({ level: lines[1]!.level, failed: (lines[1]!.obj as { failedDecisions: number }).failedDecisions }, { level: 'info', failed: 5 });
    assert.equal(await metricValue(registry, 'portico_ratelimit_backend_up'), 1);
    backend.down = true;
    await run(limiter, acme(), 3);
    assert.equal(lines.length, 3, 'a new incident is logged again, once');
  });

  it('fails closed when configured: 429 rate_limit_unavailable (shadow plans still pass)', async () => {
    const { limiter } = setup({ backend: new FlakyBackend(), failureMode: 'closed' });
    const d = await limiter.decide(acme());
    assert.equal(d.status, 429);
    assert.equal(d.outcome, 'error');
    assert.equal(d.body, '{"error":"rate_limit_unavailable","message":"Rate limiting is temporarily unavailable. Retry after 1 second.","retry_after":1}');
    assert.deepEqual(headers(d), { 'Retry-After': '1', 'content-type': 'application/json' });
    assert.equal((await limiter.decide({ product: 'shop', route: 'orders', partner: 'stark' })).allowed, true);
  });
});

describe('decide: metrics', () => {
  it('decisions by product, partner and outcome; partner labels capped, the rest "other"', async () => {
    const { limiter, registry } = setup({ maxPartnerLabels: 1 });
    await limiter.decide(acme());
    await limiter.decide({ product: 'shop', route: 'orders', partner: 'globex' });
    await limiter.decide({ product: 'shop', route: 'orders', partner: 'stark' });
    await limiter.decide({ product: 'shop', route: 'orders', clientIp: '192.0.2.1' });
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { product: 'shop', partner: 'acme', outcome: 'allowed' }), 1);
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { partner: 'other', outcome: 'allowed' }), 2);
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { partner: 'none', outcome: 'allowed' }), 1);
    const text = await registry.metrics();
    assert.match(text, /portico_ratelimit_decision_seconds_count 4/);
    assert.match(text, /portico_ratelimit_backend_up\{backend="memory"\} 1/);
    assert.doesNotMatch(text, /partner="globex"/);
    // Counted locally and added at scrape time: later scrapes keep adding, never lose or repeat.
    await limiter.decide(acme());
    await limiter.decide(acme());
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { product: 'shop', partner: 'acme', outcome: 'allowed' }), 3);
    assert.equal(await metricValue(registry, 'portico_ratelimit_decisions_total', { product: 'shop', partner: 'acme', outcome: 'allowed' }), 3);
  });
});
