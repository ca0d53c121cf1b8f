// Snapshot cache: content-hash versions (deterministic across instances and processes), encoding once
// per content, validation before anything is served, debouncing, readiness and group removal.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it, type TestContext } from 'node:test';
import protobuf from 'protobufjs';
import { CachedResource, SnapshotCache, emptySnapshot, typeSnapshot } from '../../src/xds/cache.ts';
import { httpGatewayResources, largeGroupResources } from '../support/xds-fixtures.ts';
import { waitFor } from '../support/components.ts';
import { TYPE_URLS } from '../../src/proto/index.ts';
import type { GroupResources } from '../../src/contract/index.ts';
import { checkGroupResources, GroupResourcesError, createXds } from '../../src/xds/index.ts';
import { Registry } from 'prom-client';

const fixture = (routes = [{ prefix: '/', cluster: 'a' }], upstreams: Record<string, number[]> = { a: [9001], b: [9002] }): GroupResources =>
  httpGatewayResources({ listenerPort: 8080, upstreams, routes });

function reversedKeys<T>(v: T): T {
  if (Array.isArray(v)) return v.map(reversedKeys) as T;
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v)
        .reverse()
        .map(([k, x]) => [k, reversedKeys(x)]),
    ) as T;
  return v;
}

describe('versions', () => {
  it('are content hashes: equal content → equal versions in separate caches, whatever the key and list order', () => {
    const a = new SnapshotCache();
    const b = new SnapshotCache();
    const r = fixture();
    const shuffled: GroupResources = { ...reversedKeys(r), clusters: [...r.clusters].reverse() };
    assert.equal(a.setGroupResources('g', r), b.setGroupResources('g', shuffled));
    a.flush();
    b.flush();
    const sa = a.getSnapshot('g');
    const sb = b.getSnapshot('g');
    for (const t of Object.values(TYPE_URLS)) {
      assert.equal(typeSnapshot(sa, t).version, typeSnapshot(sb, t).version);
      for (const [n, res] of typeSnapshot(sa, t).resources) assert.equal(typeSnapshot(sb, t).resources.get(n)!.version, res.version);
    }
    assert.match(sa.version, /^[0-9a-f]{16}$/);
  });

  it('are identical in another process (a restarted replica)', () => {
    const c = new SnapshotCache();
    const here = c.setGroupResources('g', fixture());
    const code = `import { SnapshotCache } from './src/xds/cache.ts';
      import { httpGatewayResources } from './test/support/xds-fixtures.ts';
      const c = new SnapshotCache();
      process.stdout.write(c.setGroupResources('g', httpGatewayResources({ listenerPort: 8080, upstreams: { a: [9001], b: [9002] }, routes: [{ prefix: '/', cluster: 'a' }] })));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', cwd: process.cwd() });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, here);
  });

  it('change only where content changed', () => {
    const c = new SnapshotCache();
    c.setGroupResources('g', fixture());
    c.flush();
    const before = c.getSnapshot('g');
    c.setGroupResources('g', fixture([{ prefix: '/', cluster: 'b' }]));
    c.flush();
    const after = c.getSnapshot('g');
    assert.notEqual(after.version, before.version);
    assert.notEqual(typeSnapshot(after, TYPE_URLS.route).version, typeSnapshot(before, TYPE_URLS.route).version);
    for (const t of [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener, TYPE_URLS.secret]) {
      assert.equal(typeSnapshot(after, t).version, typeSnapshot(before, t).version, t);
    }
  });

  it('the empty group has a fixed version and all types empty', () => {
    const c = new SnapshotCache();
    const s = c.getSnapshot('nobody');
    assert.equal(s.version, emptySnapshot('other').version);
    for (const t of Object.values(TYPE_URLS)) assert.equal(typeSnapshot(s, t).resources.size, 0);
  });
});

describe('wiring', () => {
  it('is built from settings by createXds', async () => {
    const xds = createXds({ debounceMs: 1, debounceMaxMs: 5, maxConnectionAgeMs: 0 }, { registry: new Registry() });
    const version = xds.cache.setGroupResources('g', fixture());
    // The fleet status shows the group once the cache (debounced by the settings) has published it.
    await waitFor('the group published', () => xds.fleet.status().groups[0]?.snapshotVersion === version || undefined);
    assert.equal(xds.cache.getSnapshot('g').version, version);
    await xds.server.close(10);
    xds.cache.close();
  });
});

describe('encoding', () => {
  it('encodes each content once, shared across updates and groups', () => {
    const c = new SnapshotCache();
    c.setGroupResources('g1', fixture());
    c.setGroupResources('g2', fixture([{ prefix: '/x', cluster: 'b' }]));
    c.flush();
    const a = typeSnapshot(c.getSnapshot('g1'), TYPE_URLS.cluster).resources.get('a')!;
    // g2 has the same cluster content (fresh objects): the very same encoding is reused.
    assert.equal(typeSnapshot(c.getSnapshot('g2'), TYPE_URLS.cluster).resources.get('a'), a);
    c.setGroupResources('g1', fixture([{ prefix: '/y', cluster: 'a' }]));
    c.flush();
    assert.equal(typeSnapshot(c.getSnapshot('g1'), TYPE_URLS.cluster).resources.get('a'), a);
    // The wire forms are derived once too.
    assert.equal(a.any, a.any);
    assert.equal(a.delta, a.delta);
  });

  it('refuses invalid resources with their path and keeps the previous snapshot', () => {
    const c = new SnapshotCache();
    const v1 = c.setGroupResources('g', fixture());
    c.flush();
    const bad = fixture();
    const clusters = [{ ...bad.clusters[0]!, connect_timeout: '1 second' }, bad.clusters[1]!];
    assert.throws(
      () => c.setGroupResources('g', { ...bad, clusters, routes: [{ name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], rutes: [] }] }] }),
      (e: unknown) => {
        assert.ok(e instanceof GroupResourcesError);
        assert.deepEqual(
          e.problems.map((p) => [p.kind, p.name, p.path]),
          [
            ['clusters', 'a', '$.connect_timeout'],
            ['routes', 'r', '$.virtual_hosts[0].rutes'],
          ],
        );
        return true;
      },
    );
    assert.equal(c.hasPending(), false);
    assert.equal(c.getSnapshot('g').version, v1);
  });

  it('refuses duplicate and missing names', () => {
    const r = fixture();
    const problems = checkGroupResources({ ...r, clusters: [r.clusters[0]!, r.clusters[0]!], endpoints: [{ endpoints: [] }] });
    assert.deepEqual(
      problems.map((p) => [p.kind, p.name, p.message]),
      [
        ['clusters', 'a', 'duplicate name'],
        ['endpoints', '#0', 'missing cluster_name'],
      ],
    );
    assert.deepEqual(checkGroupResources(r), []);
  });

  it('records which EDS clusters have endpoints (for make-before-break)', () => {
    const c = new SnapshotCache();
    const r = fixture();
    c.setGroupResources('g', { ...r, clusters: [...r.clusters, { name: 'noeds', type: 'EDS', eds_cluster_config: { service_name: 'missing' } }] });
    c.flush();
    assert.deepEqual(
      [...c.getSnapshot('g').edsClusters],
      [
        ['a', 'a'],
        ['b', 'b'],
      ],
    );
  });
});

describe('publishing', () => {
  // The debounce runs on node:test's mock timers (setTimeout and Date.now): every test below says
  // exactly when a publication happens, and a busy machine cannot move it.
  const mockClock = (t: TestContext) => t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  // One millisecond at a time: a single tick(n) runs the timers due within it with Date.now() already at its end.
  const advance = (t: TestContext, ms: number) => {
    for (let i = 0; i < ms; i++) t.mock.timers.tick(1);
  };

  it('is not ready (serves nothing) until the first publication, even of nothing', (t) => {
    mockClock(t);
    const c = new SnapshotCache({ debounceMs: 5, debounceMaxMs: 20 });
    assert.equal(c.isReady(), false);
    let ready = false;
    c.onReady(() => (ready = true));
    c.replaceAll(new Map());
    advance(t, 4);
    assert.equal(c.isReady(), false);
    assert.equal(ready, false);
    advance(t, 1);
    assert.equal(c.isReady(), true);
    assert.equal(ready, true);
  });

  it('debounces a burst: one publication of its last state, a quiet period after the last update', (t) => {
    mockClock(t);
    const c = new SnapshotCache({ debounceMs: 40, debounceMaxMs: 120 });
    const published: { at: number; version: string }[] = [];
    c.watch('g', (s) => published.push({ at: Date.now(), version: s.version }));
    let last = '';
    // Five different states 10 ms apart (t = 0..40): each arrives within the quiet period of the one before.
    for (let i = 0; i < 5; i++) {
      last = c.setGroupResources('g', fixture([{ prefix: `/p${i}`, cluster: 'a' }]));
      advance(t, 10);
    }
    advance(t, 29);
    assert.deepEqual(published, [], 'nothing before the quiet period after the last update (t = 40 + 40)');
    advance(t, 1);
    advance(t, 10_000);
    assert.deepEqual(published, [{ at: 80, version: last }], 'five updates, one publication');
    assert.equal(c.getSnapshot('g').version, last);
    assert.equal(c.hasPending(), false);
    c.close();
  });

  it('a steady stream of updates is published at the maximum wait, and its end after the quiet period', (t) => {
    mockClock(t);
    const c = new SnapshotCache({ debounceMs: 40, debounceMaxMs: 120 });
    const published: { at: number; version: string }[] = [];
    c.watch('g', (s) => published.push({ at: Date.now(), version: s.version }));
    const versions: string[] = [];
    // An update every 10 ms for 300 ms: the quiet period never elapses while they last.
    for (let i = 0; i < 30; i++) {
      versions.push(c.setGroupResources('g', fixture([{ prefix: `/p${i}`, cluster: 'a' }])));
      advance(t, 10);
    }
    advance(t, 10_000);
    // Pending since 0 → published at 120 (the update of t = 110); pending since 120 → 240 (t = 230);
    // pending since 240, last update at 290 → 330, the quiet period after it (the maximum wait is 360).
    assert.deepEqual(published, [
      { at: 120, version: versions[11] },
      { at: 240, version: versions[23] },
      { at: 330, version: versions[29] },
    ]);
    c.close();
  });

  it('waits for the quiet period after a single update and publishes nothing for unchanged content', (t) => {
    mockClock(t);
    const c = new SnapshotCache({ debounceMs: 30, debounceMaxMs: 500 });
    let n = 0;
    c.watch('g', () => n++);
    c.setGroupResources('g', fixture());
    advance(t, 29);
    assert.equal(n, 0);
    advance(t, 1);
    assert.equal(n, 1);
    c.setGroupResources('g', fixture());
    assert.equal(c.hasPending(), false, 'unchanged content is not even pending');
    advance(t, 1000);
    assert.equal(n, 1);
    // A change reverted before publication publishes nothing either.
    c.setGroupResources('g', fixture([{ prefix: '/other', cluster: 'a' }]));
    c.setGroupResources('g', fixture());
    advance(t, 1000);
    assert.equal(n, 1);
    c.close();
  });

  it('replaceAll empties groups that are gone and is all-or-nothing', () => {
    const c = new SnapshotCache();
    c.replaceAll(
      new Map([
        ['g1', fixture()],
        ['g2', fixture()],
      ]),
    );
    c.flush();
    assert.deepEqual(c.groups(), ['g1', 'g2']);
    const g1 = c.getSnapshot('g1').version;
    const bad = { ...fixture(), listeners: [{ name: 'l', port: 1 }] };
    assert.throws(
      () =>
        c.replaceAll(
          new Map([
            ['g1', fixture([{ prefix: '/z', cluster: 'a' }])],
            ['g3', bad],
          ]),
        ),
      GroupResourcesError,
    );
    assert.equal(c.hasPending(), false);
    assert.equal(c.getSnapshot('g1').version, g1);
    c.replaceAll(new Map([['g1', fixture()]]));
    c.flush();
    assert.deepEqual(c.groups(), ['g1']);
    assert.equal(c.getSnapshot('g2').version, emptySnapshot('g2').version);
  });

  it('builds a 10,000-route, 1,000-cluster group and re-encodes only what changed', () => {
    const c = new SnapshotCache();
    const big = largeGroupResources({ clusters: 1000, routes: 10_000, routeConfigs: 10 });
    c.setGroupResources('big', big);
    c.flush();
    const s1 = c.getSnapshot('big');
    assert.equal(typeSnapshot(s1, TYPE_URLS.cluster).resources.size, 1000);
    c.setGroupResources('big', largeGroupResources({ clusters: 1000, routes: 10_000, routeConfigs: 10, variant: 1 }));
    c.flush();
    const s2 = c.getSnapshot('big');
    const changed = [...typeSnapshot(s2, TYPE_URLS.route).resources.values()].filter((r) => typeSnapshot(s1, TYPE_URLS.route).resources.get(r.name) !== r);
    assert.deepEqual(
      changed.map((r) => r.name),
      ['routes-00000'],
    );
    assert.equal(typeSnapshot(s2, TYPE_URLS.cluster).version, typeSnapshot(s1, TYPE_URLS.cluster).version);
  });

  it('a one-route change re-encodes that route configuration alone, whether the unchanged resources come as the same objects or as equal new ones', () => {
    const shape = { clusters: 1000, routes: 10_000, routeConfigs: 10 };
    const c = new SnapshotCache();
    const first = largeGroupResources(shape);
    c.setGroupResources('big', first);
    c.flush();
    assert.equal(c.encodings, 1000 + 1000 + 10 + 10);
    const s1 = c.getSnapshot('big');
    // The same objects for what did not change (a translator reusing its output), a new one for routes-00000.
    const changed = largeGroupResources({ ...shape, variant: 1 });
    const shared = { ...first, routes: [changed.routes[0]!, ...first.routes.slice(1)] };
    c.setGroupResources('big', shared);
    c.flush();
    assert.equal(c.encodings, 1000 + 1000 + 10 + 10 + 1);
    const s2 = c.getSnapshot('big');
    assert.notEqual(s2.version, s1.version);
    assert.notEqual(typeSnapshot(s2, TYPE_URLS.route).version, typeSnapshot(s1, TYPE_URLS.route).version);
    // Untouched types keep their very objects (streams' shared views of them stay valid).
    for (const t of [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener]) assert.equal(typeSnapshot(s2, t), typeSnapshot(s1, t), t);
    // Equal content in new objects: found by content, nothing encoded; another route changed: one more.
    c.setGroupResources('big', largeGroupResources({ ...shape, variant: 2 }));
    c.flush();
    assert.equal(c.encodings, 1000 + 1000 + 10 + 10 + 2);
    const s3 = c.getSnapshot('big');
    for (const t of [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener]) assert.equal(typeSnapshot(s3, t), typeSnapshot(s1, t), t);
    const routes = typeSnapshot(s3, TYPE_URLS.route).resources;
    assert.deepEqual(
      [...routes.values()].filter((r) => typeSnapshot(s2, TYPE_URLS.route).resources.get(r.name) !== r).map((r) => r.name),
      ['routes-00000'],
    );
    // Back to the first content (fresh objects): the same version as then, and nothing encoded.
    c.setGroupResources('big', largeGroupResources(shape));
    c.flush();
    assert.equal(c.getSnapshot('big').version, s1.version);
    assert.equal(c.encodings, 1000 + 1000 + 10 + 10 + 2);
  });

  it('frames a resource once: its message, Any and Delta Resource are views of one buffer, each exactly its own framing', () => {
    // A message past 128 and 16,384 bytes, so every length needs several varint bytes.
    for (const size of [0, 5, 200, 20_000]) {
      const message = Uint8Array.from({ length: size }, (_, i) => (i * 7) & 255);
      const c = new CachedResource(TYPE_URLS.route, `rc-${size}`, 'abcdef0123456789', message);
      const any = protobuf.Writer.create().uint32(10).string(TYPE_URLS.route).uint32(18).bytes(message).finish();
      const delta = protobuf.Writer.create().uint32(10).string('abcdef0123456789').uint32(18).bytes(any).uint32(26).string(`rc-${size}`).finish();
      assert.deepEqual(Buffer.from(c.bytes), Buffer.from(message), `${size}: message`);
      assert.deepEqual(Buffer.from(c.any), Buffer.from(any), `${size}: Any`);
      assert.deepEqual(Buffer.from(c.delta), Buffer.from(delta), `${size}: Resource`);
      assert.equal(c.any.buffer, c.delta.buffer);
      assert.equal(c.bytes.buffer, c.delta.buffer);
    }
  });
});
