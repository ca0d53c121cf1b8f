// The client side of bench/xds-fanout.ts, run in a child process: grpc-js ADS streams standing in for an
// Envoy fleet. It tells its parent when every stream holds a version, and what the streams received.
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { LargeGroupOptions } from '../test/support/xds-fixtures.ts';
import { TYPE_URLS } from '../src/proto/index.ts';
import { DISCOVERY_SERVICES, discoveryServiceDefinition, unpackAny, unpackDeltaResource } from '../src/xds/services.ts';
import type { DeltaResponse, Protocol, SotwResponse } from '../src/xds/stream.ts';

export const TYPES = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener, TYPE_URLS.route];
const now = () => performance.timeOrigin + performance.now();

function rss(): number {
  return Math.round(process.memoryUsage().rss / 1048576);
}

export type Received = Record<Protocol, { responses: number; resources: number; bytes: number }>;
/** What one stream was served for a type: resource count and a digest of their proto3 JSON (and of their bytes, SotW). */
export type Served = Record<string, { resources: number; json: string; bytes?: string }>;

export type ToClients = { kind: 'reset' } | { kind: 'expect'; typeUrl: string; version: string } | { kind: 'served' } | { kind: 'stop' };
export type FromClients =
  | { kind: 'synced'; at: number; rssMB: number }
  | { kind: 'reset' }
  | { kind: 'holding'; lastAt: number; streams: number; rssMB: number; cpuMs: number; received: Received }
  | { kind: 'served'; sotw: Served; delta: Served }
  /** A stream ended (the client does not reconnect, so the run cannot complete): sent once, for the first. */
  | { kind: 'dropped'; stream: number; message: string; streams: number };

/** Digest of resources as proto3 JSON (keys sorted), so servers that encode differently still compare. */
function digest(resources: Uint8Array[], toJson: (b: Uint8Array) => unknown, withBytes: boolean): Served[string] {
  const sorted = (_: string, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v);
  const hashAll = (each: string[]) => createHash('sha256').update(each.sort().join('\n')).digest('hex').slice(0, 16);
  const hash = (x: Uint8Array | string) => createHash('sha256').update(x).digest('hex');
  return {
    resources: resources.length,
    json: hashAll(resources.map((b) => hash(JSON.stringify(toJson(b), sorted)))),
    ...(withBytes ? { bytes: hashAll(resources.map(hash)) } : {}),
  };
}

/**
 * The simulated fleet: `streams` ADS streams on a connection each, even ones SotW, odd ones Delta,
 * each subscribing to every cluster's endpoints and every route configuration by name. Reports to the
 * parent process over IPC.
 */
export function runClients(o: { address: string; streams: number; shape: LargeGroupOptions; group: string }): void {
  const { address, streams, shape, group } = o;
  const pad = (n: number) => String(n).padStart(5, '0');
  const clusterNames = Array.from({ length: shape.clusters }, (_, i) => `svc-${pad(i)}`);
  const routeNames = Array.from({ length: shape.routeConfigs }, (_, i) => `routes-${pad(i)}`);
  const ads = discoveryServiceDefinition(DISCOVERY_SERVICES.ads.service);
  /** Per stream, per type: latest version received and when. */
  const got: Map<string, { version: string; at: number }>[] = [];
  /** The first response of each type on stream 0 (SotW) and 1 (Delta): what the server serves. */
  const first: Record<Protocol, Map<string, Uint8Array[]>> = { sotw: new Map(), delta: new Map() };
  const zero = (): Received => ({ sotw: { responses: 0, resources: 0, bytes: 0 }, delta: { responses: 0, resources: 0, bytes: 0 } });
  let received = zero();
  let expect: { typeUrl: string; version: string } | undefined;
  let changeCpu = process.cpuUsage();
  let synced = false;
  const send = (m: FromClients) => process.send!(m);

  const check = () => {
    if (!synced && got.length === streams && got.every((g) => TYPES.every((t) => g.has(t)))) {
      synced = true;
      send({ kind: 'synced', at: Math.max(...got.flatMap((g) => [...g.values()].map((x) => x.at))), rssMB: rss() });
    }
    if (expect && got.every((g) => g.get(expect!.typeUrl)?.version === expect!.version)) {
      const e = expect;
      expect = undefined;
      const cpu = process.cpuUsage(changeCpu);
      send({
        kind: 'holding',
        lastAt: Math.max(...got.map((g) => g.get(e.typeUrl)!.at)),
        streams: got.length,
        rssMB: rss(),
        cpuMs: Math.round((cpu.user + cpu.system) / 1000),
        received,
      });
    }
  };
  let drops = 0;
  const dropped = (i: number, e: Error) => {
    console.error(`stream ${i}: ${e.message}`);
    if (drops++ === 0) send({ kind: 'dropped', stream: i, message: e.message, streams });
  };
  /** Counts what arrives (size included) before the stream's own decoding. */
  const counting =
    <T extends { resources: Uint8Array[] }>(protocol: Protocol, decode: (b: Buffer) => T) =>
    (b: Buffer) => {
      const r = decode(b);
      const c = received[protocol];
      c.responses++;
      c.resources += r.resources.length;
      c.bytes += b.length;
      return r;
    };

  for (let i = 0; i < streams; i++) {
    const state = new Map<string, { version: string; at: number }>();
    got.push(state);
    // A connection per simulated Envoy, as in production, with Envoy's default HTTP/2 windows (256 MiB):
    // grpc-js's 64 KiB default would make the server hold each large response in native memory.
    const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc-node.flow_control_window': 256 * 1024 * 1024,
    });
    const node = { id: `sim-${i}`, cluster: group };
    const names: Record<string, string[]> = { [TYPE_URLS.endpoint]: clusterNames, [TYPE_URLS.route]: routeNames };
    const keep = (protocol: Protocol, typeUrl: string, resources: Uint8Array[]) => {
      if (i < 2 && !first[protocol].has(typeUrl)) first[protocol].set(typeUrl, resources);
    };
    if (i % 2 === 0) {
      const m = ads.StreamAggregatedResources!;
      const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, counting('sotw', m.responseDeserialize as (b: Buffer) => SotwResponse));
      call.on('data', (r: SotwResponse) => {
        state.set(r.type_url, { version: r.version_info, at: now() });
        keep('sotw', r.type_url, r.resources);
        call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names[r.type_url] ?? [] });
        check();
      });
      call.on('error', (e) => dropped(i, e));
      TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node } : {}), type_url: t, resource_names: names[t] ?? [] }));
    } else {
      const m = ads.DeltaAggregatedResources!;
      const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, counting('delta', m.responseDeserialize as (b: Buffer) => DeltaResponse));
      call.on('data', (r: DeltaResponse) => {
        state.set(r.type_url, { version: r.system_version_info, at: now() });
        keep('delta', r.type_url, r.resources);
        call.write({ type_url: r.type_url, response_nonce: r.nonce });
        check();
      });
      call.on('error', (e) => dropped(i, e));
      TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node } : {}), type_url: t, resource_names_subscribe: names[t] ?? [] }));
    }
  }
  process.on('message', (m: ToClients) => {
    switch (m.kind) {
      case 'stop':
        return process.exit(0);
      case 'reset':
        // Responses may arrive before the expected version is known: count from here.
        received = zero();
        changeCpu = process.cpuUsage();
        send({ kind: 'reset' });
        return;
      case 'served': {
        const served = (p: Protocol, toJson: (b: Uint8Array) => unknown) => Object.fromEntries(TYPES.map((t) => [t.split('.').pop()!, digest(first[p].get(t) ?? [], toJson, p === 'sotw')]));
        send({ kind: 'served', sotw: served('sotw', unpackAny), delta: served('delta', (b) => unpackDeltaResource(b).resource) });
        return;
      }
      case 'expect':
        expect = { typeUrl: m.typeUrl, version: m.version };
        check();
    }
  });
}
