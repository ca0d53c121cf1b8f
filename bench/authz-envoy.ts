// Benchmark: what authentication costs through a real Envoy. One gateway, one upstream (an Envoy
// answering directly: the cheapest upstream, so the gateway's work shows), two products on the same
// upstream with the same route shape: /open (auth none: ext_authz disabled on the route) and /secure
// (API key or JWT: one ext_authz callout per request). Scenarios, each with wrk at full speed:
//   none             /open, no credential
//   api_key          /secure, x-api-key
//   jwt_rs256        /secure, the same RS256 token every time (verified-token cache hits)
//   jwt_es256        /secure, the same ES256 token every time
//   jwt_rs256_fresh  /secure, cycling through N distinct RS256 tokens (only with --fresh-tokens N;
//                    N above the verified-token cache's 10 000 makes every request pay for a
//                    signature check, e.g. --fresh-tokens 12000)
// Then the added p99 of API-key auth over no auth at a constant rate of half the no-auth maximum
// (an open-loop Node generator, evenly spaced requests, latency from each request's due time; or
// hey -q with --rate-generator hey), in alternating rounds (none, api_key, none, api_key, …) so
// drift on a shared machine hits both alike; medians over the rounds. Target: added p99 < 1 ms. The same at other fractions
// of the no-auth maximum (--fractions, default 0.5,0.25) shows where the knee is: the callout
// roughly doubles the CPU a request costs on this machine, so half of the no-auth maximum can be
// close to (or above) the API-key maximum. hey's workers are closed loops (a slow answer delays the
// next request), so under overload its percentiles understate the queueing. Last, one connection
// with one request at a time (no queueing at all): what a single callout adds by itself.
// Processes: the control plane (bin/portico serve, its own process, embedded PGlite), the gateway
// Envoy, the upstream Envoy, the load generator, and this script (JWKS server, idle while measuring).
// CPU seconds per process come from /proc. Prints JSON on stdout, progress on stderr.
//
// Usage: node --import tsx bench/authz-envoy.ts [--duration 10] [--connections 32] [--threads 1]
//   [--envoy-concurrency 2] [--rounds 3] [--half-workers 32] [--fresh-tokens 0] [--fractions 0.5,0.25]
//   [--scenarios none,api_key,jwt_rs256,jwt_es256] [--rate-generator node|hey]
import { spawnSync } from 'node:child_process';
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http, { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SignJWT, exportJWK } from 'jose';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { cpuMeter, flags, headerObject, hey, median, printJson, round2, wrk, wrkFigures, type HeyResult, type WrkResult } from './harness.ts';
import { newApiKey, startControlPlane, startDirectUpstream, startGatewayEnvoy, workspace } from './stack.ts';

const args = flags({
  duration: 10,
  connections: 32,
  threads: 1,
  'envoy-concurrency': 2,
  rounds: 3,
  'half-workers': 32,
  'fresh-tokens': 0,
  scenarios: 'none,api_key,jwt_rs256,jwt_es256',
  fractions: '0.5,0.25',
  'rate-generator': 'node',
});
const RATE_GENERATOR = args['rate-generator'];
if (RATE_GENERATOR !== 'node' && RATE_GENERATOR !== 'hey') throw new Error('--rate-generator: node or hey');
const FRACTIONS = args.fractions.split(',').map(Number);
if (!FRACTIONS.length || FRACTIONS.some((f) => !(f > 0 && f <= 1))) throw new Error('--fractions: numbers in (0, 1]');
const DURATION_S = args.duration;
const CONNECTIONS = args.connections;
const THREADS = args.threads;
const ENVOY_CONCURRENCY = args['envoy-concurrency'];
const ROUNDS = args.rounds;
const HALF_WORKERS = args['half-workers'];
const FRESH_TOKENS = args['fresh-tokens'];
type Scenario = 'none' | 'api_key' | 'jwt_rs256' | 'jwt_es256' | 'jwt_rs256_fresh';
const SCENARIOS = [...args.scenarios.split(',').map((s) => s.trim()), ...(FRESH_TOKENS > 0 ? ['jwt_rs256_fresh'] : [])] as Scenario[];
if (!SCENARIOS.includes('none') || !SCENARIOS.includes('api_key')) throw new Error('--scenarios must include none and api_key (the half-load comparison needs both)');
const GROUP = 'edge';
const NODE = 'bench-authz-envoy';
const ISS = 'https://idp.bench.example';
const AUD = 'bench-api';

// ── load generators (in this process) ─────────────────────────────────────────

/**
 * An open-loop constant-rate generator (this process): request k is due at start + k/rate and its
 * latency counts from that due time, so a slow gateway cannot slow the load down (no coordinated
 * omission) and requests go out evenly spaced (hey's per-worker tickers fire together, in bursts of
 * one request per worker). Keep-alive connections, at most `connections` requests in flight.
 */
async function openLoop(url: string, headers: string[], rate: number, durationS: number, connections = 64): Promise<HeyResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  const h = headerObject(headers);
  const total = Math.round(rate * durationS);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let sent = 0;
  let done = 0;
  await new Promise<void>((resolve) => {
    const fire = (due: number) => {
      const req = http.request(url, { headers: h, agent }, (res) => {
        res.resume();
        res.on('end', () => finish(String(res.statusCode)));
      });
      const finish = (status: string) => {
        latencies.push(performance.now() - due);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (++done === total) resolve();
      };
      req.on('error', (e: NodeJS.ErrnoException) => finish(`error:${e.code ?? e.message}`));
      req.end();
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + (sent * 1000) / rate <= now) fire(start + (sent++ * 1000) / rate);
      if (sent < total) setTimeout(tick, 0);
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { rps: total / elapsed, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), statuses, loadGeneratorCpu: (cpu.user + cpu.system) / 1e6 };
}

/**
 * One keep-alive connection, one request at a time (from this process): the latency a request pays
 * with no queueing anywhere, i.e. what one callout adds by itself.
 */
async function sequential(url: string, headers: string[], n: number): Promise<{ p50Ms: number; p90Ms: number; p99Ms: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const h = headerObject(headers);
  const xs: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        const req = http.request(url, { headers: h, agent }, (res) => {
          if (res.statusCode !== 200) reject(new Error(`${url}: ${res.statusCode}`));
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', reject);
        req.end();
      });
      xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    agent.destroy();
  }
  xs.sort((a, b) => a - b);
  const at = (q: number) => Math.round(xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]! * 1000) / 1000;
  return { p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99) };
}

// ── identity provider ─────────────────────────────────────────────────────────

const keyPair = promisify(generateKeyPair) as (type: string, o: Record<string, unknown>) => Promise<{ publicKey: KeyObject; privateKey: KeyObject }>;

async function startIdp(): Promise<{ jwksUri: string; sign(alg: 'RS256' | 'ES256', sub: string): Promise<string>; close(): void }> {
  const rsa = await keyPair('rsa', { modulusLength: 2048 });
  const ec = await keyPair('ec', { namedCurve: 'P-256' });
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: 'rsa', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(ec.publicKey)), kid: 'ec', alg: 'ES256', use: 'sig' },
  ];
  const body = JSON.stringify({ keys });
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    jwksUri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
    sign: (alg, sub) =>
      new SignJWT({ team: 'acme' })
        .setProtectedHeader({ alg, kid: alg === 'RS256' ? 'rsa' : 'ec' })
        .setIssuer(ISS)
        .setAudience(AUD)
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(alg === 'RS256' ? rsa.privateKey : ec.privateKey),
    close: () => server.close(),
  };
}

// ── main ──────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  for (const tool of ['wrk', 'hey']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is not installed`);
  const ws = workspace('portico-bench-authz-envoy-');
  const idp = await startIdp();
  const loadBefore = os.loadavg();
  try {
    const upstream = await startDirectUpstream(ws, envoyBin);
    // The control plane in its own process, as deployed (role all: ADS and the callouts).
    const cp = await startControlPlane(ws);
    const gateway = await startGatewayEnvoy(ws, envoyBin, { nodeId: NODE, group: GROUP, xds: `127.0.0.1:${cp.grpcPort}`, concurrency: ENVOY_CONCURRENCY });

    // The model, through the admin API. API key imported (known to the benchmark), JWT issuer with a JWKS URI.
    const listenerPort = await freePort();
    const key = newApiKey();
    const route = { name: 'item', match: { path: { type: 'prefix', value: '/item' } }, service: 'upstream' };
    const doc = {
      portico: 'v1',
      gatewayGroups: [
        {
          name: GROUP,
          listeners: [{ name: 'http', port: listenerPort, address: '127.0.0.1' }],
          // Generous: a slow callout on a loaded machine shows in the latency, not as a 503.
          authz: { failureMode: 'closed', timeoutMs: 5000 },
        },
      ],
      services: [{ name: 'upstream', endpoints: [{ host: '127.0.0.1', port: upstream.port }] }],
      jwtIssuers: [{ name: 'idp', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUri, algorithms: ['RS256', 'ES256'], partnerClaim: 'team', forwardClaims: { sub: 'X-User-Id' } }],
      products: [
        { name: 'open', gatewayGroups: [GROUP], basePath: '/open', auth: { accept: ['none'] }, routes: [route] },
        { name: 'secure', gatewayGroups: [GROUP], basePath: '/secure', auth: { accept: ['api_key', 'jwt'] }, routes: [route] },
      ],
      plans: [{ name: 'unlimited' }],
      partners: [{ name: 'acme', apiKeys: [{ name: 'bench', key }], subscriptions: [{ product: 'secure', plan: 'unlimited' }] }],
    };
    await cp.apply(doc);

    const rs = await idp.sign('RS256', 'user-rs');
    const es = await idp.sign('ES256', 'user-es');
    let script: string | undefined;
    if (SCENARIOS.includes('jwt_rs256_fresh')) {
      process.stderr.write(`minting ${FRESH_TOKENS} RS256 tokens…\n`);
      const tokens: string[] = [];
      for (let i = 0; i < FRESH_TOKENS; i++) tokens.push(await idp.sign('RS256', `user-${i}`));
      writeFileSync(path.join(ws.dir, 'tokens.txt'), `${tokens.join('\n')}\n`);
      script = path.join(ws.dir, 'fresh.lua');
      writeFileSync(
        script,
        `local tokens = {}\nfor line in io.lines("${path.join(ws.dir, 'tokens.txt')}") do tokens[#tokens + 1] = line end\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1] })\nend\n`,
      );
    }
    const targets: Record<Scenario, { url: string; headers: string[]; script?: string }> = {
      none: { url: `http://127.0.0.1:${listenerPort}/open/item`, headers: [] },
      api_key: { url: `http://127.0.0.1:${listenerPort}/secure/item`, headers: [`x-api-key: ${key}`] },
      jwt_rs256: { url: `http://127.0.0.1:${listenerPort}/secure/item`, headers: [`Authorization: Bearer ${rs}`] },
      jwt_es256: { url: `http://127.0.0.1:${listenerPort}/secure/item`, headers: [`Authorization: Bearer ${es}`] },
      jwt_rs256_fresh: { url: `http://127.0.0.1:${listenerPort}/secure/item`, headers: [], ...(script ? { script } : {}) },
    };

    // Served and deciding: every scenario answers 200, and /secure refuses a request without credentials.
    await waitFor(
      'Envoy to serve the model',
      async () => {
        if (!(await cp.settled(NODE))) return undefined;
        for (const s of ['none', 'api_key', 'jwt_rs256', 'jwt_es256'] as const) {
          const r = await fetch(targets[s].url, { headers: headerObject(targets[s].headers) }).catch(() => undefined);
          if (r?.status !== 200) return undefined;
        }
        return (await fetch(targets.api_key.url).catch(() => undefined))?.status === 401 ? true : undefined;
      },
      120_000,
      250,
    );

    const pids = { gateway: gateway.proc.child.pid, controlPlane: cp.proc.child.pid, upstream: upstream.proc.child.pid };
    const maxThroughput: Record<string, unknown>[] = [];
    const byScenario = new Map<Scenario, WrkResult>();
    for (const s of SCENARIOS) {
      const t = targets[s];
      const load = { ...t, threads: THREADS, connections: CONNECTIONS };
      await wrk({ ...load, durationS: 2 }); // warm-up: connections, JIT, caches
      const used = cpuMeter(pids);
      const w = await wrk({ ...load, durationS: DURATION_S });
      const cpu = used();
      cpu.loadGenerator = w.loadGeneratorCpu;
      byScenario.set(s, w);
      maxThroughput.push({ scenario: s, rps: Math.round(w.rps), ...wrkFigures(w, cpu) });
      process.stderr.write(`${s}: ${Math.round(w.rps)} req/s, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms, non-2xx ${w.non2xx}\n`);
    }

    // No queueing: one connection, one request at a time, alternating rounds.
    const seq: Record<'none' | 'api_key', Array<{ p50Ms: number; p90Ms: number; p99Ms: number }>> = { none: [], api_key: [] };
    for (let i = 0; i < ROUNDS; i++) for (const s of ['none', 'api_key'] as const) seq[s].push(await sequential(targets[s].url, targets[s].headers, 2000));
    const seqMedian = (s: 'none' | 'api_key', k: 'p50Ms' | 'p90Ms' | 'p99Ms') => Math.round(median(seq[s].map((x) => x[k])) * 1000) / 1000;
    const sequentialOneConnection = {
      requestsPerRound: 2000,
      none: { p50Ms: seqMedian('none', 'p50Ms'), p90Ms: seqMedian('none', 'p90Ms'), p99Ms: seqMedian('none', 'p99Ms') },
      api_key: { p50Ms: seqMedian('api_key', 'p50Ms'), p90Ms: seqMedian('api_key', 'p90Ms'), p99Ms: seqMedian('api_key', 'p99Ms') },
      addedP50Ms: round2(seqMedian('api_key', 'p50Ms') - seqMedian('none', 'p50Ms')),
      addedP99Ms: round2(seqMedian('api_key', 'p99Ms') - seqMedian('none', 'p99Ms')),
    };
    process.stderr.write(`one connection, sequential: ${JSON.stringify(sequentialOneConnection)}\n`);

    // Added latency at fractions of the no-auth maximum (half first), alternating none and api_key.
    const constantRate: Array<Record<string, unknown>> = [];
    for (const fraction of FRACTIONS) {
      const rate = Math.round(byScenario.get('none')!.rps * fraction);
      const rounds: Array<Record<string, unknown>> = [];
      const p99s: Record<'none' | 'api_key', number[]> = { none: [], api_key: [] };
      const p50s: Record<'none' | 'api_key', number[]> = { none: [], api_key: [] };
      const achieved: Record<'none' | 'api_key', number[]> = { none: [], api_key: [] };
      for (let i = 0; i < ROUNDS; i++) {
        const round: Record<string, unknown> = { round: i + 1 };
        for (const s of ['none', 'api_key'] as const) {
          const used = cpuMeter(pids);
          const { url, headers } = targets[s];
          const h = RATE_GENERATOR === 'hey' ? await hey({ url, headers, rate, durationS: DURATION_S, workers: HALF_WORKERS }) : await openLoop(url, headers, rate, DURATION_S);
          const cpu = used();
          cpu.loadGenerator = h.loadGeneratorCpu;
          p99s[s].push(h.p99Ms);
          p50s[s].push(h.p50Ms);
          achieved[s].push(h.rps);
          round[s] = { rps: Math.round(h.rps), p50Ms: round2(h.p50Ms), p90Ms: round2(h.p90Ms), p99Ms: round2(h.p99Ms), statuses: h.statuses, cpuSeconds: cpu };
          process.stderr.write(`${RATE_GENERATOR}: ${fraction} × max, round ${i + 1}, ${s} at ${rate}/s: ${Math.round(h.rps)}/s, p50 ${h.p50Ms.toFixed(2)} ms, p99 ${h.p99Ms.toFixed(2)} ms\n`);
        }
        round.addedP99Ms = round2((round.api_key as { p99Ms: number }).p99Ms - (round.none as { p99Ms: number }).p99Ms);
        rounds.push(round);
      }
      const addedP99 = round2(median(p99s.api_key) - median(p99s.none));
      constantRate.push({
        fractionOfNoAuthMax: fraction,
        targetRps: rate,
        apiKeyMaxRps: Math.round(byScenario.get('api_key')!.rps),
        medianAchievedRps: { none: Math.round(median(achieved.none)), api_key: Math.round(median(achieved.api_key)) },
        medianP50Ms: { none: round2(median(p50s.none)), api_key: round2(median(p50s.api_key)) },
        medianP99Ms: { none: round2(median(p99s.none)), api_key: round2(median(p99s.api_key)) },
        addedP99Ms: addedP99,
        ...(fraction === 0.5 ? { targetAddedP99Ms: 1, met: addedP99 < 1 } : {}),
        rounds,
      });
    }

    const none = byScenario.get('none')!;
    printJson({
      benchmark: 'authz-envoy',
      machine: {
        cpus: os.cpus().length,
        model: os.cpus()[0]?.model,
        loadAverageBefore: loadBefore.map(round2),
        loadAverageAfter: os.loadavg().map(round2),
      },
      note: 'The gateway Envoy, the control plane (ext_authz), the upstream Envoy, the load generator and this script share these CPUs; the load average includes whatever else the machine ran.',
      settings: {
        durationS: DURATION_S,
        wrk: { threads: THREADS, connections: CONNECTIONS },
        constantRate: {
          generator: RATE_GENERATOR === 'hey' ? `hey -c ${HALF_WORKERS} -q rate/${HALF_WORKERS}` : 'open loop in the benchmark process, evenly spaced, up to 64 keep-alive connections',
          rounds: ROUNDS,
          fractions: FRACTIONS,
        },
        envoyConcurrency: ENVOY_CONCURRENCY,
        freshTokens: FRESH_TOKENS,
        ...(FRESH_TOKENS > 0 ? { freshTokensDefeatCache: FRESH_TOKENS > 10_000 } : {}),
      },
      maxThroughput,
      ratioToNone: Object.fromEntries(SCENARIOS.filter((s) => s !== 'none').map((s) => [s, Math.round((byScenario.get(s)!.rps / none.rps) * 1000) / 1000])),
      constantRate,
      sequentialOneConnection,
    });
  } finally {
    await ws.close();
    idp.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
