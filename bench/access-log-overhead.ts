// Benchmark: what access-log streaming costs the hot path. Two identical gateways run side by side,
// each a control plane (in process) and a real Envoy with one worker thread: one streams every
// request to its control plane's access-log service (PORTICO_ACCESS_LOG=true, the default), the
// other does not (false). wrk loads the same route on each in short alternating slices (A B, B A, …)
// so whatever else the machine is doing hits both alike; the result is the median of the per-round
// throughput ratios. Envoy's stdout (the JSON access log, on in both) goes to /dev/null. Prints JSON.
// Usage: tsx bench/access-log-overhead.ts [--rounds 10] [--slice 3] [--connections 32] [--target direct|upstream]
//   direct:   a direct response (Envoy does all the work: the logging cost shows most)
//   upstream: a forward to a small Node upstream (closer to real traffic; the upstream often bounds it)
import os from 'node:os';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { startTestPortico } from '../test/support/portico.ts';
import { listenHttp, type LoopbackServer } from '../test/support/servers.ts';
import { cpuSeconds, flags, median, printJson, round2, wrk } from './harness.ts';
import { startGatewayEnvoy, workspace } from './stack.ts';

const args = flags({ rounds: 10, slice: 3, connections: 32, target: 'direct' });
const ROUNDS = args.rounds;
const SLICE_S = args.slice;
const CONNECTIONS = args.connections;
const TARGET = args.target as 'direct' | 'upstream';
const GROUP = 'edge';
const TARGET_LIMIT = 0.05;

interface Slice {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
}

/** One wrk slice on one gateway, awaited without blocking this process (the access-log service runs here). */
async function slice(url: string, seconds: number): Promise<Slice> {
  const w = await wrk({ url, durationS: seconds, threads: 1, connections: CONNECTIONS });
  return { requestsPerSec: Math.round(w.rps), p50Ms: w.p50Ms, p99Ms: w.p99Ms, requests: w.requests, errors: w.non2xx + w.socketErrors };
}

function startUpstream(): Promise<LoopbackServer> {
  const body = '{"ok":true}';
  // A long keep-alive: Node's 5 s default would close Envoy's idle upstream connections between slices.
  return listenHttp((_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body), { keepAliveTimeoutMs: 60_000 });
}

interface Gateway {
  accessLog: boolean;
  /** CPU seconds Envoy has used so far. */
  envoyCpu(): number;
  url: string;
  /** Entries its control plane has ingested so far. */
  ingested(): Promise<number>;
  envoyStat(name: string): Promise<number>;
  stop(): Promise<void>;
}

async function startGateway(envoyBin: string, accessLog: boolean, upstreamPort: number): Promise<Gateway> {
  const portico = await startTestPortico({ env: { PORTICO_ACCESS_LOG: String(accessLog) } });
  const ws = workspace('portico-bench-envoy-');
  const envoy = await startGatewayEnvoy(ws, envoyBin, { nodeId: `bench-als-${accessLog ? 'on' : 'off'}`, group: GROUP, xds: `127.0.0.1:${portico.grpcPort}`, concurrency: 1, drainTimeS: 1 });
  const listenerPort = await freePort();
  const route =
    TARGET === 'direct'
      ? { name: 'hello', match: { path: { type: 'prefix', value: '/' } }, directResponse: { status: 200, body: '{"ok":true}', contentType: 'application/json' } }
      : { name: 'hello', match: { path: { type: 'prefix', value: '/' } }, service: 'upstream' };
  const doc = {
    portico: 'v1',
    gatewayGroups: [{ name: GROUP, listeners: [{ name: 'http', port: listenerPort, address: '127.0.0.1' }] }],
    services: [{ name: 'upstream', endpoints: [{ host: '127.0.0.1', port: upstreamPort }] }],
    // Public: no callout, so only the logging differs between the two.
    products: [{ name: 'bench', gatewayGroups: [GROUP], basePath: '/bench', auth: { accept: ['none'] }, routes: [route] }],
  };
  const applied = await portico.api.post('/api/v1/config', doc);
  if (applied.status !== 200) throw new Error(`apply failed: ${applied.text}`);
  const url = `http://127.0.0.1:${listenerPort}/bench/hello`;
  await waitFor('the route to answer', async () => ((await fetch(url).catch(() => undefined))?.status === 200 ? true : undefined), 30_000);
  return {
    accessLog,
    url,
    ingested: async () => Number((await portico.registry.getSingleMetricAsString('portico_access_log_entries_total')).match(/^portico_access_log_entries_total (\d+)/m)?.[1] ?? 0),
    envoyStat: envoy.stat,
    envoyCpu: () => cpuSeconds(envoy.proc.child.pid),
    stop: async () => {
      await ws.close();
      await portico.close();
    },
  };
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const upstream = await startUpstream();
  const off = await startGateway(envoyBin, false, upstream.port);
  const on = await startGateway(envoyBin, true, upstream.port);
  const rounds: Array<{ off: Slice; on: Slice; ratio: number; cpuUs: { off: number; on: number } }> = [];
  let requestsOn = 0;
  let ingestedBefore = 0;
  try {
    await slice(off.url, 2); // warm-up
    await slice(on.url, 2);
    await new Promise((r) => setTimeout(r, 1500));
    ingestedBefore = await on.ingested();
    for (let i = 0; i < ROUNDS; i++) {
      const order = i % 2 === 0 ? [off, on] : [on, off];
      const r: Partial<Record<'off' | 'on', Slice>> = {};
      const cpuUs: Partial<Record<'off' | 'on', number>> = {};
      for (const g of order) {
        const k = g.accessLog ? 'on' : 'off';
        const cpu0 = g.envoyCpu();
        r[k] = await slice(g.url, SLICE_S);
        // Envoy's CPU per request: unlike throughput, barely moved by whatever else the machine runs.
        cpuUs[k] = Math.round(((g.envoyCpu() - cpu0) / r[k]!.requests) * 1e7) / 10;
      }
      requestsOn += r.on!.requests;
      rounds.push({ off: r.off!, on: r.on!, ratio: Math.round((r.on!.requestsPerSec / r.off!.requestsPerSec) * 10_000) / 10_000, cpuUs: { off: cpuUs.off!, on: cpuUs.on! } });
    }
    // Envoy flushes its access-log buffer every second: let the last batch arrive.
    await new Promise((r) => setTimeout(r, 2000));
    const ingested = (await on.ingested()) - ingestedBefore;
    const cpuOff = median(rounds.map((r) => r.cpuUs.off));
    const cpuOn = median(rounds.map((r) => r.cpuUs.on));
    const difference = 1 - median(rounds.map((r) => r.ratio));
    printJson({
      benchmark: 'access-log-overhead',
      target: TARGET,
      envoyWorkers: 1,
      sliceSeconds: SLICE_S,
      connections: CONNECTIONS,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map(round2),
      rounds: rounds.map((r) => ({
        off: r.off.requestsPerSec,
        on: r.on.requestsPerSec,
        ratio: r.ratio,
        envoyCpuUsPerRequest: r.cpuUs,
        offP99Ms: r.off.p99Ms,
        onP99Ms: r.on.p99Ms,
        errors: r.off.errors + r.on.errors,
      })),
      medianRequestsPerSec: { off: median(rounds.map((r) => r.off.requestsPerSec)), on: median(rounds.map((r) => r.on.requestsPerSec)) },
      throughputDifference: Math.round(difference * 10_000) / 10_000,
      // Envoy's CPU per request, median of the rounds: what streaming costs a CPU-bound worker.
      envoyCpuUsPerRequest: { off: cpuOff, on: cpuOn, difference: Math.round(((cpuOn - cpuOff) / cpuOff) * 10_000) / 10_000 },
      target5Percent: difference < TARGET_LIMIT ? 'met' : 'missed',
      accessLogStream: {
        requestsSent: requestsOn,
        ingestedByControlPlane: ingested,
        envoyLogsWritten: await on.envoyStat('access_logs.grpc_access_log.logs_written'),
        envoyLogsDropped: await on.envoyStat('access_logs.grpc_access_log.logs_dropped'),
      },
    });
  } finally {
    await on.stop();
    await off.stop();
    await upstream.close();
  }
}

await main();
