// Native access decisions in the translator: who may call a route, why not (the callout's order:
// suspended partner, subscription status, expiry, route, method), under which plan; expiries judged
// at the given clock; the next expiry the pipeline schedules a push for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import type { JsonObject } from '../../src/translate/envoy/common.ts';
import { translate } from '../../src/translate/index.ts';
import { admitsEveryKey, nativeApiKeyAuth, nativeAuthContext, nextExpiry, routeAccess } from '../../src/translate/to-ir/native-auth.ts';
import { jsonAt, validModel } from '../support/translate.ts';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const key = (c: string) => `ptk_${c.repeat(8)}_${c.toUpperCase().repeat(43)}`;

function gateway(extra: Array<[KindName, object]> = []): ModelSnapshot {
  return validModel([
    ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }], authz: { mode: 'native' } }],
    ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'api', gatewayGroups: ['g'], auth: { accept: ['api_key'] } }],
    ['routes', { product: 'api', name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 's' }],
    ['routes', { product: 'api', name: 'admin', match: { path: { type: 'prefix', value: '/admin' } }, service: 's' }],
    ['products', { name: 'other', gatewayGroups: ['g'], auth: { accept: ['api_key'] } }],
    ['routes', { product: 'other', name: 'all', match: { path: { type: 'prefix', value: '/other' } }, service: 's' }],
    ['plans', { name: 'free' }],
    ['plans', { name: 'gold' }],
    ...extra,
  ]);
}

function partner(name: string, sub: object | undefined, opts: { suspended?: boolean; keyExpiresAt?: string } = {}): Array<[KindName, object]> {
  return [
    ['partners', { name, ...(opts.suspended ? { suspended: true } : {}) }],
    ...(sub ? [['subscriptions', { partner: name, plan: 'free', ...sub }] as [KindName, object]] : []),
    ['apiKeys', { partner: name, name: 'k', prefix: name.slice(0, 1).repeat(8), hash: 'h'.repeat(43), secret: key(name.slice(0, 1)), ...(opts.keyExpiresAt ? { expiresAt: opts.keyExpiresAt } : {}) }],
  ];
}

describe('native access (authz.mode native)', () => {
  const model = gateway([
    ...partner('acme', { product: 'api', plan: 'gold' }),
    ...partner('bravo', { product: 'api', access: { routes: ['items'], methods: ['GET'] } }),
    ...partner('charlie', { product: 'api' }, { suspended: true }),
    ...partner('delta', { product: 'api', status: 'suspended' }),
    ...partner('echo', { product: 'api', expiresAt: '2026-05-31T23:59:59Z' }),
    ...partner('foxtrot', { product: 'other', expiresAt: '2026-07-01T00:00:00Z' }),
    ...partner('golf', { product: 'api' }, { keyExpiresAt: '2026-06-01T00:00:00Z' }),
  ]);
  const products = [...model.products.values()];
  const ctx = nativeAuthContext(model, products, NOW);
  const route = (r: string) => model.routes.get(`api/${r}`)!;

  it('classifies every partner as the callout would, methods and plans travelling with the allowed', () => {
    assert.deepEqual(routeAccess(model, model.products.get('api')!, route('items'), ctx), {
      deny: [
        { reason: 'partner_suspended', partners: ['charlie'] },
        { reason: 'subscription_suspended', partners: ['delta'] },
        { reason: 'subscription_expired', partners: ['echo'] },
      ],
      allowed: [
        { partner: 'acme', plan: 'gold' },
        { partner: 'bravo', plan: 'free', methods: ['GET'] },
        { partner: 'golf', plan: 'free' },
      ],
    });
    const admin = routeAccess(model, model.products.get('api')!, route('admin'), ctx);
    assert.deepEqual(admin.deny.at(-1), { reason: 'route_not_in_subscription', partners: ['bravo'] });
    assert.equal(
      admin.allowed.some((a) => a.partner === 'bravo'),
      false,
    );
  });

  it('judges expiries at the clock it is given: keys expired at that instant are not pushed', () => {
    assert.deepEqual(
      ctx.credentials.map((c) => c.client),
      ['acme', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'],
    );
    const earlier = nativeAuthContext(model, products, NOW - 1);
    assert.ok(
      earlier.credentials.some((c) => c.client === 'golf'),
      'a millisecond before its expiry the key is pushed',
    );
    const access = routeAccess(model, model.products.get('api')!, route('items'), nativeAuthContext(model, products, Date.parse('2026-05-31T23:59:58Z')));
    assert.ok(
      access.allowed.some((a) => a.partner === 'echo'),
      'before its expiry the subscription is allowed',
    );
  });

  it('keeps the callout for routes it cannot decide natively', () => {
    const p = model.products.get('api')!;
    assert.ok(nativeApiKeyAuth(model, p, route('items'), ['api_key'], false, ctx));
    assert.equal(nativeApiKeyAuth(model, p, route('items'), ['api_key', 'jwt'], false, ctx), undefined, 'other credentials');
    assert.equal(nativeApiKeyAuth(model, p, route('items'), ['api_key'], true, ctx), undefined, 'counted by the callout');
    const legacy = gateway([
      ['partners', { name: 'hotel' }],
      ['subscriptions', { partner: 'hotel', product: 'api', plan: 'free' }],
      ['apiKeys', { partner: 'hotel', name: 'k', prefix: 'hhhhhhhh', hash: 'h'.repeat(43) }],
    ]);
    assert.equal(
      nativeApiKeyAuth(legacy, legacy.products.get('api')!, legacy.routes.get('api/items')!, ['api_key'], false, nativeAuthContext(legacy, [...legacy.products.values()], NOW)),
      undefined,
      'hash-only key',
    );
  });

  it('names the next expiry after the clock, subscriptions and keys alike, and none without a native group', () => {
    assert.equal(nextExpiry(model, NOW), Date.parse('2026-07-01T00:00:00Z'));
    assert.equal(nextExpiry(model, NOW - 1), NOW, 'the key expiring at NOW');
    assert.equal(nextExpiry(model, Date.parse('2026-07-01T00:00:00Z')), undefined, 'nothing left to expire');
    const exact = validModel([...[...model.gatewayGroups.values()].map((g) => ['gatewayGroups', { ...g, authz: { mode: 'exact' } }] as [KindName, object])]);
    assert.equal(nextExpiry(exact, NOW), undefined);
  });
});

describe('native access: the RBAC only where it decides something', () => {
  const translated = (model: ModelSnapshot, route: string): JsonObject => {
    const g = translate(model, { calloutAddress: '127.0.0.1:9001', now: NOW }).get('g')! as unknown as { routes: JsonObject[] };
    const r = (jsonAt(g.routes[0], 'virtual_hosts', 0, 'routes') as JsonObject[]).find((x) => x.name === route);
    assert.ok(r, `route ${route}`);
    return r;
  };
  /** The access RBAC's per-route config of a route ('api/items') in the group's Envoy config. */
  const rbacOf = (model: ModelSnapshot, route: string) => jsonAt(translated(model, route), 'typed_per_filter_config', 'envoy.filters.http.rbac');
  const decided = (model: ModelSnapshot, product: string, route: string) => {
    const ctx = nativeAuthContext(model, [...model.products.values()], NOW);
    return admitsEveryKey(routeAccess(model, model.products.get(product)!, model.routes.get(`${product}/${route}`)!, ctx), ctx.credentials);
  };

  it('leaves it off a route every key holder may call on one plan, and the route still names the plan', () => {
    const model = gateway([...partner('acme', { product: 'api' }), ...partner('bravo', { product: 'api' })]);
    assert.equal(decided(model, 'api', 'items'), true);
    assert.equal(rbacOf(model, 'api/items'), undefined);
    const items = translated(model, 'api/items');
    assert.ok(jsonAt(items, 'typed_per_filter_config', 'envoy.filters.http.api_key_auth'), 'api_key_auth still checks the keys');
    assert.deepEqual(
      (jsonAt(items, 'request_headers_to_add') as JsonObject[]).map((h) => [jsonAt(h, 'header', 'key'), jsonAt(h, 'header', 'value')]).filter(([k]) => k === 'x-portico-plan'),
      [['x-portico-plan', 'free']],
    );
  });

  it('keeps it where a key could be refused or the plan differs by caller', () => {
    const cases: Array<[string, Array<[KindName, object]>, string]> = [
      ['a suspended partner', [...partner('acme', { product: 'api' }), ...partner('delta', { product: 'api' }, { suspended: true })], 'partner_suspended'],
      ['a method restriction', [...partner('acme', { product: 'api', access: { methods: ['GET'] } })], 'method_not_in_subscription'],
      ['two plans', [...partner('acme', { product: 'api', plan: 'gold' }), ...partner('bravo', { product: 'api' })], 'no_subscription'],
      ['a route outside the access level', [...partner('acme', { product: 'api', access: { routes: ['admin'] } })], 'route_not_in_subscription'],
    ];
    for (const [what, entries, policy] of cases) {
      const model = gateway(entries);
      assert.equal(decided(model, 'api', 'items'), false, what);
      assert.ok(jsonAt(rbacOf(model, 'api/items'), 'rbac', 'rules', 'policies', policy), `${what}: the RBAC refuses with ${policy}`);
      assert.equal(jsonAt(translated(model, 'api/items'), 'typed_per_filter_config', 'portico.access.no_subscription'), undefined, `${what}: not the no_subscription-only form`);
    }
  });

  it('where no_subscription is the only refusal, the refusing RBAC runs unless the partner header names a partner the route lets through', () => {
    // charlie's key authenticates on api's routes too (one key list per group): only the access decision refuses it.
    const model = gateway([...partner('acme', { product: 'api' }), ...partner('bravo', { product: 'api' }), ...partner('charlie', { product: 'other' })]);
    assert.equal(decided(model, 'api', 'items'), false);
    assert.equal(rbacOf(model, 'api/items'), undefined, 'no per-route RBAC (it would write metadata on every allowed request)');
    const skip = jsonAt(translated(model, 'api/items'), 'typed_per_filter_config', 'portico.access.no_subscription') as JsonObject;
    assert.equal(jsonAt(skip, 'xds_matcher', 'matcher_tree', 'input', 'typed_config', 'header_name'), 'x-portico-partner');
    const map = jsonAt(skip, 'xds_matcher', 'matcher_tree', 'exact_match_map', 'map') as JsonObject;
    assert.deepEqual(Object.keys(map), ['acme', 'bravo'], 'skipped for exactly the partners let through');
    for (const p of Object.values(map)) assert.equal(jsonAt(p as JsonObject, 'action', 'typed_config', '@type'), 'type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter');
    assert.equal(jsonAt(skip, 'xds_matcher', 'matcher_tree', 'on_no_match'), undefined, 'anyone else (or no header) meets the refusal');
    const g = translate(model, { calloutAddress: '127.0.0.1:9001', now: NOW }).get('g')! as unknown as { listeners: JsonObject[] };
    const filters = jsonAt(g.listeners[0], 'filter_chains', 0, 'filters', 0, 'typed_config', 'http_filters') as JsonObject[];
    const wrapped = filters.find((f) => f.name === 'portico.access.no_subscription');
    assert.ok(wrapped, 'the chain holds the wrapped RBAC');
    assert.equal(wrapped.disabled, true, 'off unless a route configures it');
    assert.deepEqual(
      jsonAt(wrapped, 'typed_config', 'extension_config', 'typed_config', 'rules'),
      {
        action: 'DENY',
        policies: { no_subscription: { permissions: [{ any: true }], principals: [{ any: true }] } },
      },
      'the policy name gives the same response code details, so the same 403 body',
    );
  });
});
