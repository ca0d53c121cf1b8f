// Benchmark: 1,000 simulated ADS streams (half SotW, half Delta; grpc-js clients in a child process,
// one connection each) on a group with 10,000 routes and 1,000 clusters, served by Portico and, with
// --server, by go-control-plane v0.14's SnapshotCache and LinearCache (bench/xds-peer.ts) one after
// another: the same client, the same resources. Measures initial sync, and the time from one change (a
// route; an endpoint) to every stream holding it, with the server's CPU (/proc, so the same for Node and
// Go), its RSS, and what the streams received. Prints JSON.
// Usage: tsx bench/xds-fanout.ts [--server portico|portico-against|gcp-snapshot|gcp-linear|all (comma list)] [--streams 1000]
//          [--routes 10000] [--clusters 1000] [--route-configs 10] [--send-budget-mb N] [--sync-timeout-s 600] [--change-timeout-s 120]
//          [--against DIR]: `portico-against` is Portico's server from another checkout DIR (an A/B in one run).
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SnapshotCache, typeSnapshot } from '../src/xds/cache.ts';
import { largeGroupResources, type LargeGroupOptions } from '../test/support/xds-fixtures.ts';
import { FleetStatus } from '../src/xds/fleet.ts';
import { XdsMetrics } from '../src/xds/metrics.ts';
import { TYPE_URLS } from '../src/proto/index.ts';
import { RESOURCE_KINDS, resourceName, type GroupResources } from '../src/contract/index.ts';
import { XdsServer } from '../src/xds/server.ts';
import { Registry } from 'prom-client';
import { cpuMeter, flags, printJson, rssMB } from './harness.ts';
import { runClients, TYPES, type FromClients, type ToClients } from './xds-fanout-clients.ts';
import { buildPeer, PeerServer, writeChangeFile, writeGroupFiles, type PeerCache, type PeerChange } from './xds-peer.ts';

// --role and --address: how the orchestrator starts the clients and Portico's server in child processes.
const args = flags({
  role: undefined,
  address: undefined,
  server: 'portico',
  streams: 1000,
  routes: 10_000,
  clusters: 1000,
  'route-configs': 10,
  'send-budget-mb': undefined,
  'sync-timeout-s': 600,
  'change-timeout-s': 120,
  against: undefined,
});
const shape: LargeGroupOptions = { routes: args.routes, clusters: args.clusters, routeConfigs: args['route-configs'] };
const GROUP = 'bench';
const SERVERS = ['portico', 'portico-against', 'gcp-snapshot', 'gcp-linear'] as const;
type ServerName = (typeof SERVERS)[number];
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The changes, in order; each is the fixture with one more variant. Portico is handed the unchanged
 * resources and routes as the objects it was given before (what the pipeline's translator gives with
 * its EmitMemo), except for `fresh` changes: every resource a new object, so the cache must serialise
 * each to find what changed and encode the changed one whole.
 */
const CHANGES = [
  { label: 'one route', typeUrl: TYPE_URLS.route, variant: { variant: 1 }, fresh: false },
  { label: 'one endpoint', typeUrl: TYPE_URLS.endpoint, variant: { variant: 1, endpointVariant: 1 }, fresh: false },
  { label: 'one route again', typeUrl: TYPE_URLS.route, variant: { variant: 2, endpointVariant: 1 }, fresh: false },
  { label: 'one route, fresh objects', typeUrl: TYPE_URLS.route, variant: { variant: 3, endpointVariant: 1 }, fresh: true },
] as const;
const changedGroup = (i: number): GroupResources => largeGroupResources({ ...shape, ...CHANGES[i]!.variant });

type RouteJson = { readonly name: string };
type RouteConfigJson = { readonly virtual_hosts: readonly { readonly routes: readonly RouteJson[] }[] };

/**
 * `next` with each resource equal to one of `previous` replaced by that object, and in a changed route
 * configuration each route equal to one before replaced by that object: what the pipeline's translator
 * (with its EmitMemo) hands the cache.
 */
function sharedWith(previous: GroupResources, next: GroupResources): GroupResources {
  const out = { ...next };
  const routes = new Map<string, RouteJson>();
  for (const rc of previous.routes as unknown as RouteConfigJson[]) for (const vh of rc.virtual_hosts) for (const r of vh.routes) routes.set(JSON.stringify(r), r);
  for (const kind of RESOURCE_KINDS) {
    const before = new Map(previous[kind].map((r) => [resourceName(kind, r), r]));
    out[kind] = next[kind].map((r) => {
      const p = before.get(resourceName(kind, r));
      if (p && JSON.stringify(p) === JSON.stringify(r)) return p;
      if (kind !== 'routes') return r;
      const rc = r as unknown as RouteConfigJson;
      return { ...rc, virtual_hosts: rc.virtual_hosts.map((vh) => ({ ...vh, routes: vh.routes.map((x) => routes.get(JSON.stringify(x)) ?? x) })) };
    });
  }
  return out;
}

type ToPortico = { kind: 'prepare'; change: number } | { kind: 'apply' } | { kind: 'landed'; label: string } | { kind: 'details' };
type FromPortico =
  | { kind: 'listening'; port: number; buildMs: number }
  | { kind: 'prepared' }
  | { kind: 'applied'; version: string }
  | { kind: 'landed' }
  | { kind: 'details'; snapshotBuildMs: number; encodedPerChange: { resources: number; routeParts: number }[]; memoryMB: Record<string, number>; memoryAfterGcMB?: Record<string, number> };

// ── Portico's server (child process) ─────────────────────────────────────────

/** With XDS_BENCH_PROFILE=dir, a CPU profile of Portico's server during each change (node:inspector). */
async function startProfile(): Promise<((label: string) => Promise<void>) | undefined> {
  const dir = process.env.XDS_BENCH_PROFILE;
  if (!dir) return undefined;
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (label) => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(`${dir}/${label.replace(/\W+/g, '-')}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  };
}

const memoryMB = () => Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 1048576)]));
function memoryAfterGc(): Record<string, number> | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  gc();
  gc();
  return memoryMB();
}

async function runPortico(): Promise<void> {
  const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
  const t0 = performance.now();
  let served = largeGroupResources(shape);
  cache.setGroupResources(GROUP, served);
  cache.flush();
  const buildMs = Math.round(performance.now() - t0);
  const server = new XdsServer({
    // Keepalive as the peer's (grpc-go's default): Portico's own 30 s / 10 s drops streams of the
    // simulated fleet, one process that cannot answer pings in time on a loaded machine.
    keepaliveTimeMs: 2 * 3600_000,
    keepaliveTimeoutMs: 20_000,
    cache,
    fleet: new FleetStatus({ cache }),
    observer: new XdsMetrics(new Registry()),
    ...(args['send-budget-mb'] ? { sendBudgetBytes: Number(args['send-budget-mb']) * 1048576 } : {}),
  });
  const port = await server.listen('127.0.0.1', 0);
  const reply = (m: FromPortico) => process.send!(m);
  let pending: { resources: GroupResources; typeUrl: string } | undefined;
  /** Resources each change encoded (the rest were found unchanged). */
  const encodedPerChange: { resources: number; routeParts: number }[] = [];
  let profiling: ((label: string) => Promise<void>) | undefined;
  process.on('message', async (m: ToPortico) => {
    switch (m.kind) {
      case 'prepare':
        pending = { resources: CHANGES[m.change]!.fresh ? changedGroup(m.change) : sharedWith(served, changedGroup(m.change)), typeUrl: CHANGES[m.change]!.typeUrl };
        served = pending.resources;
        return reply({ kind: 'prepared' });
      case 'apply': {
        const { resources, typeUrl } = pending!;
        pending = undefined;
        profiling = await startProfile();
        const encodedBefore = cache.encodings;
        const partsBefore = cache.parts.encoded;
        cache.setGroupResources(GROUP, resources);
        cache.flush();
        encodedPerChange.push({ resources: cache.encodings - encodedBefore, routeParts: cache.parts.encoded - partsBefore });
        return reply({ kind: 'applied', version: typeSnapshot(cache.getSnapshot(GROUP), typeUrl).version });
      }
      case 'landed':
        await profiling?.(m.label);
        profiling = undefined;
        return reply({ kind: 'landed' });
      case 'details':
        return reply({
          kind: 'details',
          snapshotBuildMs: buildMs,
          encodedPerChange,
          memoryMB: memoryMB(),
          // After a full collection (the child runs with --expose-gc): what the streams hold, garbage aside.
          memoryAfterGcMB: memoryAfterGc(),
        });
    }
  });
  process.once('disconnect', () => {
    cache.close();
    void server.close(1000).then(() => process.exit(0));
  });
  reply({ kind: 'listening', port, buildMs });
}

// ── orchestrator (this process) ──────────────────────────────────────────────

/** A child's messages in order: next() resolves with the next one, or fails on exit or timeout. */
function inbox<T>(child: ChildProcess, name: string): (what: string, timeoutMs?: number) => Promise<T> {
  const queue: T[] = [];
  let waiting: { resolve: (m: T) => void; reject: (e: Error) => void } | undefined;
  let gone: Error | undefined;
  child.on('message', (m) => {
    const w = waiting;
    waiting = undefined;
    if (w) w.resolve(m as T);
    else queue.push(m as T);
  });
  child.once('exit', (code, signal) => {
    gone = new Error(`${name} exited (${code ?? signal})`);
    waiting?.reject(gone);
  });
  return (what, timeoutMs = 60_000) =>
    new Promise<T>((resolve, reject) => {
      if (queue.length) return resolve(queue.shift()!);
      if (gone) return reject(gone);
      const timer = setTimeout(() => {
        waiting = undefined;
        reject(new Error(`${name}: no "${what}" within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      waiting = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
}

function expectKind<T extends { kind: string }, K extends T['kind']>(m: T, kind: K): Extract<T, { kind: K }> {
  if (m.kind === 'dropped') {
    const d = m as unknown as Extract<FromClients, { kind: 'dropped' }>;
    throw new Error(`waiting for "${kind}": the server ended stream ${d.stream} of ${d.streams} (${d.message}); the clients do not reconnect`);
  }
  if (m.kind !== kind) throw new Error(`expected "${kind}", got "${m.kind}"`);
  return m as Extract<T, { kind: K }>;
}

/** What the orchestrator needs of a server under test; the work of prepare() stays outside the measured window. */
interface ServerUnderTest {
  readonly pid: number;
  readonly address: string;
  prepare(change: number): Promise<void>;
  /** Publishes the prepared change; resolves with the version streams will hold for its type. */
  apply(): Promise<string>;
  landed(label: string): Promise<void>;
  details(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Portico's server in a child process: this checkout's, or with `dir` another checkout's (given only the flags both know). */
async function startPortico(dir?: string): Promise<ServerUnderTest> {
  const own = ['--routes', String(args.routes), '--clusters', String(args.clusters), '--route-configs', String(args['route-configs'])];
  if (args['send-budget-mb']) own.push('--send-budget-mb', String(args['send-budget-mb']));
  const script = dir ? join(dir, 'bench', 'xds-fanout.ts') : fileURLToPath(import.meta.url);
  const child = fork(script, ['--role', 'portico', ...own], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = inbox<FromPortico>(child, "Portico's server");
  const ask = async <K extends FromPortico['kind']>(m: ToPortico, kind: K) => {
    child.send(m);
    return expectKind(await next(kind), kind);
  };
  const { port } = expectKind(await next('listening', 300_000), 'listening');
  return {
    pid: child.pid!,
    address: `127.0.0.1:${port}`,
    prepare: async (change) => void (await ask({ kind: 'prepare', change }, 'prepared')),
    apply: async () => (await ask({ kind: 'apply' }, 'applied')).version,
    landed: async (label) => void (await ask({ kind: 'landed', label }, 'landed')),
    details: async () => {
      const { kind: _, ...d } = await ask({ kind: 'details' }, 'details');
      return d;
    },
    close: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.disconnect();
      await exited;
    },
  };
}

async function startPeer(bin: string, cache: PeerCache, dir: string, changes: PeerChange[]): Promise<ServerUnderTest> {
  const peer = await PeerServer.start(bin, cache, dir);
  return {
    pid: peer.pid,
    address: peer.address,
    prepare: (change) => peer.prepare(changes[change]!),
    apply: () => peer.apply(),
    landed: async () => {},
    details: async () => ({ cache }),
    close: () => peer.close(),
  };
}

/** Peak RSS of a process, sampled every 10 ms until the returned function is called. */
function peakRss(pid: number): () => number {
  let peak = rssMB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMB(pid));
  }, 10);
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssMB(pid));
  };
}

/**
 * Waits for the server to go idle (≤ 10 ms of CPU in 200 ms, or 10 s): the ACKs of a change cost the
 * server too. Returns the CPU seconds the meter counted until then.
 */
async function untilIdle(cpu: () => Record<string, number>): Promise<number> {
  let last = cpu().server!;
  for (let waited = 0; waited < 10_000; waited += 200) {
    await sleep(200);
    const used = cpu().server!;
    if (used - last <= 0.01) return used;
    last = used;
  }
  return last;
}

const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

async function measure(name: ServerName, server: ServerUnderTest) {
  const timeoutMs = args['change-timeout-s'] * 1000;
  const loadBefore = load();
  const rssBeforeClients = rssMB(server.pid);
  const clients = fork(fileURLToPath(import.meta.url), ['--role', 'clients', '--address', server.address, ...process.argv.slice(2)], {
    execArgv: ['--import', 'tsx', '--max-old-space-size=4096'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = inbox<FromClients>(clients, 'the clients');
  try {
    const syncStart = now();
    const syncCpu = cpuMeter({ server: server.pid });
    // Slow on a busy machine: the SnapshotCache's initial sync took 76-108 s at a load average of 7-19.
    const synced = expectKind(await next('synced', args['sync-timeout-s'] * 1000), 'synced');
    const initialSync = {
      allStreamsFullConfigMs: Math.round(synced.at - syncStart),
      serverCpuMs: Math.round(syncCpu().server! * 1000),
      clientRssMB: synced.rssMB,
    };
    await sleep(1000);
    const rssSteady = rssMB(server.pid);

    const changes = [];
    for (const [i, c] of CHANGES.entries()) {
      await server.prepare(i);
      clients.send({ kind: 'reset' } satisfies ToClients);
      expectKind(await next('reset'), 'reset');
      const peak = peakRss(server.pid);
      const cpu = cpuMeter({ server: server.pid });
      const start = now();
      const version = await server.apply();
      clients.send({ kind: 'expect', typeUrl: c.typeUrl, version } satisfies ToClients);
      const held = expectKind(await next(`all streams holding ${c.label}`, timeoutMs), 'holding');
      const cpuHolding = cpu().server!;
      const cpuWithAcks = await untilIdle(cpu);
      changes.push({
        change: c.label,
        streamsHolding: held.streams,
        changeToAllStreamsMs: Math.round(held.lastAt - start),
        serverCpuMs: Math.round(cpuHolding * 1000),
        serverCpuMsWithAcks: Math.round(cpuWithAcks * 1000),
        serverPeakRssMB: peak(),
        clientCpuMs: held.cpuMs,
        clientRssMB: held.rssMB,
        received: held.received,
        loadAverage1m: load()[0],
      });
      await server.landed(c.label);
    }
    clients.send({ kind: 'served' } satisfies ToClients);
    const { sotw, delta } = expectKind(await next('served'), 'served');
    return {
      server: name,
      initialSync,
      serverRssMB: { beforeClients: rssBeforeClients, steady: rssSteady },
      changes,
      served: { sotw, delta },
      details: await server.details(),
      loadAverage: { before: loadBefore, after: load() },
    };
  } finally {
    if (clients.exitCode === null) {
      const exited = new Promise((r) => clients.once('exit', r));
      clients.send({ kind: 'stop' } satisfies ToClients);
      await exited;
    }
  }
}

type Run = Awaited<ReturnType<typeof measure>>;

async function orchestrate(): Promise<void> {
  const names = (args.server === 'all' ? SERVERS.filter((n) => n !== 'portico-against' || args.against) : args.server.split(',').map((s) => s.trim())) as ServerName[];
  for (const n of names) if (!SERVERS.includes(n)) throw new Error(`--server: unknown server "${n}" (one of ${SERVERS.join(', ')}, or all)`);
  if (names.includes('portico-against') && !args.against) throw new Error('--server portico-against needs --against DIR (another checkout)');
  const peers = names.some((n) => n.startsWith('gcp-'));
  let dir: string | undefined;
  let peerBin = '';
  const peerChanges: PeerChange[] = [];
  if (peers) {
    peerBin = buildPeer();
    dir = mkdtempSync(join(tmpdir(), 'portico-xds-peer-'));
    // The same fixture function Portico serves, dumped as proto3 JSON; each change as the resources it replaces.
    let before = largeGroupResources(shape);
    writeGroupFiles(dir, before);
    for (const [i, c] of CHANGES.entries()) {
      const after = changedGroup(i);
      peerChanges.push(writeChangeFile(dir, `change-${i}`, before, after));
      if (peerChanges[i]!.kind !== (c.typeUrl === TYPE_URLS.route ? 'routes' : 'endpoints')) throw new Error(`${c.label}: changes ${peerChanges[i]!.kind}`);
      before = after;
    }
  }
  const runs: (Run | { server: ServerName; error: string })[] = [];
  try {
    for (const name of names) {
      process.stderr.write(`xds-fanout: ${name}\n`);
      const server =
        name === 'portico'
          ? await startPortico()
          : name === 'portico-against'
            ? await startPortico(args.against)
            : await startPeer(peerBin, name === 'gcp-snapshot' ? 'snapshot' : 'linear', dir!, peerChanges);
      try {
        runs.push(await measure(name, server));
      } catch (e) {
        runs.push({ server: name, error: (e as Error).message });
      } finally {
        await server.close();
      }
      await sleep(2000); // let the previous run's sockets and memory go before the next server starts
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }

  const measured = runs.filter((r): r is Run => 'changes' in r);
  const typeNames = TYPES.map((t) => t.split('.').pop()!);
  const servedKey = (r: Run, bytes: boolean) => JSON.stringify(typeNames.map((t) => [r.served.sotw[t]?.resources, r.served.sotw[t]?.json, r.served.delta[t]?.json, bytes && r.served.sotw[t]?.bytes]));
  const same = (bytes: boolean) => (measured.length > 1 ? new Set(measured.map((r) => servedKey(r, bytes))).size === 1 : undefined);
  if (same(false) === false) process.stderr.write('xds-fanout: the servers did not serve the same resources (see runs[].served)\n');
  printJson({
    benchmark: 'xds-fanout',
    streams: { total: args.streams, sotw: Math.ceil(args.streams / 2), delta: Math.floor(args.streams / 2) },
    shape,
    cpus: cpus().length,
    // Every server served the streams the same resources (compared as proto3 JSON), and byte for byte (SotW).
    sameResourcesServed: same(false),
    sameBytesServed: same(true),
    summary: Object.fromEntries(
      measured.map((r) => [
        r.server,
        {
          serverCpuMsPerChange: Object.fromEntries(r.changes.map((c) => [c.change, c.serverCpuMsWithAcks])),
          changeToAllStreamsMs: Object.fromEntries(r.changes.map((c) => [c.change, c.changeToAllStreamsMs])),
          serverRssMB: { steady: r.serverRssMB.steady, peakDuringChanges: Math.max(...r.changes.map((c) => c.serverPeakRssMB)) },
          initialSyncMs: r.initialSync.allStreamsFullConfigMs,
        },
      ]),
    ),
    runs,
    targets: { changeToAllStreamsMs: 1000, serverRssMB: 256 },
  });
}

if (args.role === 'clients') runClients({ address: args.address!, streams: args.streams, shape, group: GROUP });
else if (args.role === 'portico') await runPortico();
else await orchestrate();
