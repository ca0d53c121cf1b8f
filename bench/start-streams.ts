// The stream side of bench/start.ts --streams: a child process holding N ADS streams to a running
// `portico serve` (even ones SotW, odd ones Delta, a connection each, like an Envoy fleet), each
// subscribed to every resource of its gateway group. Tells its parent (IPC) when all of them hold
// every type, so the parent can read the control plane's memory then.
import * as grpc from '@grpc/grpc-js';
import { TYPE_URLS } from '../src/proto/index.ts';
import { DISCOVERY_SERVICES, discoveryServiceDefinition, unpackDeltaResource } from '../src/xds/services.ts';
import type { DeltaResponse, SotwResponse } from '../src/xds/stream.ts';

const TYPES = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener, TYPE_URLS.route];
/** Envoy subscribes to these by name (the others are wildcard). */
const BY_NAME = new Set<string>([TYPE_URLS.endpoint, TYPE_URLS.route]);

export type FromStreams = { kind: 'synced'; ms: number; streams: number; bytes: number } | { kind: 'failed'; message: string };

const ads = () => discoveryServiceDefinition(DISCOVERY_SERVICES.ads.service);
const channel = (address: string) =>
  new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': -1,
    // Envoy's default HTTP/2 window: with grpc-js's 64 KiB the server would hold large responses.
    'grpc-node.flow_control_window': 256 * 1024 * 1024,
  });

/** The names of every endpoint and route resource, from one Delta stream subscribed to '*'. */
export function discover(address: string, group: string): Promise<Map<string, string[]>> {
  return new Promise((resolve, reject) => {
    const m = ads().DeltaAggregatedResources!;
    const client = channel(address);
    const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize as (b: Buffer) => DeltaResponse);
    const names = new Map<string, string[]>();
    call.on('data', (r: DeltaResponse) => {
      names.set(
        r.type_url,
        r.resources.map((b) => unpackDeltaResource(b).name),
      );
      call.write({ type_url: r.type_url, response_nonce: r.nonce });
      if (TYPES.every((t) => names.has(t))) {
        call.cancel();
        client.close();
        resolve(names);
      }
    });
    call.on('error', (e: grpc.ServiceError) => e.code !== grpc.status.CANCELLED && reject(e));
    TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node: { id: 'discover', cluster: group } } : {}), type_url: t, resource_names_subscribe: ['*'] }));
  });
}

export async function runStreams(o: { address: string; streams: number; group: string }): Promise<void> {
  const send = (m: FromStreams) => process.send!(m);
  const names = await discover(o.address, o.group);
  const t0 = performance.now();
  const holding = Array.from({ length: o.streams }, () => new Set<string>());
  let bytes = 0;
  let done = false;
  const check = () => {
    if (done || !holding.every((h) => h.size === TYPES.length)) return;
    done = true;
    send({ kind: 'synced', ms: Math.round(performance.now() - t0), streams: o.streams, bytes });
  };
  const failed = (e: Error) => send({ kind: 'failed', message: e.message });
  const m = ads();
  for (let i = 0; i < o.streams; i++) {
    const client = channel(o.address);
    const node = { id: `bench-${i}`, cluster: o.group };
    const want = (t: string) => (BY_NAME.has(t) ? (names.get(t) ?? []) : []);
    const counted =
      <T>(decode: (b: Buffer) => T) =>
      (b: Buffer) => {
        bytes += b.length;
        return decode(b);
      };
    if (i % 2 === 0) {
      const sotw = m.StreamAggregatedResources!;
      const call = client.makeBidiStreamRequest(sotw.path, sotw.requestSerialize, counted(sotw.responseDeserialize as (b: Buffer) => SotwResponse));
      call.on('data', (r: SotwResponse) => {
        holding[i]!.add(r.type_url);
        call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: want(r.type_url) });
        check();
      });
      call.on('error', failed);
      TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node } : {}), type_url: t, resource_names: want(t) }));
    } else {
      const delta = m.DeltaAggregatedResources!;
      const call = client.makeBidiStreamRequest(delta.path, delta.requestSerialize, counted(delta.responseDeserialize as (b: Buffer) => DeltaResponse));
      call.on('data', (r: DeltaResponse) => {
        holding[i]!.add(r.type_url);
        call.write({ type_url: r.type_url, response_nonce: r.nonce });
        check();
      });
      call.on('error', failed);
      TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node } : {}), type_url: t, resource_names_subscribe: want(t) }));
    }
  }
  process.on('message', (msg: { kind: string }) => {
    if (msg.kind === 'stop') process.exit(0);
  });
}

// Started by bench/start.ts as `start-streams.ts --child '{"address":…,"streams":…,"group":…}'`.
if (process.argv[2] === '--child') runStreams(JSON.parse(process.argv[3]!)).catch((e: Error) => process.send!({ kind: 'failed', message: e.message } satisfies FromStreams));
