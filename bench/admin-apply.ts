// Benchmark for the foundation: apply a document with 1,000 products, 5,000 routes, 1,000
// partners and 10,000 API keys to a real server process, then measure list latency with wrk
// at 100 connections and the server's resident memory holding that model. Prints JSON.
// Usage: tsx bench/admin-apply.ts [--database pglite|postgresql] [--database-url postgresql://…]
//        (--database postgresql starts a throwaway PostgreSQL as the tests do; --profile DIR: server CPU profile)
//        [--against DIR --runs N]: apply only, N times with this checkout and N with DIR's (another
//        checkout, e.g. main before a change), alternating, each on a fresh server and database, with
//        each server's memory at ready and holding the model (after 3 s of listing)
//        [--heap-snapshot DIR]: the server writes a heap snapshot and its smaps there, holding the model
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startPostgres } from '../test/support/components.ts';
import { flags, median, printJson, round2, wrk } from './harness.ts';
import { startControlPlane, workspace } from './stack.ts';
import { benchDocument } from './bench-model.ts';

const args = flags({ database: 'pglite', 'database-url': undefined, products: 1000, seconds: 10, profile: undefined, against: undefined, runs: 3, 'heap-snapshot': undefined });
const PRODUCTS = args.products;
const ROUTES_PER_PRODUCT = 5;
const PARTNERS = PRODUCTS;
const KEYS_PER_PARTNER = 10;
const SERVICES = 100;

export function buildDocument(): string {
  return benchDocument({
    products: PRODUCTS,
    services: SERVICES,
    partners: PARTNERS,
    keysPerPartner: KEYS_PER_PARTNER,
    plans: 10,
    decorated: true,
  });
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
}

/**
 * Where the server's resident memory is, in MB: `wasm` is PGlite's WebAssembly memory (the one
 * anonymous mapping over 64 MB: malloc's arenas are at most 64 MB, V8's heap pages far smaller), the
 * JS heap and external memory come from its /metrics, `rest` is RSS less the wasm memory and the
 * committed heap (the node binary's code, malloc's arenas, stacks).
 */
async function memoryMb(pid: number, adminUrl: string): Promise<Record<string, number>> {
  const rss = rssMb(pid);
  let wasmKb = 0;
  let current: { sizeKb: number; anon: boolean } | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) current = { sizeKb: 0, anon: !head[1] };
    else if (current && line.startsWith('Size:')) current.sizeKb = Number(/\d+/.exec(line)![0]);
    else if (current?.anon && current.sizeKb > 64 * 1024 && line.startsWith('Rss:')) wasmKb += Number(/\d+/.exec(line)![0]);
  }
  const out: Record<string, number> = { rss, wasm: Math.round(wasmKb / 1024) };
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  for (const m of text.matchAll(/^nodejs_(heap_size_used|heap_size_total|external_memory)_bytes (\S+)$/gm)) out[m[1]!] = Math.round(Number(m[2]) / 2 ** 20);
  out.rest = rss - out.wasm! - (out.heap_size_total ?? 0);
  return out;
}

// startPostgres takes a test's context only to skip when PostgreSQL is missing; a benchmark fails instead.
const noSkip = { skip: (why: string) => void process.stderr.write(`${why}\n`) } as unknown as TestContext;

type Once = { applyMs: number; reapplyMs: number; idle: Record<string, number>; holding: Record<string, number> };

/**
 * One apply and re-apply of the document on a fresh server (and fresh database) of checkout `root`,
 * with the server's memory before, and after 3 s of listing partners that follow (holding the model).
 */
async function applyOnce(root: string, text: string): Promise<Once> {
  const ws = workspace('portico-bench-');
  const pg = args.database === 'postgresql' ? await startPostgres(noSkip) : undefined;
  try {
    const cp = await startControlPlane(ws, pg ? { DATABASE_URL: pg.url } : {}, root);
    const post = () => fetch(`${cp.adminUrl}/api/v1/config`, { method: 'POST', headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/yaml' }, body: text });
    const pid = cp.proc.child.pid!;
    const idle = await memoryMb(pid, cp.adminUrl);
    const t0 = performance.now();
    const res = await post();
    const applyMs = Math.round(performance.now() - t0);
    if (!res.ok) throw new Error(`apply failed (${root}): ${res.status} ${await res.text()}`);
    const t1 = performance.now();
    await (await post()).text();
    const reapplyMs = Math.round(performance.now() - t1);
    await wrk({ url: `${cp.adminUrl}/api/v1/partners?limit=100`, headers: [`Authorization: Bearer ${cp.token}`], durationS: 3, threads: 2, connections: 100 });
    return { applyMs, reapplyMs, idle, holding: await memoryMb(pid, cp.adminUrl) };
  } finally {
    await ws.close();
    await pg?.stop();
  }
}

if (args.against) {
  const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const variants = { this: here, against: path.resolve(args.against) };
  const text = buildDocument();
  const loadBefore = os.loadavg();
  const runs: Record<keyof typeof variants, Once[]> = { this: [], against: [] };
  for (let i = 0; i < args.runs; i++) {
    // Alternating which goes first, so a drift in the machine's load falls on both.
    const order = (i % 2 === 0 ? ['this', 'against'] : ['against', 'this']) as Array<keyof typeof variants>;
    for (const v of order) runs[v].push(await applyOnce(variants[v], text));
  }
  const med = (v: keyof typeof variants, k: 'applyMs' | 'reapplyMs') => median(runs[v].map((r) => r[k]));
  printJson({
    benchmark: 'admin-apply',
    database: args.database,
    against: variants.against,
    applyMs: { this: runs.this.map((r) => r.applyMs), against: runs.against.map((r) => r.applyMs) },
    reapplyMs: { this: runs.this.map((r) => r.reapplyMs), against: runs.against.map((r) => r.reapplyMs) },
    medianApplyMs: { this: med('this', 'applyMs'), against: med('against', 'applyMs') },
    thisToAgainstApplyRatio: round2(med('this', 'applyMs') / med('against', 'applyMs')),
    // RSS and its parts (memoryMb) at ready and holding the model, each run.
    memoryMb: { this: runs.this.map((r) => ({ idle: r.idle, holding: r.holding })), against: runs.against.map((r) => ({ idle: r.idle, holding: r.holding })) },
    medianHoldingRssMb: { this: median(runs.this.map((r) => r.holding.rss!)), against: median(runs.against.map((r) => r.holding.rss!)) },
    load: { before: loadBefore, after: os.loadavg() },
    targets: { applyMs: 5_000 },
  });
  process.exit(0);
}

const ws = workspace('portico-bench-');
const pg = args.database === 'postgresql' && !args['database-url'] ? await startPostgres(noSkip) : undefined;
const databaseUrl = args['database-url'] ?? pg?.url;
try {
  const nodeFlags = [
    ...(args.profile ? [`--cpu-prof --cpu-prof-dir=${path.resolve(args.profile)}`] : []),
    ...(args['heap-snapshot'] ? [`--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${path.resolve(args['heap-snapshot'])}`] : []),
  ];
  const cp = await startControlPlane(ws, { ...(nodeFlags.length ? { PORTICO_NODE_FLAGS: nodeFlags.join(' ') } : {}), ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) });
  const base = cp.adminUrl;
  const pid = cp.proc.child.pid!;
  /** wrk at 100 connections on an admin endpoint. */
  const list = async (url: string, seconds: number) => {
    const w = await wrk({ url, headers: [`Authorization: Bearer ${cp.token}`], durationS: seconds, threads: 2, connections: 100 });
    return { requestsPerSec: Math.round(w.rps), p50Ms: w.p50Ms, p99Ms: w.p99Ms, errors: w.non2xx + w.socketErrors };
  };
  const idle = await memoryMb(pid, base);
  const text = buildDocument();
  const t0 = performance.now();
  const res = await fetch(`${base}/api/v1/config`, { method: 'POST', headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/yaml' }, body: text });
  const applyMs = Math.round(performance.now() - t0);
  const body = (await res.json()) as { summary?: unknown; detail?: string };
  if (!res.ok) throw new Error(`apply failed: ${res.status} ${body.detail}`);
  const t1 = performance.now();
  const again = (await (await fetch(`${base}/api/v1/config`, { method: 'POST', headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/yaml' }, body: text })).json()) as {
    changed: boolean;
  };
  const reapplyMs = Math.round(performance.now() - t1);
  const applied = await memoryMb(pid, base);
  const seconds = args.seconds;
  await list(`${base}/api/v1/partners?limit=100`, 3); // warm-up: fills caches and lets the apply's garbage be collected
  const listPartners = await list(`${base}/api/v1/partners?limit=100`, seconds);
  const listRoutes = await list(`${base}/api/v1/products/product-7/routes`, seconds);
  const getService = await list(`${base}/api/v1/services/svc-3`, seconds);
  const holding = await memoryMb(pid, base);
  if (args['heap-snapshot']) {
    writeFileSync(path.join(args['heap-snapshot'], `smaps-${pid}.txt`), readFileSync(`/proc/${pid}/smaps`));
    // Written by the server on the signal (synchronously, it stops the process for seconds).
    process.kill(pid, 'SIGUSR2');
    await new Promise((r) => setTimeout(r, 30_000));
  }
  printJson({
    benchmark: 'admin-apply',
    database: databaseUrl ? 'postgresql' : 'pglite',
    model: { products: PRODUCTS, routes: PRODUCTS * ROUTES_PER_PRODUCT, partners: PARTNERS, apiKeys: PARTNERS * KEYS_PER_PARTNER, services: SERVICES, documentBytes: text.length },
    applyMs,
    applySummary: body.summary,
    reapplyMs,
    reapplyChanged: again.changed,
    listAt100Connections: { partnersPage100: listPartners, routesOfProduct: listRoutes, getService },
    serverRssMb: { idle: idle.rss, holdingModel: holding.rss },
    // wasm: PGlite's WebAssembly memory (resident part); heap and external from /metrics (see memoryMb).
    serverMemoryMb: { idle, afterApply: applied, holdingModel: holding },
    targets: { applyMs: 5_000, listP99Ms: 20, rssMb: 250 },
  });
} finally {
  await ws.close();
  await pg?.stop();
}
