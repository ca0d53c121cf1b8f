// Benchmark: what access-log streaming costs the hot path. Two identical gateways run side by side,
// each a control plane (in process) and a real Envoy with one worker thread: one streams every
// request to its control plane's access-log service (PORTICO_ACCESS_LOG=true, the default), the
// other does not (false). wrk loads the same route on each in short alternating slices (A B, B A, …)
// so whatever else the machine is doing hits both alike; the result is the median of the per-round
// throughput ratios. Envoy's stdout (the JSON access log, on in both) goes to /dev/null. Prints JSON.
// Usage: tsx bench/access-log-overhead.ts [--rounds 10] [--slice 3] [--connections 32] [--target direct|upstream]
//   direct:   a direct response (Envoy does all the work: the logging cost shows most)
//   upstream: a forward to a small Node upstream (closer to real traffic; the upstream often bounds it)
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { renderBootstrap } from '../src/xds/bootstrap.ts';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { startTestPortico } from '../test/support/portico.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    slice: { type: 'string' },
    connections: { type: 'string' },
    target: { type: 'string' },
  },
});
const ROUNDS = Number(values.rounds ?? 10);
const SLICE_S = Number(values.slice ?? 3);
const CONNECTIONS = Number(values.connections ?? 32);
const TARGET = (values.target ?? 'direct') as 'direct' | 'upstream';
const GROUP = 'edge';
const TARGET_LIMIT = 0.05;

interface WrkResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
}

/** wrk in a child process, awaited without blocking this process (the access-log service runs here). */
function wrk(url: string, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (err += b));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk failed (${code}): ${err}`));
      const ms = (label: string) => {
        const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
        if (!m) throw new Error(`no ${label} in wrk output:\n${out}`);
        const v = Number(m[1]);
        return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
      };
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      resolve({
        requestsPerSec: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1])),
        p50Ms: ms('50%'),
        p99Ms: ms('99%'),
        requests: Number(/(\d+) requests in/.exec(out)![1]),
        errors: Number(non2xx?.[1] ?? 0) + (socket ? socket.slice(1).reduce((n, x) => n + Number(x), 0) : 0),
      });
    });
  });
}

async function startUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const body = '{"ok":true}';
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body));
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Envoy with one worker, stdout/stderr to /dev/null (the JSON access log must not load this process). */
async function launchQuietEnvoy(bin: string, xds: string, nodeId: string): Promise<{ adminUrl: string; pid: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-bench-envoy-'));
  const adminPort = await freePort();
  const file = path.join(dir, 'bootstrap.json');
  writeFileSync(file, JSON.stringify(renderBootstrap({ role: 'edge', nodeId, group: GROUP, xdsAddresses: [xds], adminPort })));
  const devNull = openSync('/dev/null', 'w');
  const child = spawn(bin, ['-c', file, '--use-dynamic-base-id', '-l', 'error', '--concurrency', '1', '--drain-time-s', '1'], { stdio: ['ignore', devNull, devNull] });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitFor('Envoy admin', async () => ((await fetch(`${adminUrl}/ready`).catch(() => undefined))?.status ? true : undefined), 30_000, 100);
  return {
    adminUrl,
    pid: child.pid!,
    stop: async () => {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function envoyStat(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/stats?filter=${encodeURIComponent(`^${name.replace(/\./g, '\\.')}$`)}`)).text();
  const m = new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** CPU seconds (user + system) a process has used, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
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
  const envoy = await launchQuietEnvoy(envoyBin, `127.0.0.1:${portico.grpcPort}`, `bench-als-${accessLog ? 'on' : 'off'}`);
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
    envoyStat: (name) => envoyStat(envoy.adminUrl, name),
    envoyCpu: () => cpuSeconds(envoy.pid),
    stop: async () => {
      await envoy.stop();
      await portico.close();
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const upstream = await startUpstream();
  const off = await startGateway(envoyBin, false, upstream.port);
  const on = await startGateway(envoyBin, true, upstream.port);
  const rounds: Array<{ off: WrkResult; on: WrkResult; ratio: number; cpuUs: { off: number; on: number } }> = [];
  let requestsOn = 0;
  let ingestedBefore = 0;
  try {
    await wrk(off.url, 2); // warm-up
    await wrk(on.url, 2);
    await new Promise((r) => setTimeout(r, 1500));
    ingestedBefore = await on.ingested();
    for (let i = 0; i < ROUNDS; i++) {
      const order = i % 2 === 0 ? [off, on] : [on, off];
      const r: Partial<Record<'off' | 'on', WrkResult>> = {};
      const cpuUs: Partial<Record<'off' | 'on', number>> = {};
      for (const g of order) {
        const k = g.accessLog ? 'on' : 'off';
        const cpu0 = g.envoyCpu();
        r[k] = await wrk(g.url, SLICE_S);
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
    process.stdout.write(
      `${JSON.stringify(
        {
          benchmark: 'access-log-overhead',
          target: TARGET,
          envoyWorkers: 1,
          sliceSeconds: SLICE_S,
          connections: CONNECTIONS,
          cpus: os.cpus().length,
          loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
          rounds: rounds.map((r) => ({ off: r.off.requestsPerSec, on: r.on.requestsPerSec, ratio: r.ratio, envoyCpuUsPerRequest: r.cpuUs, offP99Ms: r.off.p99Ms, onP99Ms: r.on.p99Ms, errors: r.off.errors + r.on.errors })),
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
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await on.stop();
    await off.stop();
    await upstream.close();
  }
}

await main();
