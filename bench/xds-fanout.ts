// Benchmark: 1,000 simulated ADS streams (half SotW, half Delta; grpc-js clients in a child process,
// one connection each) on a group with 10,000 routes and 1,000 clusters. Measures initial sync, and the
// time from one change (a route; an endpoint) to every stream holding it, with server CPU and RSS. Prints JSON.
// Usage: tsx bench/xds-fanout.ts [--streams 1000] [--routes 10000] [--clusters 1000] [--route-configs 10]
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { SnapshotCache, typeSnapshot } from '../src/xds/cache.ts';
import { largeGroupResources, type LargeGroupOptions } from '../src/xds/fixtures.ts';
import { FleetStatus } from '../src/xds/fleet.ts';
import { TYPE_URLS } from '../src/xds/protos.ts';
import { XdsServer } from '../src/xds/server.ts';
import { DISCOVERY_SERVICES, discoveryServiceDefinition } from '../src/xds/services.ts';
import type { DeltaResponse, SotwResponse } from '../src/xds/stream.ts';
import { Registry } from 'prom-client';
import { flags, printJson } from './harness.ts';

// --client and --address: how runServer() starts the client side in a child process.
const args = flags({ client: false, address: undefined, streams: 1000, routes: 10_000, clusters: 1000, 'route-configs': 10, 'send-budget-mb': undefined });
const shape: LargeGroupOptions = { routes: args.routes, clusters: args.clusters, routeConfigs: args['route-configs'] };
const STREAMS = args.streams;
const GROUP = 'bench';
const TYPES = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener, TYPE_URLS.route];
const now = () => performance.timeOrigin + performance.now();

type ToClient = { kind: 'expect'; typeUrl: string; version: string } | { kind: 'stop' };
type FromClient =
  | { kind: 'synced'; at: number; rssMB: number }
  | { kind: 'holding'; typeUrl: string; version: string; lastAt: number; streams: number; rssMB: number; cpuMs: number };

// ── client side (child process) ──────────────────────────────────────────────

function runClients(address: string): void {
  const pad = (n: number) => String(n).padStart(5, '0');
  const clusterNames = Array.from({ length: shape.clusters }, (_, i) => `svc-${pad(i)}`);
  const routeNames = Array.from({ length: shape.routeConfigs }, (_, i) => `routes-${pad(i)}`);
  const ads = discoveryServiceDefinition(DISCOVERY_SERVICES.ads.service);
  /** Per stream, per type: latest version received and when. */
  const got: Map<string, { version: string; at: number }>[] = [];
  let expect: { typeUrl: string; version: string } | undefined;
  let expectCpu = process.cpuUsage();
  let synced = false;
  const send = (m: FromClient) => process.send!(m);

  const check = () => {
    if (!synced && got.length === STREAMS && got.every((g) => TYPES.every((t) => g.has(t)))) {
      synced = true;
      send({ kind: 'synced', at: Math.max(...got.flatMap((g) => [...g.values()].map((x) => x.at))), rssMB: rss() });
    }
    if (expect && got.every((g) => g.get(expect!.typeUrl)?.version === expect!.version)) {
      const e = expect;
      expect = undefined;
      const cpu = process.cpuUsage(expectCpu);
      send({
        kind: 'holding',
        typeUrl: e.typeUrl,
        version: e.version,
        lastAt: Math.max(...got.map((g) => g.get(e.typeUrl)!.at)),
        streams: got.length,
        rssMB: rss(),
        cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      });
    }
  };

  for (let i = 0; i < STREAMS; i++) {
    const state = new Map<string, { version: string; at: number }>();
    got.push(state);
    // A connection per simulated Envoy, as in production, with Envoy's default HTTP/2 windows (256 MiB):
    // grpc-js's 64 KiB default would make the server hold each large response in native memory.
    const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc-node.flow_control_window': 256 * 1024 * 1024,
    });
    const node = { id: `sim-${i}`, cluster: GROUP };
    const names: Record<string, string[]> = { [TYPE_URLS.endpoint]: clusterNames, [TYPE_URLS.route]: routeNames };
    if (i % 2 === 0) {
      const m = ads.StreamAggregatedResources!;
      const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize as (b: Buffer) => SotwResponse);
      call.on('data', (r: SotwResponse) => {
        state.set(r.type_url, { version: r.version_info, at: now() });
        call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names[r.type_url] ?? [] });
        check();
      });
      call.on('error', (e) => console.error(`stream ${i}: ${e.message}`));
      TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node } : {}), type_url: t, resource_names: names[t] ?? [] }));
    } else {
      const m = ads.DeltaAggregatedResources!;
      const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize as (b: Buffer) => DeltaResponse);
      call.on('data', (r: DeltaResponse) => {
        state.set(r.type_url, { version: r.system_version_info, at: now() });
        call.write({ type_url: r.type_url, response_nonce: r.nonce });
        check();
      });
      call.on('error', (e) => console.error(`stream ${i}: ${e.message}`));
      TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node } : {}), type_url: t, resource_names_subscribe: names[t] ?? [] }));
    }
  }
  process.on('message', (m: ToClient) => {
    if (m.kind === 'stop') process.exit(0);
    expect = { typeUrl: m.typeUrl, version: m.version };
    expectCpu = process.cpuUsage();
    check();
  });
}

/** With XDS_BENCH_PROFILE=dir, a CPU profile of the server during each change (node:inspector). */
async function startProfile(): Promise<((label: string) => Promise<void>) | undefined> {
  const dir = process.env.XDS_BENCH_PROFILE;
  if (!dir) return undefined;
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (label) => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(`${dir}/${label.replace(/\W+/g, '-')}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  };
}

function rss(): number {
  return Math.round(process.memoryUsage().rss / 1048576);
}

// ── server side (this process) ───────────────────────────────────────────────

async function runServer(): Promise<void> {
  const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
  const base = largeGroupResources(shape);
  const t0 = performance.now();
  cache.setGroupResources(GROUP, base);
  cache.flush();
  const buildMs = performance.now() - t0;
  const server = new XdsServer({
    cache,
    fleet: new FleetStatus({ registry: new Registry(), cache }),
    ...(args['send-budget-mb'] ? { sendBudgetBytes: Number(args['send-budget-mb']) * 1048576 } : {}),
  });
  const port = await server.listen('127.0.0.1', 0);

  global.gc?.();
  const baselineRss = process.memoryUsage().rss;
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10);
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--client', '--address', `127.0.0.1:${port}`, ...process.argv.slice(2)], {
    execArgv: ['--import', 'tsx', '--max-old-space-size=4096'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = () => new Promise<FromClient>((resolve) => child.once('message', (m: FromClient) => resolve(m)));

  const syncStart = now();
  const cpuSync0 = process.cpuUsage();
  const synced = await next();
  const cpuSync = process.cpuUsage(cpuSync0);
  if (synced.kind !== 'synced') throw new Error('unexpected message');
  await new Promise((r) => setTimeout(r, 1000));
  global.gc?.();
  const steadyRss = process.memoryUsage().rss;
  const steadyMem = process.memoryUsage();

  const change = async (label: string, resources: typeof base, typeUrl: string) => {
    peakRss = 0;
    const profiling = await startProfile();
    const cpu0 = process.cpuUsage();
    const start = now();
    cache.setGroupResources(GROUP, resources);
    cache.flush();
    const version = typeSnapshot(cache.getSnapshot(GROUP), typeUrl).version;
    child.send({ kind: 'expect', typeUrl, version } satisfies ToClient);
    const m = await next();
    const cpu = process.cpuUsage(cpu0);
    await profiling?.(label);
    if (m.kind !== 'holding') throw new Error('unexpected message');
    await new Promise((r) => setTimeout(r, 200)); // let the ACKs land before the next change
    return {
      change: label,
      streamsHolding: m.streams,
      changeToAllStreamsMs: Math.round(m.lastAt - start),
      serverCpuMs: Math.round((cpu.user + cpu.system) / 1000),
      serverPeakRssMB: Math.round(peakRss / 1048576),
      clientRssMB: m.rssMB,
      clientCpuMs: m.cpuMs,
    };
  };

  const results = [
    await change('one route (one RouteConfiguration re-sent)', largeGroupResources({ ...shape, variant: 1 }), TYPE_URLS.route),
    await change('one endpoint (one ClusterLoadAssignment)', largeGroupResources({ ...shape, variant: 1, endpointVariant: 1 }), TYPE_URLS.endpoint),
    await change('one route again', largeGroupResources({ ...shape, variant: 2, endpointVariant: 1 }), TYPE_URLS.route),
  ];
  clearInterval(sampler);
  child.send({ kind: 'stop' } satisfies ToClient);
  printJson({
    benchmark: 'xds-fanout',
    streams: { total: STREAMS, sotw: Math.ceil(STREAMS / 2), delta: Math.floor(STREAMS / 2) },
    shape,
    snapshotBuildMs: Math.round(buildMs),
    initialSync: {
      allStreamsFullConfigMs: Math.round(synced.at - syncStart),
      serverCpuMs: Math.round((cpuSync.user + cpuSync.system) / 1000),
      clientRssMB: synced.rssMB,
    },
    serverBaselineRssMB: Math.round(baselineRss / 1048576),
    serverSteadyRssMB: Math.round(steadyRss / 1048576),
    serverSteadyMemoryMB: Object.fromEntries(Object.entries(steadyMem).map(([k, v]) => [k, Math.round(v / 1048576)])),
    changes: results,
    targets: { changeToAllStreamsMs: 1000, serverRssMB: 256 },
  });
  await server.close(1000);
  cache.close();
  process.exit(0);
}

if (args.client) runClients(args.address!);
else await runServer();
