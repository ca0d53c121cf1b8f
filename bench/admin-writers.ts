// Concurrent admin writers: W clients, each with its own admin token, make small mixed writes
// (create and patch partners, mint API keys, create and patch routes) over HTTP against a real
// `portico serve` holding a seeded model, on embedded PGlite or on PostgreSQL. Prints JSON: writes/s,
// latency percentiles, statuses, the server's (and PostgreSQL's) CPU, the load, and whether every
// successful write left exactly one audit row under its writer's name.
// Usage: tsx bench/admin-writers.ts [--database pglite|postgresql] [--writers 50] [--seconds 20]
//        [--products 200] [--invalid 0.02] [--database-url postgresql://…] [--profile DIR] (server CPU profile)
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { serveListenEnv, startPostgres } from '../test/support/components.ts';
import { cpuSeconds, flags, printJson, round2 } from './harness.ts';
import { startControlPlane, workspace } from './stack.ts';
import { benchDocument } from './bench-model.ts';

const args = flags({ database: 'pglite', 'database-url': undefined, writers: 50, seconds: 20, warmup: 3, products: 200, invalid: 0.02, profile: undefined });
const SERVICES = 50;
const ROUTES_PER_PRODUCT = 5;
const PARTNERS = args.products;
const KEYS_PER_PARTNER = 5;

function seedDocument(): string {
  return benchDocument({ products: args.products, services: SERVICES, partners: PARTNERS, keysPerPartner: KEYS_PER_PARTNER });
}

/**
 * CPU seconds of a process and its descendants (PostgreSQL's backends are children of the
 * postmaster): each live one's own time, plus what its children that already exited used.
 */
function treeCpuSeconds(root: number): number {
  const children = new Map<number, number[]>();
  const used = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(f[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
      used.set(Number(d), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]));
    } catch {
      // exited meanwhile
    }
  }
  ticks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim() || 100);
  let total = 0;
  const walk = (pid: number) => {
    total += used.get(pid) ?? 0;
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return total / ticks;
}
let ticks: number | undefined;

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN);

type Op = 'createPartner' | 'patchPartner' | 'createKey' | 'createRoute' | 'patchRoute' | 'invalidRoute';
interface Sample {
  op: Op;
  ms: number;
  status: number;
  measured: boolean;
}

const ws = workspace('portico-writers-');
const noSkip = { skip: (why: string) => void process.stderr.write(`${why}\n`) } as unknown as TestContext;
const pg = args.database === 'postgresql' && !args['database-url'] ? await startPostgres(noSkip) : undefined;
const databaseUrl = args['database-url'] ?? pg?.url;
if (args.database === 'postgresql' && !databaseUrl) throw new Error('PostgreSQL is not installed and no --database-url given');
try {
  // The flow and idempotency listeners on free ports too (startControlPlane picks admin, gRPC and callouts).
  const listen = Object.fromEntries(Object.entries(await serveListenEnv()).filter(([k]) => /FLOWS|IDEMPOTENCY/.test(k)));
  const profile: Record<string, string> = args.profile ? { PORTICO_NODE_FLAGS: `--cpu-prof --cpu-prof-dir=${path.resolve(args.profile)}` } : {};
  const cp = await startControlPlane(ws, { ...listen, ...profile, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) });
  const base = cp.adminUrl;
  const call = async (token: string, method: string, p: string, body?: unknown, type = 'application/json') => {
    const res = await fetch(`${base}${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': type } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, text };
  };
  process.stderr.write('admin-writers: seeding the model\n');
  const seeded = await call(cp.token, 'POST', '/api/v1/config', seedDocument(), 'application/yaml');
  if (seeded.status !== 200) throw new Error(`seed failed: ${seeded.status} ${seeded.text.slice(0, 500)}`);
  // One admin token per writer: the audit log must name each write's own actor.
  const tokens: string[] = [];
  for (let w = 0; w < args.writers; w++) {
    const r = await call(cp.token, 'POST', '/api/v1/admin-tokens', { name: `writer-${w}`, role: 'admin' });
    if (r.status !== 201) throw new Error(`admin token: ${r.status} ${r.text}`);
    tokens.push((JSON.parse(r.text) as { token: string }).token);
  }

  const samples: Sample[] = [];
  const okPerWriter = new Array<number>(args.writers).fill(0);
  const unexpected: Record<string, string> = {};
  let measuring = false;
  let stop = false;
  const writer = async (w: number) => {
    const token = tokens[w]!;
    const partners: string[] = [];
    const routes: string[] = [];
    // Each route's service, so a patch always changes it: a write that changes nothing is no change
    // and leaves no audit row, which the audit check below would count as missing.
    const serviceOf = new Map<string, number>();
    const product = `product-${w % args.products}`;
    for (let i = 0; !stop; i++) {
      // Alternate the mix; a small share of writes is invalid on purpose (a route to a missing service: 422).
      const invalid = Math.random() < args.invalid;
      const mix = (['createPartner', 'patchPartner', 'createKey', 'createRoute', 'patchRoute'] as const)[i % 5]!;
      // Only this writer's own routes are patched (their service is known here).
      const op: Op = invalid ? 'invalidRoute' : !partners.length ? 'createPartner' : mix === 'patchRoute' && !routes.length ? 'createRoute' : mix;
      const t0 = performance.now();
      let r: { status: number; text: string };
      let expect = 200;
      const name = `w${w}-${i}`;
      switch (op) {
        case 'createPartner':
          r = await call(token, 'POST', '/api/v1/partners', { name, displayName: `Writer ${w} partner ${i}` });
          expect = 201;
          if (r.status === 201) partners.push(name);
          break;
        case 'patchPartner':
          r = await call(token, 'PATCH', `/api/v1/partners/${partners[i % partners.length]}`, { contact: `ops-${i}@example.com` });
          break;
        case 'createKey':
          r = await call(token, 'POST', `/api/v1/partners/${partners[i % partners.length]}/api-keys`, { name: `k${i}` });
          expect = 201;
          break;
        case 'createRoute':
          r = await call(token, 'POST', `/api/v1/products/${product}/routes`, { name, match: { path: { type: 'prefix', value: `/${name}` } }, service: `svc-${i % SERVICES}` });
          expect = 201;
          if (r.status === 201) {
            routes.push(name);
            serviceOf.set(name, i % SERVICES);
          }
          break;
        case 'patchRoute': {
          const route = routes[i % routes.length]!;
          let service = (i * 7) % SERVICES;
          if (service === serviceOf.get(route)) service = (service + 1) % SERVICES;
          r = await call(token, 'PATCH', `/api/v1/products/${product}/routes/${route}`, { service: `svc-${service}` });
          if (r.status === 200) serviceOf.set(route, service);
          break;
        }
        case 'invalidRoute':
          r = await call(token, 'POST', `/api/v1/products/${product}/routes`, { name, match: { path: { type: 'prefix', value: `/${name}` } }, service: 'no-such-service' });
          expect = 422;
          break;
      }
      const ms = performance.now() - t0;
      samples.push({ op, ms, status: r.status, measured: measuring });
      if (r.status === expect) {
        if (expect < 300) okPerWriter[w]!++;
      } else unexpected[`${op} ${r.status}`] = r.text.slice(0, 300);
    }
  };

  const pid = cp.proc.child.pid!;
  const serverCpu = () => cpuSeconds(pid);
  const pgCpu = () => (pg ? treeCpuSeconds(Number(readFileSync(`${pg.dataDir}/postmaster.pid`, 'utf8').split('\n')[0])) : 0);
  const auditBefore = JSON.parse((await call(cp.token, 'GET', '/api/v1/audit?limit=1')).text) as { items: Array<{ id: string }> };
  const lastIdBefore = BigInt(auditBefore.items[0]?.id ?? '0');

  process.stderr.write(`admin-writers: ${args.writers} writers, ${args.warmup} s warm-up + ${args.seconds} s\n`);
  const running = Array.from({ length: args.writers }, (_, w) => writer(w));
  await new Promise((r) => setTimeout(r, args.warmup * 1000));
  const loadBefore = os.loadavg();
  const cpu0 = { server: serverCpu(), postgres: pgCpu() };
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, args.seconds * 1000));
  measuring = false;
  const wallS = (performance.now() - t0) / 1000;
  const cpu1 = { server: serverCpu(), postgres: pgCpu() };
  const loadAfter = os.loadavg();
  stop = true;
  await Promise.all(running);

  // Every successful write: exactly one audit row, under its writer's token name.
  const auditRows = new Map<string, number>();
  const changeIds = new Set<string>();
  let before: string | undefined;
  for (;;) {
    const page = JSON.parse((await call(cp.token, 'GET', `/api/v1/audit?limit=1000${before ? `&before=${before}` : ''}`)).text) as {
      items: Array<{ id: string; actor: string; changeId: string }>;
      nextBefore?: string;
    };
    const fresh = page.items.filter((e) => BigInt(e.id) > lastIdBefore);
    for (const e of fresh) {
      auditRows.set(e.actor, (auditRows.get(e.actor) ?? 0) + 1);
      changeIds.add(e.changeId);
    }
    if (fresh.length < page.items.length || !page.nextBefore) break;
    before = page.nextBefore;
  }
  const mismatched = tokens.map((_, w) => [`writer-${w}`, okPerWriter[w]!, auditRows.get(`writer-${w}`) ?? 0] as const).filter(([, ok, rows]) => ok !== rows);

  const measured = samples.filter((s) => s.measured);
  const lat = measured.map((s) => s.ms).sort((a, b) => a - b);
  const statuses: Record<string, number> = {};
  for (const s of measured) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  const byOp: Record<string, { count: number; p50Ms: number; p99Ms: number }> = {};
  for (const op of new Set(measured.map((s) => s.op))) {
    const l = measured
      .filter((s) => s.op === op)
      .map((s) => s.ms)
      .sort((a, b) => a - b);
    byOp[op] = { count: l.length, p50Ms: round2(percentile(l, 50)), p99Ms: round2(percentile(l, 99)) };
  }
  const writes = measured.length;
  const serverCpuS = round2(cpu1.server - cpu0.server);
  const postgresCpuS = round2(cpu1.postgres - cpu0.postgres);
  printJson({
    benchmark: 'admin-writers',
    database: databaseUrl ? 'postgresql' : 'pglite',
    model: { products: args.products, routes: args.products * ROUTES_PER_PRODUCT, partners: PARTNERS, apiKeys: PARTNERS * KEYS_PER_PARTNER, services: SERVICES },
    writers: args.writers,
    seconds: round2(wallS),
    writes,
    writesPerSecond: round2(writes / wallS),
    latencyMs: { p50: round2(percentile(lat, 50)), p90: round2(percentile(lat, 90)), p99: round2(percentile(lat, 99)), max: round2(lat[lat.length - 1] ?? NaN) },
    byOp,
    statuses,
    errors: measured.filter((s) => !(s.status === 200 || s.status === 201 || (s.op === 'invalidRoute' && s.status === 422))).length,
    unexpected,
    cpuSeconds: { server: serverCpuS, postgres: postgresCpuS },
    cpuMsPerWrite: { server: round2((serverCpuS * 1000) / Math.max(1, writes)), postgres: round2((postgresCpuS * 1000) / Math.max(1, writes)) },
    writesPerServerCpuSecond: round2(writes / Math.max(0.01, serverCpuS)),
    load: { before: loadBefore.map(round2), after: loadAfter.map(round2), cpus: os.cpus().length },
    audit: { successfulWrites: okPerWriter.reduce((a, b) => a + b, 0), rows: [...auditRows.values()].reduce((a, b) => a + b, 0), changes: changeIds.size, writersMismatched: mismatched },
    targets: { writesPerSecond: 200, p99Ms: 500 },
  });
} finally {
  await ws.close();
  await pg?.stop();
}
