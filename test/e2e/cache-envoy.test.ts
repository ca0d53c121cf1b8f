// Response caching through the whole pipeline (admin API → xDS → a real Envoy → an upstream that
// counts requests): a cached GET served without the upstream until its TTL, Cache-Control honoured
// (no-store, private, max-age, the route's default TTL when the service sends none), Age set, two
// partners on a private route never seeing each other's answer, a shared route keyed on one query
// parameter, 100 identical cold GETs making at most 2 upstream calls, purge (admin API and CLI)
// sending the next GET to the upstream, and bad settings refused with 422 naming the field.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort, newApiKey, startGateway, withKey } from './ratelimit-envoy-fixture.ts';
import { listenHttp } from '../support/servers.ts';
import { ADMIN_TOKEN } from '../support/portico.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/portico');

describe('response caching through a real Envoy', () => {
  it('caches, keeps partners apart, coalesces and purges', { timeout: 300_000 }, async (t) => {
    const counts = new Map<string, number>();
    const seen = (p: string) => counts.get(p) ?? 0;
    let openGate: () => void = () => {};
    const gate = new Promise<void>((r) => {
      openGate = r;
    });
    const upstream = await listenHttp(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const p = url.pathname;
      counts.set(p, seen(p) + 1);
      if (p.endsWith('/cold')) await gate;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (p.endsWith('/nostore')) headers['cache-control'] = 'no-store';
      else if (p.endsWith('/private')) headers['cache-control'] = 'private, max-age=60';
      else if (!p.startsWith('/shop/ttl') && !p.startsWith('/shop/news')) headers['cache-control'] = 'max-age=60';
      res.writeHead(200, headers).end(
        JSON.stringify({
          path: p,
          query: url.search,
          n: seen(p),
          partner: req.headers['x-portico-partner'] ?? null,
          host: req.headers.host,
          leaked: Object.keys(req.headers).filter((h) => h.startsWith('x-portico-cache')),
        }),
      );
    });
    t.after(() => upstream.close());
    const g = await startGateway(t, { nodeId: 'cache', upstream: { name: 'catalog', ...upstream } });
    if (!g) return;
    const port = await freePort();
    const acme = newApiKey();
    const globex = newApiKey();
    const route = (name: string, value: string, extra: Record<string, unknown> = {}) => ({ name, match: { path: { type: 'prefix', value }, methods: ['GET'] }, service: 'catalog', ...extra });
    const doc = {
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port, address: '127.0.0.1' }] }],
      services: [{ name: 'catalog', endpoints: [{ host: '127.0.0.1', port: upstream.port }] }],
      plans: [{ name: 'free', limits: [{ requests: 100_000, per: 'second' }] }],
      products: [
        {
          name: 'shop',
          gatewayGroups: ['edge'],
          basePath: '/shop',
          auth: { accept: ['api_key'] },
          routes: [
            route('catalog', '/catalog', { cache: {} }),
            route('ttl', '/ttl', { cache: { defaultTtlSeconds: 1 } }),
            route('prices', '/prices', { auth: { accept: ['none'] }, cache: { varyQuery: ['currency'] } }),
            route('news', '/news', { auth: { accept: ['none'] }, cache: { defaultTtlSeconds: 300 } }),
            route('plain', '/plain'),
          ],
        },
      ],
      partners: [
        { name: 'acme', subscriptions: [{ product: 'shop', plan: 'free' }], apiKeys: [{ name: 'main', key: acme }] },
        { name: 'globex', subscriptions: [{ product: 'shop', plan: 'free' }], apiKeys: [{ name: 'main', key: globex }] },
      ],
    };
    await g.apply(doc);

    await t.test('a cached GET is served without the upstream, with Age, until its TTL', async () => {
      const first = await g.call('/shop/catalog/a', withKey(acme));
      assert.equal(first.status, 200, first.text);
      assert.equal(first.headers.get('age'), null, 'the first answer comes from the service');
      assert.equal(first.json.host, `127.0.0.1:${port}`, 'the service sees the Host the client sent');
      assert.deepEqual(first.json.leaked, [], "the cache's own headers never reach the service");
      const second = await g.call('/shop/catalog/a', withKey(acme));
      assert.equal(second.status, 200);
      assert.equal(seen('/shop/catalog/a'), 1, 'the second GET never reached the service');
      assert.match(second.headers.get('age') ?? '', /^\d+$/);
      assert.deepEqual(second.json, first.json);
      assert.equal((await g.call('/shop/plain/a', withKey(acme))).status, 200);
      assert.equal((await g.call('/shop/plain/a', withKey(acme))).status, 200);
      assert.equal(seen('/shop/plain/a'), 2, 'a route without cache settings is never cached');

      // No Cache-Control from the service: the route's default TTL (1 s) applies, and is what the client is told.
      const ttl = await g.call('/shop/ttl/a', withKey(acme));
      assert.equal(ttl.headers.get('cache-control'), 'max-age=1');
      await g.call('/shop/ttl/a', withKey(acme));
      assert.equal(seen('/shop/ttl/a'), 1, 'fresh for a second');
      await sleep(2200); // the entry's freshness is what is being tested: let it age past its TTL
      const stale = await g.call('/shop/ttl/a', withKey(acme));
      assert.equal(stale.status, 200);
      assert.equal(seen('/shop/ttl/a'), 2, 'after its TTL the GET reaches the service again');
    });

    await t.test('no-store and private answers are never stored', async () => {
      for (const p of ['/shop/catalog/nostore', '/shop/catalog/private']) {
        for (let i = 0; i < 3; i++) assert.equal((await g.call(p, withKey(acme))).status, 200);
        assert.equal(seen(p), 3, `${p}: every GET reaches the service`);
      }
    });

    await t.test("two partners on a private route never see each other's answer", async () => {
      const p = '/shop/catalog/profile';
      const a1 = await g.call(p, withKey(acme));
      const b1 = await g.call(p, withKey(globex));
      assert.equal(a1.json.partner, 'acme');
      assert.equal(b1.json.partner, 'globex');
      assert.equal(seen(p), 2, "globex's first GET is not acme's cached answer");
      const a2 = await g.call(p, withKey(acme));
      const b2 = await g.call(p, withKey(globex));
      assert.equal(seen(p), 2, 'each partner is then served from its own entry');
      assert.equal(a2.json.partner, 'acme');
      assert.equal(b2.json.partner, 'globex');
      assert.equal((await g.call(p)).status, 401, 'no credential, no cached answer');
    });

    await t.test('a shared route: one entry for every caller, keyed on the listed query parameter only', async () => {
      const p = '/shop/prices/list';
      const a = await g.call(`${p}?currency=eur`, withKey(acme));
      const anon = await g.call(`${p}?utm=x&currency=eur`);
      assert.equal(a.status, 200);
      assert.equal(anon.status, 200);
      assert.equal(seen(p), 1, 'another caller and an unlisted parameter hit the same entry');
      assert.equal(anon.json.query, '?currency=eur', 'the cached answer (the service saw the first query as sent)');
      const direct = await g.call(`${p}?currency=usd&utm=y`);
      assert.equal(direct.json.query, '?currency=usd&utm=y', 'a miss reaches the service with its query untouched');
      assert.equal(seen(p), 2, 'a different currency is a different entry');
    });

    await t.test('a shared route varying on nothing (no key filter, its own cluster): cached with the default TTL, purged', async () => {
      const p = '/shop/news/today';
      const first = await g.call(p);
      assert.equal(first.status, 200, first.text);
      assert.equal(first.headers.get('cache-control'), 'max-age=300', "the route's default TTL, added by its cluster's filter");
      assert.equal(first.json.host, `127.0.0.1:${port}`);
      assert.deepEqual(first.json.leaked, []);
      const second = await g.call(p, withKey(acme));
      assert.equal(seen(p), 1, 'every caller gets the one entry');
      assert.match(second.headers.get('age') ?? '', /^\d+$/);
      const r = await g.portico.api.post('/api/v1/products/shop/routes/news/cache/purge', {});
      assert.equal(r.status, 200, r.text);
      await g.inSync();
      assert.equal((await g.call(p)).status, 200);
      assert.equal(seen(p), 2, 'after the purge (a new cluster) the GET reaches the service');
      await g.call(p);
      assert.equal(seen(p), 2, 'and is cached again');
    });

    await t.test('100 identical GETs on a cold key make at most 2 upstream calls', async () => {
      const p = '/shop/catalog/cold';
      const all = Array.from({ length: 100 }, () => g.call(p, withKey(acme)));
      // Release the service only once Envoy holds all 100 lookups (a readiness wait, not a timer).
      const deadline = Date.now() + 60_000;
      for (;;) {
        const waiting = [...(await g.envoy.stats('cache_sessions_subscribers')).values()].reduce((a, b) => a + b, 0);
        if (waiting >= 100) break;
        assert.ok(Date.now() < deadline, `only ${waiting} lookups waiting`);
        await sleep(50);
      }
      openGate();
      const answers = await Promise.all(all);
      assert.ok(
        answers.every((r) => r.status === 200 && r.json.partner === 'acme'),
        JSON.stringify(answers.map((r) => r.status)),
      );
      assert.ok(seen(p) <= 2, `${seen(p)} upstream calls`);
    });

    await t.test('purge: the next GET reaches the upstream, through the admin API and the CLI', async () => {
      const p = '/shop/catalog/a';
      const before = seen(p);
      assert.equal((await g.call(p, withKey(acme))).status, 200);
      assert.equal(seen(p), before, 'still cached');
      const r = await g.portico.api.post('/api/v1/products/shop/routes/catalog/cache/purge', {});
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.purged, [{ product: 'shop', route: 'catalog', generation: 1 }]);
      await g.inSync();
      await g.call(p, withKey(acme));
      assert.equal(seen(p), before + 1, 'after the purge the GET reaches the service');
      await g.call(p, withKey(acme));
      assert.equal(seen(p), before + 1, 'and is cached again');

      const out = await promisify(execFile)(BIN, ['purge', '--prefix', 'shop/cat'], { env: { ...process.env, PORTICO_URL: g.portico.adminUrl, PORTICO_TOKEN: ADMIN_TOKEN } });
      assert.match(out.stdout, /purged shop\/catalog \(generation 2\)/);
      await g.inSync();
      await g.call(p, withKey(acme));
      assert.equal(seen(p), before + 2, 'the CLI purge reached Envoy too');
    });

    await t.test('hits, misses and coalesced requests per product and route, from the access logs', async () => {
      const metric = async (route: string, result: string) => {
        const text = await (await fetch(`${g.portico.adminUrl}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith('portico_cache_requests_total{') && l.includes(`product="shop"`) && l.includes(`route="${route}"`) && l.includes(`result="${result}"`));
        return line ? Number(line.split(' ').pop()) : 0;
      };
      // Envoy streams its access logs in batches, and hits are counted once no miss can claim them
      // (5 s): wait for the 100 concurrent GETs to be counted.
      const answered = async () => (await metric('catalog', 'hit')) + (await metric('catalog', 'coalesced'));
      const deadline = Date.now() + 60_000;
      while ((await answered()) < 100) {
        assert.ok(Date.now() < deadline, `catalog hits + coalesced: ${await answered()}`);
        await sleep(100);
      }
      // Of the 100 identical cold GETs, all but the one or two that reached the service waited for it.
      assert.ok((await metric('catalog', 'coalesced')) >= 98, `coalesced: ${await metric('catalog', 'coalesced')}`);
      assert.ok((await metric('catalog', 'miss')) >= 4, 'the first GET of each key, and after each purge');
      // The second prices GET came from the cache: a hit (counted once no miss can claim it, 5 s after
      // it is logged), or coalesced if Envoy's stream of the first was still completing when it began
      // (a busy machine can stretch that; Envoy then counts it as a follower too).
      while ((await metric('prices', 'hit')) + (await metric('prices', 'coalesced')) < 1) {
        assert.ok(Date.now() < deadline, 'prices answers from the cache');
        await sleep(100);
      }
      assert.equal(await metric('plain', 'hit'), 0, 'a route without a cache has no cache results');
      assert.equal(await metric('plain', 'miss'), 0);
    });

    await t.test('bad cache settings and purges are refused with 4xx naming the field', async () => {
      const put = (cache: unknown, extra: Record<string, unknown> = {}) => g.portico.api.put('/api/v1/products/shop/routes/plain', { ...route('plain', '/plain', extra), cache });
      for (const [cache, field] of [
        [{ defaultTtlSeconds: 0 }, 'cache.defaultTtlSeconds'],
        [{ scope: 'everyone' }, 'cache.scope'],
        [{ varyHeaders: ['bad header'] }, 'cache.varyHeaders[0]'],
        [{ maxObjectBytes: -1 }, 'cache.maxObjectBytes'],
        [{ ttl: 5 }, 'cache.ttl'],
      ] as const) {
        const r = await put(cache);
        assert.equal(r.status, 422, r.text);
        assert.equal(r.body.errors[0].field, field, r.text);
      }
      const rewrite = await put({}, { rewrite: { stripPrefix: '/plain' } });
      assert.equal(rewrite.status, 422, rewrite.text);
      assert.equal(rewrite.body.errors[0].field, 'cache', rewrite.text);
      const notCached = await g.portico.api.post('/api/v1/products/shop/routes/plain/cache/purge', {});
      assert.equal(notCached.status, 422, notCached.text);
      assert.equal(notCached.body.errors[0].field, 'cache');
      const none = await g.portico.api.post('/api/v1/cache/purge', { prefix: 'nothing/' });
      assert.equal(none.status, 422, none.text);
      assert.equal(none.body.errors[0].field, 'prefix');
      const missing = await g.portico.api.post('/api/v1/products/shop/routes/nope/cache/purge', {});
      assert.equal(missing.status, 404, missing.text);
      const bodyless = await g.portico.api.post('/api/v1/cache/purge', { prefix: 5 });
      assert.equal(bodyless.status, 422, bodyless.text);
      assert.equal(bodyless.body.errors[0].field, 'prefix');
    });
  });
});
