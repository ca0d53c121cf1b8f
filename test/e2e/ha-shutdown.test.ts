// Graceful shutdown of one control-plane replica (what `portico serve` does on SIGTERM): /readyz
// turns 503 "draining" at once; for the shutdown delay (PORTICO_SHUTDOWN_DELAY_MS, while load
// balancers and DNS drop the replica) everything keeps serving, a new connection's Check included;
// then the gRPC listener stops taking new calls, connected xDS streams are ended with OK (Envoys keep
// their config and reconnect elsewhere), the callout listener takes no new connections, and an
// ext_authz Check already in flight still gets its real answer before close() resolves. The
// in-flight Check is held by a gate the test opens, in front of the service's own checkBytes (a slow
// decision, made deterministic).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { checkRequestJson } from '../support/authz-fixtures.ts';
import { authzClientDefinition } from '../../src/authz/service.ts';
import { TYPE_URLS, type JsonObject } from '../../src/proto/index.ts';
import { discoveryServiceDefinition, DISCOVERY_SERVICES } from '../../src/xds/services.ts';
import type { SotwResponse } from '../../src/xds/stream.ts';
import { waitFor } from '../support/components.ts';
import { startTestPortico } from '../support/portico.ts';

type CheckClient = grpc.Client & {
  Check(req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: JsonObject) => void): grpc.ClientUnaryCall;
};
const CheckClientCtor = grpc.makeGenericClientConstructor(authzClientDefinition(), 'Authorization') as unknown as new (address: string, creds: grpc.ChannelCredentials) => CheckClient;

describe('graceful shutdown of a replica', () => {
  it('drains: readiness 503, serving on for the delay, then no new calls, xDS streams ended cleanly, in-flight Check answered', async (t) => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    // The delay only has to outlast the few calls made during it (generous for a loaded machine).
    const portico = await startTestPortico({ env: { PORTICO_SHUTDOWN_GRACE_MS: '20000', PORTICO_SHUTDOWN_DELAY_MS: '8000' } });
    let closed = false;
    t.after(async () => {
      open();
      if (!closed) await portico.close();
    });
    const api = portico.api;
    const addr = `127.0.0.1:${portico.grpcPort}`;
    const calloutAddr = `127.0.0.1:${portico.calloutPort}`;

    const applied = await api.post('/api/v1/config', {
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10080 }], authz: { mode: 'exact' } }],
      services: [{ name: 'orders', endpoints: [{ host: '127.0.0.1', port: 3002 }] }],
      products: [{ name: 'orders', gatewayGroups: ['edge'], auth: { accept: ['api_key'] }, routes: [{ name: 'list', match: { path: { type: 'prefix', value: '/orders' } }, service: 'orders' }] }],
      plans: [{ name: 'gold' }],
      partners: [{ name: 'acme', subscriptions: [{ product: 'orders', plan: 'gold' }] }],
    });
    assert.equal(applied.status, 200, applied.text);
    await waitFor('ready', async () => ((await api.get('/readyz')).status === 200 ? true : undefined));
    const key = await api.post('/api/v1/partners/acme/api-keys', { name: 'primary' });
    assert.equal(key.status, 201, key.text);

    // An Envoy-like ADS stream, holding the current config.
    const ads = discoveryServiceDefinition(DISCOVERY_SERVICES.ads.service).StreamAggregatedResources!;
    const adsClient = new grpc.Client(addr, grpc.credentials.createInsecure());
    t.after(() => adsClient.close());
    const stream = adsClient.makeBidiStreamRequest(ads.path, ads.requestSerialize as (r: JsonObject) => Buffer, ads.responseDeserialize as (b: Buffer) => SotwResponse);
    const received: SotwResponse[] = [];
    stream.on('data', (r: SotwResponse) => received.push(r));
    stream.on('error', () => {});
    let adsEnded = false;
    const adsStatus = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve)).finally(() => (adsEnded = true));
    stream.write({ node: { id: 'edge-1', cluster: 'edge' }, type_url: TYPE_URLS.cluster });
    await waitFor('the ADS stream to get clusters', () => received[0]);

    // The first Check is held in front of the service's decision: in flight when shutdown starts.
    let reached = false;
    const original = portico.authz.checkBytes.bind(portico.authz);
    portico.authz.checkBytes = (bytes, peer) => {
      if (reached) return original(bytes, peer);
      reached = true;
      return gate.then(() => original(bytes, peer));
    };
    const checkClient = new CheckClientCtor(calloutAddr, grpc.credentials.createInsecure());
    t.after(() => checkClient.close());
    const request = checkRequestJson({ product: 'orders', route: 'list', accept: 'api_key', path: '/orders/1', headers: { 'x-api-key': key.body.key } });
    let checkDone = false;
    const inFlight = new Promise<JsonObject>((resolve, reject) =>
      checkClient.Check(request, { deadline: Date.now() + 30_000 }, (err, res) => {
        checkDone = true;
        return err ? reject(err) : resolve(res!);
      }),
    );
    await waitFor('the Check to reach the service', () => (reached ? true : undefined));

    // Shutdown starts (SIGTERM calls exactly this).
    let closeDone = false;
    const closing = portico.close().then(() => (closeDone = true));

    const ready = await api.withToken(undefined).get('/readyz');
    assert.equal(ready.status, 503, ready.text);
    assert.equal(ready.body.status, 'draining');
    assert.equal((await api.withToken(undefined).get('/healthz')).status, 200, 'alive while draining');

    // During the delay a balancer that has not dropped this replica yet may still send it a new
    // connection: it is served (a fresh channel, so a new connection), and the xDS stream stays open.
    const early = new CheckClientCtor(calloutAddr, grpc.credentials.createInsecure());
    t.after(() => early.close());
    const during = (await new Promise<JsonObject | undefined>((resolve, reject) => early.Check(request, { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res))))) as {
      status?: { code?: number };
      dynamic_metadata?: Record<string, string>;
    };
    assert.equal(during.status?.code ?? 0, 0, `a Check on a new connection during the delay: ${JSON.stringify(during)}`);
    assert.equal(during.dynamic_metadata?.partner, 'acme');
    assert.equal(adsEnded, false, 'xDS streams stay open during the delay');
    assert.equal((await api.withToken(undefined).get('/readyz')).status, 503, 'still draining');

    const ended = await adsStatus;
    assert.equal(ended.code, grpc.status.OK, `xDS stream ended cleanly: ${ended.details}`);

    // No new calls are taken (a fresh channel: the old one may still be draining its connection).
    const late = new CheckClientCtor(calloutAddr, grpc.credentials.createInsecure());
    t.after(() => late.close());
    await assert.rejects(
      new Promise((resolve, reject) => late.Check(request, { deadline: Date.now() + 3_000 }, (err, res) => (err ? reject(err) : resolve(res)))),
      (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED,
    );
    assert.equal(closeDone, false, 'close() waits for the in-flight Check');
    assert.equal(checkDone, false);

    // The decision is made: the in-flight Check gets its real answer, then shutdown completes.
    open();
    const answer = (await inFlight) as { status?: { code?: number }; dynamic_metadata?: Record<string, string> };
    assert.equal(answer.status?.code ?? 0, 0, JSON.stringify(answer));
    assert.equal(answer.dynamic_metadata?.partner, 'acme');
    await closing;
    closed = true;
    await assert.rejects(api.get('/healthz'), 'the admin API is closed at the end');
  });
});
