// Native rate limits in the translator: a limit divided among a group's Envoys (the rate exactly,
// the capacity rounded up), the buckets and route actions that reproduce the limiter's budgets
// (plan-wide vs route-level, partner / header / address / route counting, guards keeping callers of
// other plans out of wildcard buckets), no callout for counting, and what validation refuses.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import type { JsonObject } from '../../src/translate/envoy/common.ts';
import { translate, validateTranslation } from '../../src/translate/index.ts';
import { localBucket } from '../../src/translate/to-ir/limits.ts';
import { nativeLimits } from '../../src/translate/to-ir/native-limits.ts';
import type { LimitActionIR } from '../../src/translate/ir.ts';
import { MAX_NATIVE_LIMIT_SHAPES } from '../../src/model/index.ts';
import { groupProducts } from '../../src/translate/to-ir/common.ts';
import { jsonAt, validModel } from '../support/translate.ts';
import { requireComponent } from '../support/components.ts';
import { staticBootstrap } from '../golden/static-bootstrap.ts';

const PERIOD_MS = { second: 1_000, minute: 60_000, hour: 3_600_000 } as const;

function gateway(extra: Array<[KindName, object]> = []): ModelSnapshot {
  return validModel([
    ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }], rateLimit: { mode: 'native' } }],
    ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'acc', gatewayGroups: ['g'], auth: { accept: ['none'] }, publicPlan: 'std' }],
    ['routes', { product: 'acc', name: 'login', match: { path: { type: 'exact', value: '/login' } }, service: 's' }],
    ['products', { name: 'api', gatewayGroups: ['g'] }],
    ['routes', { product: 'api', name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 's' }],
    ['routes', { product: 'api', name: 'free', match: { path: { type: 'prefix', value: '/free' } }, service: 's' }],
    [
      'plans',
      {
        name: 'std',
        limits: [{ requests: 100, per: 'second', burst: 20 }],
        countBy: { kind: 'header', header: 'X-User-Id' },
        overrides: [
          { product: 'acc', route: 'login', limits: [{ requests: 10, per: 'minute' }], countBy: { kind: 'client_ip' } },
          { product: 'api', route: 'free', limits: [] },
        ],
      },
    ],
    ['plans', { name: 'gold', limits: [{ requests: 5, per: 'second' }] }],
    ['partners', { name: 'acme' }],
    ['partners', { name: 'globex' }],
    ['partners', { name: 'initech', suspended: true }],
    ['subscriptions', { partner: 'acme', product: 'api', plan: 'std' }],
    ['subscriptions', { partner: 'globex', product: 'api', plan: 'gold' }],
    ['subscriptions', { partner: 'initech', product: 'api', plan: 'gold' }],
    ...extra,
  ]);
}

describe('a limit divided among Envoys', () => {
  it('gives each Envoy the rate exactly divided and the capacity rounded up', () => {
    assert.deepEqual(localBucket({ requests: 10, per: 'second' }, 3), { requests: 10, per: 'second', maxTokens: 4, tokensPerFill: 1, fillIntervalNs: 300_000_000, retryAfterSeconds: 1 });
    assert.deepEqual(localBucket({ requests: 100, per: 'second', burst: 20 }, 2), { requests: 100, per: 'second', maxTokens: 60, tokensPerFill: 3, fillIntervalNs: 60_000_000, retryAfterSeconds: 1 });
    assert.deepEqual(localBucket({ requests: 1, per: 'minute' }, 4), { requests: 1, per: 'minute', maxTokens: 1, tokensPerFill: 1, fillIntervalNs: 240_000_000_000, retryAfterSeconds: 240 });
    // One Envoy: the bucket as before.
    assert.deepEqual(localBucket({ requests: 7, per: 'minute', burst: 3 }, 1), localBucket({ requests: 7, per: 'minute', burst: 3 }));
  });

  it('keeps the fleet rate at the limit and the fleet capacity within envoys - 1 above it, whatever the numbers', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      const per = (['second', 'minute', 'hour'] as const)[rnd(3)]!;
      const requests = 1 + rnd([10, 1000, 1_000_000][rnd(3)]!);
      const burst = rnd(3) === 0 ? rnd(500) : 0;
      const envoys = 1 + rnd(64);
      const b = localBucket({ requests, per, burst }, envoys);
      const fleetPerMs = (envoys * b.tokensPerFill) / (b.fillIntervalNs / 1e6);
      const want = requests / PERIOD_MS[per];
      assert.ok(Math.abs(fleetPerMs - want) / want < 1e-6, `${requests}/${per} over ${envoys}: ${fleetPerMs} per ms, want ${want}`);
      assert.ok(b.fillIntervalNs >= 50_000_000, 'Envoy refuses fills under 50 ms');
      assert.ok(b.maxTokens * envoys >= requests + burst, 'never below the capacity');
      assert.ok(b.maxTokens * envoys < requests + burst + envoys || b.maxTokens === 1, 'at most envoys - 1 above it');
    }
  });

  it('is what translate emits for the group, from the connected Envoys it is given', () => {
    const bucket = (envoys?: number) => {
      const g = translate(gateway(), { calloutAddress: '127.0.0.1:9001', ...(envoys ? { envoys: new Map([['g', envoys]]) } : {}) }).get('g')! as unknown as { listeners: JsonObject[] };
      const filters = jsonAt(g.listeners[0], 'filter_chains', 0, 'filters', 0, 'typed_config', 'http_filters') as JsonObject[];
      const gold = filters.find((f) => JSON.stringify(f).includes('gold:api:*:second:0'))!;
      return jsonAt(gold, 'typed_config', 'descriptors', 0, 'token_bucket');
    };
    assert.deepEqual(bucket(), { max_tokens: 5, tokens_per_fill: 1, fill_interval: '0.200s' });
    assert.deepEqual(bucket(2), { max_tokens: 3, tokens_per_fill: 1, fill_interval: '0.400s' });
  });
});

describe('native budgets', () => {
  const m = gateway();
  const n = nativeLimits(m, groupProducts(m, 'g'), 1);
  const entries = (route: string) => JSON.stringify(n.routes.get(route) ?? []);

  it('one filter instance per distinct limit (in the order routes meet them), each refusing with its own numbers', () => {
    assert.deepEqual(
      n.filters.map((f) => [f.stage, f.requests, f.retryAfterSeconds, f.bucket.maxTokens]),
      [
        [1, 10, 6, 10],
        [2, 5, 1, 5],
        [3, 100, 1, 120],
      ],
    );
  });

  it('counts subscribers by partner name (active, not suspended), by header behind a plan guard, anonymous callers by address', () => {
    const gold = n.filters[1]!.descriptors;
    assert.deepEqual(
      gold,
      [
        [
          { key: 'portico_budget', value: 'gold:api:*:second:0' },
          { key: 'portico_partner', value: 'globex' },
        ],
      ],
      'initech is suspended',
    );
    // std counts by X-User-Id: only acme's requests (the guard) reach its wildcard buckets; without the header, by address.
    assert.match(entries('api/items'), /"kind":"header_match","header":"x-portico-partner","key":"portico_plan","value":"std","expect":true,"regex":"\^\(\?:acme\)\$"/);
    assert.match(entries('api/items'), /"kind":"header","header":"x-user-id","key":"portico_header"/);
    assert.match(entries('api/items'), /"key":"portico_no_header","value":"1","expect":false/);
    assert.deepEqual(n.filters[2]!.descriptors[0], [{ key: 'portico_plan', value: 'std' }, { key: 'portico_budget', value: 'std:api:*:second:0' }, { key: 'portico_header' }]);
  });

  it('an override replaces the plan-wide budget on its route: its own limit, or none', () => {
    assert.ok(!entries('api/free').includes('std:'), 'std has no limit on free');
    assert.ok(entries('api/free').includes('gold:api:*:second:0'), 'gold still limits free, in its plan-wide budget');
    // The public route: login's override counts by client address in the route's own budget.
    assert.match(entries('acc/login'), /"std:acc:login:minute:0"\},\{"kind":"remote_address"\}/);
  });

  it('native mode counts without any callout: no counting ext_authz, no rate-limit filter', () => {
    const g = translate(m, { calloutAddress: '127.0.0.1:9001' }).get('g')! as unknown as { listeners: JsonObject[]; routes: JsonObject[] };
    const chain = JSON.stringify(jsonAt(g.listeners[0], 'filter_chains', 0, 'filters', 0, 'typed_config', 'http_filters'));
    assert.ok(!chain.includes('envoy.filters.http.ratelimit') && !chain.includes('portico.ext_authz.limits'));
    assert.ok(!JSON.stringify(g.routes).includes('"ratelimit":"combined"'));
  });
});

describe('validateTranslation, native mode', () => {
  it('refuses more distinct limits than there are filter stages, naming the group and field', () => {
    const plans: Array<[KindName, object]> = [];
    for (let i = 1; i <= MAX_NATIVE_LIMIT_SHAPES + 1; i++) {
      plans.push(['plans', { name: `p${i}`, limits: [{ requests: i, per: 'minute' }] }], ['partners', { name: `x${i}` }], ['subscriptions', { partner: `x${i}`, product: 'api', plan: `p${i}` }]);
    }
    const errors = validateTranslation(gateway(plans));
    assert.deepEqual(
      errors.map((e) => [e.kind, e.key, e.field]),
      [['gatewayGroups', 'g', 'rateLimit.mode']],
    );
    assert.match(errors[0]!.message, /at most 10 distinct limits/);
    assert.deepEqual(validateTranslation(gateway()), []);
  });
});

describe('native quotas', () => {
  const quotaModel = (extra: Array<[KindName, object]> = []) =>
    gateway([
      ['plans', { name: 'capped', quotas: [{ requests: 1000, per: 'day' }], overrides: [{ product: 'api', route: 'free', countBy: { kind: 'route' }, quotas: [{ requests: 50, per: 'month' }] }] }],
      ['partners', { name: 'hooli' }],
      ['partners', { name: 'umbrella' }],
      ['subscriptions', { partner: 'hooli', product: 'api', plan: 'capped' }],
      ['subscriptions', { partner: 'umbrella', product: 'api', plan: 'capped' }],
      ...extra,
    ]);
  const rbac = (quotaExhausted: Array<{ group: string; budget: string; partner?: string; route?: string }>, route: string) => {
    const g = translate(quotaModel(), { calloutAddress: '127.0.0.1:9001', quotaExhausted }).get('g')! as unknown as { listeners: JsonObject[]; routes: JsonObject[] };
    const routes = jsonAt(g.routes[0], 'virtual_hosts', 0, 'routes') as JsonObject[];
    const r = routes.find((x) => x.name === route);
    return { listener: g.listeners[0], policies: jsonAt(r, 'typed_per_filter_config', 'portico.rbac.quota', 'rbac', 'rules', 'policies') as JsonObject | undefined };
  };

  it('refuses exactly the callers whose budget is used up, on every route of a plan-wide budget', () => {
    const used = [{ group: 'g', budget: 'capped:api:*:day', partner: 'umbrella' }];
    const items = rbac(used, 'api/items').policies;
    assert.deepEqual(items, {
      quota_1000_day: { permissions: [{ any: true }], principals: [{ header: { name: 'x-portico-partner', string_match: { exact: 'umbrella' } } }] },
    });
    // free has capped's own (route-counted) quota: the plan-wide budget is not its budget.
    assert.equal(rbac(used, 'api/free').policies, undefined);
    assert.equal(rbac([], 'api/items').policies, undefined, 'nothing used up: no policy');
    assert.equal(rbac([{ group: 'other', budget: 'capped:api:*:day', partner: 'umbrella' }], 'api/items').policies, undefined, 'another group');
  });

  it('a route-counted quota used up refuses every caller of the plan on that route', () => {
    const free = rbac([{ group: 'g', budget: 'capped:api:free:month', route: 'free' }], 'api/free').policies;
    const partnerIs = (exact: string) => ({ header: { name: 'x-portico-partner', string_match: { exact } } });
    // Exact names, not one regex of them: a plan of many subscribers stays within Envoy's RE2 limit.
    assert.deepEqual(jsonAt(free, 'quota_50_month', 'principals'), [{ or_ids: { ids: [partnerIs('hooli'), partnerIs('umbrella')] } }]);
  });

  it("answers each quota's refusal with the contract's 429: its numbers, Retry-After to the window's end", () => {
    const hcm = jsonAt(rbac([], 'api/items').listener, 'filter_chains', 0, 'filters', 0, 'typed_config') as JsonObject;
    const names = (hcm.http_filters as JsonObject[]).map((f) => f.name);
    assert.ok(names.indexOf('portico.rbac.quota') > names.indexOf('envoy.filters.http.ext_authz') && names.indexOf('portico.rbac.quota') < names.indexOf('portico.local_ratelimit.plans.1'));
    const mappers = JSON.stringify(jsonAt(hcm, 'local_reply_config', 'mappers'));
    for (const q of ['quota_1000_day', 'quota_50_month']) assert.ok(mappers.includes(`rbac_access_denied_matched_policy[${q}]`), q);
    assert.ok(mappers.includes('"status_code":429') && mappers.includes('quota_exceeded'));
  });

  it('refuses quotas native mode cannot count (by client address or header), naming the plan', () => {
    const errors = validateTranslation(
      quotaModel([
        ['plans', { name: 'by-ip', quotas: [{ requests: 5, per: 'day' }], countBy: { kind: 'client_ip' } }],
        ['partners', { name: 'x' }],
        ['subscriptions', { partner: 'x', product: 'api', plan: 'by-ip' }],
      ]),
    );
    assert.deepEqual(
      errors.map((e) => [e.kind, e.key, e.field]),
      [['plans', 'by-ip', 'quotas']],
    );
    assert.deepEqual(validateTranslation(quotaModel()), []);
  });
});

describe('a plan of many subscribers (Envoy refuses a regex over 100 RE2 instructions, and the whole route configuration with it)', () => {
  // 60 partners, names of 16-20 characters: one pattern of them all would be ~1,100 instructions.
  const crowd = Array.from({ length: 60 }, (_, i) => `crowd-member-${String(i).padStart(2, '0')}${'x'.repeat(i % 5)}`);
  const m = validModel([
    ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }], rateLimit: { mode: 'native' } }],
    ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'api', gatewayGroups: ['g'], auth: { accept: ['api_key'] }, publicPlan: 'open' }],
    ['routes', { product: 'api', name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 's' }],
    ['plans', { name: 'std', limits: [{ requests: 100, per: 'second' }], countBy: { kind: 'header', header: 'X-User-Id' } }],
    ['plans', { name: 'open', limits: [{ requests: 10, per: 'second' }], countBy: { kind: 'client_ip' } }],
    ...crowd.flatMap(
      (name): Array<[KindName, object]> => [
        ['partners', { name }],
        ['subscriptions', { partner: name, product: 'api', plan: 'std' }],
      ],
    ),
  ]);
  const entries = nativeLimits(m, groupProducts(m, 'g'), 1).routes.get('api/items')!;
  type Match = Extract<LimitActionIR, { kind: 'header_match' }> & { regex: string };
  // The guards of one entry kind: std's entries counting by the header (its fallback by address repeats them), open's by address.
  const guardsOf = (plan: string, expect: boolean) =>
    entries
      .filter((e) => e.actions.some((a) => a.kind === (plan === 'std' ? 'header' : 'remote_address')))
      .map((e) => e.actions.filter((a): a is Match => a.kind === 'header_match' && a.key === 'portico_plan' && a.value === plan && a.expect === expect))
      .filter((g) => g.length);
  const namesIn = (regex: string) =>
    regex
      .replace(/^\^\(\?:|\)\$$/g, '')
      .replaceAll('\\-', '-')
      .split('|');

  it("splits the subscribers' guard into patterns within the limit: every name in exactly one, one entry each", () => {
    const guards = guardsOf('std', true);
    assert.ok(guards.length > 5, `${guards.length} patterns`);
    for (const g of guards) {
      assert.equal(g.length, 1, 'one guard per entry: a partner matches one pattern, so one descriptor results');
      // The bound the translator keeps (at most a byte and an alternation per name, a few for the anchors).
      assert.ok(namesIn(g[0]!.regex).reduce((n, x) => n + x.length + 1, 6) <= 100, g[0]!.regex);
    }
    assert.deepEqual(guards.flatMap((g) => namesIn(g[0]!.regex)).sort(), [...crowd].sort());
  });

  it("keeps the public plan's callers to those matching none of the patterns, all in one entry", () => {
    const [guard, ...more] = guardsOf('open', false);
    assert.equal(more.length, 0, 'one entry for the public plan');
    assert.deepEqual(guard!.flatMap((a) => namesIn(a.regex)).sort(), [...crowd].sort());
    assert.equal(guard!.length, guardsOf('std', true).length);
  });

  it('is accepted by Envoy (envoy --mode validate)', (t) => {
    const envoy = requireComponent(t, 'envoy');
    if (!envoy) return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-re2-'));
    try {
      const file = path.join(dir, 'bootstrap.json');
      writeFileSync(file, JSON.stringify(staticBootstrap(translate(m, { calloutAddress: '127.0.0.1:9001' }).get('g')!)));
      const r = spawnSync(envoy, ['--mode', 'validate', '-c', file, '-l', 'error'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
