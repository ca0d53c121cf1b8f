// Benchmark: the partner portal on loopback. A control plane (bin/portico serve, its own process)
// holds a partner with `--products` subscriptions (a rate limit and a quota each) and `--keys` keys;
// headless Chromium signed in with the partner token reloads each portal page until its table shows
// (target: under a second), and the portal's usage and keys operations are timed over HTTP.
//
// Usage: node --import tsx bench/portal.ts [--reloads 10] [--calls 200] [--products 10] [--keys 50]
import os from 'node:os';
import { chromium } from 'playwright-core';
import { componentPath } from '../test/support/components.ts';
import { flags, median, printJson, round2 } from './harness.ts';
import { startControlPlane, workspace } from './stack.ts';

const args = flags({ reloads: 10, calls: 200, products: 10, keys: 50 });

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

const summary = (xs: number[]) => ({ p50: round2(median(xs)), p99: round2(percentile(xs, 99)), max: round2(Math.max(...xs)) });

const ws = workspace('portal-bench');
const loadBefore = os.loadavg();
const cp = await startControlPlane(ws);
try {
  const products = Array.from({ length: args.products }, (_, i) => `p${i}`);
  await cp.apply({
    portico: 'v1',
    gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 18999 }] }],
    services: [{ name: 's', endpoints: [{ host: '127.0.0.1', port: 9 }] }],
    plans: [{ name: 'gold', limits: [{ requests: 100, per: 'second' }], quotas: [{ requests: 100000, per: 'day' }] }],
    products: products.map((p) => ({ name: p, gatewayGroups: ['edge'], basePath: `/${p}`, routes: [{ name: 'all', match: { path: { type: 'prefix', value: '/' } }, service: 's' }] })),
    partners: [{ name: 'acme', subscriptions: products.map((p) => ({ product: p, plan: 'gold' })) }],
  });
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${cp.adminUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as Record<string, unknown>;
  };
  for (let i = 0; i < args.keys; i++) await post('/api/v1/partners/acme/api-keys', { name: `k${i}` });
  const token = (await post('/api/v1/partners/acme/portal-tokens', { name: 'bench' })).token as string;

  // HTTP: the operations the pages call, one at a time.
  const http: Record<string, ReturnType<typeof summary>> = {};
  for (const path of ['/api/v1/portal/usage', '/api/v1/portal/keys', '/api/v1/portal/subscriptions']) {
    const times: number[] = [];
    for (let i = 0; i < args.calls; i++) {
      const t0 = performance.now();
      const r = await fetch(`${cp.adminUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
      await r.arrayBuffer();
      if (!r.ok) throw new Error(`${path}: ${r.status}`);
      times.push(performance.now() - t0);
    }
    http[path] = summary(times);
  }

  // Chromium: a full reload of each page until its table is on screen.
  const browser = await chromium.launch({ executablePath: componentPath('chromium') ?? 'chromium', headless: true });
  const pages: Record<string, ReturnType<typeof summary>> = {};
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${cp.adminUrl}/console/`);
    await page.getByLabel('Admin or viewer token').fill(token);
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    for (const [id, table] of [
      ['subscriptions', 'Subscriptions'],
      ['usage', 'Limits and quotas'],
      ['keys', 'API keys'],
    ] as const) {
      const times: number[] = [];
      for (let i = 0; i < args.reloads; i++) {
        await page.goto('about:blank');
        const t0 = performance.now();
        await page.goto(`${cp.adminUrl}/console/#/${id}`);
        await page.getByRole('table', { name: table }).locator('tbody tr').first().waitFor();
        times.push(performance.now() - t0);
      }
      pages[id] = summary(times);
    }
  } finally {
    await browser.close();
  }
  printJson({
    benchmark: 'portal',
    settings: args,
    fullReloadMs: pages,
    httpMs: http,
    targetMs: 1000,
    met: Object.values(pages).every((p) => p.p99 < 1000),
    loadAverage: { before: loadBefore.map(round2), after: os.loadavg().map(round2) },
    cpus: os.cpus().length,
  });
} finally {
  await ws.close();
}
