// Translation with the pipeline's memory across translations (EmitMemo): output equal to a fresh
// translation for every golden model, warm, after any one of its resources changed or went, and
// across expiries; a product's route IR derived again only when something it reads changed;
// unchanged routes handed back as the very objects of the last translation (kept encoded), and a
// one-route change re-encoding only that route and its virtual host.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyMutations, parseDocumentText, parseModelDocument, type KindName, type ModelSnapshot, type Mutation, type Route } from '../../src/model/index.ts';
import { EmitMemo, translate } from '../../src/translate/index.ts';
import { SnapshotCache, typeSnapshot } from '../../src/xds/cache.ts';
import { EncodedMessage, encodeMessage, lookupType, TYPE_URLS, type JsonObject } from '../../src/proto/index.ts';

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

const goldenModels = (): Array<[string, ModelSnapshot]> =>
  readdirSync(testdata)
    .filter((d) => existsSync(path.join(testdata, d, 'model.yaml')))
    .map((name) => [name, parse(readFileSync(path.join(testdata, name, 'model.yaml'), 'utf8'))]);

const ROUTE = 'envoy.config.route.v3.Route';

/**
 * Resources in a form both ways of translating give alike: with a memo, routes come as their
 * encoding (EncodedMessage); without, as JSON. Every route becomes its encoding (base64).
 */
function canonical(groups: ReturnType<typeof translate>): unknown {
  const route = (r: unknown) => Buffer.from(r instanceof EncodedMessage ? r.bytes : encodeMessage(ROUTE, r)).toString('base64');
  return new Map(
    [...groups].map(([g, res]) => [
      g,
      {
        ...res,
        routes: res.routes.map((rc) => ({
          ...rc,
          virtual_hosts: (rc.virtual_hosts as JsonObject[]).map((vh) => ({ ...vh, routes: (vh.routes as unknown[]).map(route) })),
        })),
      },
    ]),
  );
}

/** A route's name, whether it comes as JSON or encoded. */
const routeName = (r: unknown): string => ((r instanceof EncodedMessage ? r.toJSON() : r) as { name: string }).name;

/** A translation's resources (canonical), or the error it throws (a mutated model may not translate: then both ways must refuse it alike). */
function outcome(model: ModelSnapshot, options: Parameters<typeof translate>[1]): unknown {
  try {
    return canonical(translate(model, options));
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** Kinds whose resources a route's IR may read, and a change to each resource besides deleting it. */
const TOGGLES: Array<[KindName, (r: Record<string, unknown>) => Record<string, unknown>]> = [
  ['services', (r) => ({ ...r, requestTimeoutMs: 1234 })],
  ['plans', (r) => ({ ...r, limits: [{ requests: 3, per: 'minute' }] })],
  ['partners', (r) => ({ ...r, suspended: r.suspended !== true })],
  ['subscriptions', (r) => ({ ...r, status: r.status === 'suspended' ? 'active' : 'suspended' })],
  ['apiKeys', (r) => ({ ...r, revoked: r.revoked !== true })],
  ['jwtIssuers', (r) => ({ ...r, forwardClaims: { tenant: 'x-tenant' } })],
  ['mtlsIdentities', (r) => r],
  ['products', (r) => ({ ...r, cors: { allowOrigins: ['https://example.com'] } })],
  ['routes', (r) => ({ ...r, timeoutMs: 4321 })],
  ['gatewayGroups', (r) => r],
  ['certificates', (r) => r],
];

describe('translation with an emit memo', () => {
  it('gives the same resources as without, for every golden model, also when the memo is warm', () => {
    const cases = goldenModels();
    assert.ok(cases.length > 10);
    for (const [name, model] of cases) {
      const memo = new EmitMemo();
      const plain = translate(model, OPTIONS);
      assert.deepEqual(canonical(translate(model, { ...OPTIONS, memo })), canonical(plain), name);
      assert.deepEqual(canonical(translate(model, { ...OPTIONS, memo })), canonical(plain), `${name} (warm)`);
    }
    // One memo through every golden model in turn (products of the same name in other contexts), twice.
    const memo = new EmitMemo();
    for (const round of [1, 2]) for (const [name, model] of cases) assert.deepEqual(outcome(model, { ...OPTIONS, memo }), outcome(model, OPTIONS), `${name} (shared memo, round ${round})`);
  });

  it('gives the same resources as a cold translation after any one resource of a golden model is changed or deleted', () => {
    let changes = 0;
    for (const [name, base] of goldenModels()) {
      const memo = new EmitMemo();
      translate(base, { ...OPTIONS, memo });
      for (const [kind, toggle] of TOGGLES) {
        for (const [key, resource] of base[kind] as ReadonlyMap<string, Record<string, unknown>>) {
          const variants: Mutation[] = [{ kind, op: 'delete', key }];
          const changed = toggle(resource);
          if (changed !== resource) variants.push({ kind, op: 'put', key, resource: changed as never });
          for (const mutation of variants) {
            const after = applyMutations(base, [mutation]);
            const label = `${name}: ${mutation.op} ${kind} ${key}`;
            assert.deepEqual(outcome(after, { ...OPTIONS, memo }), outcome(after, OPTIONS), label);
            // And back: what the memo holds for the base model must not have been spoilt.
            assert.deepEqual(outcome(base, { ...OPTIONS, memo }), outcome(base, OPTIONS), `${label}, then back`);
            changes++;
          }
        }
      }
    }
    assert.ok(changes > 200, `${changes} changes`);
  });

  it('follows the clock across subscription and key expiries though the clock is no input of the reuse', () => {
    const [, model] = goldenModels().find(([name]) => name === 'native-auth')!;
    const memo = new EmitMemo();
    // soylent's subscription ends 2026-01-01, wayne's old key 2026-03-01, his main key 2026-12-01, his subscription 2027-01-01.
    const clocks = ['2025-12-31T23:59:59Z', '2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z', '2026-06-01T00:00:00Z', '2026-12-15T00:00:00Z', '2027-02-01T00:00:00Z', '2025-06-01T00:00:00Z'];
    const results = clocks.map((at) => {
      const options = { ...OPTIONS, now: Date.parse(at) };
      const warm = canonical(translate(model, { ...options, memo }));
      assert.deepEqual(warm, canonical(translate(model, options)), at);
      return JSON.stringify([...(warm as Map<string, unknown>)]);
    });
    // The clock matters to this model: the test would not notice a memo that ignores it otherwise.
    assert.ok(new Set(results).size >= 4, `${new Set(results).size} distinct translations`);
  });

  it('hands back the objects of unchanged routes; a one-route change builds and encodes only what it touches', () => {
    const memo = new EmitMemo();
    const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
    const before = bigModel(50, 4);
    const first = translate(before, { ...OPTIONS, memo });
    cache.replaceAll(first);
    cache.flush();
    const built = memo.built;
    const derived = memo.derived.get('product routes');
    assert.equal(derived, 50);
    const generated = memo.derived.get('generated route')!;
    const partsEncoded = cache.parts.encoded;
    const encodings = cache.encodings;
    const key = 'product-7/route-2';
    const route = before.routes.get(key)!;
    const changed: Route = { ...route, match: { ...route.match, path: { type: 'prefix', value: '/moved' } } };
    const after = applyMutations(before, [{ kind: 'routes', op: 'put', key, resource: changed }]);
    const second = translate(after, { ...OPTIONS, memo });
    assert.deepEqual(canonical(second), canonical(translate(after, OPTIONS)));
    // Model → IR was derived again for the changed route's product only.
    assert.equal(memo.derived.get('product routes')! - derived, 1);
    // The generated routes (405 fallbacks, kept on their path's first route) of that product's 4 paths only.
    assert.equal(memo.derived.get('generated route')! - generated, 4);
    const routesOf = (g: typeof first) => {
      const rc = g.get('edge')!.routes[0] as { virtual_hosts: { routes: unknown[] }[] };
      return rc.virtual_hosts.flatMap((vh) => vh.routes);
    };
    const old = new Set(routesOf(first));
    const fresh = routesOf(second).filter((r) => !old.has(r));
    // The moved route, and the 405 fallback the gateway adds on its new path (its route restricts methods).
    assert.deepEqual(fresh.map(routeName).sort(), ['portico/method-not-allowed', 'product-7/route-2']);
    assert.ok(
      routesOf(second).every((r) => r instanceof EncodedMessage),
      'routes are handed over encoded',
    );
    assert.equal(memo.built - built, 2);
    const firstHeld = [...typeSnapshot(cache.getSnapshot('edge'), TYPE_URLS.route).resources.values()][0]!.bytes;
    cache.replaceAll(second);
    cache.flush();
    // Routes of the first translation no longer served (the memo keeps them one more round) are not
    // views into the replaced route configuration, which they would keep alive (7 MB at 10k routes).
    const kept = new Set(routesOf(second));
    const gone = routesOf(first).filter((r) => !kept.has(r)) as EncodedMessage[];
    assert.deepEqual(gone.map(routeName).sort(), ['portico/method-not-allowed', 'product-7/route-2']);
    assert.deepEqual(
      gone.filter((r) => r.bytes.buffer === firstHeld.buffer),
      [],
    );
    // One route configuration re-encoded, of whose parts only the virtual host (the two new routes
    // come encoded from the memo, which built only them).
    assert.equal(cache.encodings - encodings, 1);
    assert.equal(cache.parts.encoded - partsEncoded, 1);
    assert.equal(typeSnapshot(cache.getSnapshot('edge'), TYPE_URLS.route).resources.size, 1);
    // Later changes elsewhere too: what unchanged routes were built from stays remembered, however
    // many translations reused it by identity in between.
    let model = after;
    let handed = second;
    for (const [i, product] of [20, 33, 41].entries()) {
      const k = `product-${product}/route-1`;
      const r = model.routes.get(k)!;
      model = applyMutations(model, [{ kind: 'routes', op: 'put', key: k, resource: { ...r, match: { ...r.match, path: { type: 'prefix', value: `/moved-${i}` } } } }]);
      const p0 = cache.parts.encoded;
      handed = translate(model, { ...OPTIONS, memo });
      cache.replaceAll(handed);
      cache.flush();
      assert.equal(cache.parts.encoded - p0, 1, `change ${i}`);
    }
    const partsBefore = cache.parts.encoded;
    // Encoded around remembered parts (and found by its encoding, not its JSON), the same bytes as from scratch.
    const scratch = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
    scratch.replaceAll(translate(model, OPTIONS));
    scratch.flush();
    const bytes = (c: SnapshotCache) => [...typeSnapshot(c.getSnapshot('edge'), TYPE_URLS.route).resources.values()].map((r) => Buffer.from(r.bytes).toString('base64'));
    assert.deepEqual(bytes(cache), bytes(scratch));
    // The remembered routes and virtual host are views into the cached route configuration, not copies of it.
    const held = [...typeSnapshot(cache.getSnapshot('edge'), TYPE_URLS.route).resources.values()][0]!.bytes;
    const vh = (handed.get('edge')!.routes[0] as { virtual_hosts: { routes: EncodedMessage[] }[] }).virtual_hosts[0]!;
    const views = [cache.parts.bytes(lookupType('envoy.config.route.v3.VirtualHost'), vh, '$')!, ...vh.routes.map((r) => r.bytes)];
    assert.deepEqual(
      views.filter((v) => v.buffer !== held.buffer),
      [],
    );
    assert.equal(cache.parts.encoded - partsBefore, 0);
    scratch.close();
    cache.close();
  });

  it('keeps one encoding of a route configuration translated again with the same content', () => {
    // A translation that leaves the routes as they were (another kind changed, or the same model
    // again) builds a new route configuration object around the same route objects: it must find the
    // cached resource, and the remembered parts must stay views of that resource's one buffer.
    const memo = new EmitMemo();
    const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
    const model = bigModel(20, 3);
    const cached = () => [...typeSnapshot(cache.getSnapshot('edge'), TYPE_URLS.route).resources.values()][0]!;
    cache.replaceAll(translate(model, { ...OPTIONS, memo }));
    cache.flush();
    const first = cached();
    const again = translate(model, { ...OPTIONS, memo });
    const rc = again.get('edge')!.routes[0] as { virtual_hosts: { routes: EncodedMessage[] }[] };
    cache.replaceAll(again);
    cache.flush();
    assert.equal(cached(), first, 'the same cached resource');
    const parts = rc.virtual_hosts.flatMap((vh) => [cache.parts.bytes(lookupType('envoy.config.route.v3.VirtualHost'), vh, '$')!, ...vh.routes.map((r) => r.bytes)]);
    const elsewhere = parts.filter((b) => b.buffer !== first.bytes.buffer);
    assert.equal(elsewhere.length, 0, `${elsewhere.length} of ${parts.length} remembered parts point outside the cached resource`);
    cache.close();
  });

  it('derives again the products whose routes use a changed service, and only those', () => {
    const memo = new EmitMemo();
    const before = bigModel(50, 4);
    translate(before, { ...OPTIONS, memo });
    const derived = memo.derived.get('product routes')!;
    const svc = before.services.get('svc-3')!;
    const after = applyMutations(before, [{ kind: 'services', op: 'put', key: 'svc-3', resource: { ...svc, requestTimeoutMs: 2500 } }]);
    assert.deepEqual(outcome(after, { ...OPTIONS, memo }), outcome(after, OPTIONS));
    // product-p's routes use svc-(p+r)%10 for r in 0..3: svc-3 is used by products 0-3, 10-13, … (20 of 50).
    const users = [...before.routes.values()].filter((r) => r.service === 'svc-3').map((r) => r.product);
    assert.equal(new Set(users).size, 20);
    assert.equal(memo.derived.get('product routes')! - derived, 20);
  });
});
