// Benchmark: revocation-to-enforcement time in native authorization (authz.mode native). Clients
// hammer one API-key route through 1–2 real Envoys; a change made through the admin API (a key
// revoked, a partner suspended, a subscription removed) is timed from the admin API's 2xx until the
// first refusal seen through every Envoy. Several samples per kind; p50 and max; load average.
// Processes: the control plane (bin/portico serve), the gateway Envoys, a direct-response upstream.
//
// Usage: node --import tsx bench/revocation.ts [--envoys 2] [--samples 5] [--clients 4]
import os from 'node:os';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { flags, median, printJson, round2 } from './harness.ts';
import { startControlPlane, startDirectUpstream, startGatewayEnvoy, workspace, type ControlPlane } from './stack.ts';

const args = flags({ envoys: 2, samples: 5, clients: 4 });
const KINDS = ['revoke-key', 'suspend-partner', 'remove-subscription'] as const;
type Kind = (typeof KINDS)[number];

function admin(cp: ControlPlane) {
  return async (method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const r = await fetch(`${cp.adminUrl}${p}`, {
      method,
      headers: { authorization: `Bearer ${cp.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
}

/**
 * `clients` loops per gateway sending the key back to back until stopped; resolves, per gateway, the
 * time (performance.now) the first refusal after `since()` was received, or undefined if none was.
 */
function hammer(urls: readonly string[], key: string, clients: number) {
  let stop = false;
  let since = Number.POSITIVE_INFINITY;
  const firstRefusal: Array<number | undefined> = urls.map(() => undefined);
  let requests = 0;
  let errors = 0;
  const loops = urls.flatMap((url, i) =>
    Array.from({ length: clients }, async () => {
      while (!stop && firstRefusal[i] === undefined) {
        try {
          const r = await fetch(url, { headers: { 'x-api-key': key } });
          await r.arrayBuffer();
          requests++;
          const at = performance.now();
          if ((r.status === 401 || r.status === 403) && at >= since && firstRefusal[i] === undefined) firstRefusal[i] = at;
        } catch {
          errors++;
        }
      }
    }),
  );
  return {
    /** Refusals count from now on (the admin API's 2xx). */
    mark: (t: number) => {
      since = t;
    },
    done: () => firstRefusal.every((x) => x !== undefined),
    finish: async () => {
      stop = true;
      await Promise.all(loops);
      return { firstRefusal, requests, errors };
    },
  };
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const loadBefore = os.loadavg().map(round2);
  const ws = workspace('portico-bench-revocation-');
  try {
    const upstream = await startDirectUpstream(ws, envoyBin);
    const cp = await startControlPlane(ws, { PORTICO_ACCESS_LOG: 'false' });
    const api = admin(cp);
    // One gateway group per Envoy, each with its own listener port, so every Envoy can be asked
    // separately (Envoys of one group share the port through SO_REUSEPORT); the product is in all.
    const gateways = await Promise.all(Array.from({ length: args.envoys }, async (_, i) => ({ group: `edge-${i + 1}`, port: await freePort() })));
    await cp.apply({
      portico: 'v1',
      gatewayGroups: gateways.map((g) => ({ name: g.group, listeners: [{ name: 'http', port: g.port, address: '127.0.0.1' }], authz: { mode: 'native' } })),
      services: [{ name: 'upstream', endpoints: [{ host: '127.0.0.1', port: upstream.port }] }],
      products: [
        {
          name: 'bench',
          gatewayGroups: gateways.map((g) => g.group),
          basePath: '/bench',
          auth: { accept: ['api_key'] },
          routes: [{ name: 'get', match: { path: { type: 'prefix', value: '/' } }, service: 'upstream' }],
        },
      ],
      plans: [{ name: 'unlimited' }],
    });
    for (const g of gateways) await startGatewayEnvoy(ws, envoyBin, { nodeId: `bench-revocation-${g.group}`, group: g.group, xds: `127.0.0.1:${cp.grpcPort}`, concurrency: 1 });
    const urls = gateways.map((g) => `http://127.0.0.1:${g.port}/bench/item`);

    const samples: Array<{ kind: Kind; sample: number; perEnvoyMs: number[]; allEnvoysMs: number; requests: number; errors: number }> = [];
    let n = 0;
    for (let s = 0; s < args.samples; s++) {
      for (const kind of KINDS) {
        const partner = `p${++n}`;
        await api('POST', '/api/v1/partners', { name: partner, kind: 'service_account' });
        await api('POST', `/api/v1/partners/${partner}/subscriptions`, { product: 'bench', plan: 'unlimited' });
        const key = (await api('POST', `/api/v1/partners/${partner}/api-keys`, { name: 'k' })).body.key as string;
        // Every Envoy serves the new key before the clock starts.
        await waitFor(
          `every Envoy to admit ${partner}`,
          async () => {
            for (const url of urls) if ((await fetch(url, { headers: { 'x-api-key': key } })).status !== 200) return undefined;
            return true;
          },
          60_000,
          50,
        );
        const h = hammer(urls, key, args.clients);
        await new Promise((r) => setTimeout(r, 300)); // the clients are in full swing
        if (kind === 'revoke-key') await api('PATCH', `/api/v1/partners/${partner}/api-keys/k`, { revoked: true });
        else if (kind === 'suspend-partner') await api('PATCH', `/api/v1/partners/${partner}`, { suspended: true });
        else await api('DELETE', `/api/v1/partners/${partner}/subscriptions/bench`);
        const acked = performance.now();
        h.mark(acked);
        await waitFor(`every Envoy to refuse ${partner} (${kind})`, () => (h.done() ? true : undefined), 30_000, 5);
        const r = await h.finish();
        const perEnvoyMs = r.firstRefusal.map((t) => round2(t! - acked));
        samples.push({ kind, sample: s + 1, perEnvoyMs, allEnvoysMs: Math.max(...perEnvoyMs), requests: r.requests, errors: r.errors });
        process.stderr.write(`${kind} #${s + 1}: ${perEnvoyMs.join(' / ')} ms\n`);
      }
    }
    const summary = (list: typeof samples) => {
      const all = list.map((x) => x.allEnvoysMs);
      return { samples: all.length, p50Ms: round2(median(all)), maxMs: round2(Math.max(...all)) };
    };
    printJson({
      benchmark: 'revocation',
      machine: { cpus: os.cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: os.loadavg().map(round2) },
      settings: { envoys: args.envoys, clientsPerEnvoy: args.clients, samplesPerKind: args.samples },
      note: 'ms from the admin API 2xx to the first 401/403 seen through each Envoy (the time until every Envoy refuses is the max over them); target < 1000 ms.',
      targetMs: 1000,
      byKind: Object.fromEntries(KINDS.map((k) => [k, summary(samples.filter((x) => x.kind === k))])),
      overall: summary(samples),
      samples,
    });
  } finally {
    await ws.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
