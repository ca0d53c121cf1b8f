// Benchmark: what one route change costs the control plane before any stream sees it, on the real
// path (model → translate → xDS cache), for a gateway group of 10,000 routes (2,000 products of 5
// routes, one listener, so one route configuration holding every route). Side by side in one run:
// with the pipeline's EmitMemo (unchanged routes come back as the same objects; the cache encodes only
// new route parts) and without it (every publish serialises and encodes the whole configuration).
// CPU per change (process.cpuUsage), median over the changes, with the load average. Prints JSON.
// Usage: tsx bench/xds-pipeline-change.ts [--products 2000] [--routes-per-product 5] [--changes 7]
import { loadavg } from 'node:os';
import { applyMutations, parseModelDocument, type ModelSnapshot, type Route } from '../src/model/index.ts';
import { EmitMemo, translate, type TranslateOptions } from '../src/translate/index.ts';
import { SnapshotCache } from '../src/xds/cache.ts';
import { flags, median, printJson } from './harness.ts';

const args = flags({ products: 2000, 'routes-per-product': 5, changes: 7 });
const SERVICES = 100;

function model(): ModelSnapshot {
  const doc = {
    portico: 'v1',
    gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
    services: Array.from({ length: SERVICES }, (_, i) => ({ name: `svc-${i}`, endpoints: [{ host: `10.0.${i >> 8}.${i & 255}`, port: 8080 }] })),
    products: Array.from({ length: args.products }, (_, p) => ({
      name: `product-${p}`,
      gatewayGroups: ['edge'],
      basePath: `/p${p}`,
      routes: Array.from({ length: args['routes-per-product'] }, (_, r) => ({
        name: `route-${r}`,
        match: { path: { type: 'prefix', value: `/r${r}` }, methods: ['GET', 'POST'] },
        service: `svc-${(p * 5 + r) % SERVICES}`,
        rewrite: { stripPrefix: `/p${p}` },
      })),
    })),
  };
  const { model, errors } = parseModelDocument(doc, { hashApiKey: (k) => ({ prefix: k.slice(0, 8), hash: k }) });
  if (errors.length) throw new Error(`model: ${JSON.stringify(errors[0])}`);
  return model;
}

const cpuMs = (fn: () => void): number => {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};

function run(base: ModelSnapshot, withMemo: boolean) {
  const options: TranslateOptions = { calloutAddress: '127.0.0.1:18001', ...(withMemo ? { memo: new EmitMemo() } : {}) };
  const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
  let groups = translate(base, options);
  cache.replaceAll(groups);
  cache.flush();
  const translateMs: number[] = [];
  const cacheMs: number[] = [];
  const parts: number[] = [];
  let m = base;
  for (let i = 0; i < args.changes; i++) {
    const key = `product-${(i * 37) % args.products}/route-1`;
    const r = m.routes.get(key)!;
    m = applyMutations(m, [{ kind: 'routes', op: 'put', key, resource: { ...r, match: { ...r.match, path: { type: 'prefix', value: `/changed-${i}` } } } as Route }]);
    translateMs.push(cpuMs(() => (groups = translate(m, options))));
    const p0 = cache.parts.encoded;
    cacheMs.push(
      cpuMs(() => {
        cache.replaceAll(groups);
        cache.flush();
      }),
    );
    parts.push(cache.parts.encoded - p0);
  }
  const rcBytes = [...cache.getSnapshot('edge').types.values()].reduce((n, t) => n + [...t.resources.values()].reduce((k, c) => k + c.bytes.length, 0), 0);
  cache.close();
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    translateCpuMs: r1(median(translateMs)),
    cacheCpuMs: r1(median(cacheMs)),
    totalCpuMs: r1(median(translateMs.map((t, i) => t + cacheMs[i]!))),
    routePartsEncodedPerChange: median(parts),
    encodedGroupBytes: rcBytes,
  };
}

const base = model();
const loadBefore = loadavg()[0]!;
// Alternating order, so neither variant always runs on the warmer process.
const without1 = run(base, false);
const with1 = run(base, true);
const with2 = run(base, true);
const without2 = run(base, false);
printJson({
  benchmark: 'xds-pipeline-change',
  routes: base.routes.size,
  changesPerRun: args.changes,
  withEmitMemo: [with1, with2],
  withoutEmitMemo: [without1, without2],
  ratioTotalCpu: Math.round(((with1.totalCpuMs + with2.totalCpuMs) / (without1.totalCpuMs + without2.totalCpuMs)) * 100) / 100,
  loadAverage1m: { before: loadBefore, after: loadavg()[0] },
});
