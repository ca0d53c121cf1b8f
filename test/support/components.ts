// Real components for tests: PostgreSQL, Redis and Envoy started as processes on free ports.
// Under CI=true a missing component fails the test; elsewhere the test is skipped with a reason.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, chownSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

export type Component = 'envoy' | 'postgres' | 'redis' | 'chromium' | 'flows-wasm';

/** The flows Wasm module scripts/setup.sh builds (flows-wasm/), where the control plane looks by default. */
const FLOWS_WASM = path.resolve(import.meta.dirname, '../../flows-wasm/target/wasm32-wasip1/release/portico_flows.wasm');

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

function postgresBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(path.join(base, v, 'bin', 'postgres'))) return path.join(base, v, 'bin');
  return undefined;
}

export function componentPath(c: Component): string | undefined {
  if (c === 'envoy') return process.env.ENVOY_BIN || which('envoy');
  if (c === 'redis') return which('redis-server');
  if (c === 'chromium') return process.env.CHROMIUM_BIN || which('chromium');
  if (c === 'flows-wasm') return existsSync(FLOWS_WASM) ? FLOWS_WASM : undefined;
  return postgresBin();
}

/**
 * Returns the component's path, or: fails the test under CI (a missing component is a broken CI
 * machine, never a pass), skips it elsewhere.
 */
export function requireComponent(t: TestContext, c: Component): string | undefined {
  const p = componentPath(c);
  if (p) return p;
  const why = `${c} is not installed (run scripts/setup.sh)`;
  if (process.env.CI === 'true') throw new Error(`${why}; CI must provide it`);
  t.skip(why);
  return undefined;
}

/**
 * A loopback port nobody listens on, for a server the test starts next. Picked below Linux's
 * ephemeral range (32768+): a port from bind(0) is also what the kernel hands out as the source
 * port of outgoing connections (Envoy → upstreams, clients → servers), so one could be taken
 * between the check and the server's bind. Never the same port twice while this process lives,
 * nor one another test process holds (reserve): test files run side by side.
 */
export async function freePort(): Promise<number> {
  const [low, high] = PORT_RANGE;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port) || !reserve(port)) continue;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free loopback port found in ${low}-${high}`);
}
const handedOut = new Set<number>();

/** `n` consecutive free loopback ports (for a process that takes a block, like the demo); returns the first. */
export async function freePortBlock(n: number): Promise<number> {
  const [low, high] = PORT_RANGE;
  for (let attempt = 0; attempt < 100; attempt++) {
    const first = low + Math.floor(Math.random() * (high - low - n));
    const block = Array.from({ length: n }, (_, i) => first + i);
    if (block.some((p) => handedOut.has(p))) continue;
    const reserved = block.filter(reserve);
    if (reserved.length === n && (await Promise.all(block.map(canListen))).every(Boolean)) return first;
    for (const p of reserved) release(p);
  }
  throw new Error(`no ${n} consecutive free loopback ports found in ${low}-${high}`);
}
/**
 * Listen addresses, on free ports of the test's range, for every listener `portico serve` or `portico
 * demo` may open (admin, gRPC, callouts, flow runtime, the step listener its Envoys bind, the idempotency
 * processor): with the defaults, control planes of two test files running at once would collide.
 * A test that restarts its control plane keeps this environment: the flow runtime's and the step
 * listener's addresses are in the configuration Envoys receive, which must not change across a restart.
 * Spread it first; a test's own addresses override it.
 */
export async function serveListenEnv(): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const name of ['PORTICO_ADMIN_ADDR', 'PORTICO_GRPC_ADDR', 'PORTICO_CALLOUT_LISTEN_ADDR', 'PORTICO_FLOWS_LISTEN_ADDR', 'PORTICO_FLOWS_STEP_ADDR', 'PORTICO_IDEMPOTENCY_LISTEN_ADDR']) {
    env[name] = `127.0.0.1:${await freePort()}`;
  }
  return env;
}
/** PORTICO_TEST_PORTS=low-high keeps test runs started side by side (one per checkout) apart. */
const PORT_RANGE: [number, number] = (() => {
  const m = /^(\d+)-(\d+)$/.exec(process.env.PORTICO_TEST_PORTS ?? '');
  const range: [number, number] = m ? [Number(m[1]), Number(m[2])] : [20_000, 31_999];
  if (!(range[0] >= 1024 && range[1] <= 32_767 && range[0] + 100 <= range[1]))
    throw new Error(`PORTICO_TEST_PORTS=${process.env.PORTICO_TEST_PORTS}: want low-high within 1024-32767, at least 100 ports`);
  return range;
})();

/**
 * Claims `port` for this process among every test process on the machine: a file per port holding
 * the owner's pid (created exclusively; a dead owner's file is taken over), removed at exit. Without
 * it two test files running at once could both find a port free and start servers on it, and a
 * readiness probe (pg_isready) would then accept the other file's server.
 */
function reserve(port: number): boolean {
  const file = path.join(RESERVATIONS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      handedOut.add(port);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const text = readFileSync(file, 'utf8');
      // Empty: its owner has created it and not yet written its pid.
      if (!text || Number(text) === process.pid || processAlive(Number(text))) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}
function release(port: number): void {
  handedOut.delete(port);
  rmSync(path.join(RESERVATIONS, String(port)), { force: true });
}
const RESERVATIONS = path.join(os.tmpdir(), 'portico-test-ports');
mkdirSync(RESERVATIONS, { recursive: true });
process.once('exit', () => {
  for (const port of handedOut) rmSync(path.join(RESERVATIONS, String(port)), { force: true });
});

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

export interface RunningProcess {
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startProcess(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number } = {}): RunningProcess {
  const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, uid: opts.uid, gid: opts.gid, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ── PostgreSQL ────────────────────────────────────────────────────────────────
export interface PostgresServer {
  url: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
  /** Stops the server keeping its data (for outage tests); start() brings it back on the same port. */
  pause(): Promise<void>;
  start(): Promise<void>;
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('running as root but there is no postgres user to run PostgreSQL as');
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** initdb + postgres on a free port in a temporary directory (as the postgres user when root). */
export async function startPostgres(t: TestContext): Promise<PostgresServer | undefined> {
  const bin = requireComponent(t, 'postgres');
  if (!bin) return undefined;
  const user = postgresUser();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-pg-'));
  const dataDir = path.join(dir, 'data');
  if (user) chownSync(dir, user.uid, user.gid);
  const pwfile = path.join(dir, 'pw');
  writeFileSync(pwfile, 'portico\n');
  if (user) chownSync(pwfile, user.uid, user.gid);
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'portico', '--pwfile', pwfile, '-A', 'md5', '--no-sync'], {
    encoding: 'utf8',
    uid: user?.uid,
    gid: user?.gid,
  });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  let proc: RunningProcess | undefined;
  const start = async () => {
    proc = startProcess(path.join(bin, 'postgres'), ['-D', dataDir, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200'], {
      uid: user?.uid,
      gid: user?.gid,
    });
    await waitFor('postgres to accept connections', async () => {
      const r = spawnSync(path.join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]);
      if (proc!.child.exitCode !== null) throw new Error(`postgres exited: ${proc!.output()}`);
      return r.status === 0 ? true : undefined;
    });
  };
  await start();
  return {
    url: `postgresql://portico:portico@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    start,
    pause: async () => proc?.stop('SIGINT'),
    stop: async () => {
      await proc?.stop('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh database on a running server (CREATE DATABASE through psql). */
export function createDatabase(pg: PostgresServer, name: string): string {
  const bin = postgresBin()!;
  const r = spawnSync(path.join(bin, 'psql'), [pg.url, '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE "${name}"`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`CREATE DATABASE failed: ${r.stderr}`);
  return pg.url.replace(/\/postgres$/, `/${name}`);
}

// ── Redis ─────────────────────────────────────────────────────────────────────
export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  pause(): Promise<void>;
  start(): Promise<void>;
}

export async function startRedis(t: TestContext): Promise<RedisServer | undefined> {
  const bin = requireComponent(t, 'redis');
  if (!bin) return undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-redis-'));
  const port = await freePort();
  let proc: RunningProcess | undefined;
  const start = async () => {
    proc = startProcess(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes']);
    await waitFor('redis to listen', () => (proc!.output().includes('Ready to accept connections') ? true : undefined));
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    pause: async () => proc?.stop('SIGTERM'),
    stop: async () => {
      await proc?.stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
