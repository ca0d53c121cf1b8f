// Benchmark: what Idempotency-Key protection adds to a POST. Two routes of one public product to the
// same direct-response upstream Envoy, identical but for `idempotency`: `plain` and `protected`. wrk
// sends the same POST to each in turn, every request with a fresh key (a Lua counter), so each
// protected request is a first one: the processor's key claim, Envoy buffering both bodies, and the
// stored response — the full cost, not a replay's. Low concurrency, so p50 is latency, not queueing.
// CPU of every process from /proc; the load average with the figures. Prints JSON.
// Run under `flock /work/notes/bench.lock`.
//
// Usage: node --import tsx bench/idempotency.ts [--duration 8] [--connections 4] [--rounds 2] [--redis redis://…] [--dev]
//   The control planes run their compiled build (dist/, `npm run build` first in each checkout), as production does;
//   --dev runs src/ through tsx instead (its per-function helpers cost the processor ~10 us per request).
//   [--node-flags '…'] (PORTICO_NODE_FLAGS of both control planes, e.g. --max-semi-space-size=16)
//   [--cpu-prof DIR] (a V8 CPU profile of this checkout's control plane, which hosts the processor, written to DIR when it stops)
//   [--against DIR] (A/B in one run: a second control plane and gateway Envoy from the checkout DIR, on the same
//   upstream; each round runs both, in alternating order, plain then protected; the JSON gives both)
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { cpuMeter, flags, median, printJson, round2, wrk, wrkFigures } from './harness.ts';
import { startControlPlane, startDirectUpstream, startGatewayEnvoy, workspace, type Workspace } from './stack.ts';

const args = flags({ duration: 8, connections: 4, rounds: 2, redis: undefined, 'cpu-prof': '', against: undefined, dev: false, 'node-flags': '' });
const GROUP = 'edge';
const NODE = 'bench-idempotency';

function document(listenerPort: number, upstreamPort: number): Record<string, unknown> {
  const route = (name: string, extra: Record<string, unknown> = {}) => ({ name, match: { path: { type: 'exact', value: `/${name}` }, methods: ['POST'] }, service: 'upstream', ...extra });
  return {
    portico: 'v1',
    gatewayGroups: [{ name: GROUP, listeners: [{ name: 'http', port: listenerPort, address: '127.0.0.1' }] }],
    services: [{ name: 'upstream', endpoints: [{ host: '127.0.0.1', port: upstreamPort }] }],
    products: [{ name: 'bench', gatewayGroups: [GROUP], basePath: '/bench', auth: { accept: ['none'] }, routes: [route('plain'), route('protected', { idempotency: { ttlSeconds: 600 } })] }],
  };
}

// One fresh key per request: a prefix per wrk run (a table's address repeats across runs, so keys of
// the warm-up would come back as replays), the thread's address keeping threads apart, and a counter.
const script = (run: string) => `
local n = 0
local me = "${run}-" .. tostring({}):gsub("table: ", "")
request = function()
  n = n + 1
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json", ["Idempotency-Key"] = '"' .. me .. "-" .. n .. '"' }, '{"item":"book","qty":1}')
end
`;

const diff = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)])
      .filter(([, v]) => v !== 0),
  );

/** A control plane (from checkout `root`) and its gateway Envoy serving both routes to `upstream`. */
async function startStack(ws: Workspace, envoyBin: string, upstream: Awaited<ReturnType<typeof startDirectUpstream>>, name: string, root?: string) {
  const cp = await startControlPlane(
    ws,
    {
      // Each control plane its own embedded database (one process may hold a data directory).
      PORTICO_DATA_DIR: path.join(ws.dir, `data-${name}`),
      ...(args.dev ? {} : { NODE_ENV: 'production' }),
      ...(args.redis ? { REDIS_URL: args.redis } : {}),
      PORTICO_NODE_FLAGS: [args['node-flags'], args['cpu-prof'] && !root ? `--cpu-prof --cpu-prof-dir=${path.resolve(args['cpu-prof'])}` : ''].filter(Boolean).join(' '),
    },
    ...(root ? [root] : []),
  );
  const nodeId = `${NODE}-${name}`;
  const gateway = await startGatewayEnvoy(ws, envoyBin, { nodeId, group: GROUP, xds: `127.0.0.1:${cp.grpcPort}`, concurrency: 1 });
  const listenerPort = await freePort();
  await cp.apply(document(listenerPort, upstream.port));
  const base = `http://127.0.0.1:${listenerPort}/bench`;
  await waitFor(
    'Envoy to serve both routes, the protected one through the processor',
    async () => {
      if (!(await cp.settled(nodeId))) return undefined;
      const post = (p: string, key: string) => fetch(`${base}/${p}`, { method: 'POST', headers: { 'idempotency-key': key, 'content-type': 'application/json' }, body: '{}' }).catch(() => undefined);
      const key = `"ready-${Date.now()}"`;
      const plain = await post('plain', key);
      await post('protected', key);
      const replay = await post('protected', key);
      return plain?.status === 200 && replay?.headers.get('idempotent-replayed') === 'true' ? true : undefined;
    },
    60_000,
    200,
  );
  // Where non-2xx responses come from: the gateway's response codes, ext_proc's own counters, the
  // processor's connections (a GOAWAY from it refuses the streams in flight), the processor's outcomes.
  const statuses = async (): Promise<Record<string, number>> => {
    const envoy = await gateway.stats('(downstream_rq_[2-5]xx$|ext_proc\\.|cluster\\.portico_idempotency\\.upstream_cx_(total|close_notify|protocol_error|destroy_remote)$)');
    const metrics = await (await fetch(`${cp.adminUrl}/metrics`, { headers: { authorization: `Bearer ${cp.token}` } })).text();
    const outcomes = Object.fromEntries(
      [...metrics.matchAll(/^portico_idempotency_(requests|responses)_total\{[^}]*(?:outcome|result)="(\w+)"[^}]*\} (\d+)/gm)].map((m) => [`processor.${m[1]}.${m[2]}`, Number(m[3])]),
    );
    return { ...Object.fromEntries(Object.entries(envoy).filter(([k]) => !k.startsWith('http.admin') && !k.includes('xds'))), ...outcomes };
  };
  return { name, base, statuses, pids: { gateway: gateway.proc.child.pid, controlPlane: cp.proc.child.pid, upstream: upstream.proc.child.pid } };
}

type Round = ReturnType<typeof wrkFigures> & { perCpuSecond: number; statuses: Record<string, number> };
type Rounds = { plain: Round[]; protected: Round[] };

function figures(r: Rounds) {
  const p50 = (name: 'plain' | 'protected') => median(r[name].map((x) => x.p50Ms));
  const added = Math.round((p50('protected') - p50('plain')) * 1000) / 1000;
  return {
    plain: { p50Ms: p50('plain'), rounds: r.plain },
    protected: { p50Ms: p50('protected'), rounds: r.protected },
    addedP50Ms: added,
    perCpuSecondProtectedOverPlain: round2(median(r.protected.map((x) => x.perCpuSecond)) / median(r.plain.map((x) => x.perCpuSecond))),
    met: added < 1,
  };
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const ws = workspace('portico-bench-idem-');
  try {
    let runs = 0;
    const scriptFile = () => {
      const file = path.join(ws.dir, `post-${++runs}.lua`);
      writeFileSync(file, script(`r${runs}-${Date.now()}`));
      return file;
    };
    const upstream = await startDirectUpstream(ws, envoyBin);
    const stacks = [await startStack(ws, envoyBin, upstream, 'this')];
    if (args.against) stacks.push(await startStack(ws, envoyBin, upstream, 'against', path.resolve(args.against)));
    const loadBefore = os.loadavg().map(round2);
    const rounds = new Map<string, Rounds>(stacks.map((st) => [st.name, { plain: [], protected: [] }]));
    for (let i = 0; i < args.rounds; i++) {
      for (const st of i % 2 === 0 ? stacks : [...stacks].reverse()) {
        for (const name of ['plain', 'protected'] as const) {
          const load = { url: `${st.base}/${name}`, threads: 1, connections: args.connections };
          await wrk({ ...load, script: scriptFile(), durationS: 2 }); // warm-up
          const statusesBefore = await st.statuses();
          const used = cpuMeter(st.pids);
          const w = await wrk({ ...load, script: scriptFile(), durationS: args.duration });
          const cpu = used();
          const statusDelta = diff(await st.statuses(), statusesBefore);
          cpu.loadGenerator = w.loadGeneratorCpu;
          const total = Object.values(cpu).reduce((a, b) => a + b, 0);
          rounds.get(st.name)![name].push({ ...wrkFigures(w, cpu), perCpuSecond: Math.round(w.requests / Math.max(0.001, total)), statuses: statusDelta });
          process.stderr.write(`${st.name} ${name}: p50 ${w.p50Ms} ms, ${Math.round(w.rps)} req/s\n`);
        }
      }
    }
    printJson({
      benchmark: 'idempotency',
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadAverage: { start: loadBefore, end: os.loadavg().map(round2) } },
      settings: {
        durationS: args.duration,
        rounds: args.rounds,
        wrk: { threads: 1, connections: args.connections },
        envoyConcurrency: 1,
        store: args.redis ? 'redis' : 'memory',
        controlPlane: args.dev ? 'src via tsx' : 'compiled build',
        nodeFlags: args['node-flags'],
      },
      note: 'Every protected request carries a fresh key (a first request, stored). The processor runs in the control-plane process (role all). Medians of the rounds.',
      ...figures(rounds.get('this')!),
      target: { addedP50Ms: 1 },
      ...(args.against ? { against: { dir: path.resolve(args.against), ...figures(rounds.get('against')!) } } : {}),
    });
  } finally {
    await ws.close();
  }
}

await main();
