// The processes of a benchmark through a real Envoy: a direct-response upstream Envoy, the control
// plane as its own process (bin/portico serve) and the gateway Envoy, in one scratch directory.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { renderBootstrap } from '../src/xds/bootstrap.ts';
import type { FleetView } from '../src/xds/fleet.ts';
import { freePort, serveListenEnv, waitFor } from '../test/support/components.ts';
import { settledNode } from '../test/support/envoy.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface Proc {
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * A child process, stdout discarded, stderr's tail printed if it fails. Not test/support's
 * startProcess: that keeps stdout in this process, and a gateway Envoy's stdout is its access log.
 */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
    if (err.length > 50_000) err = err.slice(-20_000);
  });
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`${cmd} exited ${code}: ${err.slice(-2000)}\n`);
  });
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

/** A scratch directory and the processes started for it; close() stops them (last first) and removes it. */
export interface Workspace {
  dir: string;
  run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Proc;
  close(): Promise<void>;
}

export function workspace(prefix: string): Workspace {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const procs: Proc[] = [];
  return {
    dir,
    run: (cmd, args, env) => {
      const p = run(cmd, args, env);
      procs.push(p);
      return p;
    },
    close: async () => {
      for (const p of procs.reverse()) await p.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An Envoy answering every request itself with one worker: the cheapest upstream, so the gateway's work shows. */
export async function startDirectUpstream(ws: Workspace, envoyBin: string): Promise<{ port: number; proc: Proc }> {
  const port = await freePort();
  const file = path.join(ws.dir, `upstream-${port}.json`);
  const hcm = {
    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    stat_prefix: 'upstream',
    route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: '{"ok":true}' } } }] }] },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
  };
  const listener = {
    name: 'upstream',
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
  };
  writeFileSync(file, JSON.stringify({ static_resources: { listeners: [listener] } }));
  return { port, proc: ws.run(envoyBin, ['-c', file, '--concurrency', '1', '--use-dynamic-base-id', '-l', 'error']) };
}

export interface ControlPlane {
  proc: Proc;
  grpcPort: number;
  adminUrl: string;
  token: string;
  /** POST /api/v1/config with a document (sent as YAML). */
  apply(doc: Record<string, unknown>): Promise<void>;
  /** Whether the node holds what it was sent (fleet status: every type ACKed, nothing pending). */
  settled(nodeId: string): Promise<boolean>;
  /** The control plane's Prometheus scrape (GET /metrics). */
  metrics(): Promise<string>;
}

/**
 * The control plane in its own process, as deployed (role all: ADS and the callouts; embedded PGlite
 * in the workspace), with `env` on top; nothing PORTICO_* or database-related inherited from the shell.
 */
/** `root`: the checkout whose bin/portico runs (another one for an A/B of two versions in one run). */
export async function startControlPlane(ws: Workspace, env: Record<string, string> = {}, root = ROOT): Promise<ControlPlane> {
  const [adminPort, grpcPort, calloutPort] = [await freePort(), await freePort(), await freePort()];
  const token = `bench-${randomBytes(16).toString('hex')}`;
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PORTICO_|DATABASE_URL$|REDIS_URL$)/.test(k)));
  const proc = ws.run(path.join(root, 'bin/portico'), ['serve'], {
    ...inherited,
    // Every listener on a free port (flow runtime, step listener, idempotency processor too): with their
    // defaults two benches, or a bench and a test, would collide.
    ...(await serveListenEnv()),
    PORTICO_DATA_DIR: path.join(ws.dir, 'data'),
    PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
    PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
    PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}`,
    PORTICO_ADMIN_TOKEN: token,
    PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
    PORTICO_LOG_LEVEL: 'warn',
    ...env,
  });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  // Not test/support's ApiClient: importing it loads the whole control plane (src/main.ts) into
  // this process, which generates load and measures latency.
  const api = async (method: string, p: string, body?: string, contentType = 'application/json') => {
    const r = await fetch(`${adminUrl}${p}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': contentType } : {}) }, ...(body ? { body } : {}) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return text;
  };
  await waitFor(
    'the control plane',
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`bin/portico serve exited (${proc.child.exitCode})`);
      return (await fetch(`${adminUrl}/readyz`).catch(() => undefined))?.ok ? true : undefined;
    },
    120_000,
    200,
  );
  return {
    proc,
    grpcPort,
    adminUrl,
    token,
    apply: async (doc) => void (await api('POST', '/api/v1/config', YAML.stringify(doc), 'application/yaml')),
    settled: async (nodeId) => settledNode(JSON.parse(await api('GET', '/api/v1/fleet')) as FleetView, nodeId) !== undefined,
    metrics: () => api('GET', '/metrics'),
  };
}

export interface GatewayEnvoy {
  proc: Proc;
  adminPort: number;
  /** Counters and gauges whose name matches `filter` (a regex, as Envoy's /stats?filter= takes it). */
  stats(filter: string): Promise<Record<string, number>>;
  /** One stat by exact name (0 when Envoy does not have it yet). */
  stat(name: string): Promise<number>;
}

/**
 * A gateway Envoy with the bootstrap users run (src/xds/bootstrap.ts), up once its admin answers.
 * Not test/support's launchEnvoy: that keeps stdout, the access log, in this process.
 */
export async function startGatewayEnvoy(
  ws: Workspace,
  envoyBin: string,
  o: { nodeId: string; group: string; xds: string; concurrency: number; drainTimeS?: number; wrap?: readonly string[] },
): Promise<GatewayEnvoy> {
  const adminPort = await freePort();
  const file = path.join(ws.dir, `gateway-${o.nodeId}.json`);
  writeFileSync(file, JSON.stringify(renderBootstrap({ role: 'edge', nodeId: o.nodeId, group: o.group, xdsAddresses: [o.xds], adminPort })));
  const drain = o.drainTimeS !== undefined ? ['--drain-time-s', String(o.drainTimeS)] : [];
  const args = ['-c', file, '--concurrency', String(o.concurrency), '--use-dynamic-base-id', '-l', 'error', ...drain];
  // wrap: a command Envoy runs under (a profiler), which is slower to start.
  const proc = o.wrap?.length ? ws.run(o.wrap[0]!, [...o.wrap.slice(1), envoyBin, ...args]) : ws.run(envoyBin, args);
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitFor('Envoy admin', async () => ((await fetch(`${admin}/ready`).catch(() => undefined))?.status ? true : undefined), o.wrap?.length ? 180_000 : 30_000, 100);
  const stats = async (filter: string) => {
    const text = await (await fetch(`${admin}/stats?filter=${encodeURIComponent(filter)}`)).text();
    return Object.fromEntries([...text.matchAll(/^([^:\s]+): (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  };
  return {
    proc,
    adminPort,
    stats,
    stat: async (name) => (await stats(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`))[name] ?? 0,
  };
}

/** A fresh API key in Portico's format, for importing with the model (the benchmark knows it). */
export function newApiKey(): string {
  return `ptk_${randomBytes(4).toString('hex')}_${randomBytes(32).toString('base64url')}`;
}

/**
 * The pinned layout: this process (all its threads, and so every process it starts from now on:
 * upstream, control plane, load generators) moves to CPUs 1..n-1; the gateway Envoy is started
 * under `taskset -c 0`.
 */
export function pinLayout(): { gatewayWrap: string[]; others: string; otherCpus: number } {
  const n = os.cpus().length;
  if (n < 2) throw new Error('--layout pinned needs at least 2 CPUs');
  const others = n === 2 ? '1' : `1-${n - 1}`;
  const r = spawnSync('taskset', ['-a', '-c', '-p', others, String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset failed (${r.status ?? r.error?.message}): ${r.stderr}`);
  return { gatewayWrap: ['taskset', '-c', '0'], others, otherCpus: n - 1 };
}
