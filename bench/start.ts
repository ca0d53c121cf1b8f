// Start to ready: `portico serve` on PostgreSQL holding 10,000 routes, from spawn to /readyz 200,
// after a clean stop (SIGTERM) and after a kill -9, for the compiled build (NODE_ENV=production,
// node dist/cli.js) and the sources through tsx, alternating in one run. Prints JSON.
// Usage: tsx bench/start.ts [--runs 3] [--products 2000] [--database-url postgresql://…] [--no-build]
//        [--embedded]      (the embedded store, PGlite in the data directory, instead of PostgreSQL)
//        [--profile DIR]   (compiled starts write V8 CPU profiles to DIR: node --cpu-prof)
//        [--streams 1000]  (then one more compiled start: its RSS at ready, idle, and holding N ADS streams;
//                           with --against, one start of each build in turn; with the heap from /metrics)
//        [--role xds]      (PORTICO_ROLE for every start: xds is what a fleet's ADS replicas run)
//        [--against DIR]   (instead of tsx, the compiled build of another checkout DIR, e.g. main's with
//                           its own `npm run build`: an A/B of two builds alternating in one run)
//        [--node-flags 'A|B']  (instead of compiled against tsx, compiled starts under each set of Node
//                           flags in turn, --runs times: start, CPU, RSS at ready and after 10 s idle,
//                           and the heap then; then one ADS stream: time to its snapshot, RSS 5 s
//                           later; '' is Node's defaults)
// Each start also reports snapshotMs: spawn to the first full snapshot (clusters, endpoints,
// listeners, routes) received by one Delta stream opened at ready, as a connecting Envoy would
// (`portico serve` translates when the first Envoy connects, so ready comes before it).
import { fork, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, startPostgres } from '../test/support/components.ts';
import { cpuSeconds, flags, median, printJson, round2, rssMB } from './harness.ts';
import { discover, type FromStreams } from './start-streams.ts';
import { type Proc, workspace } from './stack.ts';
import { benchDocument } from './bench-model.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = flags({
  runs: 3,
  products: 2000,
  'database-url': undefined,
  'no-build': false,
  profile: undefined,
  streams: 0,
  against: undefined,
  'node-flags': undefined,
  embedded: false,
  role: 'all',
});
const ROUTES_PER_PRODUCT = 5;

function model(products: number): string {
  return benchDocument({ products, services: 100, partners: 200, keysPerPartner: 1 });
}

if (!args['no-build']) {
  process.stderr.write('start: npm run build\n');
  const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`npm run build failed: ${b.stdout}${b.stderr}`);
}

const ws = workspace('portico-start-');
// startPostgres takes a test's context only to skip when PostgreSQL is missing; a benchmark fails instead.
const noSkip = { skip: (why: string) => void process.stderr.write(`${why}\n`) } as unknown as TestContext;
const pg = args['database-url'] || args.embedded ? undefined : await startPostgres(noSkip);
const databaseUrl = args['database-url'] ?? pg?.url;
if (!databaseUrl && !args.embedded) throw new Error('PostgreSQL is not installed (scripts/setup.sh --services) and no --database-url given');
try {
  const [adminPort, grpcPort, calloutPort, flowsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const token = `bench-${randomBytes(16).toString('hex')}`;
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PORTICO_|DATABASE_URL$|REDIS_URL$|NODE_ENV$)/.test(k)));
  const env = {
    ...inherited,
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    PORTICO_DATA_DIR: path.join(ws.dir, 'data'),
    PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
    PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
    PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}`,
    PORTICO_FLOWS_LISTEN_ADDR: `127.0.0.1:${flowsPort}`,
    PORTICO_ADMIN_TOKEN: token,
    PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
    PORTICO_LOG_LEVEL: 'warn',
    PORTICO_ROLE: String(args.role),
  };
  const adminUrl = `http://127.0.0.1:${adminPort}`;

  /** Spawns serve and polls /readyz every 20 ms: wall ms to ready, the process's CPU seconds and RSS then. */
  const against = args.against ? path.resolve(args.against) : undefined;
  /** Opens one Delta stream of the bench's group and waits for every type: ms since t0, CPU seconds then. */
  const firstSnapshot = async (proc: Proc, t0: number): Promise<{ snapshotMs: number; snapshotCpuS: number }> => {
    await discover(env.PORTICO_GRPC_ADDR, 'edge');
    return { snapshotMs: Math.round(performance.now() - t0), snapshotCpuS: round2(cpuSeconds(proc.child.pid)) };
  };
  const start = async (compiled: boolean, nodeFlags?: string): Promise<{ proc: Proc; t0: number; ms: number; cpuS: number; rssMb: number }> => {
    const t0 = performance.now();
    const profile = args.profile
      ? { PORTICO_NODE_FLAGS: `--cpu-prof --cpu-prof-dir=${path.resolve(args.profile)} ${nodeFlags ?? ''}` }
      : nodeFlags !== undefined
        ? { PORTICO_NODE_FLAGS: nodeFlags }
        : {};
    // The second variant: the sources through tsx, or (--against) the other checkout's compiled build.
    const proc = compiled
      ? ws.run(path.join(ROOT, 'bin/portico'), ['serve'], { ...env, ...profile, NODE_ENV: 'production' })
      : against
        ? ws.run(path.join(against, 'bin/portico'), ['serve'], { ...env, ...profile, NODE_ENV: 'production' })
        : ws.run(path.join(ROOT, 'bin/portico'), ['serve'], env);
    for (;;) {
      if (proc.child.exitCode !== null) throw new Error(`serve exited (${proc.child.exitCode})`);
      if ((await fetch(`${adminUrl}/readyz`).catch(() => undefined))?.status === 200) break;
      if (performance.now() - t0 > 180_000) throw new Error('not ready after 180 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    const ms = Math.round(performance.now() - t0);
    return { proc, t0, ms, cpuS: round2(cpuSeconds(proc.child.pid)), rssMb: rssMB(proc.child.pid) };
  };
  const kill9 = async (p: Proc) => {
    const gone = new Promise((r) => p.child.once('exit', r));
    p.child.kill('SIGKILL');
    await gone;
  };

  // Seed: the first start migrates the database; the model is applied once.
  const first = await start(true);
  const text = model(args.products);
  const applied = await fetch(`${adminUrl}/api/v1/config`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body: text });
  if (!applied.ok) throw new Error(`apply: ${applied.status} ${await applied.text()}`);
  await first.proc.stop();

  const second = against ? 'against' : 'tsx';
  const results: Record<string, Array<{ ms: number; cpuS: number; rssMb: number; snapshotMs: number; snapshotCpuS: number }>> = {
    compiledAfterStop: [],
    [`${second}AfterStop`]: [],
    compiledAfterKill9: [],
    [`${second}AfterKill9`]: [],
  };
  const load: string[] = [];
  for (let i = 0; i < (args['node-flags'] === undefined ? args.runs : 0); i++) {
    for (const compiled of [true, false]) {
      const name = compiled ? 'compiled' : against ? 'against' : 'tsx';
      const a = await start(compiled);
      results[`${name}AfterStop`]!.push({ ms: a.ms, cpuS: a.cpuS, rssMb: a.rssMb, ...(await firstSnapshot(a.proc, a.t0)) });
      await kill9(a.proc);
      const b = await start(compiled);
      results[`${name}AfterKill9`]!.push({ ms: b.ms, cpuS: b.cpuS, rssMb: b.rssMb, ...(await firstSnapshot(b.proc, b.t0)) });
      await b.proc.stop();
      load.push(spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim());
      process.stderr.write(
        `start: run ${i + 1} ${name}: ${a.ms} ms, after kill -9 ${b.ms} ms; first snapshot ${results[`${name}AfterStop`]!.at(-1)!.snapshotMs} / ${results[`${name}AfterKill9`]!.at(-1)!.snapshotMs} ms\n`,
      );
    }
  }
  /** Where the idle process's memory is, from its /metrics (prom-client's Node metrics), in MB. */
  const heapMetrics = async (): Promise<{ heap: Record<string, number> }> => {
    const text = await (await fetch(`${adminUrl}/metrics`)).text();
    const heap: Record<string, number> = {};
    for (const m of text.matchAll(/^nodejs_(heap_size_used|heap_size_total|external_memory)_bytes (\S+)$/gm)) heap[m[1]!] = Math.round(Number(m[2]) / 1e6);
    for (const m of text.matchAll(/^nodejs_heap_space_size_(used|total)_bytes\{space="(\w+)"\} (\S+)$/gm)) heap[`${m[2]}_${m[1]}`] = Math.round(Number(m[3]) / 1e6);
    return { heap };
  };
  // Memory of the compiled build in PostgreSQL mode: at ready, after 10 s idle (no stream yet), and
  // holding N ADS streams of a simulated fleet (bench/start-streams.ts, its own process); with
  // --against, the other build's start follows in the same way.
  let streams: Record<string, Record<string, unknown>> | undefined;
  if (args.streams > 0) {
    streams = {};
    for (const compiled of against ? [true, false] : [true]) {
      const name = compiled ? 'compiled' : 'against';
      const a = await start(compiled);
      await new Promise((r) => setTimeout(r, 10_000));
      const idleMb = rssMB(a.proc.child.pid);
      const idleHeap = (await heapMetrics()).heap;
      const child = fork(path.join(ROOT, 'bench/start-streams.ts'), ['--child', JSON.stringify({ address: env.PORTICO_GRPC_ADDR, streams: args.streams, group: 'edge' })]);
      const synced = await new Promise<FromStreams>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${args.streams} streams not synced after 300 s`)), 300_000);
        child.once('message', (m: FromStreams) => {
          clearTimeout(t);
          resolve(m);
        });
      });
      if (synced.kind === 'failed') throw new Error(`streams: ${synced.message}`);
      const syncedMb = rssMB(a.proc.child.pid);
      await new Promise((r) => setTimeout(r, 10_000));
      streams[name] = {
        streams: synced.streams,
        syncMs: synced.ms,
        bytesServed: synced.bytes,
        rssAtReadyMb: a.rssMb,
        rssIdleMb: idleMb,
        rssAtSyncMb: syncedMb,
        rssSteadyMb: rssMB(a.proc.child.pid),
        idleHeap,
        steadyHeap: (await heapMetrics()).heap,
      };
      child.send({ kind: 'stop' });
      await a.proc.stop();
      load.push(spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim());
      process.stderr.write(`start: ${name} ${args.streams} streams: ${JSON.stringify(streams[name])}\n`);
    }
  }
  // Node flags side by side: each variant started in turn, so load drifts touch them alike.
  let nodeFlags: Record<string, unknown> | undefined;
  if (args['node-flags'] !== undefined) {
    // With --against, each flag set runs on both builds (the other's names end in ' @against').
    const flagSets = String(args['node-flags']).split('|');
    const variants = against ? flagSets.flatMap((f) => [f, `${f} @against`]) : flagSets;
    type Variant = {
      ms: number;
      cpuS: number;
      rssMb: number;
      idleRssMb: number;
      idleCpuS: number;
      heap: Record<string, number>;
      streamSnapshotMs: number;
      streamCpuS: number;
      rssStreamMb: number;
      streamHeap: Record<string, number>;
    };
    const byVariant = new Map<string, Variant[]>(variants.map((v) => [v, []]));
    for (let i = 0; i < args.runs; i++) {
      for (const v of variants) {
        const a = v.endsWith(' @against') ? await start(false, v.slice(0, -' @against'.length)) : await start(true, v);
        await new Promise((r) => setTimeout(r, 10_000));
        const idle = { ms: a.ms, cpuS: a.cpuS, rssMb: a.rssMb, idleRssMb: rssMB(a.proc.child.pid), idleCpuS: round2(cpuSeconds(a.proc.child.pid)), ...(await heapMetrics()) };
        // One Envoy connects: the translation (now or at start) is then held; RSS 5 s later.
        const t1 = performance.now();
        await discover(env.PORTICO_GRPC_ADDR, 'edge');
        const streamSnapshotMs = Math.round(performance.now() - t1);
        const streamCpuS = round2(cpuSeconds(a.proc.child.pid));
        await new Promise((r) => setTimeout(r, 5_000));
        byVariant.get(v)!.push({ ...idle, streamSnapshotMs, streamCpuS, rssStreamMb: rssMB(a.proc.child.pid), streamHeap: (await heapMetrics()).heap });
        await a.proc.stop();
        process.stderr.write(`start: flags '${v}': ${JSON.stringify(byVariant.get(v)!.at(-1))}\n`);
      }
      load.push(spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim());
    }
    nodeFlags = Object.fromEntries(
      [...byVariant].map(([v, rs]) => [
        v || '(defaults)',
        {
          medianMs: median(rs.map((r) => r.ms)),
          medianCpuS: round2(median(rs.map((r) => r.cpuS))),
          medianRssAtReadyMb: median(rs.map((r) => r.rssMb)),
          medianRssIdleMb: median(rs.map((r) => r.idleRssMb)),
          medianRssWithStreamMb: median(rs.map((r) => r.rssStreamMb)),
          medianCpuAtStreamSnapshotS: round2(median(rs.map((r) => r.streamCpuS))),
          runs: rs,
        },
      ]),
    );
  }
  const summary = Object.fromEntries(
    Object.entries(results)
      .filter(([, v]) => v.length > 0)
      .map(([k, v]) => [
        k,
        {
          medianMs: median(v.map((r) => r.ms)),
          maxMs: Math.max(...v.map((r) => r.ms)),
          medianSnapshotMs: median(v.map((r) => r.snapshotMs)),
          medianCpuS: round2(median(v.map((r) => r.cpuS))),
          runs: v,
        },
      ]),
  );
  printJson({
    benchmark: 'start',
    database: args.embedded ? 'embedded' : 'postgresql',
    model: { routes: args.products * ROUTES_PER_PRODUCT, products: args.products, partners: 200, documentBytes: text.length },
    ...summary,
    [against ? 'compiledToAgainstMedianRatio' : 'compiledToTsxMedianRatio']: nodeFlags
      ? undefined
      : round2(median(results.compiledAfterStop!.map((r) => r.ms)) / median(results[`${second}AfterStop`]!.map((r) => r.ms))),
    ...(against ? { against } : {}),
    ...(streams ? { memory: streams } : {}),
    role: args.role,
    ...(nodeFlags ? { nodeFlags } : {}),
    loadavg: load,
    target: { startToReadyMs: 3000, rssBeforeStreamsMb: 100, rssWith1000StreamsMb: 200 },
  });
} finally {
  await ws.close();
  await pg?.stop();
}
