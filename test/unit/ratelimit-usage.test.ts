// What the partner portal shows as usage (src/ratelimit/usage.ts): the budgets a partner's
// subscriptions give it, each read where it is counted — the limiter's counters (cost-0 reads that
// consume nothing), the native quota ledger per gateway group, nothing for Envoy's own buckets — and
// no figure for budgets that are not the partner's alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import { MemoryCounters, QuotaLedger, RateLimiter, partnerBudgets, readPartnerUsage, type BudgetUsage } from '../../src/ratelimit/index.ts';
import { accessLogEntry as entry } from '../support/ratelimit-fixtures.ts';
import { validModel } from '../support/translate.ts';

const T0 = Date.UTC(2026, 11, 5, 10, 0, 0);

function model(extra: Array<[KindName, object]> = []): ModelSnapshot {
  return validModel([
    ['gatewayGroups', { name: 'native', listeners: [{ name: 'web', port: 8080 }], rateLimit: { mode: 'native' } }],
    // States combined: an unstated group would count only \`other\` (quotas by client address) with the callout.
    ['gatewayGroups', { name: 'exact', listeners: [{ name: 'web', port: 8081 }], rateLimit: { mode: 'combined' } }],
    ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'api', gatewayGroups: ['native', 'exact'] }],
    ['products', { name: 'other', gatewayGroups: ['exact'] }],
    ['routes', { product: 'api', name: 'a', match: { path: { type: 'prefix', value: '/a' } }, service: 's' }],
    ['routes', { product: 'api', name: 'b', match: { path: { type: 'prefix', value: '/b' } }, service: 's' }],
    ['routes', { product: 'other', name: 'a', match: { path: { type: 'prefix', value: '/o' } }, service: 's' }],
    [
      'plans',
      {
        name: 'small',
        limits: [{ requests: 5, per: 'minute', burst: 2 }],
        quotas: [{ requests: 3, per: 'day' }],
        overrides: [{ product: 'api', route: 'b', countBy: { kind: 'route' }, quotas: [{ requests: 2, per: 'month' }] }],
      },
    ],
    ['plans', { name: 'byip', countBy: { kind: 'client_ip' }, quotas: [{ requests: 9, per: 'day' }] }],
    ['partners', { name: 'acme' }],
    ['partners', { name: 'globex' }],
    ['subscriptions', { partner: 'acme', product: 'api', plan: 'small' }],
    ['subscriptions', { partner: 'acme', product: 'other', plan: 'byip' }],
    ['subscriptions', { partner: 'globex', product: 'api', plan: 'small' }],
    ...extra,
  ]);
}

const pick = (rows: BudgetUsage[], budget: string, group?: string) => rows.find((r) => r.budget === budget && r.group === group);

describe('partner usage', () => {
  it("lists the budgets of the partner's own subscriptions only, once each", () => {
    const budgets = partnerBudgets(model(), 'acme').map((b) => `${b.product} ${b.limit.id} ${b.route ?? '-'} ${b.count ?? '-'} native=${b.nativeGroups.join(',')} exact=${b.exact}`);
    assert.deepEqual(budgets, [
      'api small:api:*:minute - p:acme native=native exact=true',
      'api small:api:*:day - p:acme native=native exact=true',
      // The override counts by route: its own budget, not the partner's alone, and it keeps the plan's rate.
      'api small:api:b:minute b - native=native exact=true',
      'api small:api:b:month b - native=native exact=true',
      'other byip:other:*:day - - native= exact=true',
    ]);
    assert.deepEqual(partnerBudgets(model(), 'nobody'), []);
  });

  it('reads the limiter’s counters without consuming, and the ledger per native group', async () => {
    const m = model();
    let now = T0;
    const limiter = new RateLimiter({ backend: new MemoryCounters({ clock: () => now, sweepIntervalMs: 0 }), model: m, clock: () => now });
    const ledger = new QuotaLedger();
    ledger.setModel(m);
    for (let i = 0; i < 2; i++) await limiter.decide({ product: 'api', route: 'a', partner: 'acme' });
    await limiter.decide({ product: 'api', route: 'a', partner: 'globex' });
    ledger.recordEntries('native', [entry('a', 'acme')], now);

    const rows = await readPartnerUsage(m, 'acme', { limiter, ledger }, now);
    const day = pick(rows, 'small:api:*:day')!;
    assert.deepEqual([day.source, day.limit, day.used, day.remaining, day.resetAt], ['rate-limiter', 3, 2, 1, '2026-12-06T00:00:00.000Z']);
    // A bucket with a burst: remaining never shows more than the limit.
    const minute = pick(rows, 'small:api:*:minute')!;
    assert.deepEqual([minute.limit, minute.used, minute.remaining], [5, 0, 5]);
    const nativeDay = pick(rows, 'small:api:*:day', 'native')!;
    assert.deepEqual([nativeDay.source, nativeDay.used, nativeDay.remaining], ['quota-ledger', 1, 2]);
    const nativeRate = pick(rows, 'small:api:*:minute', 'native')!;
    assert.equal(nativeRate.source, 'envoy');
    assert.equal(nativeRate.used, undefined);
    assert.match(nativeRate.note!, /token bucket/);
    const byIp = pick(rows, 'byip:other:*:day')!;
    assert.equal(byIp.used, undefined);
    assert.match(byIp.note!, /client ip, not by partner/);

    // Reading twice consumes nothing; the next decision sees the same counters.
    await readPartnerUsage(m, 'acme', { limiter, ledger }, now);
    const d = await limiter.decide({ product: 'api', route: 'a', partner: 'acme' });
    assert.equal(d.outcome, 'allowed');
    assert.equal(pick(await readPartnerUsage(m, 'acme', { limiter, ledger }, now), 'small:api:*:day')!.remaining, 0);

    // A new UTC day starts at zero in both places.
    now = Date.UTC(2026, 11, 6, 0, 0, 1);
    const next = await readPartnerUsage(m, 'acme', { limiter, ledger }, now);
    assert.equal(pick(next, 'small:api:*:day')!.used, 0);
    assert.equal(pick(next, 'small:api:*:day', 'native')!.used, 0);
  });

  it('a counter backend that fails leaves the figure out with a note', async () => {
    const m = model();
    const failing = new MemoryCounters({ sweepIntervalMs: 0 });
    failing.evaluate = () => Promise.reject(new Error('down'));
    const limiter = new RateLimiter({ backend: failing, model: m });
    const rows = await readPartnerUsage(m, 'acme', { limiter }, T0);
    const day = pick(rows, 'small:api:*:day')!;
    assert.equal(day.used, undefined);
    assert.match(day.note!, /unavailable/);
  });
});
