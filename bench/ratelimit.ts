// Benchmark: rate-limit decisions per second and latency, for memory and Redis counters — in
// process (decide()) and through the real gRPC service on both transports (the lean HTTP/2
// listener and grpc-js; server and load generator in separate processes, so the server is what is
// measured) — plus Redis commands and Redis CPU per decision.
// Prints JSON. Usage: tsx bench/ratelimit.ts [--duration 10000] [--concurrency 64] [--no-redis]
// "perServerCpuSecond" (decisions per CPU-second of the server process) is the per-core figure:
// on a machine shared with other work, wall-clock rates mostly measure the load generator.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { modelToDocument } from '../src/model/declarative.ts';
import type { DecisionRequest } from '../src/ratelimit/decision.ts';
import { seedModel } from '../test/support/ratelimit-fixtures.ts';
import { createRateLimiter, type RateLimiter } from '../src/ratelimit/limiter.ts';
import { componentPath, freePort, startProcess, waitFor, type RunningProcess } from '../test/support/components.ts';
import { cpuSeconds, flags, printJson } from './harness.ts';

const args = flags({ duration: 10_000, concurrency: 64, 'no-redis': false, channels: '2' });
const DURATION = args.duration;
const CONCURRENCY = args.concurrency;
// Text: it goes to the load generator's environment as given.
const CHANNELS = args.channels;
const ROOT = path.resolve(import.meta.dirname, '..');

function requests(n: number): DecisionRequest[] {
  const out: DecisionRequest[] = [];
  for (let i = 0; i < n; i++) {
    const clientIp = `10.${(i >> 8) & 255}.${i & 255}.7`;
    out.push({ product: 'shop', route: 'orders', partner: 'acme', clientIp, headers: { 'x-user-id': `user-${i}` } });
    out.push({ product: 'shop', route: 'search', partner: 'acme', clientIp, headers: { 'x-user-id': `user-${i}` } });
    if (i % 4 === 0) out.push({ product: 'shop', route: 'orders', clientIp });
    if (i % 10 === 0) out.push({ product: 'shop', route: 'orders', partner: 'globex', clientIp });
  }
  return out;
}

async function inProcess(limiter: RateLimiter, concurrency: number, ms: number) {
  const pool = requests(1000);
  let i = 0;
  let n = 0;
  const lat: number[] = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const stop = t0 + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < stop) {
        const s = performance.now();
        await limiter.decide(pool[i++ % pool.length]!);
        lat.push(performance.now() - s);
        n++;
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  lat.sort((a, b) => a - b);
  const pct = (p: number) => Math.round(lat[Math.floor(lat.length * p)]! * 1000) / 1000;
  return {
    concurrency,
    decisions: n,
    perSecond: Math.round(n / elapsed),
    perCpuSecond: Math.round(n / ((cpu.user + cpu.system) / 1e6)),
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
  };
}

interface LoadResult {
  calls: number;
  ok: number;
  overLimit: number;
  errors: number;
  elapsedMs: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function runLoad(addr: string, durationMs: number, concurrency: number): LoadResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/ratelimit-load.ts'], {
    cwd: ROOT,
    env: { ...process.env, ADDR: addr, DURATION_MS: String(durationMs), CONCURRENCY: String(concurrency), CHANNELS },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`load generator failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as LoadResult;
}

function commandStats(info: string): { calls: number; evalsha: number; byCommand: Record<string, number> } {
  const byCommand: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (['info', 'config', 'ping', 'client', 'script', 'hello'].includes(m[1]!)) continue;
    byCommand[m[1]!] = Number(m[2]);
  }
  return { calls: Object.values(byCommand).reduce((a, b) => a + b, 0), evalsha: byCommand.evalsha ?? 0, byCommand };
}

function redisCpu(info: string): number {
  const u = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  const s = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
  return u + s;
}

async function throughService(modelFile: string, transport: 'http2' | 'grpc-js', redisUrl: string | undefined, admin: Redis | undefined, script = 'src/ratelimit/standalone.ts') {
  const server = startProcess(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORTICO_RL_MODEL: modelFile,
      PORTICO_LOG_LEVEL: 'warn',
      PORTICO_RL_TRANSPORT: transport,
      ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    },
  });
  try {
    const port = Number(
      await waitFor('the rate-limit service to listen', () => {
        if (server.child.exitCode !== null) throw new Error(server.output());
        return /\{"port":(\d+)/.exec(server.output())?.[1];
      }),
    );
    const addr = `127.0.0.1:${port}`;
    runLoad(addr, 2_000, CONCURRENCY); // warm-up: JIT, connections, counters
    if (admin) await admin.config('RESETSTAT');
    const redisCpu0 = admin ? redisCpu(await admin.info('cpu')) : 0;
    const cpu0 = cpuSeconds(server.child.pid!);
    const load = runLoad(addr, DURATION, CONCURRENCY);
    const serverCpu = cpuSeconds(server.child.pid!) - cpu0;
    const out: Record<string, unknown> = {
      transport,
      concurrency: CONCURRENCY,
      ...load,
      serverCpuSeconds: Math.round(serverCpu * 100) / 100,
      serverCoresUsed: Math.round((serverCpu / (load.elapsedMs / 1000)) * 100) / 100,
      perServerCpuSecond: Math.round(load.calls / serverCpu),
    };
    if (admin) {
      const stats = commandStats(await admin.info('commandstats'));
      const rcpu = redisCpu(await admin.info('cpu')) - redisCpu0;
      out.redis = {
        evalshaPerDecision: Math.round((stats.evalsha / load.calls) * 10_000) / 10_000,
        decisionsPerRoundTrip: Math.round((load.calls / Math.max(1, stats.evalsha)) * 10) / 10,
        commandsPerDecision: Math.round((stats.calls / load.calls) * 1000) / 1000,
        byCommand: stats.byCommand,
        redisCpuSeconds: Math.round(rcpu * 100) / 100,
        redisCpuMicrosPerDecision: Math.round((rcpu / load.calls) * 1e6 * 100) / 100,
      };
    }
    // At high concurrency latency is mostly the load generator's own queueing: measure it lightly loaded too.
    const light = runLoad(addr, 3_000, 4);
    out.lightLoad = { concurrency: 4, perSecond: light.perSecond, p50Ms: light.p50Ms, p99Ms: light.p99Ms };
    return out;
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-rl-bench-'));
  const modelFile = path.join(dir, 'model.json');
  writeFileSync(modelFile, JSON.stringify(modelToDocument(seedModel())));
  let redisProc: RunningProcess | undefined;
  const result: Record<string, unknown> = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100), node: process.version },
    durationMs: DURATION,
  };
  try {
    const memLimiter = createRateLimiter({}, { registry: new Registry(), model: seedModel() });
    await inProcess(memLimiter, 1, 1000);
    result.inProcessMemory = await inProcess(memLimiter, 1, Math.min(DURATION, 5000));
    await memLimiter.close();
    // The transport floor on this machine now: same server and codecs, a constant answer.
    result.baselineHttp2 = await throughService(modelFile, 'http2', undefined, undefined, 'bench/ratelimit-baseline.ts');
    result.baselineGrpcJs = await throughService(modelFile, 'grpc-js', undefined, undefined, 'bench/ratelimit-baseline.ts');
    result.memoryHttp2 = await throughService(modelFile, 'http2', undefined, undefined);
    result.memoryGrpcJs = await throughService(modelFile, 'grpc-js', undefined, undefined);

    const redisBin = componentPath('redis');
    if (!args['no-redis'] && redisBin) {
      const port = await freePort();
      redisProc = startProcess(redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no']);
      await waitFor('redis', () => (redisProc!.output().includes('Ready to accept connections') ? true : undefined));
      const url = `redis://127.0.0.1:${port}`;
      const admin = new Redis(url);
      const redisLimiter = createRateLimiter({ redisUrl: url }, { registry: new Registry(), model: seedModel() });
      await redisLimiter.ready();
      await inProcess(redisLimiter, 256, 1000);
      await admin.config('RESETSTAT');
      const ip = await inProcess(redisLimiter, 256, Math.min(DURATION, 5000));
      const stats = commandStats(await admin.info('commandstats'));
      result.inProcessRedis = { ...ip, evalshaPerDecision: Math.round((stats.evalsha / ip.decisions) * 10_000) / 10_000, commandsPerDecision: Math.round((stats.calls / ip.decisions) * 1000) / 1000 };
      await redisLimiter.close();
      await admin.flushall();
      result.redisHttp2 = await throughService(modelFile, 'http2', url, admin);
      await admin.flushall();
      result.redisGrpcJs = await throughService(modelFile, 'grpc-js', url, admin);
      admin.disconnect();
    } else result.redisHttp2 = 'skipped (no redis-server or --no-redis)';
  } finally {
    await redisProc?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  printJson(result);
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
