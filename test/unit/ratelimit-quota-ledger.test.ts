// Native quotas counted from access logs (QuotaLedger): forwarded requests of native groups count
// against the caller's plan quota (by partner, or by route for everybody on the plan), per UTC day
// or month; a budget at its quota is exhausted until its window ends; refusals, other groups,
// shadow plans, unknown routes and products the callout counts count nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import { QuotaLedger } from '../../src/ratelimit/quota-ledger.ts';
import { accessLogEntry as entry } from '../support/ratelimit-fixtures.ts';
import { validModel } from '../support/translate.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 11, 5, 10, 0, 0);

function model(extra: Array<[KindName, object]> = []): ModelSnapshot {
  return validModel([
    ['gatewayGroups', { name: 'native', listeners: [{ name: 'web', port: 8080 }], rateLimit: { mode: 'native' } }],
    ['gatewayGroups', { name: 'exact', listeners: [{ name: 'web', port: 8081 }], rateLimit: { mode: 'combined' } }],
    ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'api', gatewayGroups: ['native', 'exact'] }],
    ['routes', { product: 'api', name: 'a', match: { path: { type: 'prefix', value: '/a' } }, service: 's' }],
    ['routes', { product: 'api', name: 'b', match: { path: { type: 'prefix', value: '/b' } }, service: 's' }],
    ['plans', { name: 'small', quotas: [{ requests: 3, per: 'day' }], overrides: [{ product: 'api', route: 'b', countBy: { kind: 'route' }, quotas: [{ requests: 2, per: 'month' }] }] }],
    ['plans', { name: 'watch', shadow: true, quotas: [{ requests: 1, per: 'day' }] }],
    ['partners', { name: 'acme' }],
    ['partners', { name: 'globex' }],
    ['partners', { name: 'initech' }],
    ['subscriptions', { partner: 'acme', product: 'api', plan: 'small' }],
    ['subscriptions', { partner: 'globex', product: 'api', plan: 'small' }],
    ['subscriptions', { partner: 'initech', product: 'api', plan: 'watch' }],
    ...extra,
  ]);
}

describe('QuotaLedger', () => {
  it('counts each partner against its own daily quota, exhausted at the quota until midnight UTC', () => {
    const q = new QuotaLedger();
    q.setModel(model());
    assert.equal(q.recordEntries('native', [entry('a', 'acme'), entry('a', 'acme')], T0), false);
    assert.equal(q.recordEntries('native', [entry('a', 'globex')], T0), false);
    assert.equal(q.recordEntries('native', [entry('a', 'acme')], T0), true, 'the third request uses the quota up');
    const midnight = Date.UTC(2026, 11, 6);
    assert.deepEqual(q.exhausted(T0), [{ group: 'native', budget: 'small:api:*:day', partner: 'acme', requests: 3, per: 'day', resetAt: midnight }]);
    assert.equal(q.nextReset(T0), midnight);
    assert.equal(q.recordEntries('native', [entry('a', 'acme')], T0), false, 'already exhausted: no new push');
    // The next day starts at zero.
    assert.deepEqual(q.exhausted(midnight), []);
    assert.equal(q.recordEntries('native', [entry('a', 'acme'), entry('a', 'acme')], midnight + 1), false);
  });

  it('counts by route for everybody on the plan where the override says so, per month', () => {
    const q = new QuotaLedger();
    q.setModel(model());
    assert.equal(q.recordEntries('native', [entry('b', 'acme')], T0), false);
    assert.equal(q.recordEntries('native', [entry('b', 'globex')], T0 + DAY), true, 'acme and globex share the route budget');
    assert.deepEqual(q.exhausted(T0 + DAY), [{ group: 'native', budget: 'small:api:b:month', route: 'b', requests: 2, per: 'month', resetAt: Date.UTC(2027, 0, 1) }]);
  });

  it('counts nothing for refusals, local replies, other groups, shadow plans, unknown products', () => {
    const q = new QuotaLedger();
    q.setModel(model());
    const notCounted = [entry('a', 'acme', 'local_rate_limited'), entry('a', 'acme', 'rbac_access_denied_matched_policy[quota_3_day]'), entry('a', 'acme', 'direct_response')];
    for (let i = 0; i < 3; i++) q.recordEntries('native', notCounted, T0);
    for (let i = 0; i < 5; i++) q.recordEntries('exact', [entry('a', 'acme')], T0);
    q.recordEntries('native', [entry('a', 'initech'), entry('a', 'initech')], T0);
    q.recordEntries('native', [{ ...entry('a', 'acme'), tags: new Map([['route', 'a']]) }], T0);
    assert.deepEqual(q.exhausted(T0), []);
    // An upstream failure after forwarding still counts (the request was admitted).
    q.recordEntries('native', [entry('a', 'acme', 'upstream_reset_before_response_started{connection_failure}'), entry('a', 'acme'), entry('a', 'acme')], T0);
    assert.equal(q.exhausted(T0).length, 1);
  });

  it('leaves a product of a native group to the callout when its plans need it (an exact plan there)', () => {
    // An unstated group: native, but the exact plan's product `api` is counted by the callout.
    const m = validModel([
      ['gatewayGroups', { name: 'edge', listeners: [{ name: 'web', port: 8080 }] }],
      ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
      ['products', { name: 'api', gatewayGroups: ['edge'] }],
      ['routes', { product: 'api', name: 'a', match: { path: { type: 'prefix', value: '/a' } }, service: 's' }],
      ['products', { name: 'web', gatewayGroups: ['edge'] }],
      ['routes', { product: 'web', name: 'a', match: { path: { type: 'prefix', value: '/w' } }, service: 's' }],
      ['plans', { name: 'strict', exact: true, quotas: [{ requests: 1, per: 'day' }] }],
      ['plans', { name: 'small', quotas: [{ requests: 1, per: 'day' }] }],
      ['partners', { name: 'acme' }],
      ['subscriptions', { partner: 'acme', product: 'api', plan: 'strict' }],
      ['subscriptions', { partner: 'acme', product: 'web', plan: 'small' }],
    ]);
    const q = new QuotaLedger();
    q.setModel(m);
    assert.equal(q.recordEntries('edge', [entry('a', 'acme'), entry('a', 'acme')], T0), false, 'api: the callout counts it');
    const web = {
      ...entry('a', 'acme'),
      tags: new Map([
        ['product', 'web'],
        ['route', 'a'],
        ['partner', 'acme'],
      ]),
    };
    assert.equal(q.recordEntries('edge', [web], T0), true, 'web: counted here');
    assert.deepEqual(
      q.exhausted(T0).map((e) => e.budget),
      ['small:web:*:day'],
    );
  });
});
