// Native by default: a gateway group that states no mode gets Envoy's own filters, and its plan
// limits fall back to the combined callout only where native cannot count them — product by product
// for an exact plan or quotas by address or header (the group's other products stay native), the
// whole group past the distinct limits Envoy has stages for — never a refusal of a model that states
// nothing. A stated mode is obeyed, and a stated native group with an exact plan is refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authzModeOf, nativeLimitGroups, productRateLimitMode, rateLimitChoice, MAX_NATIVE_LIMIT_SHAPES, type KindName, type ModelSnapshot, type GatewayGroup } from '../../src/model/index.ts';
import { translate, validateTranslation } from '../../src/translate/index.ts';
import { validModel } from '../support/translate.ts';

function model(group: object, plans: object[], extra: Array<[KindName, object]> = []): ModelSnapshot {
  return validModel([
    ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }], ...group }],
    ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'api', gatewayGroups: ['g'], auth: { accept: ['api_key'] } }],
    ['routes', { product: 'api', name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 's' }],
    ['partners', { name: 'acme' }],
    ...plans.map((p) => ['plans', p] as [KindName, object]),
    ['subscriptions', { partner: 'acme', product: 'api', plan: (plans[0] as { name: string }).name }],
    ...extra,
  ]);
}
const g = (m: ModelSnapshot): GatewayGroup => m.gatewayGroups.get('g')!;
const GOLD = { name: 'gold', limits: [{ requests: 5, per: 'second' }], quotas: [{ requests: 1000, per: 'day' }] };

/** The HTTP filter names of the group's listener chain. */
function chain(m: ModelSnapshot): string[] {
  const listener = translate(m, { calloutAddress: '127.0.0.1:18001', now: 0 }).get('g')!.listeners[0] as any;
  const hcm = listener.filter_chains[0].filters[0].typed_config;
  return hcm.http_filters.map((f: { name: string }) => f.name);
}

describe('modes a gateway group runs', () => {
  it('are native when the group states none', () => {
    const m = model({}, [GOLD]);
    assert.equal(authzModeOf(g(m)), 'native');
    assert.deepEqual(rateLimitChoice(m, g(m)), { mode: 'native', stated: false });
    assert.deepEqual([...nativeLimitGroups(m)], ['g']);
    assert.deepEqual(validateTranslation(m), []);
    const filters = chain(m);
    assert.ok(filters.includes('envoy.filters.http.api_key_auth'), filters.join());
    assert.ok(!filters.some((f) => f.includes('ext_authz')), `no callout: ${filters.join()}`);
  });

  it('are what the group states', () => {
    const m = model({ authz: { mode: 'exact' }, rateLimit: { mode: 'service' } }, [GOLD]);
    assert.equal(authzModeOf(g(m)), 'exact');
    assert.deepEqual(rateLimitChoice(m, g(m)), { mode: 'service', stated: true });
    assert.deepEqual([...nativeLimitGroups(m)], []);
    assert.ok(chain(m).includes('envoy.filters.http.ext_authz'));
  });

  it('count the products of an exact plan with the callout, and only those; say why', () => {
    // A second product, `web`, whose subscriber's plan native limits can count.
    const m = model(
      {},
      [
        { ...GOLD, exact: true },
        { name: 'silver', limits: [{ requests: 2, per: 'second' }] },
      ],
      [
        ['products', { name: 'web', gatewayGroups: ['g'], auth: { accept: ['api_key'] } }],
        ['routes', { product: 'web', name: 'pages', match: { path: { type: 'prefix', value: '/pages' } }, service: 's' }],
        ['subscriptions', { partner: 'acme', product: 'web', plan: 'silver' }],
      ],
    );
    const c = rateLimitChoice(m, g(m));
    assert.equal(c.mode, 'native');
    assert.deepEqual([...(c.calloutProducts ?? [])], [['api', 'plan gold asks for exact counting (exact: true)']]);
    assert.equal(productRateLimitMode(m, g(m), 'api'), 'combined');
    assert.equal(productRateLimitMode(m, g(m), 'web'), 'native');
    assert.deepEqual([...nativeLimitGroups(m)], ['g']);
    assert.deepEqual(validateTranslation(m), []);
    // api's route is counted (and authorized) by the callout; web's by Envoy alone.
    const routes = translate(m, { calloutAddress: '127.0.0.1:18001', now: 0 }).get('g')!.routes as any[];
    const byName = new Map<string, any>(routes.flatMap((rc) => rc.virtual_hosts.flatMap((vh: any) => vh.routes)).map((r: any) => [r.name, r]));
    const perRoute = (name: string) => byName.get(name)!.typed_per_filter_config;
    assert.equal(perRoute('api/items')['envoy.filters.http.ext_authz'].check_settings.context_extensions.ratelimit, 'combined');
    assert.ok(perRoute('web/pages')['envoy.filters.http.api_key_auth'], 'web is checked by api_key_auth');
    assert.equal(perRoute('web/pages')['envoy.filters.http.ext_authz']?.disabled, true, 'no callout for web');
    const filters = chain(m);
    assert.ok(filters.includes('envoy.filters.http.ext_authz') && filters.some((f) => f.startsWith('portico.local_ratelimit')), filters.join());
  });

  it('count a product with quotas by client address or header with the callout instead of refusing the model', () => {
    for (const countBy of [{ kind: 'client_ip' }, { kind: 'header', header: 'X-User' }]) {
      const m = model({}, [{ ...GOLD, countBy }]);
      const c = rateLimitChoice(m, g(m));
      assert.equal(c.mode, 'native', JSON.stringify(countBy));
      assert.match(c.calloutProducts?.get('api') ?? '', /counts quotas by client address or header/);
      assert.deepEqual(validateTranslation(m), []);
      // Stated native, the same model is refused, naming the plan's field.
      const stated = model({ rateLimit: { mode: 'native' } }, [{ ...GOLD, countBy }]);
      assert.deepEqual(
        validateTranslation(stated).map((e) => `${e.kind}/${e.key}.${e.field}`),
        ['plans/gold.quotas'],
      );
    }
  });

  it('fall back to combined past the distinct limits Envoy has stages for', () => {
    // n plans of different limits, each with a subscriber.
    const withPlans = (n: number) => {
      const plans = Array.from({ length: n }, (_, i) => ({ name: `p${i}`, limits: [{ requests: i + 1, per: 'second' }] }));
      const others = plans.slice(1).flatMap(
        (p, i): Array<[KindName, object]> => [
          ['partners', { name: `x${i}` }],
          ['subscriptions', { partner: `x${i}`, product: 'api', plan: p.name }],
        ],
      );
      return model({}, plans, others);
    };
    const m = withPlans(MAX_NATIVE_LIMIT_SHAPES + 1);
    const c = rateLimitChoice(m, g(m));
    assert.equal(c.mode, 'combined');
    assert.match(c.reason ?? '', /11 distinct limits/);
    assert.deepEqual(validateTranslation(m), []);
    const fits = withPlans(MAX_NATIVE_LIMIT_SHAPES);
    assert.equal(rateLimitChoice(fits, g(fits)).mode, 'native');
  });

  it('keep a suspended subscription in the reckoning, so suspending one never switches the mode', () => {
    const m = model(
      {},
      [GOLD, { name: 'slow', quotas: [{ requests: 5, per: 'day' }], countBy: { kind: 'client_ip' } }],
      [
        ['partners', { name: 'globex' }],
        ['subscriptions', { partner: 'globex', product: 'api', plan: 'slow', status: 'suspended' }],
      ],
    );
    assert.equal(productRateLimitMode(m, g(m), 'api'), 'combined');
  });

  it('refuse an exact plan in a group that states native mode, naming the plan field', () => {
    const m = model({ rateLimit: { mode: 'native' } }, [{ ...GOLD, exact: true }]);
    const errors = validateTranslation(m);
    assert.deepEqual(
      errors.map((e) => `${e.kind}/${e.key}.${e.field}`),
      ['plans/gold.exact'],
    );
    assert.match(errors[0]!.message, /states rateLimit.mode native/);
  });
});
