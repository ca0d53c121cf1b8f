// Benchmark: one route through a real Envoy, driven by wrk (maximum throughput) and hey (a constant
// rate of half the plain maximum), in four configurations of the same route and upstream:
//   plain     auth none, no limits: Envoy proxies, no callout
//   auth      API key (ext_authz callout), a plan without limits
//   combined  API key + a rate limit, rateLimit.mode combined (one callout authenticates and counts)
//   service   API key + a rate limit, rateLimit.mode service (ext_authz callout + rate-limit callout)
// The limit is far above what the machine can send, so every request is counted and none refused.
// Processes: the control plane (bin/portico serve, its own process), the gateway Envoy, the upstream
// (a second Envoy answering directly: the cheapest upstream, so the gateway's work shows), the load
// generator. CPU seconds per process are read from /proc for every run. Prints JSON.
//
// Usage: node --import tsx bench/gateway-throughput.ts [--duration 10] [--connections 64]
//   [--threads 1] [--envoy-concurrency 2] [--redis] [--access-log on|off]
//   [--scenarios plain,auth,combined,service] [--half-load-workers 32]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { renderBootstrap } from '../src/xds/bootstrap.ts';
import type { FleetView } from '../src/xds/fleet.ts';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    connections: { type: 'string' },
    threads: { type: 'string' },
    'envoy-concurrency': { type: 'string' },
    redis: { type: 'boolean' },
    'access-log': { type: 'string' },
    scenarios: { type: 'string' },
    'half-load-workers': { type: 'string' },
  },
});
const DURATION_S = Number(values.duration ?? 10);
const CONNECTIONS = Number(values.connections ?? 64);
const THREADS = Number(values.threads ?? 1);
const ENVOY_CONCURRENCY = Number(values['envoy-concurrency'] ?? 2);
const ACCESS_LOG = (values['access-log'] ?? 'on') === 'on';
const SCENARIOS = (values.scenarios ?? 'plain,auth,combined,service').split(',').map((s) => s.trim()) as Scenario[];
const HALF_WORKERS = Number(values['half-load-workers'] ?? 32);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOKEN = 'bench-admin-token';
const GROUP = 'edge';
const NODE = 'bench-gateway';

type Scenario = 'plain' | 'auth' | 'combined' | 'service';

// ── processes ─────────────────────────────────────────────────────────────────

interface Proc {
  child: ChildProcess;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, logFile?: string): Proc {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', logFile ? 'pipe' : 'ignore'] });
  if (logFile) {
    let err = '';
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.length > 100_000) err = err.slice(-50_000);
    });
    child.once('exit', () => writeFileSync(logFile, err));
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

// ── load generators ───────────────────────────────────────────────────────────

function ms(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

interface WrkResult {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  socketErrors: number;
}

function wrk(url: string, headers: string[], durationS: number): Promise<WrkResult & { pid: number | undefined; cpu: () => number }> {
  return new Promise((resolve, reject) => {
    const args = ['-t', String(THREADS), '-c', String(CONNECTIONS), '-d', `${durationS}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let cpu = 0;
    const sample = setInterval(() => (cpu = Math.max(cpu, cpuSeconds(child.pid))), 200);
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => {
      clearInterval(sample);
      if (code !== 0) return reject(new Error(`wrk failed: ${out}`));
      const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
      const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      resolve({
        rps: num(/Requests\/sec:\s+([\d.]+)/),
        requests: num(/(\d+) requests in/),
        p50Ms: ms(/^\s+50%\s+(\S+)$/m.exec(out)?.[1] ?? ''),
        p99Ms: ms(/^\s+99%\s+(\S+)$/m.exec(out)?.[1] ?? ''),
        non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
        socketErrors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
        pid: child.pid,
        cpu: () => cpu,
      });
    });
  });
}

interface HeyResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  statuses: Record<string, number>;
}

/** hey at a constant total rate: `workers` workers, each limited to rate/workers requests per second. */
function hey(url: string, headers: string[], rate: number, durationS: number): HeyResult {
  const perWorker = Math.max(1, Math.round(rate / HALF_WORKERS));
  const r = spawnSync('hey', ['-z', `${durationS}s`, '-c', String(HALF_WORKERS), '-q', String(perWorker), ...headers.flatMap((h) => ['-H', h]), url], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`hey failed: ${r.stderr}`);
  const out = r.stdout;
  const sec = (p: string) => Number(new RegExp(`${p}% in ([\\d.]+) secs`).exec(out)?.[1] ?? NaN) * 1000;
  const statuses: Record<string, number> = {};
  for (const m of out.matchAll(/\[(\d+)\]\s+(\d+) responses/g)) statuses[m[1]!] = Number(m[2]);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN), p50Ms: sec('50'), p99Ms: sec('99'), statuses };
}

// ── the model ─────────────────────────────────────────────────────────────────

function documentFor(s: Scenario, o: { listenerPort: number; upstreamPort: number; key: string }): Record<string, unknown> {
  const limited = s === 'combined' || s === 'service';
  return {
    portico: 'v1',
    gatewayGroups: [
      {
        name: GROUP,
        listeners: [{ name: 'http', port: o.listenerPort, address: '127.0.0.1' }],
        // Generous timeouts: a loaded machine must not turn slow callouts into failed requests.
        authz: { failureMode: 'closed', timeoutMs: 5000 },
        rateLimit: { mode: s === 'service' ? 'service' : 'combined', failureMode: 'closed', timeoutMs: 5000 },
      },
    ],
    services: [{ name: 'upstream', endpoints: [{ host: '127.0.0.1', port: o.upstreamPort }] }],
    products: [
      {
        name: 'bench',
        gatewayGroups: [GROUP],
        basePath: '/bench',
        auth: { accept: s === 'plain' ? ['none'] : ['api_key'] },
        routes: [{ name: 'get', match: { path: { type: 'prefix', value: '/' } }, service: 'upstream' }],
      },
    ],
    plans: [
      { name: 'unlimited' },
      // Counted on every request, never reached.
      { name: 'big', limits: [{ requests: 1_000_000_000, per: 'second' }], countBy: { kind: 'partner' } },
    ],
    partners: [{ name: 'acme', apiKeys: [{ name: 'bench', key: o.key }], subscriptions: [{ product: 'bench', plan: limited ? 'big' : 'unlimited' }] }],
  };
}

// ── main ──────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-bench-gw-'));
  const procs: Proc[] = [];
  const cleanup = async () => {
    for (const p of procs.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Upstream: Envoy answering directly (one worker).
    const upstreamPort = await freePort();
    writeFileSync(
      path.join(dir, 'upstream.json'),
      JSON.stringify({
        static_resources: {
          listeners: [
            {
              name: 'upstream',
              address: { socket_address: { address: '127.0.0.1', port_value: upstreamPort } },
              filter_chains: [
                {
                  filters: [
                    {
                      name: 'envoy.filters.network.http_connection_manager',
                      typed_config: {
                        '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                        stat_prefix: 'upstream',
                        route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: '{"ok":true}' } } }] }] },
                        http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
                      },
                    },
                  ],
                },
              ],
            },
          ],
        },
      }),
    );
    const upstream = run(envoyBin, ['-c', path.join(dir, 'upstream.json'), '--concurrency', '1', '--use-dynamic-base-id', '-l', 'error']);
    procs.push(upstream);

    let redisUrl: string | undefined;
    let redisPid: number | undefined;
    if (values.redis) {
      const redisBin = componentPath('redis');
      if (!redisBin) throw new Error('redis-server is not installed');
      const port = await freePort();
      const redis = run(redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
      procs.push(redis);
      redisPid = redis.child.pid;
      redisUrl = `redis://127.0.0.1:${port}`;
      await waitFor('redis', () => (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG' ? true : undefined), 20_000, 100);
    }

    // The control plane in its own process, as deployed.
    const [adminPort, grpcPort, calloutPort] = [await freePort(), await freePort(), await freePort()];
    const cp = run(
      path.join(ROOT, 'bin/portico'),
      ['serve'],
      {
        ...process.env,
        PORTICO_DATA_DIR: path.join(dir, 'data'),
        PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
        PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}`,
        PORTICO_ADMIN_TOKEN: TOKEN,
        PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
        PORTICO_LOG_LEVEL: 'warn',
        PORTICO_ACCESS_LOG: ACCESS_LOG ? 'true' : 'false',
        ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
      },
      path.join(dir, 'portico.log'),
    );
    procs.push(cp);
    const admin = `http://127.0.0.1:${adminPort}`;
    const api = async (method: string, p: string, body?: string, type = 'application/json') => {
      const r = await fetch(`${admin}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': type } : {}) }, ...(body ? { body } : {}) });
      const text = await r.text();
      if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
      return text;
    };
    await waitFor('the control plane', async () => ((await fetch(`${admin}/healthz`).catch(() => undefined))?.ok ? true : undefined), 60_000, 200);

    // The gateway Envoy (stdout and stderr discarded: the access log must not load the harness).
    const envoyAdmin = await freePort();
    writeFileSync(path.join(dir, 'gateway.json'), JSON.stringify(renderBootstrap({ role: 'edge', nodeId: NODE, group: GROUP, xdsAddresses: [`127.0.0.1:${grpcPort}`], adminPort: envoyAdmin })));
    const gateway = run(envoyBin, ['-c', path.join(dir, 'gateway.json'), '--concurrency', String(ENVOY_CONCURRENCY), '--use-dynamic-base-id', '-l', 'error']);
    procs.push(gateway);
    const stats = async (filter: string): Promise<Record<string, number>> => {
      const text = await (await fetch(`http://127.0.0.1:${envoyAdmin}/stats?filter=${encodeURIComponent(filter)}`)).text();
      return Object.fromEntries([...text.matchAll(/^([^:\s]+): (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
    };

    const listenerPort = await freePort();
    const key = `ptk_${randomBytes(4).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    const url = `http://127.0.0.1:${listenerPort}/bench/item`;
    const headersFor = (s: Scenario) => (s === 'plain' ? [] : [`x-api-key: ${key}`]);

    const configure = async (s: Scenario) => {
      await api('POST', '/api/v1/config', YAML.stringify(documentFor(s, { listenerPort, upstreamPort, key })), 'application/yaml');
      await waitFor(
        `Envoy to serve the ${s} configuration`,
        async () => {
          const fleet = JSON.parse(await api('GET', '/api/v1/fleet')) as FleetView & { pipeline?: { servedRevision: number } };
          const n = fleet.nodes.find((x) => x.nodeId === NODE);
          if (!n || n.types.some((t) => t.pending || (t.pushedVersion !== undefined && t.ackedVersion !== t.pushedVersion))) return undefined;
          const r = await fetch(url, { headers: Object.fromEntries(headersFor(s).map((h) => h.split(': ') as [string, string])) }).catch(() => undefined);
          if (!r || r.status !== 200) return undefined;
          const limited = r.headers.get('x-ratelimit-limit') !== null;
          return limited === (s === 'combined' || s === 'service') ? true : undefined;
        },
        60_000,
        200,
      );
      // Let a replaced listener drain before measuring.
      await new Promise((r) => setTimeout(r, 1500));
    };

    const pids: Record<string, number | undefined> = { gateway: gateway.child.pid, controlPlane: cp.child.pid, upstream: upstream.child.pid, ...(redisPid ? { redis: redisPid } : {}) };
    const results: Record<string, unknown>[] = [];
    const byScenario = new Map<Scenario, WrkResult>();
    const perCpu = new Map<Scenario, number>();
    for (const s of SCENARIOS) {
      await configure(s);
      await wrk(url, headersFor(s), 2); // warm-up: connections, JIT, caches
      const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
      const callouts0 = await stats('^cluster\\.portico_callouts\\.(upstream_cx_total|upstream_rq_total)$');
      const w = await wrk(url, headersFor(s), DURATION_S);
      const callouts1 = await stats('^cluster\\.portico_callouts\\.(upstream_cx_(total|active)|upstream_rq_total)$');
      const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, Math.round((cpuSeconds(pid) - before[k]!) * 100) / 100]));
      cpu.loadGenerator = w.cpu();
      byScenario.set(s, w);
      const rq = (callouts1['cluster.portico_callouts.upstream_rq_total'] ?? 0) - (callouts0['cluster.portico_callouts.upstream_rq_total'] ?? 0);
      const totalCpu = Object.values(cpu).reduce((a, b) => a + (b as number), 0);
      perCpu.set(s, w.requests / Math.max(0.001, totalCpu));
      results.push({
        scenario: s,
        rps: Math.round(w.rps),
        // Capacity independent of what else the machine runs: requests per CPU-second of all the processes above.
        requestsPerCpuSecond: Math.round(w.requests / Math.max(0.001, totalCpu)),
        p50Ms: w.p50Ms,
        p99Ms: w.p99Ms,
        requests: w.requests,
        non2xx: w.non2xx,
        socketErrors: w.socketErrors,
        cpuSeconds: cpu,
        cpuMsPerRequest: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round(((v as number) * 1000 * 1000) / Math.max(1, w.requests)) / 1000])),
        calloutsPerRequest: Math.round((rq / Math.max(1, w.requests)) * 100) / 100,
        calloutConnections: {
          opened: (callouts1['cluster.portico_callouts.upstream_cx_total'] ?? 0) - (callouts0['cluster.portico_callouts.upstream_cx_total'] ?? 0),
          active: callouts1['cluster.portico_callouts.upstream_cx_active'] ?? 0,
        },
      });
      process.stderr.write(`${s}: ${Math.round(w.rps)} req/s, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms\n`);
    }

    // Latency at a constant rate, for every scenario: half of plain proxying's maximum (the brief's
    // measure), and half of the slowest scenario's maximum (a rate every configuration sustains).
    const constantRate = async (rate: number): Promise<Record<string, unknown>[]> => {
      const out: Record<string, unknown>[] = [];
      let base: HeyResult | undefined;
      for (const s of SCENARIOS) {
        await configure(s);
        const h = hey(url, headersFor(s), rate, DURATION_S);
        if (s === 'plain') base = h;
        out.push({
          scenario: s,
          targetRps: rate,
          rps: Math.round(h.rps),
          p50Ms: Math.round(h.p50Ms * 100) / 100,
          p99Ms: Math.round(h.p99Ms * 100) / 100,
          addedP50Ms: base ? Math.round((h.p50Ms - base.p50Ms) * 100) / 100 : undefined,
          addedP99Ms: base ? Math.round((h.p99Ms - base.p99Ms) * 100) / 100 : undefined,
          statuses: h.statuses,
        });
        process.stderr.write(`${s} at ${rate}/s: ${Math.round(h.rps)}/s, p50 ${h.p50Ms.toFixed(2)} ms, p99 ${h.p99Ms.toFixed(2)} ms\n`);
      }
      return out;
    };
    const plain = byScenario.get('plain');
    const half = plain ? await constantRate(Math.round(plain.rps / 2)) : [];
    const slowest = Math.min(...[...byScenario.values()].map((w) => w.rps));
    const halfSlowest = plain && byScenario.size > 1 ? await constantRate(Math.round(slowest / 2)) : [];

    const ratio = (s: Scenario) => (plain && byScenario.get(s) ? Math.round((byScenario.get(s)!.rps / plain.rps) * 1000) / 1000 : undefined);
    process.stdout.write(
      `${JSON.stringify(
        {
          benchmark: 'gateway-throughput',
          machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100) },
          note: 'Envoy, the control plane, the upstream (an Envoy answering directly) and the load generator share these CPUs.',
          settings: {
            durationS: DURATION_S,
            wrk: { threads: THREADS, connections: CONNECTIONS },
            hey: { workers: HALF_WORKERS },
            envoyConcurrency: ENVOY_CONCURRENCY,
            counters: redisUrl ? 'redis' : 'memory',
            accessLogService: ACCESS_LOG,
          },
          maxThroughput: results,
          ratioToPlain: Object.fromEntries(SCENARIOS.filter((s) => s !== 'plain').map((s) => [s, ratio(s)])),
          // The same ratio by CPU cost (requests per CPU-second): what the stack would reach with the machine to itself.
          cpuRatioToPlain: Object.fromEntries(
            SCENARIOS.filter((s) => s !== 'plain' && perCpu.has(s) && perCpu.has('plain')).map((s) => [s, Math.round((perCpu.get(s)! / perCpu.get('plain')!) * 1000) / 1000]),
          ),
          targetRatio: 0.8,
          halfOfPlainMax: half,
          halfOfSlowestMax: halfSlowest,
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
