// Response caching's pure parts: a route's cache settings as IR (defaults, scope by authentication),
// the group's profiles, the key script's shape, which routes need no key filter, and which routes a
// purge raises.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { purgeMutations } from '../../src/admin/cache.ts';
import { parseDocumentText, parseModelDocument } from '../../src/model/declarative.ts';
import { validateModel } from '../../src/model/validate.ts';
import { cacheKeyScript } from '../../src/translate/envoy/filters/cache.ts';
import { cacheIr, cacheProfiles, withKeyCluster } from '../../src/translate/to-ir/cache.ts';
import type { ForwardActionIR, RouteIR } from '../../src/translate/ir.ts';

const route = (cache: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name: 'r',
  product: 'p',
  match: { path: { type: 'prefix' as const, value: '/' } },
  service: 's',
  cache,
  ...extra,
});

describe('cacheIr', () => {
  it('resolves defaults, private per partner on authenticated routes and shared on public ones', () => {
    assert.deepEqual(cacheIr(route({}), true), { scope: 'partner', generation: 0, defaultTtlSeconds: 60, varyHeaders: [], varyQuery: [], maxObjectBytes: 1_048_576 });
    assert.equal(cacheIr(route({}), false)?.scope, 'shared');
    assert.equal(cacheIr(route({ scope: 'shared' }), true)?.scope, 'shared', 'an authenticated route may declare itself shared');
    assert.deepEqual(cacheIr(route({ varyHeaders: ['X-B', 'accept-language'], varyQuery: ['z', 'a'] }), true)?.varyHeaders, ['accept-language', 'x-b']);
    assert.deepEqual(cacheIr(route({ varyQuery: ['z', 'a'] }), true)?.varyQuery, ['a', 'z']);
    assert.equal(cacheIr(route({ enabled: false }), true), undefined);
    assert.equal(cacheIr(route({}, { service: undefined, directResponse: { status: 200 } }), true), undefined);
  });

  it('groups routes into one profile per maximum object size', () => {
    const r = (maxObjectBytes: number) => ({ cache: { ...cacheIr(route({ maxObjectBytes }), true)! } }) as unknown as RouteIR;
    assert.deepEqual(cacheProfiles([r(2048), r(1024), r(2048)]), [{ maxObjectBytes: 1024 }, { maxObjectBytes: 2048 }]);
  });
});

describe('cacheKeyScript', () => {
  it('puts the generation, the partner and the vary headers in the key, encoded; only listed query parameters when some are', () => {
    const partner = cacheKeyScript(cacheIr(route({ generation: 7, varyHeaders: ['accept-language'] }), true)!);
    assert.match(partner, /"g7\.p-" \.\. enc\(hd:get\("x-portico-partner"\)\) \.\. "\.v-" \.\. enc\(hd:get\("accept-language"\)\) \.\. "\." \.\. host/);
    assert.doesNotMatch(partner, /:path/, 'the whole query is in the key');
    const shared = cacheKeyScript(cacheIr(route({ varyQuery: ['currency'] }), false)!);
    assert.match(shared, /"g0\.s\." \.\. host/);
    assert.match(shared, /"x-portico-cache-host", "max-age=\d+ " \.\. host/, 'the default ttl travels with the original host');
    assert.doesNotMatch(shared, /x-portico-partner/);
    assert.match(shared, /\["currency"\] = true/);
  });
});

describe('withKeyCluster', () => {
  const forward = (...names: string[]): ForwardActionIR => ({ kind: 'forward', clusters: names.map((name) => ({ name, weight: 1 })), weighted: names.length > 1, timeoutMs: 1000 });
  it('sends a shared route varying on nothing to its own cluster, named after generation and default TTL', () => {
    const { cache, action } = withKeyCluster(cacheIr(route({ generation: 3, defaultTtlSeconds: 90 }), false)!, forward('web'));
    assert.deepEqual(cache.keyCluster, { name: 'web.cache.g3.t90', service: 'web' });
    assert.deepEqual(action.clusters, [{ name: 'web.cache.g3.t90', weight: 1 }]);
    const purged = withKeyCluster(cacheIr(route({ generation: 4, defaultTtlSeconds: 90 }), false)!, forward('web'));
    assert.notEqual(purged.cache.keyCluster?.name, cache.keyCluster?.name, 'a purge changes the cluster, so every key');
  });
  it('keeps the key filter where the key needs more than Envoy puts in it', () => {
    const cases: Array<[ReturnType<typeof cacheIr>, ForwardActionIR]> = [
      [cacheIr(route({}), true), forward('web')],
      [cacheIr(route({ varyHeaders: ['accept-language'] }), false), forward('web')],
      [cacheIr(route({ varyQuery: ['currency'] }), false), forward('web')],
      [cacheIr(route({}), false), forward('web', 'web-canary')],
    ];
    for (const [c, a] of cases) {
      const out = withKeyCluster(c!, a);
      assert.equal(out.cache.keyCluster, undefined, JSON.stringify(c));
      assert.equal(out.action, a);
    }
  });
});

describe('purgeMutations', () => {
  const text = `portico: v1
gatewayGroups: [{ name: edge, listeners: [{ name: http, port: 8080 }] }]
services: [{ name: s, endpoints: [{ host: 127.0.0.1, port: 1 }] }]
products:
  - name: shop
    gatewayGroups: [edge]
    routes:
      - { name: catalog, match: { path: { type: prefix, value: /c } }, service: s, cache: { generation: 2 } }
      - { name: cart, match: { path: { type: prefix, value: /d } }, service: s, cache: {} }
      - { name: off, match: { path: { type: prefix, value: /o } }, service: s, cache: { enabled: false } }
      - { name: plain, match: { path: { type: prefix, value: /p } }, service: s }
  - name: shopping
    gatewayGroups: [edge]
    routes:
      - { name: list, match: { path: { type: prefix, value: /l } }, service: s, cache: {} }
`;
  const { model, errors } = parseModelDocument(parseDocumentText(text), {
    hashApiKey: () => {
      throw new Error('no keys here');
    },
  });
  it('raises the generation of cached routes under the prefix, and only those', () => {
    assert.deepEqual(errors, []);
    assert.deepEqual(validateModel(model), []);
    assert.deepEqual(purgeMutations(model, 'shop/').purged, [
      { product: 'shop', route: 'cart', generation: 1 },
      { product: 'shop', route: 'catalog', generation: 3 },
    ]);
    const one = purgeMutations(model, 'shop/catalog');
    assert.equal(one.mutations.length, 1);
    assert.equal((one.mutations[0]!.resource as { cache: { generation: number } }).cache.generation, 3);
    assert.deepEqual(
      purgeMutations(model, 'shop').purged.map((p) => `${p.product}/${p.route}`),
      ['shop/cart', 'shop/catalog', 'shopping/list'],
    );
    assert.deepEqual(purgeMutations(model, 'shop/off').purged, [], 'caching switched off: nothing to purge');
  });
});
