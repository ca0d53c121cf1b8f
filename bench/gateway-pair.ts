// Benchmark: plain proxying and other scenarios measured at the same time, each on its own gateway
// Envoy (its own gateway group, served by one control plane) with its own upstream and its own wrk.
// gateway-throughput.ts runs one scenario after another, and on a shared machine whose speed drifts
// from one second to the next its per-round ratios spread 0.6–1.3; here every scenario runs through
// the same seconds, so a drift weighs on all alike and each round's ratio is a fair comparison.
// Requests per CPU-second of a scenario: its requests over the CPU of its gateway Envoy, its upstream,
// its wrk and the control plane's CPU in proportion to its requests (the control plane serves all of
// them: xDS once, the access-log stream per request). Prints JSON.
//
// Usage: node --import tsx bench/gateway-pair.ts [--scenarios plain,key-native,jwt-native] [--rounds 10]
//   [--duration 5] [--connections 32] [--threads 1] [--envoy-concurrency 1] [--layout shared|pinned]
//   --layout pinned: every gateway Envoy on CPU 0, everything else on the other CPUs.
import os from 'node:os';
import { waitFor, freePort, componentPath } from '../test/support/components.ts';
import { benchToken, headersFor, NATIVE, pairDocument, pairGroup, pairProduct, type Scenario } from './gateway-scenarios.ts';
import { cpuMeter, flags, headerObject, median, printJson, round2, wrk, type WrkResult } from './harness.ts';
import { newApiKey, pinLayout, startControlPlane, startDirectUpstream, startGatewayEnvoy, workspace } from './stack.ts';

const args = flags({
  scenarios: 'plain,key-native,jwt-native',
  rounds: 10,
  duration: 5,
  connections: 32,
  threads: 1,
  'envoy-concurrency': 1,
  layout: 'shared',
});
const SCENARIOS = args.scenarios.split(',').map((s) => s.trim()) as Scenario[];
if (SCENARIOS[0] !== 'plain' || SCENARIOS.length < 2) throw new Error('--scenarios: plain first, then at least one other');
if (args.layout !== 'shared' && args.layout !== 'pinned') throw new Error(`--layout: shared or pinned, not ${args.layout}`);

const ratio3 = (x: number) => Math.round(x * 1000) / 1000;

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const layout = args.layout === 'pinned' ? pinLayout() : undefined;
  const ws = workspace('portico-bench-pair-');
  try {
    const key = newApiKey();
    const token = await benchToken();
    const sides: Array<{ s: Scenario; listenerPort: number; upstream: Awaited<ReturnType<typeof startDirectUpstream>> }> = [];
    for (const s of SCENARIOS) sides.push({ s, listenerPort: await freePort(), upstream: await startDirectUpstream(ws, envoyBin) });
    const cp = await startControlPlane(ws, { PORTICO_ACCESS_LOG: 'true' });
    const gateways = new Map<Scenario, Awaited<ReturnType<typeof startGatewayEnvoy>>>();
    for (const { s } of sides) {
      gateways.set(
        s,
        await startGatewayEnvoy(ws, envoyBin, {
          nodeId: `bench-${s}`,
          group: pairGroup(s),
          xds: `127.0.0.1:${cp.grpcPort}`,
          concurrency: args['envoy-concurrency'],
          ...(layout ? { wrap: layout.gatewayWrap } : {}),
        }),
      );
    }
    await cp.apply(
      pairDocument(
        sides.map(({ s, listenerPort, upstream }) => ({ s, listenerPort, upstreamPort: upstream.port })),
        key,
      ),
    );
    const urlOf = (s: Scenario) => `http://127.0.0.1:${sides.find((d) => d.s === s)!.listenerPort}/${pairProduct(s)}/item`;
    for (const { s } of sides) {
      await waitFor(
        `the ${s} gateway to serve`,
        async () => {
          if (!(await cp.settled(`bench-${s}`))) return undefined;
          const r = await fetch(urlOf(s), { headers: headerObject(headersFor(s, { key, token })) }).catch(() => undefined);
          if (r?.status !== 200) return undefined;
          // Native buckets say nothing on allowed responses: their counters show they count.
          if (NATIVE.includes(s) && !Object.values(await gateways.get(s)!.stats('^portico_plan_limit_1\\.http_local_rate_limit\\.ok$')).some((n) => n > 0)) return undefined;
          return true;
        },
        60_000,
        200,
      );
    }

    const pids: Record<string, number | undefined> = { controlPlane: cp.proc.child.pid };
    for (const { s, upstream } of sides) {
      pids[`gateway:${s}`] = gateways.get(s)!.proc.child.pid;
      pids[`upstream:${s}`] = upstream.proc.child.pid;
    }
    const load = (s: Scenario, durationS: number) => wrk({ url: urlOf(s), headers: headersFor(s, { key, token }), threads: args.threads, connections: args.connections, durationS });
    await Promise.all(SCENARIOS.map((s) => load(s, 2))); // warm-up: connections, caches

    type Round = { requests: number; cpu: number; gatewayCpuMsPerRequest: number };
    const rounds: Array<Map<Scenario, Round>> = [];
    let discarded = 0;
    for (let i = 0; i < args.rounds; i++) {
      const used = cpuMeter(pids);
      const results = await Promise.all(SCENARIOS.map((s) => load(s, args.duration)));
      const cpu = used();
      const bad = [...Object.entries(cpu).filter(([, v]) => !Number.isFinite(v)), ...results.flatMap((w, j) => (Number.isFinite(w.requests + w.loadGeneratorCpu) ? [] : [[SCENARIOS[j], w]]))];
      // A report without figures (before harness.ts waited for 'close': 2 in 60 rounds): the round is left out, and counted.
      if (bad.length) {
        process.stderr.write(`round ${i + 1}: unreadable figures, round left out: ${JSON.stringify(bad)}\n`);
        discarded++;
        continue;
      }
      const all = results.reduce((a, w) => a + w.requests, 0);
      const round = new Map<Scenario, Round>();
      SCENARIOS.forEach((s, j) => {
        const w: WrkResult = results[j]!;
        if (w.non2xx || w.socketErrors) throw new Error(`${s}: ${w.non2xx} non-2xx, ${w.socketErrors} socket errors`);
        const own = (cpu[`gateway:${s}`] ?? 0) + (cpu[`upstream:${s}`] ?? 0) + w.loadGeneratorCpu + ((cpu.controlPlane ?? 0) * w.requests) / Math.max(1, all);
        round.set(s, { requests: w.requests, cpu: own, gatewayCpuMsPerRequest: ((cpu[`gateway:${s}`] ?? 0) * 1000) / Math.max(1, w.requests) });
      });
      rounds.push(round);
      const line = SCENARIOS.map((s) => `${s} ${Math.round(round.get(s)!.requests / round.get(s)!.cpu)}/CPU-s`).join(', ');
      process.stderr.write(`round ${i + 1}/${args.rounds}: ${line}\n`);
    }

    const perCpu = (s: Scenario, r: Map<Scenario, Round>) => r.get(s)!.requests / r.get(s)!.cpu;
    const summary = Object.fromEntries(
      SCENARIOS.filter((s) => s !== 'plain').map((s) => {
        const rs = rounds.map((r) => perCpu(s, r) / perCpu('plain', r));
        const mean = rs.reduce((a, b) => a + b, 0) / rs.length;
        const sd = Math.sqrt(rs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, rs.length - 1));
        const sum = (x: Scenario, k: 'requests' | 'cpu') => rounds.reduce((a, r) => a + r.get(x)![k], 0);
        const gatewayRatio = rounds.map((r) => r.get('plain')!.gatewayCpuMsPerRequest / r.get(s)!.gatewayCpuMsPerRequest);
        return [
          s,
          {
            // Over all rounds: the scenario's requests per CPU-second over plain's.
            cpuRatioToPlain: ratio3(sum(s, 'requests') / sum(s, 'cpu') / (sum('plain', 'requests') / sum('plain', 'cpu'))),
            roundMedian: ratio3(median(rs)),
            roundMean: ratio3(mean),
            standardError: ratio3(sd / Math.sqrt(rs.length)),
            rounds: rs.map(ratio3),
            // The gateway Envoy alone: plain's CPU per request over this scenario's (median round).
            gatewayOnlyRatio: ratio3(median(gatewayRatio)),
          },
        ];
      }),
    );
    printJson({
      benchmark: 'gateway-pair',
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadAverage: os.loadavg().map(round2) },
      note: 'Every scenario at once, each on its own gateway Envoy, upstream and wrk; the control plane is shared and its CPU divided by requests.',
      discardedRounds: discarded,
      settings: { rounds: args.rounds, durationS: args.duration, wrk: { threads: args.threads, connections: args.connections }, envoyConcurrency: args['envoy-concurrency'], layout: args.layout },
      perScenario: Object.fromEntries(
        SCENARIOS.map((s) => {
          const req = rounds.reduce((a, r) => a + r.get(s)!.requests, 0);
          const cpu = rounds.reduce((a, r) => a + r.get(s)!.cpu, 0);
          return [
            s,
            {
              rps: Math.round(req / (rounds.length * args.duration)),
              requestsPerCpuSecond: Math.round(req / cpu),
              gatewayCpuMsPerRequest: Math.round(median(rounds.map((r) => r.get(s)!.gatewayCpuMsPerRequest)) * 1000) / 1000,
            },
          ];
        }),
      ),
      ratioToPlain: summary,
      targetRatio: 0.85,
    });
  } finally {
    await ws.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
