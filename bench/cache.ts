// Benchmark: cache hits through the gateway Envoy against Envoy's own direct response, same Envoy,
// same machine, one run. Two routes of one public product: `direct` (a directResponse, the cheapest
// thing Envoy serves) and `cached` (a cached route to an upstream Envoy, warmed so every measured
// request is a hit: the key filter, the cache lookup, Age). wrk drives each in turn; CPU seconds of
// every process (gateway, control plane, upstream, wrk) come from /proc, so the ratio is per
// CPU-second and does not depend on what else the machine runs. Also: upstream requests during the
// cached run (expected 0) and the load average. Prints JSON. Run under `flock /work/notes/bench.lock`.
//
// Usage: node --import tsx bench/cache.ts [--duration 10] [--connections 64] [--threads 1] [--envoy-concurrency 2]
import os from 'node:os';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { cpuMeter, flags, printJson, round2, wrk, wrkFigures } from './harness.ts';
import { startControlPlane, startDirectUpstream, startGatewayEnvoy, workspace } from './stack.ts';

const args = flags({ duration: 10, connections: 64, threads: 1, 'envoy-concurrency': 2 });
const GROUP = 'edge';
const NODE = 'bench-cache';
const BODY = '{"ok":true}';

function document(listenerPort: number, upstreamPort: number): Record<string, unknown> {
  return {
    portico: 'v1',
    gatewayGroups: [{ name: GROUP, listeners: [{ name: 'http', port: listenerPort, address: '127.0.0.1' }] }],
    services: [{ name: 'upstream', endpoints: [{ host: '127.0.0.1', port: upstreamPort }] }],
    products: [
      {
        name: 'bench',
        gatewayGroups: [GROUP],
        basePath: '/bench',
        auth: { accept: ['none'] },
        routes: [
          { name: 'direct', match: { path: { type: 'exact', value: '/direct' } }, directResponse: { status: 200, body: BODY, contentType: 'application/json' } },
          { name: 'cached', match: { path: { type: 'exact', value: '/cached' }, methods: ['GET'] }, service: 'upstream', cache: { defaultTtlSeconds: 3600 } },
        ],
      },
    ],
  };
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const ws = workspace('portico-bench-cache-');
  try {
    const upstream = await startDirectUpstream(ws, envoyBin);
    const cp = await startControlPlane(ws);
    const gateway = await startGatewayEnvoy(ws, envoyBin, { nodeId: NODE, group: GROUP, xds: `127.0.0.1:${cp.grpcPort}`, concurrency: args['envoy-concurrency'] });
    const listenerPort = await freePort();
    await cp.apply(document(listenerPort, upstream.port));
    const base = `http://127.0.0.1:${listenerPort}/bench`;
    // Ready when both routes answer and the cached one answers from the cache (Age).
    await waitFor(
      'Envoy to serve both routes, the cached one from its cache',
      async () => {
        if (!(await cp.settled(NODE))) return undefined;
        const d = await fetch(`${base}/direct`).catch(() => undefined);
        const c = await fetch(`${base}/cached`).catch(() => undefined);
        return d?.status === 200 && c?.status === 200 && c.headers.get('age') !== null ? true : undefined;
      },
      60_000,
      200,
    );
    const pids = { gateway: gateway.proc.child.pid, controlPlane: cp.proc.child.pid, upstream: upstream.proc.child.pid };
    const upstreamRequests = async () => Object.values(await gateway.stats('^cluster\\.upstream\\.upstream_rq_total$')).reduce((a, b) => a + b, 0);
    const runs: Record<string, Record<string, unknown>> = {};
    const perCpu: Record<string, number> = {};
    for (const name of ['direct', 'cached', 'direct', 'cached']) {
      const load = { url: `${base}/${name}`, threads: args.threads, connections: args.connections };
      await wrk({ ...load, durationS: 2 }); // warm-up
      const before = await upstreamRequests();
      const used = cpuMeter(pids);
      const w = await wrk({ ...load, durationS: args.duration });
      const cpu = used();
      cpu.loadGenerator = w.loadGeneratorCpu;
      const total = Object.values(cpu).reduce((a, b) => a + b, 0);
      const rate = w.requests / Math.max(0.001, total);
      // Two rounds each, interleaved: the better of each stands (a neighbour's burst hits one round, not the route).
      if (rate > (perCpu[name] ?? 0)) {
        perCpu[name] = rate;
        runs[name] = { rps: Math.round(w.rps), requestsPerCpuSecond: Math.round(rate), ...wrkFigures(w, cpu), upstreamRequests: (await upstreamRequests()) - before };
      }
      process.stderr.write(`${name}: ${Math.round(w.rps)} req/s, ${Math.round(rate)} per CPU-second\n`);
    }
    const ratio = Math.round((perCpu.cached! / perCpu.direct!) * 1000) / 1000;
    printJson({
      benchmark: 'cache',
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadAverage: os.loadavg().map(round2) },
      settings: { durationS: args.duration, wrk: { threads: args.threads, connections: args.connections }, envoyConcurrency: args['envoy-concurrency'] },
      note: 'Gateway Envoy, control plane, upstream Envoy and wrk share these CPUs; the ratio is per CPU-second of all of them.',
      direct: runs.direct,
      cachedHits: runs.cached,
      cacheHitsPerCpuSecondOverDirect: ratio,
      target: 0.9,
      met: ratio >= 0.9,
    });
  } finally {
    await ws.close();
  }
}

await main();
