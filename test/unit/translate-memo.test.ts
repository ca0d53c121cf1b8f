// Translation with the pipeline's memory of emitted routes (EmitMemo): output equal to a fresh
// translation for every golden model, unchanged routes handed back as the very objects of the last
// translation, and a one-route change re-encoding only that route's parts in the xDS cache.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyMutations, parseDocumentText, parseModelDocument, type ModelSnapshot, type Route } from '../../src/model/index.ts';
import { EmitMemo, translate } from '../../src/translate/index.ts';
import { SnapshotCache, typeSnapshot } from '../../src/xds/cache.ts';
import { TYPE_URLS } from '../../src/proto/index.ts';

const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), '../golden/testdata');
const OPTIONS = { calloutAddress: '127.0.0.1:18001', now: Date.parse('2026-06-01T00:00:00Z') };
const hashApiKey = (key: string) => ({ prefix: key.slice(4, 12), hash: createHash('sha256').update(key).digest('base64url'), secret: key });

function parse(text: string): ModelSnapshot {
  const { model, errors } = parseModelDocument(parseDocumentText(text), { hashApiKey });
  assert.deepEqual(errors, []);
  return model;
}

/** A gateway with `products` products of `routes` routes each. */
function bigModel(products: number, routes: number): ModelSnapshot {
  const doc = {
    portico: 'v1',
    gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
    services: Array.from({ length: 10 }, (_, i) => ({ name: `svc-${i}`, endpoints: [{ host: `10.0.0.${i + 1}`, port: 8080 }] })),
    products: Array.from({ length: products }, (_, p) => ({
      name: `product-${p}`,
      gatewayGroups: ['edge'],
      basePath: `/p${p}`,
      routes: Array.from({ length: routes }, (_, r) => ({ name: `route-${r}`, match: { path: { type: 'prefix', value: `/r${r}` }, methods: ['GET'] }, service: `svc-${(p + r) % 10}` })),
    })),
  };
  return parse(JSON.stringify(doc));
}

describe('translation with an emit memo', () => {
  it('gives the same resources as without, for every golden model, also when the memo is warm', () => {
    const cases = readdirSync(testdata).filter((d) => existsSync(path.join(testdata, d, 'model.yaml')));
    assert.ok(cases.length > 10);
    for (const name of cases) {
      const model = parse(readFileSync(path.join(testdata, name, 'model.yaml'), 'utf8'));
      const memo = new EmitMemo();
      const plain = translate(model, OPTIONS);
      assert.deepEqual(translate(model, { ...OPTIONS, memo }), plain, name);
      assert.deepEqual(translate(model, { ...OPTIONS, memo }), plain, `${name} (warm)`);
    }
  });

  it('hands back the objects of unchanged routes; a one-route change builds and encodes only what it touches', () => {
    const memo = new EmitMemo();
    const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
    const before = bigModel(50, 4);
    const first = translate(before, { ...OPTIONS, memo });
    cache.replaceAll(first);
    cache.flush();
    const built = memo.built;
    const partsEncoded = cache.parts.encoded;
    const encodings = cache.encodings;
    const key = 'product-7/route-2';
    const route = before.routes.get(key)!;
    const changed: Route = { ...route, match: { ...route.match, path: { type: 'prefix', value: '/moved' } } };
    const after = applyMutations(before, [{ kind: 'routes', op: 'put', key, resource: changed }]);
    const second = translate(after, { ...OPTIONS, memo });
    assert.deepEqual(second, translate(after, OPTIONS));
    const routesOf = (g: typeof first) => {
      const rc = g.get('edge')!.routes[0] as { virtual_hosts: { routes: { name: string; match: unknown }[] }[] };
      return rc.virtual_hosts.flatMap((vh) => vh.routes);
    };
    const old = new Set(routesOf(first));
    const fresh = routesOf(second).filter((r) => !old.has(r));
    // The moved route, and the 405 fallback the gateway adds on its new path (its route restricts methods).
    assert.deepEqual(fresh.map((r) => r.name).sort(), ['portico/method-not-allowed', 'product-7/route-2']);
    assert.equal(memo.built - built, 2);
    cache.replaceAll(second);
    cache.flush();
    // One route configuration re-encoded, of whose parts only the two new routes and the virtual host.
    assert.equal(cache.encodings - encodings, 1);
    assert.equal(cache.parts.encoded - partsEncoded, 3);
    assert.equal(typeSnapshot(cache.getSnapshot('edge'), TYPE_URLS.route).resources.size, 1);
    cache.close();
  });
});
