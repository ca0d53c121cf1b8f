// The real ext_authz gRPC service on a free port, called by a grpc-js client with encoded
// CheckRequests: API key allow and deny, JWT allow, malformed requests, readiness — on a plain
// grpc-js server (role "callouts"), beside ADS on the xDS server (role "all"), and on the lean
// HTTP/2 listener, which must give the same answers and the gRPC statuses the spec prescribes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { checkRequestJson, mintApiKey, modelOf, ordersModel, testHasher, type CheckInput } from '../support/authz-fixtures.ts';
import { AuthzService, authzClientDefinition, registerAuthzService, registerAuthzUnary } from '../../src/authz/service.ts';
import { UnaryGrpcServer } from '../../src/grpc/unary-server.ts';
import { SnapshotCache } from '../../src/xds/cache.ts';
import { FleetStatus } from '../../src/xds/fleet.ts';
import { XdsServer } from '../../src/xds/server.ts';
import type { JsonObject } from '../../src/proto/index.ts';

type CheckClient = grpc.Client & {
  Check(req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: JsonObject) => void): grpc.ClientUnaryCall;
};
const Client = grpc.makeGenericClientConstructor(authzClientDefinition(), 'Authorization') as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => CheckClient;

function connect(port: number, options: grpc.ChannelOptions = {}): CheckClient {
  return new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options);
}

function call(client: CheckClient, req: unknown): Promise<JsonObject> {
  return new Promise((resolve, reject) => client.Check(req, { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res!))));
}

interface OkJson {
  ok_response: { headers?: Array<{ header: { key: string; value: string } }>; headers_to_remove?: string[] };
  dynamic_metadata: Record<string, string>;
}
interface DeniedJson {
  status: { code: number };
  denied_response: { status: { code: string }; headers: Array<{ header: { key: string; value: string } }>; body: string };
}
const headerOf = (r: OkJson | DeniedJson, name: string) => ('ok_response' in r ? r.ok_response.headers : r.denied_response.headers)?.find((h) => h.header.key === name)?.header.value;

type Transport = { name: string; start(service: AuthzService): Promise<{ port: number; stop(): Promise<void> }> };
const transports: Transport[] = [
  {
    name: 'grpc-js server',
    async start(service) {
      const server = new grpc.Server();
      registerAuthzService(server, service);
      const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
      return { port, stop: async () => server.forceShutdown() };
    },
  },
  {
    name: 'lean HTTP/2 listener',
    async start(service) {
      const server = new UnaryGrpcServer();
      registerAuthzUnary(server, service);
      const port = await server.listen('127.0.0.1', 0);
      return { port, stop: () => server.close(100) };
    },
  },
];

for (const transport of transports)
  describe(`ext_authz gRPC service (${transport.name})`, () => {
    const hasher = testHasher();
    const key = mintApiKey(hasher, 'acme', 'primary');
    let signer: CryptoKey;
    let service: AuthzService;
    let stop: () => Promise<void>;
    let client: CheckClient;

    before(async () => {
      const kp = await generateKeyPair('ES256', { extractable: true });
      signer = kp.privateKey;
      const pub = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'ES256' };
      service = new AuthzService({ hasher, registry: new Registry() });
      service.update(
        ordersModel(key.resource, [{ name: 'idp', issuer: 'https://idp.example/', audiences: ['orders'], jwks: { keys: [pub] }, partnerClaim: 'org', forwardClaims: { sub: 'X-User-Id' } }]),
      );
      await service.ready();
      const started = await transport.start(service);
      stop = started.stop;
      client = connect(started.port);
    });

    after(async () => {
      client?.close();
      await stop?.();
      service?.close();
    });

    const req = (i: CheckInput) => checkRequestJson({ product: 'orders', route: 'list', accept: 'api_key,jwt', path: '/orders', ...i });

    it('allows a valid API key and answers with identity headers, removals and dynamic metadata', async () => {
      const res = (await call(client, req({ headers: { 'x-api-key': key.secret, 'x-portico-partner': 'evil', 'x-user-id': 'spoof' } }))) as unknown as OkJson;
      assert.ok(res.ok_response, JSON.stringify(res));
      assert.equal(headerOf(res, 'x-portico-partner'), 'acme');
      assert.equal(headerOf(res, 'x-portico-product'), 'orders');
      assert.ok(res.ok_response.headers_to_remove!.includes('x-user-id'));
      assert.ok(res.ok_response.headers_to_remove!.includes('x-api-key'));
      assert.deepEqual(res.dynamic_metadata, { credential: 'api_key', partner: 'acme', plan: 'gold', product: 'orders', route: 'list' });
    });

    it('denies an unknown API key with 401, the JSON error body and a challenge', async () => {
      const res = (await call(client, req({ headers: { 'x-api-key': `ptk_abcdefgh_${'B'.repeat(43)}` } }))) as unknown as DeniedJson;
      assert.equal(res.denied_response.status.code, 'Unauthorized');
      assert.equal(res.status.code, grpc.status.UNAUTHENTICATED);
      assert.deepEqual(JSON.parse(res.denied_response.body), { error: 'invalid_api_key', message: 'The API key is not recognised.' });
      assert.equal(headerOf(res, 'content-type'), 'application/json');
      assert.match(headerOf(res, 'www-authenticate')!, /^ApiKey realm="portico"/);
    });

    it('allows a valid JWT and forwards its claims', async () => {
      const token = await new SignJWT({ iss: 'https://idp.example/', aud: 'orders', org: 'acme', sub: 'user-7' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('10m').sign(signer);
      const res = (await call(client, req({ headers: { authorization: `Bearer ${token}` } }))) as unknown as OkJson;
      assert.equal(headerOf(res, 'x-user-id'), 'user-7');
      assert.equal(res.dynamic_metadata.credential, 'jwt');
      const bad = (await call(client, req({ headers: { authorization: `Bearer ${token.slice(0, -6)}AAAAAA` } }))) as unknown as DeniedJson;
      assert.equal(bad.denied_response.status.code, 'Unauthorized');
      assert.match(headerOf(bad, 'www-authenticate')!, /error="invalid_token"/);
    });

    it('answers undecodable bytes with INVALID_ARGUMENT and keeps serving', async () => {
      await assert.rejects(call(client, Buffer.from('definitely not a protobuf message')), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
        assert.match(e.details, /CheckRequest/);
        return true;
      });
      // An empty CheckRequest decodes (every field is optional) and is denied, fail closed.
      const empty = (await call(client, {})) as unknown as DeniedJson;
      assert.equal(empty.denied_response.status.code, 'Forbidden');
      assert.equal(JSON.parse(empty.denied_response.body).error, 'unknown_product');
      const again = (await call(client, req({ headers: { 'x-api-key': key.secret } }))) as unknown as OkJson;
      assert.ok(again.ok_response);
    });

    it('handles many concurrent checks', async () => {
      const results = await Promise.all(Array.from({ length: 300 }, (_, i) => call(client, req({ requestId: `r${i}`, headers: { 'x-api-key': i % 3 === 0 ? 'nope' : key.secret } }))));
      assert.equal(results.filter((r) => 'ok_response' in r).length, 200);
      assert.equal(results.filter((r) => 'denied_response' in r).length, 100);
    });

    it('answers UNAVAILABLE before the first snapshot (so Envoy applies its failure mode)', async () => {
      const cold = new AuthzService({ hasher, registry: new Registry() });
      const s = await transport.start(cold);
      const c = connect(s.port);
      try {
        await assert.rejects(call(c, req({})), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
      } finally {
        c.close();
        await s.stop();
        cold.close();
      }
    });
  });

describe('ext_authz hosting', () => {
  it('runs beside ADS on the xDS server', async () => {
    const hasher = testHasher();
    const key = mintApiKey(hasher, 'acme', 'primary');
    const service = new AuthzService({ hasher, registry: new Registry() });
    service.update(
      modelOf({
        products: [{ name: 'orders', gatewayGroups: ['edge'] }],
        partners: [{ name: 'acme' }],
        plans: [{ name: 'gold' }],
        subscriptions: [{ partner: 'acme', product: 'orders', plan: 'gold' }],
        apiKeys: [key.resource],
      }),
    );
    const cache = new SnapshotCache();
    const xds = new XdsServer({ cache, fleet: new FleetStatus({ cache }) });
    registerAuthzService(xds, service);
    const port = await xds.listen('127.0.0.1', 0);
    const c = connect(port);
    try {
      const res = (await call(c, checkRequestJson({ product: 'orders', route: 'list', headers: { 'x-api-key': key.secret } }))) as unknown as OkJson;
      assert.equal(headerOf(res, 'x-portico-partner'), 'acme');
    } finally {
      c.close();
      await xds.close(1_000);
      service.close();
    }
  });

  describe('lean HTTP/2 listener protocol handling', () => {
    let server: UnaryGrpcServer;
    let port: number;
    before(async () => {
      server = new UnaryGrpcServer({ maxMessageBytes: 64 * 1024 });
      server.handle('/envoy.service.auth.v3.Authorization/Check', (b) =>
        b.length === 0 ? { ok: false, code: grpc.status.INVALID_ARGUMENT, details: 'empty, with 100% unicode ✓' } : Promise.resolve({ ok: true, response: Buffer.from(b) }),
      );
      port = await server.listen('127.0.0.1', 0);
    });
    after(() => server.close(100));

    const raw = (x: Buffer) => x;
    const rawMethod = (path: string) => ({ path, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });
    /** One raw call on its own channel: bytes in, bytes out. */
    const echo = (body: Buffer, path = '/envoy.service.auth.v3.Authorization/Check', to = port) =>
      new Promise<Buffer>((resolve, reject) => {
        const Raw = grpc.makeGenericClientConstructor({ Call: rawMethod(path) }, 'Raw');
        const c = new Raw(`127.0.0.1:${to}`, grpc.credentials.createInsecure()) as unknown as { Call(b: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): void; close(): void };
        c.Call(body, (e, r) => {
          c.close();
          return e ? reject(e) : resolve(r!);
        });
      });

    it('answers a message and passes statuses with percent-encoded details', async () => {
      assert.deepEqual(await echo(Buffer.from('hello')), Buffer.from('hello'));
      await assert.rejects(echo(Buffer.alloc(0)), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && e.details === 'empty, with 100% unicode ✓');
    });

    it('refuses unknown methods, oversized and compressed messages with the gRPC statuses', async () => {
      await assert.rejects(echo(Buffer.from('x'), '/some.Service/Nope'), (e: grpc.ServiceError) => e.code === grpc.status.UNIMPLEMENTED);
      await assert.rejects(echo(Buffer.alloc(100 * 1024, 1)), (e: grpc.ServiceError) => e.code === grpc.status.RESOURCE_EXHAUSTED);
      const gz = connect(port, { 'grpc.default_compression_algorithm': 2 });
      await assert.rejects(call(gz, checkRequestJson({ product: 'p', headers: { pad: 'x'.repeat(2000) } })), (e: grpc.ServiceError) => e.code === grpc.status.UNIMPLEMENTED);
      gz.close();
    });

    it('lets an in-flight call finish when closing', async () => {
      const slow = new UnaryGrpcServer();
      slow.handle('/envoy.service.auth.v3.Authorization/Check', (b) => new Promise((resolve) => setTimeout(() => resolve({ ok: true, response: Buffer.from(b) }), 200)));
      const slowPort = await slow.listen('127.0.0.1', 0);
      const pending = echo(Buffer.from('late'), undefined, slowPort);
      await new Promise((r) => setTimeout(r, 50));
      const closed = slow.close(5_000);
      assert.deepEqual(await pending, Buffer.from('late'));
      await closed;
    });
  });
});
