// Benchmark: what JSON ↔ gRPC transcoding costs Envoy. One gateway (a control plane in process and a
// real Envoy with one worker) in front of a grpc-js order service (test/support/grpc-orders.ts) serves
// the same unary method two ways: JSON over HTTP/1.1 through the gRPC-JSON transcoder (GET
// /v1/orders/{id}, loaded by wrk) and native gRPC over HTTP/2 (loaded by a grpc-js client in this
// process). Short alternating slices (J N, N J, …) so the rest of the machine hits both alike; the
// figure is requests per Envoy CPU-second (from /proc), transcoded ÷ native, median of the rounds.
// Prints JSON. Usage: tsx bench/transcode.ts [--rounds 6] [--slice 3] [--connections 16]
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { ORDERS_DEFINITION, ORDERS_SERVICE, ordersDescriptorSet, startOrdersServer } from '../test/support/grpc-orders.ts';
import { startTestPortico } from '../test/support/portico.ts';
import { cpuSeconds, flags, median, printJson, round2, wrk } from './harness.ts';
import { startGatewayEnvoy, workspace } from './stack.ts';

const args = flags({ rounds: 6, slice: 3, connections: 16 });
const GROUP = 'edge';

interface Slice {
  requests: number;
  errors: number;
  envoyCpuS: number;
  perCpuSecond: number;
}

/** `connections` unary calls in flight on one HTTP/2 connection for `seconds`, as a closed loop. */
async function grpcLoad(client: grpc.Client, seconds: number, inFlight: number): Promise<{ requests: number; errors: number }> {
  const m = ORDERS_DEFINITION.GetOrder;
  const end = Date.now() + seconds * 1000;
  let requests = 0;
  let errors = 0;
  const one = () =>
    new Promise<void>((resolve) =>
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { id: 'o-1' }, (err) => {
        if (err) errors++;
        else requests++;
        resolve();
      }),
    );
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  return { requests, errors };
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  const upstream = await startOrdersServer();
  const portico = await startTestPortico();
  const ws = workspace('portico-bench-transcode-');
  const envoy = await startGatewayEnvoy(ws, envoyBin, { nodeId: 'bench-transcode', group: GROUP, xds: `127.0.0.1:${portico.grpcPort}`, concurrency: 1, drainTimeS: 1 });
  const port = await freePort();
  const doc = {
    portico: 'v1',
    gatewayGroups: [{ name: GROUP, listeners: [{ name: 'http', port, address: '127.0.0.1' }] }],
    services: [{ name: 'orders', protocol: 'http2', endpoints: [{ host: '127.0.0.1', port: upstream.port }], grpc: { descriptorSet: ordersDescriptorSet } }],
    // Public: no callout, so only the protocol differs between the two.
    products: [
      {
        name: 'shop',
        gatewayGroups: [GROUP],
        auth: { accept: ['none'] },
        routes: [
          { name: 'json', match: { path: { type: 'prefix', value: '/v1' } }, service: 'orders', transcode: { services: [ORDERS_SERVICE] } },
          { name: 'native', match: { path: { type: 'prefix', value: `/${ORDERS_SERVICE}/` } }, service: 'orders' },
        ],
      },
    ],
  };
  const applied = await portico.api.post('/api/v1/config', doc);
  if (applied.status !== 200) throw new Error(`apply failed: ${applied.text}`);
  const url = `http://127.0.0.1:${port}/v1/orders/o-1`;
  await waitFor('the JSON route to answer', async () => ((await fetch(url).catch(() => undefined))?.status === 200 ? true : undefined), 30_000);
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const envoyCpu = () => cpuSeconds(envoy.proc.child.pid);
  const measure = async (kind: 'json' | 'grpc', seconds: number): Promise<Slice> => {
    const cpu0 = envoyCpu();
    const r =
      kind === 'json'
        ? await wrk({ url, durationS: seconds, threads: 1, connections: args.connections }).then((w) => ({ requests: w.requests, errors: w.non2xx + w.socketErrors }))
        : await grpcLoad(client, seconds, args.connections);
    const envoyCpuS = envoyCpu() - cpu0;
    return { ...r, envoyCpuS: round2(envoyCpuS), perCpuSecond: Math.round(r.requests / Math.max(envoyCpuS, 0.01)) };
  };
  try {
    await measure('json', 1); // warm-up
    await measure('grpc', 1);
    const rounds: Array<{ json: Slice; grpc: Slice; ratio: number }> = [];
    for (let i = 0; i < args.rounds; i++) {
      const order = i % 2 === 0 ? (['json', 'grpc'] as const) : (['grpc', 'json'] as const);
      const r: Partial<Record<'json' | 'grpc', Slice>> = {};
      for (const k of order) r[k] = await measure(k, args.slice);
      rounds.push({ json: r.json!, grpc: r.grpc!, ratio: Math.round((r.json!.perCpuSecond / r.grpc!.perCpuSecond) * 1000) / 1000 });
    }
    printJson({
      benchmark: 'transcode',
      method: `${ORDERS_SERVICE}/GetOrder`,
      envoyWorkers: 1,
      sliceSeconds: args.slice,
      inFlight: args.connections,
      cpus: os.cpus().length,
      loadAverage: os.loadavg().map(round2),
      rounds,
      medianRequestsPerEnvoyCpuSecond: { json: median(rounds.map((r) => r.json.perCpuSecond)), grpc: median(rounds.map((r) => r.grpc.perCpuSecond)) },
      transcodedOverNativePerCpuSecond: median(rounds.map((r) => r.ratio)),
      errors: rounds.reduce((n, r) => n + r.json.errors + r.grpc.errors, 0),
    });
  } finally {
    client.close();
    await ws.close();
    await portico.close();
    await upstream.close();
  }
}

await main();
