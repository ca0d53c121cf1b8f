// Benchmark: seed 003's /api/home aggregation (three parallel calls, the user reduced to four fields,
// the answers stitched) through Portico twice — Envoy edge → flow runtime → upstreams (step calls
// straight to the services, the default for services that need nothing only Envoy gives), and with
// PORTICO_FLOWS_DIRECT_CALLS=off, where every step call goes back through Envoy's step listener —
// beside a minimal Go aggregator (bench/flows-peer: net/http, one goroutine per call, as KrakenD) on
// the same three upstreams (Go, each answering after --delay-ms). In one run, alternating:
//   latency     sequential requests (one in flight): p50 over the slowest call, measured the same
//               way straight at an upstream, so "added" is what the aggregator adds
//   throughput  wrk with --connections in flight: requests per CPU-second of the gateway's processes
//               (Portico: Envoy + the control plane hosting the runtime; Go: the aggregator);
//               upstream and load-generator CPU are not counted for either
//   envoy-proxy  the same wrk load on a plain route of the same Envoy to one upstream (no flow): the
//               Envoy hop's CPU per request at this concurrency and upstream delay, beside Go's CPU
//               per aggregation, gives the runtime's budget for the 0.7x target (runtimeBudgetUs)
// Usage: node --import tsx bench/flows.ts [--duration 10] [--connections 64] [--delay-ms 20]
//   [--rounds 2] [--latency-requests 300] [--envoy-concurrency 1] [--cpu-prof DIR] (a V8 CPU profile
//   of the direct-calls control plane, written to DIR when it stops) [--against DIR] (A/B in one run: a
//   third Portico, direct calls, from the checkout DIR on the same upstreams, measured in each round
//   right after this one, alternating which goes first) [--node-flags=...] (Node flags for this
//   checkout's control planes, e.g. a V8 heap setting) [--against-node-flags=...] (the same for DIR's:
//   with NODE_ENV=production, which runs both compiled builds, a checkout whose bin/portico sets
//   another young-generation size can be given this one's) [--no-via-envoy] (leave out the through-Envoy Portico)
//   [--no-envoy-execution] (leave out portico-envoy: the same flow with execution: envoy, run by the
//   edge Envoy's flows Wasm filter as the control plane configures it, no runtime hop; its CPU is the
//   Envoy's and the control plane's; needs flows-wasm/ built by scripts/setup.sh) [--no-portico] (leave
//   out the runtime Porticos: Go and portico-envoy only)
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { homeFlow, SEED_HOME_BODY, type FlowStepSpec } from '../src/flows/index.ts';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { cpuMeter, flags, median, printJson, round2, wrk } from './harness.ts';
import { startControlPlane, startGatewayEnvoy, workspace, type Proc, type Workspace } from './stack.ts';

const args = flags({
  duration: 10,
  connections: 64,
  'delay-ms': 20,
  rounds: 2,
  'latency-requests': 300,
  'envoy-concurrency': 1,
  'cpu-prof': '',
  against: '',
  'node-flags': '',
  'against-node-flags': '',
  'no-via-envoy': false,
  'no-envoy-execution': false,
  'no-portico': false,
});
const USER = 'usr_8a3f';

function buildPeer(ws: Workspace): string {
  const bin = path.join(ws.dir, 'flows-peer');
  const r = spawnSync('go', ['build', '-trimpath', '-buildvcs=false', '-o', bin, '.'], {
    cwd: fileURLToPath(new URL('./flows-peer/', import.meta.url)),
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/local/go/bin`, GOFLAGS: '-mod=mod' },
  });
  if (r.error || r.status !== 0) throw new Error(`building bench/flows-peer failed (is Go installed?): ${r.error?.message ?? `exit ${r.status}`}`);
  return bin;
}

async function listening(port: number, proc: Proc, what: string): Promise<void> {
  await waitFor(
    what,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`${what} exited (${proc.child.exitCode})`);
      return (await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined)) ? true : undefined;
    },
    30_000,
    100,
  );
}

/** The home flow reading the user from the query (no authentication: neither gateway does any here). */
function benchFlow() {
  const flow = homeFlow();
  const rewrite = (steps: FlowStepSpec[]) => {
    for (const s of steps) {
      if (s.call) {
        if (s.call.path) s.call.path = s.call.path.replace('request.identity.claims.sub', 'request.query.user');
        for (const k of Object.keys(s.call.query ?? {})) s.call.query![k] = s.call.query![k]!.replace('request.identity.claims.sub', 'request.query.user');
      }
      if (s.parallel) rewrite(s.parallel.steps);
    }
  };
  rewrite(flow.steps);
  return flow;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(url: string): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - t0 }));
      })
      .on('error', reject);
  });
}

/** p50 of sequential requests (after a warm-up of 30). */
async function sequentialP50(url: string, n: number): Promise<number> {
  for (let i = 0; i < 30; i++) await get(url);
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push((await get(url)).ms);
  return round2(median(times));
}

/** CPU microseconds per request of each process. */
function perRequestUs(cpu: Record<string, number>, requests: number): Record<string, number> {
  return Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round((v * 1e6) / Math.max(1, requests))]));
}

async function main(): Promise<void> {
  // Taken now: the settings block is printed at the end, when the load has moved.
  const loadAtStart = os.loadavg().map(round2);
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed (scripts/setup.sh)');
  const ws = workspace('portico-bench-flows-');
  try {
    const peerBin = buildPeer(ws);
    const ports = { users: await freePort(), orders: await freePort(), products: await freePort() };
    const upstreams = Object.entries(ports).map(([name, port]) => {
      const p = ws.run(peerBin, ['-mode', 'upstream', '-listen', `127.0.0.1:${port}`, '-delay', `${args['delay-ms']}ms`], { ...process.env, GOMAXPROCS: '1' });
      return { name, port, p };
    });
    for (const u of upstreams) await listening(u.port, u.p, `upstream ${u.name}`);

    /** One Portico (control plane hosting the runtime, and its Envoy) with step calls direct or through Envoy, or the flow run by Envoy. */
    const startPortico = async (direct: 'auto' | 'off' | 'envoy', root?: string) => {
      const tag = root ? `${direct}-against` : direct;
      const nodeFlags = [root ? args['against-node-flags'] : args['node-flags'], args['cpu-prof'] && direct === 'auto' && !root ? `--cpu-prof --cpu-prof-dir=${path.resolve(args['cpu-prof'])}` : '']
        .filter(Boolean)
        .join(' ');
      const [flowsPort, stepPort, edgePort] = [await freePort(), await freePort(), await freePort()];
      const cp = await startControlPlane(
        ws,
        {
          PORTICO_DATA_DIR: path.join(ws.dir, `data-${tag}`),
          PORTICO_FLOWS_LISTEN_ADDR: `127.0.0.1:${flowsPort}`,
          PORTICO_FLOWS_STEP_ADDR: `127.0.0.1:${stepPort}`,
          PORTICO_FLOWS_DIRECT_CALLS: direct === 'off' ? 'off' : 'auto',
          ...(nodeFlags ? { PORTICO_NODE_FLAGS: nodeFlags } : {}),
          PORTICO_ACCESS_LOG: 'false',
        },
        root,
      );
      await cp.apply({
        portico: 'v1',
        gatewayGroups: [{ name: 'bench', listeners: [{ name: 'http', port: edgePort, address: '127.0.0.1' }] }],
        services: Object.entries(ports).map(([name, port]) => ({ name, endpoints: [{ host: '127.0.0.1', port }], circuitBreaker: { maxRequests: 100_000, maxPendingRequests: 100_000 } })),
        products: [
          {
            name: 'home',
            gatewayGroups: ['bench'],
            basePath: '/api',
            auth: { accept: ['none'] },
            routes: [{ name: 'home', match: { path: { type: 'exact', value: '/home' }, methods: ['GET'] }, flow: { ...benchFlow(), ...(direct === 'envoy' ? { execution: 'envoy' as const } : {}) } }],
          },
          // Envoy alone: /users/{id} proxied to the users service, no flow.
          {
            name: 'plain',
            gatewayGroups: ['bench'],
            basePath: '/users',
            auth: { accept: ['none'] },
            routes: [{ name: 'user', match: { path: { type: 'prefix', value: '/' }, methods: ['GET'] }, service: 'users' }],
          },
        ],
      });
      const envoy = await startGatewayEnvoy(ws, envoyBin, { nodeId: `bench-flows-${tag}`, group: 'bench', xds: `127.0.0.1:${cp.grpcPort}`, concurrency: args['envoy-concurrency'] });
      await waitFor('Envoy holds the model', () => cp.settled(`bench-flows-${tag}`).then((ok) => (ok ? true : undefined)), 60_000, 200);
      return {
        url: `http://127.0.0.1:${edgePort}/api/home?user=${USER}`,
        proxyUrl: `http://127.0.0.1:${edgePort}/users/${USER}`,
        pids: { envoy: envoy.proc.child.pid, portico: cp.proc.child.pid },
      };
    };
    const portico = args['no-portico'] ? undefined : await startPortico('auto');
    const against = args.against && portico ? await startPortico('auto', path.resolve(args.against)) : undefined;
    const porticoViaEnvoy = args['no-via-envoy'] || !portico ? undefined : await startPortico('off');
    const porticoEnvoy = args['no-envoy-execution'] ? undefined : await startPortico('envoy');
    const goPort = await freePort();
    const goProc = ws.run(
      peerBin,
      [
        '-mode',
        'aggregator',
        '-listen',
        `127.0.0.1:${goPort}`,
        '-users',
        `http://127.0.0.1:${ports.users}`,
        '-orders',
        `http://127.0.0.1:${ports.orders}`,
        '-products',
        `http://127.0.0.1:${ports.products}`,
      ],
      { ...process.env, GOMAXPROCS: '2' },
    );
    await listening(goPort, goProc, 'the Go aggregator');

    type Target = { url: string; pids: Record<string, number | undefined> };
    const targets: Record<string, Target> = {};
    if (portico) targets.portico = { url: portico.url, pids: portico.pids };
    if (against) targets.against = { url: against.url, pids: against.pids };
    if (porticoViaEnvoy) targets['portico-via-envoy'] = { url: porticoViaEnvoy.url, pids: porticoViaEnvoy.pids };
    targets.go = { url: `http://127.0.0.1:${goPort}/api/home?user=${USER}`, pids: { go: goProc.child.pid } };
    if (porticoEnvoy) targets['portico-envoy'] = { url: porticoEnvoy.url, pids: porticoEnvoy.pids };
    const proxied = portico ? await get(portico.proxyUrl) : undefined;
    if (proxied && proxied.status !== 200) throw new Error(`the plain route answered ${proxied.status} ${proxied.body}`);
    // Both answer seed 003's body.
    for (const [name, t] of Object.entries(targets)) {
      await waitFor(`${name} answers`, async () => ((await get(t.url).catch(() => undefined))?.status === 200 ? true : undefined), 30_000, 200);
      const r = await get(t.url);
      const same = isDeepStrictEqual(JSON.parse(r.body), SEED_HOME_BODY);
      if (!same) throw new Error(`${name} answered ${r.status} ${r.body}`);
    }

    const rounds: Array<Record<string, unknown>> = [];
    for (let round = 0; round < args.rounds; round++) {
      const direct = await sequentialP50(`http://127.0.0.1:${ports.users}/users/${USER}`, args['latency-requests']);
      const out: Record<string, unknown> = { round, slowestCallP50Ms: direct };
      // With --against the two Porticos swap places every round (this one first in even rounds).
      const order = Object.keys(targets);
      if (against && round % 2 === 1) order.splice(0, 2, 'against', 'portico');
      for (const name of order) {
        const t = targets[name]!;
        const p50 = await sequentialP50(t.url, args['latency-requests']);
        const meter = cpuMeter(t.pids);
        const w = await wrk({ url: t.url, durationS: args.duration, threads: 1, connections: args.connections });
        const cpu = meter();
        const cpuTotal = Object.values(cpu).reduce((a, b) => a + b, 0);
        out[name] = {
          sequentialP50Ms: p50,
          addedP50Ms: round2(p50 - direct),
          rps: w.rps,
          loadedP50Ms: w.p50Ms,
          loadedP99Ms: w.p99Ms,
          non2xx: w.non2xx,
          socketErrors: w.socketErrors,
          cpuSeconds: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round2(v)])),
          cpuUsPerRequest: perRequestUs(cpu, w.requests),
          requestsPerCpuSecond: Math.round(w.requests / cpuTotal),
        };
      }
      // The same load through the same Envoy on a plain route: what the Envoy hop alone costs.
      if (portico) {
        const meter = cpuMeter({ envoy: portico.pids.envoy });
        const w = await wrk({ url: portico.proxyUrl, durationS: args.duration, threads: 1, connections: args.connections });
        out['envoy-proxy'] = { rps: w.rps, loadedP50Ms: w.p50Ms, non2xx: w.non2xx, socketErrors: w.socketErrors, cpuUsPerRequest: perRequestUs(meter(), w.requests) };
      }
      rounds.push(out);
    }
    const has = (name: string) => name in targets;
    const rps = (r: Record<string, unknown>, name: string) => (r[name] as Record<string, number>).requestsPerCpuSecond!;
    const pick = (name: string, k: string) => rounds.map((r) => (r[name] as Record<string, number>)[k]!);
    const us = (name: string, proc: string) => median(rounds.map((r) => (r[name] as { cpuUsPerRequest: Record<string, number> }).cpuUsPerRequest[proc] ?? 0));
    const porticoNames = ['portico', 'against', 'portico-via-envoy'].filter(has);
    const cpuUs: Record<string, Record<string, number>> = {};
    for (const n of porticoNames) cpuUs[n] = { envoy: us(n, 'envoy'), runtime: us(n, 'portico') };
    cpuUs.go = { go: us('go', 'go') };
    if (portico) cpuUs['envoy-proxy'] = { envoy: us('envoy-proxy', 'envoy') };
    if (porticoEnvoy) cpuUs['portico-envoy'] = { envoy: us('portico-envoy', 'envoy'), controlPlane: us('portico-envoy', 'portico') };
    const aggregators = [...porticoNames, 'go', ...(porticoEnvoy ? ['portico-envoy'] : [])];
    const perCpu: Record<string, number> = {};
    for (const n of aggregators) perCpu[n] = median(pick(n, 'requestsPerCpuSecond'));
    const goUs = cpuUs.go.go!;
    printJson({
      bench: 'flows',
      settings: { ...args, cpus: os.cpus().length, loadAverage: loadAtStart },
      rounds,
      summary: {
        addedP50Ms: { ...Object.fromEntries(aggregators.map((n) => [n, median(pick(n, 'addedP50Ms'))])), target: '< 2 (portico, portico-envoy)' },
        requestsPerCpuSecond: {
          ...perCpu,
          ...(portico ? { ratio: round2(perCpu.portico! / perCpu.go!) } : {}),
          ...(has('portico-via-envoy') ? { ratioViaEnvoy: round2(perCpu['portico-via-envoy']! / perCpu.go!) } : {}),
          ...(porticoEnvoy
            ? { ratioEnvoyExecution: round2(perCpu['portico-envoy']! / perCpu.go!), ratioEnvoyExecutionPerRound: rounds.map((r) => round2(rps(r, 'portico-envoy') / rps(r, 'go'))) }
            : {}),
          target: '>= 0.7 (ratio: the runtime; ratioEnvoyExecution: the flow run by Envoy)',
        },
        // This checkout over --against, per round (interleaved): requests per CPU-second and the runtime's CPU per request.
        ...(has('against')
          ? {
              ab: {
                requestsPerCpuSecond: rounds.map((r) => round2((r.portico as Record<string, number>).requestsPerCpuSecond! / (r.against as Record<string, number>).requestsPerCpuSecond!)),
                runtimeCpuUs: rounds.map((r) =>
                  round2((r.portico as { cpuUsPerRequest: Record<string, number> }).cpuUsPerRequest.portico! / (r.against as { cpuUsPerRequest: Record<string, number> }).cpuUsPerRequest.portico!),
                ),
              },
            }
          : {}),
        // CPU per request (us) by process (medians of the rounds); envoy-proxy is the Envoy hop alone;
        // portico-envoy's Envoy runs the flow itself (its control plane only serves the config).
        cpuUsPerRequest: cpuUs,
        ...(portico
          ? {
              // What the runtime may spend per aggregation for 0.7x: Go's CPU / 0.7 less the flow route's Envoy CPU.
              runtimeBudgetUs: Math.round(goUs / 0.7 - cpuUs.portico!.envoy!),
              // Go's CPU per aggregation over the Envoy hop alone: Portico's ratio if its runtime cost nothing.
              ratioCeilingEnvoyAlone: round2(goUs / cpuUs['envoy-proxy']!.envoy!),
            }
          : {}),
      },
      loadAverageAfter: os.loadavg().map(round2),
    });
  } finally {
    agent.destroy();
    await ws.close();
  }
}

await main();
