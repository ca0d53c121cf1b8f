// Telling coalesced requests from cache hits in the access logs: an answer from the cache that started
// while a miss on the same key was under way waited for it, whichever of the two entries arrives first.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { CoalescingClassifier, CacheMetrics } from '../../src/telemetry/cache-metrics.ts';
import type { AccessLogRecord } from '../../src/telemetry/access-log-wire.ts';

const labels = { group: 'edge', product: 'shop', route: 'catalog' };

describe('CoalescingClassifier', () => {
  it('an answer that started inside a known miss on its key is coalesced at once', () => {
    const c = new CoalescingClassifier(5_000);
    assert.deepEqual(c.miss('k', 1_000, 50, 2_000), []);
    assert.equal(c.hit({ key: 'k', startMs: 1_020, labels, seenMs: 2_000 }), 'coalesced');
    assert.equal(c.hit({ key: 'k', startMs: 1_051, labels, seenMs: 2_000 }), 'held', 'after the miss ended: a hit');
    assert.equal(c.hit({ key: 'other', startMs: 1_020, labels, seenMs: 2_000 }), 'held', 'another key');
  });

  it('an answer logged before its miss is held, then claimed by the miss', () => {
    const c = new CoalescingClassifier(5_000);
    assert.equal(c.hit({ key: 'k', startMs: 1_010, labels, seenMs: 2_000 }), 'held');
    assert.equal(c.hit({ key: 'k', startMs: 900, labels, seenMs: 2_000 }), 'held');
    const covered = c.miss('k', 1_000, 50, 2_100);
    assert.deepEqual(
      covered.map((h) => h.startMs),
      [1_010],
    );
    assert.deepEqual(c.expire(6_999), [], 'within the grace nothing is due');
    assert.deepEqual(
      c.expire(7_000).map((h) => h.startMs),
      [900],
      'the one the miss did not cover is a hit once the grace is over',
    );
  });

  it('a held answer claimed by a miss behind an older one of its key expires cleanly', () => {
    const c = new CoalescingClassifier(5_000);
    assert.equal(c.hit({ key: 'k', startMs: 900, labels, seenMs: 1_000 }), 'held');
    assert.equal(c.hit({ key: 'k', startMs: 1_010, labels, seenMs: 1_001 }), 'held');
    assert.equal(c.miss('k', 1_000, 50, 1_002).length, 1);
    // The older one comes due first and empties the key's list; the claimed one follows it.
    assert.deepEqual(
      c.expire(7_000).map((h) => h.startMs),
      [900],
    );
    assert.equal(c.hit({ key: 'k', startMs: 8_000, labels, seenMs: 7_001 }), 'held', 'the key is usable again');
    assert.deepEqual(
      c.expire(13_000).map((h) => h.startMs),
      [8_000],
    );
  });
});

describe('CacheMetrics', () => {
  const entry = (over: Partial<AccessLogRecord>): AccessLogRecord => ({
    status: 200,
    durationSeconds: 0,
    gatewaySeconds: 0,
    upstreamSeconds: -1,
    flags: 0,
    routeName: 'shop/catalog',
    upstreamCluster: 'catalog',
    requestId: '',
    startMs: 0,
    authority: 'g0.s.example',
    path: '/shop/catalog/1',
    responseCodeDetails: 'cache.response_from_cache_filter',
    tags: new Map([['group', 'edge']]),
    authz: new Map(),
    ...over,
  });

  it('counts hits, misses and coalesced requests per route; hits once the grace is over', async () => {
    let now = 10_000;
    const registry = new Registry();
    const m = new CacheMetrics(registry, () => now, 1_000);
    m.setModel({ routes: new Map([['shop/catalog', {}]]), gatewayGroups: new Map([['edge', {}]]) } as never);
    m.record(entry({ startMs: 5_010, durationSeconds: 0.09 }), 'edge'); // a follower logged before its miss
    m.record(entry({ responseCodeDetails: 'cache.insert_via_upstream', startMs: 5_000, durationSeconds: 0.1 }), 'edge');
    m.record(entry({ startMs: 5_050, durationSeconds: 0.05 }), 'edge'); // a follower logged after it
    m.record(entry({ startMs: 9_000, durationSeconds: 0.0002 }), 'edge'); // served in 0.2 ms: a hit at once
    m.record(entry({ startMs: 5_020, durationSeconds: 0.01, path: '/shop/catalog/2' }), 'edge'); // another key: held, then a hit
    const value = async (result: string) => (await registry.getSingleMetric('portico_cache_requests_total')!.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
    assert.equal(await value('miss'), 1);
    assert.equal(await value('coalesced'), 2);
    assert.equal(await value('hit'), 1, 'only the fast one so far: the slow one waits for the grace');
    now += 1_000;
    assert.equal(await value('hit'), 2, 'read after the grace: counted as a hit');
    assert.equal(await value('coalesced'), 2);
  });

  it('fast hits are added up between scrapes and keep the labels they were seen with across a model change', async () => {
    const registry = new Registry();
    const m = new CacheMetrics(registry);
    m.setModel({ routes: new Map([['shop/catalog', {}]]), gatewayGroups: new Map([['edge', {}]]) } as never);
    for (let i = 0; i < 3; i++) m.record(entry({ durationSeconds: 0.0001 }), 'edge');
    m.record(entry({ durationSeconds: 0.0001, tags: new Map() }), 'other');
    // The route is removed: hits recorded before still count for it, later ones as unknown.
    m.setModel({ routes: new Map(), gatewayGroups: new Map([['edge', {}]]) } as never);
    m.record(entry({ durationSeconds: 0.0001 }), 'edge');
    const values = (await registry.getSingleMetric('portico_cache_requests_total')!.get()).values.map((v) => `${v.labels.group} ${v.labels.product}/${v.labels.route} ${v.labels.result} ${v.value}`);
    assert.deepEqual(values.sort(), ['edge shop/catalog hit 3', 'edge unknown/unknown hit 1', 'unknown shop/catalog hit 1']);
  });
});
