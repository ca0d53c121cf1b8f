// Convergence latency: a change is timed from when it was made to each Envoy's ACK of a version that
// carries it; ACKs of versions no change produced, reconnects already holding a version, and changes
// that never reached Envoy config are not observed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { ConvergenceTracker, CONVERGENCE_METRIC } from '../../src/telemetry/convergence.ts';

const ROUTES = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
const CLUSTERS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

function fakes() {
  const pubs = new Set<(s: { group: string; types: ReadonlyMap<string, { version: string }> }) => void>();
  const acks = new Set<(info: { group: string }, typeUrl: string, version: string, latencyMs: number | undefined) => void>();
  return {
    cache: {
      watchAll: (fn: never) => {
        pubs.add(fn);
        return () => pubs.delete(fn);
      },
    },
    fleet: {
      onAcked: (fn: never) => {
        acks.add(fn);
        return () => acks.delete(fn);
      },
    },
    publish: (group: string, versions: Record<string, string>) => {
      for (const fn of pubs) fn({ group, types: new Map(Object.entries(versions).map(([t, version]) => [t, { version }])) });
    },
    ack: (group: string, typeUrl: string, version: string, latencyMs: number | 'reconnect' = 5) => {
      for (const fn of acks) fn({ group }, typeUrl, version, latencyMs === 'reconnect' ? undefined : latencyMs);
    },
    listeners: () => pubs.size + acks.size,
  };
}

async function observations(registry: Registry): Promise<Map<string, { count: number; sum: number }>> {
  const m = await registry.getSingleMetric(CONVERGENCE_METRIC)!.get();
  const out = new Map<string, { count: number; sum: number }>();
  for (const v of m.values as Array<(typeof m.values)[number] & { metricName?: string }>) {
    const key = `${v.labels.group}/${v.labels.type}`;
    const e = out.get(key) ?? { count: 0, sum: 0 };
    if (v.metricName?.endsWith('_count')) e.count = v.value;
    if (v.metricName?.endsWith('_sum')) e.sum = v.value;
    out.set(key, e);
  }
  return out;
}

const tick = () => new Promise<void>((r) => queueMicrotask(r));

describe('convergence tracker', () => {
  it('times change → ACK per Envoy, per group and type', async () => {
    const registry = new Registry();
    let now = 1_000_000;
    const t = new ConvergenceTracker(
      registry,
      (u) => (u === ROUTES ? 'routes' : 'clusters'),
      () => now,
    );
    const f = fakes();
    const detach = t.attach(f.cache, f.fleet);
    // The first publication (startup) carries no change.
    f.publish('edge', { [ROUTES]: 'r0', [CLUSTERS]: 'c0' });
    await tick();
    f.ack('edge', ROUTES, 'r0');
    assert.equal((await observations(registry)).size, 0);

    t.changed(now);
    now += 300; // debounce
    f.publish('edge', { [ROUTES]: 'r1', [CLUSTERS]: 'c0' });
    await tick();
    now += 200;
    f.ack('edge', ROUTES, 'r1'); // envoy 1
    now += 500;
    f.ack('edge', ROUTES, 'r1'); // envoy 2
    f.ack('edge', CLUSTERS, 'c0'); // unchanged type: nothing to time
    f.ack('edge', ROUTES, 'r1', 'reconnect'); // a reconnect that already held r1
    const o = await observations(registry);
    assert.deepEqual(o.get('edge/routes'), { count: 2, sum: 0.5 + 1.0 });
    assert.equal(o.get('edge/clusters'), undefined);

    // A later publication without a change (e.g. a cluster removal finishing) is not timed.
    now += 10_000;
    f.publish('edge', { [ROUTES]: 'r1', [CLUSTERS]: 'c1' });
    await tick();
    f.ack('edge', CLUSTERS, 'c1');
    assert.equal((await observations(registry)).get('edge/clusters'), undefined);

    detach();
    assert.equal(f.listeners(), 0);
  });

  it('times a burst from its first change', async () => {
    const registry = new Registry();
    let now = 0;
    const t = new ConvergenceTracker(
      registry,
      () => 'routes',
      () => now,
    );
    const f = fakes();
    t.attach(f.cache, f.fleet);
    t.changed(100);
    t.changed(150);
    now = 400;
    f.publish('edge', { [ROUTES]: 'r1' });
    await tick();
    now = 600;
    f.ack('edge', ROUTES, 'r1');
    assert.equal((await observations(registry)).get('edge/routes')?.sum, 0.5);
  });
});
