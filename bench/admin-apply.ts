// Benchmark for the foundation: apply a document with 1,000 products, 5,000 routes, 1,000
// partners and 10,000 API keys to a real server process, then measure list latency with wrk
// at 100 connections and the server's resident memory holding that model. Prints JSON.
// Usage: tsx bench/admin-apply.ts [--database-url postgresql://…]
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { documentToYaml } from '../src/model/declarative.ts';
import { freePort, waitFor } from '../test/support/components.ts';

const { values } = parseArgs({ options: { 'database-url': { type: 'string' }, products: { type: 'string' }, seconds: { type: 'string' } } });
const PRODUCTS = Number(values.products ?? 1000);
const ROUTES_PER_PRODUCT = 5;
const PARTNERS = PRODUCTS;
const KEYS_PER_PARTNER = 10;
const SERVICES = 100;
const ROOT = path.resolve(import.meta.dirname, '..');
const token = `bench-${randomBytes(16).toString('hex')}`;

export function buildDocument(): string {
  const doc = {
    portico: 'v1',
    gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
    services: Array.from({ length: SERVICES }, (_, i) => ({ name: `svc-${i}`, endpoints: [{ host: `10.0.${i >> 8}.${i & 255}`, port: 8080 }] })),
    products: Array.from({ length: PRODUCTS }, (_, p) => ({
      name: `product-${p}`,
      tags: [`team:t${p % 20}`],
      gatewayGroups: ['edge'],
      basePath: `/p${p}`,
      routes: Array.from({ length: ROUTES_PER_PRODUCT }, (_, r) => ({
        name: `route-${r}`,
        match: { path: { type: 'prefix', value: `/r${r}` }, methods: ['GET', 'POST'] },
        service: `svc-${(p * ROUTES_PER_PRODUCT + r) % SERVICES}`,
        rewrite: { stripPrefix: `/p${p}` },
      })),
    })),
    plans: Array.from({ length: 10 }, (_, i) => ({ name: `plan-${i}`, limits: [{ requests: 100 * (i + 1), per: 'second', burst: 20 }] })),
    partners: Array.from({ length: PARTNERS }, (_, i) => ({
      name: `partner-${i}`,
      subscriptions: [{ product: `product-${i % PRODUCTS}`, plan: `plan-${i % 10}` }],
      apiKeys: Array.from({ length: KEYS_PER_PARTNER }, (_, k) => ({
        name: `key-${k}`,
        key: `ptk_${(i * KEYS_PER_PARTNER + k).toString(36).padStart(8, '0')}_${randomBytes(32).toString('base64url')}`,
      })),
    })),
  };
  return documentToYaml(doc);
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
}

function wrk(url: string, seconds: number): { requestsPerSec: number; p50Ms: number; p99Ms: number; errors: number } {
  const r = spawnSync('wrk', ['-t2', '-c100', `-d${seconds}s`, '--latency', '-H', `Authorization: Bearer ${token}`, url], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const ms = (label: string) => {
    const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(r.stdout);
    if (!m) throw new Error(`no ${label} in wrk output:\n${r.stdout}`);
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
  return {
    requestsPerSec: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)![1])),
    p50Ms: ms('50%'),
    p99Ms: ms('99%'),
    errors: Number(errors?.[1] ?? 0) + (socket ? socket.slice(1).reduce((n, x) => n + Number(x), 0) : 0),
  };
}

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portico-bench-'));
const port = await freePort();
const server = spawn(path.join(ROOT, 'bin/portico'), ['serve'], {
  env: {
    ...process.env,
    PORTICO_DATA_DIR: dataDir,
    PORTICO_ADMIN_ADDR: `127.0.0.1:${port}`,
    PORTICO_GRPC_ADDR: `127.0.0.1:${await freePort()}`,
    PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${await freePort()}`,
    PORTICO_ADMIN_TOKEN: token,
    PORTICO_LOG_LEVEL: 'warn',
    ...(values['database-url'] ? { DATABASE_URL: values['database-url'], PORTICO_MASTER_KEY: randomBytes(32).toString('base64') } : {}),
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const base = `http://127.0.0.1:${port}`;
try {
  await waitFor('server', async () => ((await fetch(`${base}/readyz`).catch(() => undefined))?.ok ? true : undefined), 60_000);
  const rssIdle = rssMb(server.pid!);
  const text = buildDocument();
  const t0 = performance.now();
  const res = await fetch(`${base}/api/v1/config`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body: text });
  const applyMs = Math.round(performance.now() - t0);
  const body = (await res.json()) as { summary?: unknown; detail?: string };
  if (!res.ok) throw new Error(`apply failed: ${res.status} ${body.detail}`);
  const t1 = performance.now();
  const again = (await (await fetch(`${base}/api/v1/config`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body: text })).json()) as { changed: boolean };
  const reapplyMs = Math.round(performance.now() - t1);
  const seconds = Number(values.seconds ?? 10);
  wrk(`${base}/api/v1/partners?limit=100`, 3); // warm-up: fills caches and lets the apply's garbage be collected
  const listPartners = wrk(`${base}/api/v1/partners?limit=100`, seconds);
  const listRoutes = wrk(`${base}/api/v1/products/product-7/routes`, seconds);
  const getService = wrk(`${base}/api/v1/services/svc-3`, seconds);
  console.log(
    JSON.stringify(
      {
        benchmark: 'admin-apply',
        database: values['database-url'] ? 'postgresql' : 'pglite',
        model: { products: PRODUCTS, routes: PRODUCTS * ROUTES_PER_PRODUCT, partners: PARTNERS, apiKeys: PARTNERS * KEYS_PER_PARTNER, services: SERVICES, documentBytes: text.length },
        applyMs,
        applySummary: body.summary,
        reapplyMs,
        reapplyChanged: again.changed,
        listAt100Connections: { partnersPage100: listPartners, routesOfProduct: listRoutes, getService },
        serverRssMb: { idle: rssIdle, holdingModel: rssMb(server.pid!) },
        targets: { applyMs: 10_000, listP99Ms: 20, rssMb: 250 },
      },
      null,
      2,
    ),
  );
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
