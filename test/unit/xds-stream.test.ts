// The per-stream xDS protocol without gRPC: nonces, ACK/NACK bookkeeping (a NACKed version is never
// re-sent), one push in flight per type, subscriptions, Delta computation, reconnects, ADS ordering.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { setVersion, SnapshotCache } from '../../src/xds/cache.ts';
import { FleetStatus } from '../../src/xds/fleet.ts';
import { edsCluster, httpGatewayResources } from '../support/xds-fixtures.ts';
import { TYPE_URLS } from '../../src/proto/index.ts';
import type { GroupResources } from '../../src/contract/index.ts';
import { unpackAny, unpackDeltaResource } from '../../src/xds/services.ts';
import { DeltaStream } from '../../src/xds/delta.ts';
import { SotwStream } from '../../src/xds/sotw.ts';
import { observers, type DeltaRequest, type DeltaResponse, type NodeInfo, type SotwRequest, type SotwResponse } from '../../src/xds/stream.ts';
import { XdsMetrics } from '../../src/xds/metrics.ts';

const { cluster: CDS, endpoint: EDS, listener: LDS, route: RDS } = TYPE_URLS;
const NODE: NodeInfo = { id: 'n1', cluster: 'g', userAgent: 'test/1', raw: { id: 'n1', cluster: 'g' } };

const tick = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

function resources(upstreams: Record<string, number[]>, routeCluster = Object.keys(upstreams)[0]!): GroupResources {
  return httpGatewayResources({ listenerPort: 8080, upstreams, routes: [{ prefix: '/', cluster: routeCluster }] });
}

function setup(initial?: GroupResources, orderingTimeoutMs = 5000) {
  const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
  const fleet = new FleetStatus({ cache });
  if (initial) {
    cache.setGroupResources('g', initial);
    cache.flush();
  }
  const update = (r: GroupResources) => {
    cache.setGroupResources('g', r);
    cache.flush();
  };
  return { cache, fleet, update, orderingTimeoutMs };
}

function sotw(env: ReturnType<typeof setup>, ads = true) {
  const sent: SotwResponse[] = [];
  const stream = new SotwStream(
    { cache: env.cache, ads, service: ads ? 'ads' : 'cds', typeUrl: ads ? undefined : CDS, peer: 'test', observer: env.fleet, orderingTimeoutMs: env.orderingTimeoutMs },
    (r) => sent.push(r),
  );
  const req = (r: Partial<SotwRequest> & { type_url: string }) =>
    stream.handle({ version_info: '', resource_names: [], response_nonce: '', ...r, node: sent.length === 0 && !r.response_nonce ? NODE : r.node });
  /** ACKs (or NACKs) a response, keeping the type's subscription. */
  const ack = (resp: SotwResponse, names: string[] = [], error?: string) =>
    stream.handle({
      version_info: resp.version_info,
      resource_names: names,
      type_url: resp.type_url,
      response_nonce: resp.nonce,
      ...(error ? { error_detail: { code: 3, message: error }, version_info: '' } : {}),
    });
  return { stream, sent, req, ack };
}

function delta(env: ReturnType<typeof setup>) {
  const sent: DeltaResponse[] = [];
  const stream = new DeltaStream({ cache: env.cache, ads: true, service: 'ads', peer: 'test', observer: env.fleet, orderingTimeoutMs: env.orderingTimeoutMs }, (r) => sent.push(r));
  const req = (r: Partial<DeltaRequest> & { type_url: string }) =>
    stream.handle({ resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: '', node: NODE, ...r });
  const ack = (resp: DeltaResponse, error?: string) =>
    stream.handle({
      type_url: resp.type_url,
      resource_names_subscribe: [],
      resource_names_unsubscribe: [],
      initial_resource_versions: {},
      response_nonce: resp.nonce,
      ...(error ? { error_detail: { code: 3, message: error } } : {}),
    });
  return { stream, sent, req, ack };
}

const names = (r: SotwResponse) =>
  r.resources.map((b) => {
    const j = unpackAny(b);
    return String(j.name ?? j.cluster_name);
  });
const deltaNames = (r: DeltaResponse) => r.resources.map((b) => unpackDeltaResource(b).name);

describe('SotW', () => {
  it('answers a wildcard CDS request with every cluster, versioned by content, with a fresh nonce', async () => {
    const env = setup(resources({ a: [1], b: [2] }));
    const s = sotw(env);
    s.req({ type_url: CDS });
    await tick();
    assert.equal(s.sent.length, 1);
    assert.deepEqual(names(s.sent[0]!), ['a', 'b']);
    assert.equal(s.sent[0]!.version_info, env.cache.getSnapshot('g').types.get(CDS)!.version);
    assert.ok(s.sent[0]!.nonce);
    s.ack(s.sent[0]!);
    await tick();
    assert.equal(s.sent.length, 1, 'an ACK of the current version sends nothing');
    const t = env.fleet.node('n1')!.types.find((x) => x.type === 'clusters')!;
    assert.equal(t.ackedVersion, s.sent[0]!.version_info);
    assert.equal(t.pending, false);
  });

  it('keeps at most one push in flight per type and sends the latest after the ACK', async () => {
    const env = setup(resources({ a: [1] }));
    const s = sotw(env);
    s.req({ type_url: CDS });
    await tick();
    env.update(resources({ a: [1], b: [2] }));
    env.update(resources({ a: [1], b: [2], c: [3] }));
    await tick();
    assert.equal(s.sent.length, 1, 'nothing new while the first push is un-ACKed');
    s.ack(s.sent[0]!);
    await tick();
    assert.equal(s.sent.length, 2);
    assert.deepEqual(names(s.sent[1]!), ['a', 'b', 'c']);
    assert.notEqual(s.sent[1]!.nonce, s.sent[0]!.nonce);
  });

  it('records a NACK, keeps the last good version, and never re-sends the rejected one', async () => {
    const env = setup(resources({ a: [1] }));
    const s = sotw(env);
    s.req({ type_url: CDS });
    await tick();
    s.ack(s.sent[0]!);
    const good = s.sent[0]!.version_info;
    env.update(resources({ a: [1], bad: [2] }));
    await tick();
    assert.equal(s.sent.length, 2);
    s.ack(s.sent[1]!, [], 'cluster bad: invalid');
    await tick();
    // Re-evaluations (a publication of other types, a re-request) do not bring the NACKed version back.
    env.update({ ...resources({ a: [1], bad: [2] }), secrets: [] });
    s.req({ type_url: CDS, response_nonce: s.sent[1]!.nonce, version_info: good });
    await tick();
    assert.equal(s.sent.length, 2);
    const t = env.fleet.node('n1')!.types.find((x) => x.type === 'clusters')!;
    assert.equal(t.ackedVersion, good);
    assert.deepEqual({ version: t.lastNack?.version, message: t.lastNack?.message }, { version: s.sent[1]!.version_info, message: 'cluster bad: invalid' });
    assert.equal(env.fleet.status().recentNacks[0]!.message, 'cluster bad: invalid');
    assert.equal(s.stream.typeState(CDS)!.nackedVersion, s.sent[1]!.version_info);
    // A newer version is pushed.
    env.update(resources({ a: [1], fixed: [2] }));
    await tick();
    assert.equal(s.sent.length, 3);
    assert.deepEqual(names(s.sent[2]!), ['a', 'fixed']);
  });

  it('ignores replies with a stale nonce', async () => {
    const env = setup(resources({ a: [1] }));
    const s = sotw(env);
    s.req({ type_url: CDS });
    await tick();
    s.ack(s.sent[0]!);
    env.update(resources({ a: [1], b: [2] }));
    await tick();
    // A NACK carrying the first (already answered) nonce must not count against the second push.
    s.stream.handle({ version_info: '', resource_names: [], type_url: CDS, response_nonce: s.sent[0]!.nonce, error_detail: { code: 3, message: 'old' } });
    await tick();
    assert.equal(s.stream.typeState(CDS)!.inFlight, true);
    assert.equal(env.fleet.status().recentNacks.length, 0);
  });

  it('honours resource_names for EDS: only requested, existing names; subscription changes push', async () => {
    const env = setup(resources({ a: [1], b: [2], c: [3] }));
    const s = sotw(env, true);
    s.req({ type_url: EDS, resource_names: ['a', 'nope'] });
    await tick();
    assert.deepEqual(names(s.sent[0]!), ['a']);
    s.ack(s.sent[0]!, ['a', 'nope']);
    await tick();
    assert.equal(s.sent.length, 1);
    // A change to an unsubscribed resource is not pushed.
    env.update(resources({ a: [1], b: [2], c: [33] }));
    await tick();
    assert.equal(s.sent.length, 1);
    s.req({ type_url: EDS, resource_names: ['a', 'c'], response_nonce: s.sent[0]!.nonce, version_info: s.sent[0]!.version_info });
    await tick();
    assert.equal(s.sent.length, 2);
    // EDS/RDS/SDS responses carry what changed (absence means nothing), versioned as the whole subscription.
    assert.deepEqual(names(s.sent[1]!), ['c']);
    const ts = env.cache.getSnapshot('g').types.get(EDS)!;
    assert.equal(s.sent[1]!.version_info, setVersion(['a', 'c'].map((n) => [n, ts.resources.get(n)!.version] as const)));
    // "*" is a wildcard for any type, and a wildcard subscription gets the full set.
    s.ack(s.sent[1]!, ['*']);
    await tick();
    assert.deepEqual(names(s.sent[2]!), ['a', 'b', 'c']);
  });

  it('sends a changed endpoint alone, in one encoding shared by every stream in the same state', async () => {
    const env = setup(resources({ a: [1], b: [2], c: [3] }));
    const streams = [sotw(env), sotw(env)];
    for (const s of streams) {
      s.req({ type_url: EDS, resource_names: ['a', 'b', 'c'] });
    }
    await tick();
    for (const s of streams) s.ack(s.sent[0]!, ['a', 'b', 'c']);
    env.update(resources({ a: [1], b: [22], c: [3] }));
    await tick();
    for (const s of streams) assert.deepEqual(names(s.sent[1]!), ['b']);
    assert.equal(streams[0]!.sent[1]!.body, streams[1]!.sent[1]!.body, 'the same encoding');
    assert.ok(streams[0]!.sent[1]!.body!.reduce((n, b) => n + b.length, 0) < 200);
  });

  it('answers an unknown group with empty responses', async () => {
    const env = setup(resources({ a: [1] }));
    const s = sotw(env);
    s.stream.handle({ version_info: '', resource_names: [], type_url: CDS, response_nonce: '', node: { ...NODE, cluster: 'unknown' } });
    s.stream.handle({ version_info: '', resource_names: [], type_url: LDS, response_nonce: '' });
    await tick();
    assert.equal(s.sent.length, 1);
    assert.deepEqual(s.sent[0]!.resources, []);
    s.ack(s.sent[0]!);
    await tick();
    assert.equal(s.sent.length, 2);
    assert.equal(s.sent[1]!.type_url, LDS);
    assert.deepEqual(s.sent[1]!.resources, []);
  });

  it('says nothing before the cache was first filled (a restart must not wipe Envoy config)', async () => {
    const env = setup();
    const s = sotw(env);
    s.req({ type_url: CDS, version_info: 'whatever-envoy-had' });
    await tick();
    assert.equal(s.sent.length, 0);
    env.update(resources({ a: [1] }));
    await tick();
    assert.equal(s.sent.length, 1);
  });

  it('on reconnect with the current version, re-sends nothing and reports the node in sync', async () => {
    const env = setup(resources({ a: [1] }));
    const first = sotw(env);
    first.req({ type_url: CDS });
    await tick();
    const v = first.sent[0]!.version_info;
    first.stream.close();
    const again = sotw(env);
    again.req({ type_url: CDS, version_info: v });
    await tick();
    assert.equal(again.sent.length, 0);
    const t = env.fleet.node('n1')!.types.find((x) => x.type === 'clusters')!;
    assert.equal(t.ackedVersion, v);
    // Holding an older version gets the current one.
    const old = sotw(env);
    old.req({ type_url: CDS, version_info: 'older' });
    await tick();
    assert.equal(old.sent.length, 1);
  });

  it('per-type service streams refuse other types', async () => {
    const env = setup(resources({ a: [1] }));
    const errors: string[] = [];
    const stream = new SotwStream({ cache: env.cache, ads: false, service: 'cds', typeUrl: CDS, peer: 't', onProtocolError: (m) => errors.push(m) }, () => {});
    stream.handle({ version_info: '', resource_names: [], type_url: LDS, response_nonce: '', node: NODE });
    assert.match(errors[0]!, /listener.*cds/i);
  });
});

describe('ADS ordering (make-before-break)', () => {
  it('pushes clusters, then endpoints, then listeners, then routes — each after the previous ACK', async () => {
    const env = setup(resources({ a: [1] }));
    const s = sotw(env);
    s.req({ type_url: CDS });
    s.req({ type_url: LDS });
    await tick();
    assert.deepEqual(
      s.sent.map((r) => r.type_url),
      [CDS],
    );
    s.ack(s.sent[0]!);
    s.req({ type_url: EDS, resource_names: ['a'] }); // what Envoy asks for once it has cluster a
    await tick();
    assert.deepEqual(
      s.sent.map((r) => r.type_url),
      [CDS, EDS],
    );
    s.ack(s.sent[1]!, ['a']);
    await tick();
    assert.deepEqual(
      s.sent.map((r) => r.type_url),
      [CDS, EDS, LDS],
    );
    s.ack(s.sent[2]!);
    s.req({ type_url: RDS, resource_names: ['edge-routes'] });
    await tick();
    assert.deepEqual(
      s.sent.map((r) => r.type_url),
      [CDS, EDS, LDS, RDS],
    );

    // An update adding a cluster and a route to it: the route waits for the new cluster's EDS.
    s.ack(s.sent[3]!, ['edge-routes']);
    env.update(resources({ a: [1], b: [2] }, 'b'));
    await tick();
    assert.deepEqual(
      s.sent.slice(4).map((r) => r.type_url),
      [CDS],
    );
    s.ack(s.sent[4]!);
    await tick();
    assert.deepEqual(
      s.sent.slice(4).map((r) => r.type_url),
      [CDS],
      'routes wait: Envoy has not subscribed to EDS of b yet',
    );
    s.req({ type_url: EDS, resource_names: ['a', 'b'], response_nonce: s.sent[1]!.nonce, version_info: s.sent[1]!.version_info });
    await tick();
    assert.deepEqual(
      s.sent.slice(4).map((r) => r.type_url),
      [CDS, EDS],
    );
    s.ack(s.sent[5]!, ['a', 'b']);
    await tick();
    assert.deepEqual(
      s.sent.slice(4).map((r) => r.type_url),
      [CDS, EDS, RDS],
    );
  });

  it('a NACK releases the types after it', async () => {
    const env = setup(resources({ a: [1] }));
    const s = sotw(env);
    s.req({ type_url: CDS });
    s.req({ type_url: LDS });
    await tick();
    s.ack(s.sent[0]!, [], 'rejected');
    await tick();
    assert.deepEqual(
      s.sent.map((r) => r.type_url),
      [CDS, LDS],
    );
  });

  it('stops waiting for EDS subscriptions after the ordering timeout', async () => {
    const env = setup(resources({ a: [1] }), 60);
    const s = sotw(env);
    s.req({ type_url: CDS });
    s.req({ type_url: LDS });
    await tick();
    s.ack(s.sent[0]!);
    await tick();
    assert.equal(s.sent.length, 1);
    await new Promise((r) => setTimeout(r, 120));
    await tick();
    assert.deepEqual(
      s.sent.map((r) => r.type_url),
      [CDS, LDS],
    );
  });

  it('per-type streams are not held back by other types', async () => {
    const env = setup(resources({ a: [1] }));
    const lds = new SotwStream({ cache: env.cache, ads: false, service: 'lds', typeUrl: LDS, peer: 't' }, (r) => sent.push(r));
    const sent: SotwResponse[] = [];
    lds.handle({ version_info: '', resource_names: [], type_url: '', response_nonce: '', node: NODE });
    await tick();
    assert.deepEqual(
      sent.map((r) => r.type_url),
      [LDS],
    );
  });
});

describe('Delta', () => {
  it('sends everything first, then only what changed, and removals', async () => {
    const env = setup(resources({ a: [1], b: [2] }));
    const d = delta(env);
    d.req({ type_url: CDS });
    await tick();
    assert.deepEqual(deltaNames(d.sent[0]!), ['a', 'b']);
    const va = unpackDeltaResource(d.sent[0]!.resources[0]!).version;
    assert.equal(va, env.cache.getSnapshot('g').types.get(CDS)!.resources.get('a')!.version);
    d.ack(d.sent[0]!);
    env.update(resources({ a: [1], c: [3] }));
    await tick();
    assert.deepEqual(deltaNames(d.sent[1]!), ['c']);
    assert.deepEqual(d.sent[1]!.removed_resources, ['b']);
    // The system version is what SotW would report for the same set.
    assert.equal(d.sent[1]!.system_version_info, env.cache.getSnapshot('g').types.get(CDS)!.version);
    d.ack(d.sent[1]!);
    await tick();
    assert.equal(d.sent.length, 2);
    assert.deepEqual(d.stream.typeState(CDS)!.client, Object.fromEntries([...env.cache.getSnapshot('g').types.get(CDS)!.resources].map(([n, r]) => [n, r.version])));
  });

  it('on reconnect sends only resources whose initial_resource_versions differ', async () => {
    const env = setup(resources({ a: [1], b: [2] }));
    const snap = env.cache.getSnapshot('g').types.get(CDS)!;
    const d = delta(env);
    d.req({ type_url: CDS, initial_resource_versions: { a: snap.resources.get('a')!.version, b: 'stale', gone: 'x' } });
    await tick();
    assert.equal(d.sent.length, 1);
    assert.deepEqual(deltaNames(d.sent[0]!), ['b']);
    assert.deepEqual(d.sent[0]!.removed_resources, ['gone']);

    const inSync = delta(env);
    inSync.req({ type_url: CDS, initial_resource_versions: Object.fromEntries([...snap.resources].map(([n, r]) => [n, r.version])) });
    await tick();
    assert.equal(inSync.sent.length, 0);
  });

  it('NACKed content is not re-sent; later changes (to it or others) are, without it', async () => {
    const env = setup(resources({ a: [1] }));
    const d = delta(env);
    d.req({ type_url: CDS });
    await tick();
    d.ack(d.sent[0]!);
    env.update(resources({ a: [1], bad: [2] }));
    await tick();
    d.ack(d.sent[1]!, 'bad is bad');
    await tick();
    assert.equal(d.sent.length, 2);
    assert.equal(env.fleet.node('n1')!.types.find((t) => t.type === 'clusters')!.lastNack!.message, 'bad is bad');
    env.update(resources({ a: [1], bad: [2], c: [3] }));
    await tick();
    assert.deepEqual(deltaNames(d.sent[2]!), ['c']);
    d.ack(d.sent[2]!);
    const badCluster = edsCluster('bad', { connect_timeout: '2s' });
    const r = resources({ a: [1], bad: [2], c: [3] });
    env.update({ ...r, clusters: r.clusters.map((c) => (c.name === 'bad' ? badCluster : c)) });
    await tick();
    assert.deepEqual(deltaNames(d.sent[3]!), ['bad']);
  });

  it('subscribe and unsubscribe for EDS; re-subscribing sends the resource again', async () => {
    const env = setup(resources({ a: [1], b: [2] }));
    const d = delta(env);
    d.req({ type_url: EDS, resource_names_subscribe: ['a'] });
    await tick();
    assert.deepEqual(deltaNames(d.sent[0]!), ['a']);
    d.ack(d.sent[0]!);
    d.req({ type_url: EDS, resource_names_subscribe: ['b'], resource_names_unsubscribe: ['a'] });
    await tick();
    assert.deepEqual(deltaNames(d.sent[1]!), ['b']);
    assert.deepEqual(d.sent[1]!.removed_resources, []);
    d.ack(d.sent[1]!);
    d.req({ type_url: EDS, resource_names_subscribe: ['a'] });
    await tick();
    assert.deepEqual(deltaNames(d.sent[2]!), ['a']);
  });

  it('answers a wildcard subscription on an empty group once, with nothing', async () => {
    const env = setup(resources({ a: [1] }));
    const d = delta(env);
    d.stream.handle({ type_url: LDS, resource_names_subscribe: [], resource_names_unsubscribe: [], initial_resource_versions: {}, response_nonce: '', node: { ...NODE, cluster: 'empty' } });
    await tick();
    assert.equal(d.sent.length, 1);
    assert.deepEqual(d.sent[0]!.resources, []);
    d.ack(d.sent[0]!);
    await tick();
    assert.equal(d.sent.length, 1);
  });

  it('orders pushes on ADS the same way as SotW', async () => {
    const env = setup(resources({ a: [1] }));
    const d = delta(env);
    d.req({ type_url: CDS });
    d.req({ type_url: LDS });
    await tick();
    assert.deepEqual(
      d.sent.map((r) => r.type_url),
      [CDS],
    );
    d.ack(d.sent[0]!);
    d.req({ type_url: EDS, resource_names_subscribe: ['a'] });
    await tick();
    assert.deepEqual(
      d.sent.map((r) => r.type_url),
      [CDS, EDS],
    );
    d.ack(d.sent[1]!);
    await tick();
    assert.deepEqual(
      d.sent.map((r) => r.type_url),
      [CDS, EDS, LDS],
    );
  });
});

describe('fleet', () => {
  it('tracks streams, pushes, ACK latency and NACKs in prom-client metrics', async () => {
    const registry = new Registry();
    const cache = new SnapshotCache();
    cache.setGroupResources('g', resources({ a: [1] }));
    cache.flush();
    const fleet = new FleetStatus({ cache });
    const sent: SotwResponse[] = [];
    const observer = observers(fleet, new XdsMetrics(registry));
    const s = new SotwStream({ cache, ads: true, service: 'ads', peer: 'p', observer }, (r) => sent.push(r));
    s.handle({ version_info: '', resource_names: [], type_url: CDS, response_nonce: '', node: NODE });
    await tick();
    s.handle({ version_info: '', resource_names: [], type_url: CDS, response_nonce: sent[0]!.nonce, error_detail: { code: 3, message: 'no' } });
    const text = await registry.metrics();
    assert.match(text, /portico_xds_connected_streams\{group="g",protocol="sotw"\} 1/);
    assert.match(text, /portico_xds_pushes_total\{type="clusters"\} 1/);
    assert.match(text, /portico_xds_nacks_total\{type="clusters"\} 1/);
    assert.match(text, /portico_xds_ack_latency_seconds_count\{type="clusters"\} 1/);
    const view = fleet.status();
    assert.deepEqual(view.groups, [{ group: 'g', snapshotVersion: cache.getSnapshot('g').version, connected: 1 }]);
    assert.equal(view.nodes[0]!.userAgent, 'test/1');
    s.close();
    assert.match(await registry.metrics(), /portico_xds_connected_streams\{group="g",protocol="sotw"\} 0/);
    assert.equal(fleet.status().nodes.length, 0);
    assert.equal(fleet.status().recentNacks.length, 1, 'NACK history outlives the stream');
    // JSON-serialisable as served by the admin API.
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(fleet.status())));
  });
});

describe('send budget', () => {
  it('paces writes so queued bytes stay under the limit, and forgets ended calls', async () => {
    const { SendBudget } = await import('../../src/xds/server.ts');
    const budget = new SendBudget(250);
    const completions: (() => void)[] = [];
    const written: string[] = [];
    const fakeCall = (name: string) =>
      ({
        destroyed: false,
        writableEnded: false,
        write(body: Buffer[], cb: () => void) {
          written.push(`${name}:${body.reduce((n, b) => n + b.length, 0)}`);
          completions.push(cb);
          return true;
        },
      }) as unknown as Parameters<typeof budget.write>[0];
    const a = fakeCall('a');
    const b = fakeCall('b');
    let produced = 0;
    const of = (n: number) => () => {
      produced++;
      return [Buffer.alloc(n - 40), Buffer.alloc(40)];
    };
    budget.write(a, of(100));
    budget.write(b, of(100));
    budget.write(a, of(100));
    budget.write(b, of(100));
    assert.deepEqual(written, ['a:100', 'b:100', 'a:100']);
    assert.equal(produced, 3, 'queued responses are not serialized before there is room');
    completions.shift()!();
    assert.deepEqual(written, ['a:100', 'b:100', 'a:100', 'b:100']);
    // b ends: its bytes are released and nothing more is written for it.
    budget.write(b, of(100));
    budget.release(b);
    assert.equal(budget.queuedWrites, 0);
    // Late callbacks of the ended call do not free its bytes twice: 'a' holds 200 of 250 now.
    for (const done of completions.splice(0)) done();
    const c = fakeCall('c');
    budget.write(c, of(100));
    budget.write(c, of(100));
    budget.write(c, of(100));
    assert.deepEqual(written.slice(-3), ['c:100', 'c:100', 'c:100']);
    budget.write(c, of(100));
    assert.equal(written.length, 7, 'over the limit: the fourth waits');
    // One write larger than the limit still goes through, alone.
    for (const done of completions.splice(0)) done();
    budget.write(c, of(1000));
    assert.deepEqual(written.slice(-2), ['c:100', 'c:1000']);
  });
});

describe('response bodies', () => {
  it('reference large resource encodings instead of copying them, and decode as the whole message', async () => {
    const { responseBody, joinBody } = await import('../../src/xds/body.ts');
    const { decodeDeltaResponse, decodeSotwResponse } = await import('../../src/xds/services.ts');
    const big = new Uint8Array(new ArrayBuffer(100_000), 1000, 40_000).fill(7);
    const small = Uint8Array.from([1, 2, 3]);
    const body = responseBody('v1', [small, big, small], RDS, 'n1');
    assert.ok(
      body.some((p) => p.buffer === big.buffer && p.byteOffset === big.byteOffset && p.length === big.length),
      'the large encoding is a piece of its own (a view of the cache buffer)',
    );
    assert.ok(
      body.every((p) => p.buffer !== big.buffer || p.length === big.length),
      'nothing else points into it',
    );
    const sotw = decodeSotwResponse(joinBody(body));
    assert.deepEqual(
      sotw.resources.map((r) => Buffer.from(r)),
      [small, big, small].map((r) => Buffer.from(r)),
    );
    assert.equal(sotw.version_info, 'v1');
    assert.equal(sotw.type_url, RDS);
    assert.equal(sotw.nonce, 'n1');
    const around = responseBody('v2', [big], RDS, 'n2', ['gone']);
    assert.equal(around.length, 2, 'around one large resource: the framing and the resource');
    const delta = decodeDeltaResponse(joinBody(around));
    assert.deepEqual(delta.removed_resources, ['gone']);
    assert.equal(Buffer.compare(Buffer.from(delta.resources[0]!), Buffer.from(big)), 0);
    assert.equal(responseBody('v3', [small], RDS, 'n3').length, 1, 'a small body is one piece');
  });
});
