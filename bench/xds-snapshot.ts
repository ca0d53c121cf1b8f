// Benchmark: snapshot cache build and encode time for a group with 10,000 routes and 1,000 clusters,
// an unchanged rebuild, and a one-route change. Prints JSON.
// Usage: tsx bench/xds-snapshot.ts [--routes 10000] [--clusters 1000] [--route-configs 10] [--runs 5]
import { SnapshotCache, typeSnapshot } from '../src/xds/cache.ts';
import { largeGroupResources, type LargeGroupOptions } from '../test/support/xds-fixtures.ts';
import { protoRoot, TYPE_URLS } from '../src/proto/index.ts';
import { flags, printJson } from './harness.ts';

const args = flags({ routes: 10_000, clusters: 1000, 'route-configs': 10, runs: 5 });
const shape: LargeGroupOptions = { routes: args.routes, clusters: args.clusters, routeConfigs: args['route-configs'] };
const RUNS = args.runs;

function timed<T>(fn: () => T): { ms: number; cpuMs: number; value: T } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpuMs: (c.user + c.system) / 1000, value };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (n: number) => Math.round(n * 10) / 10;

const load = timed(() => protoRoot());
const cold: number[] = [];
const coldCpu: number[] = [];
const unchanged: number[] = [];
const oneRoute: number[] = [];
const oneRouteCpu: number[] = [];
const oneEndpoint: number[] = [];
let sizes: Record<string, { resources: number; bytes: number }> = {};
const versions: string[] = [];

for (let run = 0; run < RUNS; run++) {
  // JSON generation is the translator's cost, not the cache's: done outside the timings.
  const base = largeGroupResources(shape);
  const same = largeGroupResources(shape);
  const changed = largeGroupResources({ ...shape, variant: run + 1 });
  const moved = largeGroupResources({ ...shape, endpointVariant: run + 1 });
  const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
  // Set and publish (flush: build and encode what changed), timed; returns the version.
  const publish = (resources: typeof base) =>
    timed(() => {
      const v = cache.setGroupResources('bench', resources);
      cache.flush();
      return v;
    });
  const c = publish(base);
  cold.push(c.ms);
  coldCpu.push(c.cpuMs);
  unchanged.push(timed(() => cache.setGroupResources('bench', same)).ms);
  const r = publish(changed);
  oneRoute.push(r.ms);
  oneRouteCpu.push(r.cpuMs);
  oneEndpoint.push(publish(moved).ms);
  versions.push(c.value);
  const snap = cache.getSnapshot('bench');
  sizes = Object.fromEntries(
    Object.entries(TYPE_URLS).map(([k, t]) => {
      const ts = typeSnapshot(snap, t);
      let bytes = 0;
      for (const res of ts.resources.values()) bytes += res.bytes.length;
      return [k, { resources: ts.resources.size, bytes }];
    }),
  );
  cache.close();
}

printJson({
  benchmark: 'xds-snapshot',
  shape,
  runs: RUNS,
  protoLoadMs: round(load.ms),
  coldBuildMs: round(median(cold)),
  coldBuildCpuMs: round(median(coldCpu)),
  unchangedRebuildMs: round(median(unchanged)),
  oneRouteChangeMs: round(median(oneRoute)),
  oneRouteChangeCpuMs: round(median(oneRouteCpu)),
  oneEndpointChangeMs: round(median(oneEndpoint)),
  encodedSizes: sizes,
  versionStableAcrossRuns: new Set(versions).size === 1,
  rssMB: Math.round(process.memoryUsage().rss / 1048576),
});
