// The limit table: which plan applies (subscription, public plan, suspended/expired), override
// precedence (limits, quotas, countBy independently), counter keys and what shares a budget.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateModel } from '../../src/model/validate.ts';
import { modelOf, seedEntries, seedModel } from '../support/ratelimit-fixtures.ts';
import { buildLimitTable, countKey, counterSpecs, type Resolution, type RuleSet } from '../../src/ratelimit/table.ts';

const NOW = Date.UTC(2026, 3, 12, 16);

function rules(r: Resolution): RuleSet {
  assert.equal(r.kind, 'rules', JSON.stringify(r));
  return (r as { rules: RuleSet }).rules;
}

const summary = (rs: RuleSet) => rs.limits.map((l) => `${l.id} ${l.requests}${l.burst ? `+${l.burst}` : ''}`);

describe('limit table: plan resolution', () => {
  const table = buildLimitTable(seedModel());

  it('the fixture model is valid', () => {
    assert.deepEqual(validateModel(seedModel()), []);
  });

  it("a partner's active subscription gives its plan", () => {
    const r = table.resolve('shop', 'orders', 'acme', NOW);
    assert.equal(r.kind === 'rules' && r.via, 'subscription');
    assert.deepEqual(summary(rules(r)), ['standard:shop:*:second 100+20']);
    assert.deepEqual(rules(r).countBy, { kind: 'header', header: 'X-User-Id' });
  });

  it('anonymous callers get the product publicPlan', () => {
    const r = table.resolve('shop', 'orders', undefined, NOW);
    assert.equal(r.kind === 'rules' && r.via, 'public');
    assert.equal(rules(r).plan, 'public');
  });

  it('suspended subscriptions, suspended partners, expired subscriptions and no subscription fall back to the public plan', () => {
    for (const partner of ['initech', 'umbrella', 'nobody']) {
      assert.equal(rules(table.resolve('shop', 'orders', partner, NOW)).plan, 'public', partner);
    }
    const expires = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(rules(table.resolve('shop', 'orders', 'hooli', expires - 1)).plan, 'gold');
    assert.equal(rules(table.resolve('shop', 'orders', 'hooli', expires)).plan, 'public', 'expired at expiresAt exactly');
  });

  it('without a public plan, callers without a subscription have no limits; unknown products likewise', () => {
    const entries = seedEntries().map(([k, r]) => (k === 'products' ? ([k, { ...(r as object), publicPlan: undefined }] as [typeof k, object]) : ([k, r] as [typeof k, object])));
    const t = buildLimitTable(modelOf(entries));
    assert.deepEqual(t.resolve('shop', 'orders', undefined, NOW), { kind: 'none', reason: 'no_plan' });
    assert.deepEqual(t.resolve('shop', 'orders', 'initech', NOW), { kind: 'none', reason: 'no_plan' });
    assert.deepEqual(t.resolve('nope', 'orders', 'acme', NOW), { kind: 'none', reason: 'unknown_product' });
    assert.equal(rules(t.resolve('shop', 'orders', 'acme', NOW)).plan, 'standard');
  });

  it('routes the model does not know (yet) get the plan defaults', () => {
    assert.deepEqual(summary(rules(table.resolve('shop', 'brand-new', 'acme', NOW))), ['standard:shop:*:second 100+20']);
  });
});

describe('limit table: override precedence', () => {
  const table = buildLimitTable(seedModel());

  it('seed 003: login 10/min by client IP, search 20/s by user, default 100/s burst 20 by user', () => {
    const login = rules(table.resolve('shop', 'login', 'acme', NOW));
    assert.deepEqual(summary(login), ['standard:shop:login:minute 10']);
    assert.deepEqual(login.countBy, { kind: 'client_ip' });
    const search = rules(table.resolve('shop', 'search', 'acme', NOW));
    assert.deepEqual(summary(search), ['standard:shop:search:second 20']);
    assert.deepEqual(search.countBy, { kind: 'header', header: 'X-User-Id' }, 'countBy inherited from the plan');
    const orders = rules(table.resolve('shop', 'orders', 'acme', NOW));
    assert.deepEqual(summary(orders), ['standard:shop:*:second 100+20']);
  });

  it('limits, quotas and countBy are overridden independently', () => {
    const m = modelOf([
      ...seedEntries().filter(([k, r]) => !(k === 'plans' && (r as { name: string }).name === 'gold')),
      [
        'plans',
        {
          name: 'gold',
          limits: [{ requests: 5, per: 'second' }],
          quotas: [{ requests: 20, per: 'day' }],
          overrides: [
            { product: 'shop', route: 'search', limits: [{ requests: 1, per: 'second' }] },
            { product: 'shop', route: 'orders', quotas: [{ requests: 3, per: 'month' }] },
            { product: 'shop', route: 'login', countBy: { kind: 'client_ip' } },
          ],
        },
      ],
    ]);
    assert.deepEqual(validateModel(m), []);
    const t = buildLimitTable(m);
    // Only limits overridden: quota inherited, still in the plan-wide budget (same countBy).
    assert.deepEqual(summary(rules(t.resolve('shop', 'search', 'globex', NOW))), ['gold:shop:search:second 1', 'gold:shop:*:day 20']);
    // Only quotas overridden: limits inherited.
    assert.deepEqual(summary(rules(t.resolve('shop', 'orders', 'globex', NOW))), ['gold:shop:*:second 5', 'gold:shop:orders:month 3']);
    // Only countBy: the plan's numbers, but a budget of the route's own (counted by another key).
    const login = rules(t.resolve('shop', 'login', 'globex', NOW));
    assert.deepEqual(summary(login), ['gold:shop:login:second 5', 'gold:shop:login:day 20']);
    assert.equal(login.countBy.kind, 'client_ip');
    assert.ok(login.limits.every((l) => l.scope === 'route'));
  });

  it('a countBy override equal to the plan default keeps the shared budget', () => {
    const same = { name: 'same', limits: [{ requests: 5, per: 'second' }], overrides: [{ product: 'shop', route: 'login', countBy: { kind: 'partner' } }] };
    const m = modelOf([...seedEntries().filter(([k]) => k !== 'subscriptions'), ['plans', same], ['subscriptions', { partner: 'acme', product: 'shop', plan: 'same' }]]);
    assert.deepEqual(validateModel(m), []);
    const t = buildLimitTable(m);
    assert.deepEqual(summary(rules(t.resolve('shop', 'login', 'acme', NOW))), ['same:shop:*:second 5']);
    assert.deepEqual(summary(rules(t.resolve('shop', 'orders', 'acme', NOW))), ['same:shop:*:second 5']);
  });

  it('shadow plans are marked shadow', () => {
    assert.equal(rules(table.resolve('shop', 'orders', 'stark', NOW)).shadow, true);
    assert.equal(rules(table.resolve('shop', 'orders', 'acme', NOW)).shadow, false);
  });
});

describe('limit table: counter keys', () => {
  const table = buildLimitTable(seedModel());

  it('two routes share the plan-level budget; an override separates a route', () => {
    const keys = (route: string, partner = 'globex') =>
      counterSpecs(rules(table.resolve('shop', route, partner, NOW)), countKey(rules(table.resolve('shop', route, partner, NOW)).countBy, route, { partner, clientIp: '10.0.0.9' })).map((s) => s.key);
    assert.deepEqual(keys('orders'), keys('search'), 'gold has no overrides for these: one shared budget');
    assert.deepEqual(keys('orders'), ['gold:shop:*:second:p:globex', 'gold:shop:*:day:p:globex', 'gold:shop:*:month:p:globex']);
    // gold counts health by route: everybody on the plan shares the route's budget, separately.
    assert.deepEqual(keys('health'), ['gold:shop:health:second:r:health', 'gold:shop:health:day:r:health', 'gold:shop:health:month:r:health']);
    assert.notDeepEqual(keys('search', 'acme'), keys('orders', 'acme'));
  });

  it('count keys: partner, client IP, header, route, and the fallbacks', () => {
    assert.equal(countKey({ kind: 'partner' }, 'r', { partner: 'acme', clientIp: '1.2.3.4' }), 'p:acme');
    assert.equal(countKey({ kind: 'partner' }, 'r', { clientIp: '1.2.3.4' }), 'i:1.2.3.4', 'no partner: count by client IP');
    assert.equal(countKey({ kind: 'partner' }, 'r', {}), 'u:', 'no partner and no address: one shared budget');
    assert.equal(countKey({ kind: 'client_ip' }, 'r', { partner: 'acme', clientIp: '::1' }), 'i:::1');
    assert.equal(countKey({ kind: 'header', header: 'X-User-Id' }, 'r', { headerValue: 'u1', clientIp: '1.2.3.4' }), 'h.x-user-id:u1');
    assert.equal(countKey({ kind: 'header', header: 'X-User-Id' }, 'r', { clientIp: '1.2.3.4' }), 'i:1.2.3.4', 'header missing: client IP');
    assert.equal(countKey({ kind: 'route' }, 'search', { partner: 'acme' }), 'r:search');
    const long = countKey({ kind: 'header', header: 'x-user-id' }, 'r', { headerValue: 'x'.repeat(5000) });
    assert.match(long, /^h\.x-user-id:#[A-Za-z0-9_-]{43}$/, 'long caller-controlled values are hashed');
    assert.notEqual(long, countKey({ kind: 'header', header: 'x-user-id' }, 'r', { headerValue: 'x'.repeat(5001) }));
  });

  it('is deterministic and swapped per snapshot (revision carried)', () => {
    const a = buildLimitTable(seedModel());
    const b = buildLimitTable(seedModel());
    assert.deepEqual(a.resolve('shop', 'login', 'acme', NOW), b.resolve('shop', 'login', 'acme', NOW));
    assert.equal(a.revision, 1);
  });
});
