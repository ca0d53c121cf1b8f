// The gRPC shell over real sockets: per-type services and Fetch, hosting other services on the same
// server, protocol errors, jittered max age, graceful close; Envoy bootstraps (validate mode, HA, CLI node).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_CHANNEL_SDS_DIR, renderBootstrap } from '../../src/xds/bootstrap.ts';
import { CHANNEL_SDS_FILES } from '../../src/contract/index.ts';
import { SnapshotCache } from '../../src/xds/cache.ts';
import { httpGatewayResources } from '../support/xds-fixtures.ts';
import { FleetStatus } from '../../src/xds/fleet.ts';
import { TYPE_URLS, type JsonObject } from '../../src/proto/index.ts';
import { DISCOVERY_SERVICES, discoveryServiceDefinition, serviceDefinition, unpackAny, unpackDeltaResource } from '../../src/xds/services.ts';
import { XdsServer, jittered } from '../../src/xds/server.ts';
import type { DeltaResponse, SotwResponse } from '../../src/xds/stream.ts';
import { freePort, requireComponent, startProcess, waitFor } from '../support/components.ts';

const NODE = { id: 'raw-1', cluster: 'g' };

async function setup(opts: { maxConnectionAgeMs?: number } = {}) {
  const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
  cache.setGroupResources('g', httpGatewayResources({ listenerPort: 8080, upstreams: { a: [1], b: [2] }, routes: [{ prefix: '/', cluster: 'a' }] }));
  cache.flush();
  const fleet = new FleetStatus({ cache });
  const server = new XdsServer({ cache, fleet, ...opts });
  return { cache, fleet, server };
}

function bidi<Req, Res>(addr: string, service: string, method: string) {
  const def = discoveryServiceDefinition(service)[method]!;
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(def.path, def.requestSerialize as (r: Req) => Buffer, def.responseDeserialize as (b: Buffer) => Res);
  const received: Res[] = [];
  call.on('data', (r: Res) => received.push(r));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {});
  return { client, call, received, status };
}

describe('xDS gRPC server', () => {
  it('serves the per-type services (SotW stream, Delta stream, Fetch)', async () => {
    const { server, cache } = await setup();
    const port = await server.listen('127.0.0.1', 0);
    const addr = `127.0.0.1:${port}`;
    try {
      const cds = DISCOVERY_SERVICES.cds.service;
      const s = bidi<JsonObject, SotwResponse>(addr, cds, 'StreamClusters');
      s.call.write({ node: NODE, type_url: TYPE_URLS.cluster });
      await waitFor('CDS response', () => s.received[0]);
      assert.deepEqual(
        s.received[0]!.resources.map((b) => unpackAny(b).name),
        ['a', 'b'],
      );
      assert.equal(s.received[0]!.version_info, cache.getSnapshot('g').types.get(TYPE_URLS.cluster)!.version);

      const d = bidi<JsonObject, DeltaResponse>(addr, cds, 'DeltaClusters');
      d.call.write({ node: NODE, type_url: TYPE_URLS.cluster });
      await waitFor('delta CDS response', () => d.received[0]);
      assert.deepEqual(
        d.received[0]!.resources.map((b) => unpackDeltaResource(b).name),
        ['a', 'b'],
      );

      const eds = DISCOVERY_SERVICES.eds.service;
      const fetchDef = discoveryServiceDefinition(eds).FetchEndpoints!;
      const client = new grpc.Client(addr, grpc.credentials.createInsecure());
      const fetched = await new Promise<SotwResponse>((resolve, reject) =>
        client.makeUnaryRequest(
          fetchDef.path,
          fetchDef.requestSerialize as (r: JsonObject) => Buffer,
          fetchDef.responseDeserialize as (b: Buffer) => SotwResponse,
          { node: NODE, resource_names: ['b'] },
          (e, r) => (e ? reject(e) : resolve(r!)),
        ),
      );
      assert.deepEqual(
        fetched.resources.map((b) => unpackAny(b).cluster_name),
        ['b'],
      );
      for (const c of [s, d]) {
        c.call.end();
        c.client.close();
      }
      client.close();
    } finally {
      await server.close(200);
      cache.close();
    }
  });

  it('serves a large route configuration (written as pieces around the cache buffer) whole, on SotW and Delta streams', async () => {
    const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
    // ~1,000 routes: a RouteConfiguration far above the size under which a body is one copied piece.
    const routes = Array.from({ length: 1000 }, (_, i) => ({ prefix: `/a-fairly-long-prefix-for-route-${i}/`, cluster: i % 2 ? 'a' : 'b' }));
    cache.setGroupResources('g', httpGatewayResources({ listenerPort: 8080, upstreams: { a: [1], b: [2] }, routes }));
    cache.flush();
    const server = new XdsServer({ cache, fleet: new FleetStatus({ cache }) });
    const port = await server.listen('127.0.0.1', 0);
    const addr = `127.0.0.1:${port}`;
    try {
      const [served] = [...cache.getSnapshot('g').types.get(TYPE_URLS.route)!.resources.values()];
      assert.ok(served!.any.length > 32 * 1024, `route configuration of ${served!.any.length} bytes`);
      const rds = DISCOVERY_SERVICES.rds.service;
      const s = bidi<JsonObject, SotwResponse>(addr, rds, 'StreamRoutes');
      const d = bidi<JsonObject, DeltaResponse>(addr, rds, 'DeltaRoutes');
      s.call.write({ node: NODE, type_url: TYPE_URLS.route, resource_names: [served!.name] });
      d.call.write({ node: NODE, type_url: TYPE_URLS.route, resource_names_subscribe: [served!.name] });
      await waitFor('RDS responses', () => s.received[0] && d.received[0]);
      assert.deepEqual(Buffer.from(s.received[0]!.resources[0]!), Buffer.from(served!.any));
      assert.deepEqual(Buffer.from(d.received[0]!.resources[0]!), Buffer.from(served!.delta));
      assert.equal(((unpackAny(s.received[0]!.resources[0]!).virtual_hosts as JsonObject[])[0]!.routes as unknown[]).length, 1000);
      for (const c of [s, d]) {
        c.call.end();
        c.client.close();
      }
    } finally {
      await server.close(200);
      cache.close();
    }
  });

  it('ends a stream whose first request has no node with INVALID_ARGUMENT', async () => {
    const { server, cache } = await setup();
    const port = await server.listen('127.0.0.1', 0);
    try {
      const s = bidi<JsonObject, SotwResponse>(`127.0.0.1:${port}`, DISCOVERY_SERVICES.ads.service, 'StreamAggregatedResources');
      s.call.write({ type_url: TYPE_URLS.cluster });
      const st = await s.status;
      assert.equal(st.code, grpc.status.INVALID_ARGUMENT);
      assert.match(st.details, /node/);
      s.client.close();
    } finally {
      await server.close(200);
      cache.close();
    }
  });

  it('a message the gRPC layer refuses (compressed) ends the stream with UNIMPLEMENTED and forgets it (fleet, stream count)', async () => {
    const { server, cache, fleet } = await setup();
    const port = await server.listen('127.0.0.1', 0);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      const def = discoveryServiceDefinition(DISCOVERY_SERVICES.ads.service).StreamAggregatedResources!;
      const req = session.request({ ':method': 'POST', ':path': def.path, 'content-type': 'application/grpc', te: 'trailers' });
      req.on('data', () => {});
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
      const message = (def.requestSerialize as (r: JsonObject) => Buffer)({ node: NODE, type_url: TYPE_URLS.cluster });
      const prefix = (flag: number, len: number) => Buffer.from([flag, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff]);
      req.write(Buffer.concat([prefix(0, message.length), message]));
      await waitFor('the stream open', () => (server.streamCount() === 1 && fleet.status().nodes.length === 1) || undefined);
      req.write(Buffer.concat([prefix(1, message.length), message]));
      const t = await trailers;
      assert.equal(t['grpc-status'], String(grpc.status.UNIMPLEMENTED));
      assert.match(String(t['grpc-message']), /compressed/);
      assert.equal(server.streamCount(), 0);
      assert.equal(fleet.status().nodes.length, 0);
    } finally {
      session.destroy();
      await server.close(200);
      cache.close();
    }
  });

  it('hosts other services on the same port (e.g. ext_authz) with proto3-JSON handlers', async () => {
    const { server, cache } = await setup();
    const seen: JsonObject[] = [];
    server.addService(serviceDefinition('envoy.service.auth.v3.Authorization'), {
      Check: (call: grpc.ServerUnaryCall<JsonObject, JsonObject>, cb: grpc.sendUnaryData<JsonObject>) => {
        seen.push(call.request);
        cb(null, { status: { code: 7, message: 'no key' }, denied_response: { status: { code: 'Forbidden' }, body: 'denied' } });
      },
    });
    const port = await server.listen('127.0.0.1', 0);
    assert.throws(() => server.addService(serviceDefinition('envoy.service.ratelimit.v3.RateLimitService'), {}), /before listen/);
    try {
      const def = serviceDefinition('envoy.service.auth.v3.Authorization').Check!;
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const res = await new Promise<JsonObject>((resolve, reject) =>
        client.makeUnaryRequest(
          def.path,
          def.requestSerialize as (r: JsonObject) => Buffer,
          def.responseDeserialize as (b: Buffer) => JsonObject,
          { attributes: { request: { http: { method: 'GET', path: '/x', headers: { 'x-api-key': 'k' } } } } },
          (e, r) => (e ? reject(e) : resolve(r!)),
        ),
      );
      assert.deepEqual(res, { status: { code: 7, message: 'no key' }, denied_response: { status: { code: 'Forbidden' }, body: 'denied' } });
      assert.deepEqual(seen[0], { attributes: { request: { http: { method: 'GET', path: '/x', headers: { 'x-api-key': 'k' } } } } });
      client.close();
    } finally {
      await server.close(200);
      cache.close();
    }
  });

  it('ends xDS streams cleanly at the maximum age (±10% jitter)', async () => {
    assert.equal(
      jittered(1000, () => 0),
      900,
    );
    assert.equal(
      jittered(1000, () => 1),
      1100,
    );
    const { server, cache } = await setup({ maxConnectionAgeMs: 600 });
    const port = await server.listen('127.0.0.1', 0);
    try {
      const s = bidi<JsonObject, SotwResponse>(`127.0.0.1:${port}`, DISCOVERY_SERVICES.ads.service, 'StreamAggregatedResources');
      const start = Date.now();
      s.call.write({ node: NODE, type_url: TYPE_URLS.cluster });
      const st = await s.status;
      const age = Date.now() - start;
      assert.equal(st.code, grpc.status.OK);
      assert.ok(age >= 500 && age < 1000, `ended after ${age} ms`);
      assert.equal(s.received.length, 1);
      s.client.close();
    } finally {
      await server.close(200);
      cache.close();
    }
  });

  it('close(grace): ends streams with OK at once, refuses new calls, completes', async () => {
    const { server, cache, fleet } = await setup();
    const port = await server.listen('127.0.0.1', 0);
    const s = bidi<JsonObject, DeltaResponse>(`127.0.0.1:${port}`, DISCOVERY_SERVICES.ads.service, 'DeltaAggregatedResources');
    s.call.write({ node: NODE, type_url: TYPE_URLS.cluster });
    await waitFor('a response', () => s.received[0]);
    assert.equal(server.streamCount(), 1);
    const start = Date.now();
    await server.close(5000);
    const st = await s.status;
    assert.equal(st.code, grpc.status.OK);
    assert.ok(Date.now() - start < 2000, 'did not wait for the whole grace period');
    assert.equal(fleet.status().nodes.length, 0);
    const again = bidi<JsonObject, SotwResponse>(`127.0.0.1:${port}`, DISCOVERY_SERVICES.ads.service, 'StreamAggregatedResources');
    again.call.write({ node: NODE, type_url: TYPE_URLS.cluster });
    assert.equal((await again.status).code, grpc.status.UNAVAILABLE);
    s.client.close();
    again.client.close();
    cache.close();
  });
});

describe('Envoy bootstraps', () => {
  it('envoy/edge.yaml and envoy/sidecar.yaml (with envoy/portico-*-sds.yaml installed) pass envoy --mode validate', async (t) => {
    const envoy = requireComponent(t, 'envoy');
    if (!envoy) return;
    // The files name SDS files in /etc/portico/envoy: validate copies that name a temporary directory.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-validate-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const f of Object.values(CHANNEL_SDS_FILES)) writeFileSync(path.join(dir, f), readFileSync(`envoy/${f}`, 'utf8'));
    for (const role of ['edge', 'sidecar']) {
      const file = path.join(dir, `${role}.yaml`);
      const text = readFileSync(`envoy/${role}.yaml`, 'utf8');
      assert.ok(text.includes(DEFAULT_CHANNEL_SDS_DIR), `envoy/${role}.yaml reads its mTLS credentials through ${DEFAULT_CHANNEL_SDS_DIR}`);
      writeFileSync(file, text.replaceAll(`${DEFAULT_CHANNEL_SDS_DIR}/`, `${dir}/`));
      const p = startProcess(envoy, ['--mode', 'validate', '-c', file, '--service-node', 'n', '--service-cluster', 'g', '--use-dynamic-base-id']);
      await new Promise<void>((r) => p.child.once('exit', () => r()));
      assert.equal(p.child.exitCode, 0, p.output());
      assert.match(p.output(), /OK/);
    }
  });

  it('with several control-plane addresses Envoy finds a live one; node identity comes from the command line', async (t) => {
    const envoy = requireComponent(t, 'envoy');
    if (!envoy) return;
    const { server, cache, fleet } = await setup();
    const live = await server.listen('127.0.0.1', 0);
    const dead = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-bootstrap-'));
    const file = path.join(dir, 'envoy.json');
    writeFileSync(file, JSON.stringify(renderBootstrap({ xdsAddresses: [`127.0.0.1:${dead}`, `127.0.0.1:${live}`], adminPort: await freePort(), role: 'sidecar' })));
    const p = startProcess(envoy, ['-c', file, '--service-node', 'sidecar-9', '--service-cluster', 'g', '--use-dynamic-base-id', '-l', 'warning']);
    try {
      const node = await waitFor('Envoy on the live replica', () => fleet.node('sidecar-9'), 30_000);
      assert.equal(node.group, 'g');
      await waitFor('clusters ACKed', () => fleet.node('sidecar-9')?.types.find((x) => x.type === 'clusters')?.ackedVersion);
    } catch (e) {
      t.diagnostic(p.output().slice(-3000));
      throw e;
    } finally {
      await p.stop();
      await server.close(200);
      cache.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
