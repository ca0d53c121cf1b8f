// Benchmark 1, convergence: a real control plane (in process, embedded PGlite) and a real Envoy on the
// seed-003 example; sequential admin writes, each timed from the write's HTTP response to Envoy's
// ACK of the version it produced (seen in process by hooking FleetStatus.onAck). Prints JSON.
// Usage: tsx bench/convergence.ts [--writes 100] [--kinds route,endpoint] [--debounce-ms 50] [--debounce-max-ms 250]
import { typeSnapshot } from '../src/xds/cache.ts';
import { TYPE_URLS } from '../src/proto/index.ts';
import type { StreamInfo } from '../src/xds/stream.ts';
import { componentPath, waitFor } from '../test/support/components.ts';
import { launchEnvoy, settledNode, snapshotVersions } from '../test/support/envoy.ts';
import { startTestPortico } from '../test/support/portico.ts';
import { seed003 } from '../test/support/seed003.ts';
import { flags, printJson } from './harness.ts';

// The debounce flags stay text: they go to the control plane's environment as given.
const args = flags({ writes: 100, kinds: 'route,endpoint', 'debounce-ms': '50', 'debounce-max-ms': '250' });
const WRITES = args.writes;
const KINDS = args.kinds.split(',').map((k) => k.trim()) as Array<'route' | 'endpoint'>;
const DEBOUNCE_MS = args['debounce-ms'];
const DEBOUNCE_MAX_MS = args['debounce-max-ms'];
const GROUP = 'edge';
const NODE = 'bench-convergence';
const now = () => performance.now();

/** What a write changes and which xDS type carries it. */
const WRITE = {
  // RDS: the orders route's X-Gateway header value.
  route: { typeUrl: TYPE_URLS.route, path: '/api/v1/products/orders/routes/orders', body: (i: number) => ({ requestHeaders: { set: { 'X-Gateway': `portico-${i}` } } }) },
  // EDS: the orders service's endpoint weight (1..128, different on every write).
  endpoint: { typeUrl: TYPE_URLS.endpoint, path: '/api/v1/services/orders', body: (i: number, port: number) => ({ endpoints: [{ host: '127.0.0.1', port, weight: (i % 127) + 1 }] }) },
} as const;

function summary(xs: number[]): { n: number; p50: number; p90: number; p99: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  const r = (v: number) => Math.round(v * 10) / 10;
  return { n: s.length, p50: r(q(50)), p90: r(q(90)), p99: r(q(99)), max: r(s[s.length - 1]!), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const seed = await seed003();
  const portico = await startTestPortico({ env: { PORTICO_DEBOUNCE_MS: DEBOUNCE_MS, PORTICO_DEBOUNCE_MAX_MS: DEBOUNCE_MAX_MS } });
  const envoy = await launchEnvoy(envoyBin, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: NODE });
  try {
    const applied = await portico.api.post('/api/v1/config', seed.yaml(), { 'content-type': 'application/yaml' });
    if (applied.status !== 200) throw new Error(`apply failed: ${applied.text}`);
    await envoy.waitForListener('http', 60_000);
    await waitFor('Envoy in sync', () => (portico.xds.cache.hasPending() ? undefined : settledNode(portico.xds.fleet.status(), NODE, snapshotVersions(portico.xds.cache, GROUP))), 60_000);

    // Every ACK from our Envoy, as it arrives (the fleet status is the stream observer).
    const fleet = portico.xds.fleet;
    const onAck = fleet.onAck.bind(fleet);
    let ackWaiter: ((typeUrl: string, version: string, at: number) => void) | undefined;
    fleet.onAck = (info: StreamInfo, typeUrl: string, version: string, latencyMs: number | undefined) => {
      onAck(info, typeUrl, version, latencyMs);
      if (info.nodeId === NODE) ackWaiter?.(typeUrl, version, now());
    };
    let publishedAt = 0;
    portico.xds.cache.watch(GROUP, () => (publishedAt = now()));

    const results: Record<string, unknown> = {};
    const ordersPort = seed.upstreams.orders!.port;
    for (const kind of KINDS) {
      const w = WRITE[kind];
      const fromResponse: number[] = [];
      const fromRequest: number[] = [];
      const debounce: number[] = [];
      const pushToAck: number[] = [];
      for (let i = 0; i < WRITES; i++) {
        const before = typeSnapshot(portico.xds.cache.getSnapshot(GROUP), w.typeUrl).version;
        const acked = new Promise<{ version: string; at: number }>((resolve) => {
          ackWaiter = (typeUrl, version, at) => {
            if (typeUrl === w.typeUrl && version !== before) resolve({ version, at });
          };
        });
        const sent = now();
        const res = await fetch(`${portico.adminUrl}${w.path}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${portico.api.token}`, 'content-type': 'application/json' },
          body: JSON.stringify(w.body(i, ordersPort)),
        });
        const responded = now(); // headers received: the write is committed
        await res.text();
        if (res.status !== 200) throw new Error(`write ${i} failed: ${res.status}`);
        const ack = await Promise.race([acked, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`write ${i}: no ACK within 30 s`)), 30_000))]);
        ackWaiter = undefined;
        const expected = typeSnapshot(portico.xds.cache.getSnapshot(GROUP), w.typeUrl).version;
        if (ack.version !== expected) throw new Error(`write ${i}: Envoy ACKed ${ack.version}, the snapshot is at ${expected}`);
        fromResponse.push(ack.at - responded);
        fromRequest.push(ack.at - sent);
        debounce.push(publishedAt - responded);
        pushToAck.push(ack.at - publishedAt);
      }
      results[kind] = {
        xdsType: w.typeUrl.split('.').pop(),
        responseToAckMs: summary(fromResponse),
        requestToAckMs: summary(fromRequest),
        responseToPublishMs: summary(debounce),
        publishToAckMs: summary(pushToAck),
      };
    }
    const all = Object.values(results) as Array<{ responseToAckMs: { p99: number } }>;
    printJson({
      benchmark: 'convergence: admin write (HTTP response) → Envoy ACK of the resulting version',
      writesPerKind: WRITES,
      debounceMs: Number(DEBOUNCE_MS),
      debounceMaxMs: Number(DEBOUNCE_MAX_MS),
      ackObservedBy: 'in process: FleetStatus.onAck hooked (the ADS stream observer), no polling',
      envoy: ((await (await fetch(`${envoy.adminUrl}/server_info`)).json()) as { version: string }).version,
      target: { p99Ms: 150, met: all.every((r) => r.responseToAckMs.p99 < 150) },
      results,
    });
  } finally {
    await envoy.stop();
    await portico.close();
    await seed.close();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
