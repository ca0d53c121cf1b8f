// Benchmark for the foundation: apply a document with 1,000 products, 5,000 routes, 1,000
// partners and 10,000 API keys to a real server process, then measure list latency with wrk
// at 100 connections and the server's resident memory holding that model. Prints JSON.
// Usage: tsx bench/admin-apply.ts [--database pglite|postgresql] [--database-url postgresql://…]
//        (--database postgresql starts a throwaway PostgreSQL as the tests do; --profile DIR: server CPU profile)
//        [--against DIR --runs N]: apply only, N times with this checkout and N with DIR's (another
//        checkout, e.g. main before a change), alternating, each on a fresh server and database
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startPostgres } from '../test/support/components.ts';
import { flags, median, printJson, round2, wrk } from './harness.ts';
import { startControlPlane, workspace } from './stack.ts';
import { benchDocument } from './bench-model.ts';

const args = flags({ database: 'pglite', 'database-url': undefined, products: 1000, seconds: 10, profile: undefined, against: undefined, runs: 3 });
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

// startPostgres takes a test's context only to skip when PostgreSQL is missing; a benchmark fails instead.
const noSkip = { skip: (why: string) => void process.stderr.write(`${why}\n`) } as unknown as TestContext;

/** One apply and re-apply of the document on a fresh server (and fresh database) of checkout `root`. */
async function applyOnce(root: string, text: string): Promise<{ applyMs: number; reapplyMs: number }> {
  const ws = workspace('portico-bench-');
  const pg = args.database === 'postgresql' ? await startPostgres(noSkip) : undefined;
  try {
    const cp = await startControlPlane(ws, pg ? { DATABASE_URL: pg.url } : {}, root);
    const post = () => fetch(`${cp.adminUrl}/api/v1/config`, { method: 'POST', headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/yaml' }, body: text });
    const t0 = performance.now();
    const res = await post();
    const applyMs = Math.round(performance.now() - t0);
    if (!res.ok) throw new Error(`apply failed (${root}): ${res.status} ${await res.text()}`);
    const t1 = performance.now();
    await (await post()).text();
    return { applyMs, reapplyMs: Math.round(performance.now() - t1) };
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
  const runs: Record<keyof typeof variants, Array<{ applyMs: number; reapplyMs: number }>> = { this: [], against: [] };
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
    load: { before: loadBefore, after: os.loadavg() },
    targets: { applyMs: 5_000 },
  });
  process.exit(0);
}

const ws = workspace('portico-bench-');
const pg = args.database === 'postgresql' && !args['database-url'] ? await startPostgres(noSkip) : undefined;
const databaseUrl = args['database-url'] ?? pg?.url;
try {
  const profile: Record<string, string> = args.profile ? { PORTICO_NODE_FLAGS: `--cpu-prof --cpu-prof-dir=${path.resolve(args.profile)}` } : {};
  const cp = await startControlPlane(ws, { ...profile, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) });
  const base = cp.adminUrl;
  const pid = cp.proc.child.pid!;
  /** wrk at 100 connections on an admin endpoint. */
  const list = async (url: string, seconds: number) => {
    const w = await wrk({ url, headers: [`Authorization: Bearer ${cp.token}`], durationS: seconds, threads: 2, connections: 100 });
    return { requestsPerSec: Math.round(w.rps), p50Ms: w.p50Ms, p99Ms: w.p99Ms, errors: w.non2xx + w.socketErrors };
  };
  const rssIdle = rssMb(pid);
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
  const seconds = args.seconds;
  await list(`${base}/api/v1/partners?limit=100`, 3); // warm-up: fills caches and lets the apply's garbage be collected
  const listPartners = await list(`${base}/api/v1/partners?limit=100`, seconds);
  const listRoutes = await list(`${base}/api/v1/products/product-7/routes`, seconds);
  const getService = await list(`${base}/api/v1/services/svc-3`, seconds);
  printJson({
    benchmark: 'admin-apply',
    database: databaseUrl ? 'postgresql' : 'pglite',
    model: { products: PRODUCTS, routes: PRODUCTS * ROUTES_PER_PRODUCT, partners: PARTNERS, apiKeys: PARTNERS * KEYS_PER_PARTNER, services: SERVICES, documentBytes: text.length },
    applyMs,
    applySummary: body.summary,
    reapplyMs,
    reapplyChanged: again.changed,
    listAt100Connections: { partnersPage100: listPartners, routesOfProduct: listRoutes, getService },
    serverRssMb: { idle: rssIdle, holdingModel: rssMb(pid) },
    targets: { applyMs: 5_000, listP99Ms: 20, rssMb: 250 },
  });
} finally {
  await ws.close();
  await pg?.stop();
}
