// Benchmark: what access-log streaming costs the hot path. The same route through a real Envoy
// (one worker thread) is loaded with wrk, with Envoy streaming every request to the control plane's
// access-log service (PORTICO_ACCESS_LOG=true, the default) and without (false); runs alternate
// off/on so drift hits both alike. A fresh control plane (in process) and Envoy per run; Envoy's
// stdout (the JSON access log, on in both modes) goes to /dev/null. Prints JSON.
// Usage: tsx bench/access-log-overhead.ts [--runs 3] [--duration 10] [--connections 32] [--target direct|upstream]
//   direct:   a direct response (Envoy does all the work: the logging cost shows most)
//   upstream: a forward to a small Node upstream (closer to real traffic; the upstream often bounds it)
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
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
    runs: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    target: { type: 'string' },
  },
});
const RUNS = Number(values.runs ?? 3);
const DURATION_S = Number(values.duration ?? 10);
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
async function launchQuietEnvoy(bin: string, xds: string, nodeId: string): Promise<{ adminUrl: string; stop(): Promise<void> }> {
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

interface Run {
  accessLog: boolean;
  wrk: WrkResult;
  /** Entries the control plane ingested during the run (0 when off). */
  ingested: number;
  /** Entries Envoy wrote to / dropped from the gRPC access-log stream. */
  envoyLogsWritten: number;
  envoyLogsDropped: number;
}

async function run(envoyBin: string, accessLog: boolean, index: number, upstreamPort: number): Promise<Run> {
  const portico = await startTestPortico({ env: { PORTICO_ACCESS_LOG: String(accessLog) } });
  const nodeId = `bench-als-${index}`;
  const envoy = await launchQuietEnvoy(envoyBin, `127.0.0.1:${portico.grpcPort}`, nodeId);
  try {
    const listenerPort = await freePort();
    const route =
      TARGET === 'direct'
        ? { name: 'hello', match: { path: { type: 'prefix', value: '/' } }, directResponse: { status: 200, body: '{"ok":true}', contentType: 'application/json' } }
        : { name: 'hello', match: { path: { type: 'prefix', value: '/' } }, service: 'upstream' };
    const doc = {
      portico: 'v1',
      gatewayGroups: [{ name: GROUP, listeners: [{ name: 'http', port: listenerPort, address: '127.0.0.1' }] }],
      services: [{ name: 'upstream', endpoints: [{ host: '127.0.0.1', port: upstreamPort }] }],
      // Public: no callout, so only the logging differs between the modes.
      products: [{ name: 'bench', gatewayGroups: [GROUP], basePath: '/bench', auth: { accept: ['none'] }, routes: [route] }],
    };
    const applied = await portico.api.post('/api/v1/config', doc);
    if (applied.status !== 200) throw new Error(`apply failed: ${applied.text}`);
    const url = `http://127.0.0.1:${listenerPort}/bench/hello`;
    await waitFor('the route to answer', async () => ((await fetch(url).catch(() => undefined))?.status === 200 ? true : undefined), 30_000);
    await wrk(url, 2); // warm-up
    const ingested = async () => (await portico.registry.getSingleMetricAsString('portico_access_log_entries_total')).match(/^portico_access_log_entries_total (\d+)/m)?.[1];
    const before = Number((await ingested()) ?? 0);
    const result = await wrk(url, DURATION_S);
    // Envoy flushes its access-log buffer every second: give the last batch time to arrive.
    await new Promise((r) => setTimeout(r, 1500));
    return {
      accessLog,
      wrk: result,
      ingested: Number((await ingested()) ?? 0) - before,
      envoyLogsWritten: await envoyStat(envoy.adminUrl, 'access_logs.grpc_access_log.logs_written'),
      envoyLogsDropped: await envoyStat(envoy.adminUrl, 'access_logs.grpc_access_log.logs_dropped'),
    };
  } finally {
    await envoy.stop();
    await portico.close();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const upstream = await startUpstream();
  const runs: Run[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const accessLog of [false, true]) runs.push(await run(envoyBin, accessLog, runs.length, upstream.port));
    }
  } finally {
    await upstream.close();
  }
  const off = runs.filter((r) => !r.accessLog).map((r) => r.wrk.requestsPerSec);
  const on = runs.filter((r) => r.accessLog).map((r) => r.wrk.requestsPerSec);
  const difference = (median(off) - median(on)) / median(off);
  process.stdout.write(
    `${JSON.stringify(
      {
        benchmark: 'access-log-overhead',
        target: TARGET,
        envoyWorkers: 1,
        durationSeconds: DURATION_S,
        connections: CONNECTIONS,
        cpus: os.cpus().length,
        runs,
        medianRequestsPerSec: { off: median(off), on: median(on) },
        throughputDifference: Math.round(difference * 10_000) / 10_000,
        target5Percent: difference < TARGET_LIMIT ? 'met' : 'missed',
      },
      null,
      2,
    )}\n`,
  );
}

await main();
