// Envoy's rate-limit gRPC service over real sockets: memory and Redis counters through
// ShouldRateLimit with a grpc-js client, hosting on the shared xDS server, malformed requests,
// two limiter processes sharing one Redis, and a Redis outage in the middle of traffic.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { modelToDocument } from '../../src/model/declarative.ts';
import { MemoryCounters } from '../../src/ratelimit/backend.ts';
import type { RateLimitRequestMessage } from '../../src/ratelimit/descriptors.ts';
import { seedModel } from '../support/ratelimit-fixtures.ts';
import { createRateLimiter, RateLimiter, type LimiterLogger } from '../../src/ratelimit/limiter.ts';
import { UnaryGrpcServer } from '../../src/grpc/unary-server.ts';
import { addRateLimitService, CODE, rateLimitServiceDefinition, registerRateLimitUnary, startRateLimitServer, type RateLimitResponseMessage } from '../../src/ratelimit/service.ts';
import { SnapshotCache } from '../../src/xds/cache.ts';
import { FleetStatus } from '../../src/xds/fleet.ts';
import { XdsServer } from '../../src/xds/server.ts';
import { startProcess, startRedis, waitFor, type RedisServer, type RunningProcess } from '../support/components.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

class RlsClient {
  private readonly client: grpc.Client;
  private readonly def = rateLimitServiceDefinition().ShouldRateLimit!;
  constructor(addr: string) {
    this.client = new grpc.Client(addr, grpc.credentials.createInsecure());
  }
  call(msg: RateLimitRequestMessage): Promise<RateLimitResponseMessage> {
    return this.raw(msg, this.def.requestSerialize as (m: RateLimitRequestMessage) => Buffer);
  }
  /** Sends bytes as they are (to test undecodable requests). */
  bytes(b: Buffer): Promise<RateLimitResponseMessage> {
    return this.raw(b, (x: Buffer) => x);
  }
  private raw<T>(msg: T, serialize: (m: T) => Buffer): Promise<RateLimitResponseMessage> {
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(this.def.path, serialize, this.def.responseDeserialize as (b: Buffer) => RateLimitResponseMessage, msg, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  }
  close(): void {
    this.client.close();
  }
}

function descriptor(entries: Record<string, string>): RateLimitRequestMessage {
  return { domain: 'portico', descriptors: [{ entries: Object.entries(entries).map(([key, value]) => ({ key, value })) }] };
}

const wayne = descriptor({ portico_route: 'shop/orders', portico_partner: 'wayne', remote_address: '203.0.113.9' });
const headers = (r: RateLimitResponseMessage) => Object.fromEntries(r.response_headers_to_add.map((h) => [h.key, h.value]));
const body = (r: RateLimitResponseMessage) => Buffer.from(r.raw_body ?? []).toString();

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((a, v) => a + Number(v.value), 0);
}

let redis: RedisServer | undefined;
async function needRedis(t: TestContext): Promise<RedisServer | undefined> {
  return (redis ??= await startRedis(t));
}

describe('rate-limit gRPC service', { concurrency: false }, () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
    await redis?.stop();
  });

  it('memory counters: N allowed with headers, N+1 refused with the exact 429 headers and body', async () => {
    const limiter = new RateLimiter({ backend: new MemoryCounters(), model: seedModel(), metrics: { registry: new Registry() } });
    const server = await startRateLimitServer(limiter);
    const client = new RlsClient(`127.0.0.1:${server.port}`);
    cleanup.push(
      () => server.close(),
      () => client.close(),
      () => limiter.close(),
    );

    // Seed 003 login: 10/min by client IP, whoever the user is.
    const login = (ip: string, user: string) => client.call(descriptor({ portico_route: 'shop/login', portico_partner: 'acme', remote_address: ip, 'portico_header.x-user-id': user }));
    for (let i = 0; i < 10; i++) {
      const r = await login('198.51.100.4', `u${i}`);
      assert.equal(r.overall_code, CODE.OK);
      assert.deepEqual(headers(r), { 'X-RateLimit-Limit': '10', 'X-RateLimit-Remaining': String(9 - i) });
      assert.equal(body(r), '');
    }
    const refused = await login('198.51.100.4', 'u99');
    assert.equal(refused.overall_code, CODE.OVER_LIMIT);
    const h = headers(refused);
    assert.deepEqual(Object.keys(h), ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'content-type']);
    assert.equal(h['X-RateLimit-Limit'], '10');
    assert.equal(h['X-RateLimit-Remaining'], '0');
    assert.ok(Number(h['Retry-After']) >= 5 && Number(h['Retry-After']) <= 6, h['Retry-After']);
    const resetIn = Number(h['X-RateLimit-Reset']) - Date.now() / 1000;
    assert.ok(resetIn > 4 && resetIn <= 7, `reset in ${resetIn} s`);
    assert.equal(body(refused), `{"error":"rate_limit_exceeded","message":"Too many requests. Retry after ${h['Retry-After']} seconds.","retry_after":${h['Retry-After']}}`);
    assert.equal(refused.statuses[0]!.code, CODE.OVER_LIMIT);
    assert.equal(refused.statuses[0]!.current_limit!.name, 'standard:shop:login:minute');
    // Another address is counted separately.
    assert.equal((await login('198.51.100.5', 'u1')).overall_code, CODE.OK);
  });

  it('malformed requests get INVALID_ARGUMENT naming the problem, and the service keeps answering', async () => {
    const registry = new Registry();
    const limiter = new RateLimiter({ backend: new MemoryCounters(), model: seedModel(), metrics: { registry } });
    const server = await startRateLimitServer(limiter);
    const client = new RlsClient(`127.0.0.1:${server.port}`);
    cleanup.push(
      () => server.close(),
      () => client.close(),
      () => limiter.close(),
    );
    const cases: Array<[Promise<unknown>, RegExp]> = [
      [client.call({ ...wayne, domain: 'envoy' }), /unknown domain "envoy"/],
      [client.call(descriptor({ portico_partner: 'wayne' })), /no portico_route entry/],
      [client.call(descriptor({ portico_route: 'not-a-route' })), /portico_route.*<product>\/<route>/],
      [client.call(descriptor({ portico_route: 'shop/orders', remote_address: '999.1.1.1' })), /remote_address.*not an IP address/],
      [client.call(descriptor({ portico_route: 'shop/orders', portico_partner: 'DROP TABLE' })), /not a partner name/],
      [client.call({ domain: 'portico', descriptors: [] }), /exactly one descriptor/],
      [client.bytes(Buffer.from([0x12, 0xff, 0xff, 0xff, 0x0f, 0x01])), /undecodable RateLimitRequest/],
    ];
    for (const [p, re] of cases) {
      await assert.rejects(p, (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && re.test(e.details), String(re));
    }
    assert.equal(await metric(registry, 'portico_ratelimit_invalid_requests_total'), cases.length);
    assert.equal((await client.call(wayne)).overall_code, CODE.OK);
  });

  it('the lean HTTP/2 listener gives the same answers (enforcement, headers, INVALID_ARGUMENT)', async () => {
    const registry = new Registry();
    const limiter = new RateLimiter({ backend: new MemoryCounters(), model: seedModel(), metrics: { registry } });
    const lean = new UnaryGrpcServer();
    registerRateLimitUnary(lean, limiter);
    const port = await lean.listen('127.0.0.1', 0);
    const client = new RlsClient(`127.0.0.1:${port}`);
    cleanup.push(
      () => lean.close(1000),
      () => client.close(),
      () => limiter.close(),
    );
    const results = await Promise.all(Array.from({ length: 33 }, () => client.call(wayne)));
    assert.equal(results.filter((r) => r.overall_code === CODE.OK).length, 30);
    const refused = results.find((r) => r.overall_code === CODE.OVER_LIMIT)!;
    assert.deepEqual(Object.keys(headers(refused)), ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'content-type']);
    assert.equal(JSON.parse(body(refused)).error, 'rate_limit_exceeded');
    assert.deepEqual(headers(results[0]!), { 'X-RateLimit-Limit': '30', 'X-RateLimit-Remaining': '29' });
    await assert.rejects(client.call({ ...wayne, domain: 'x' }), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && /unknown domain "x"/.test(e.details));
    await assert.rejects(client.bytes(Buffer.from([0x12, 0xff, 0xff, 0xff, 0x0f, 0x01])), (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT);
    assert.equal(await metric(registry, 'portico_ratelimit_invalid_requests_total'), 2);
  });

  it('is hosted on the shared xDS gRPC server', async () => {
    const cache = new SnapshotCache({ debounceMs: 0, debounceMaxMs: 0 });
    const xds = new XdsServer({ cache, fleet: new FleetStatus({ cache }) });
    const limiter = new RateLimiter({ backend: new MemoryCounters(), model: seedModel(), metrics: { registry: new Registry() } });
    addRateLimitService(xds, limiter);
    const port = await xds.listen('127.0.0.1', 0);
    const client = new RlsClient(`127.0.0.1:${port}`);
    cleanup.push(
      () => xds.close(1000),
      () => client.close(),
      () => limiter.close(),
    );
    const results = await Promise.all(Array.from({ length: 35 }, () => client.call(wayne)));
    assert.equal(results.filter((r) => r.overall_code === CODE.OK).length, 30, 'hourly plan: 30');
  });

  it('Redis counters: exact enforcement through the service', async (t) => {
    const r = await needRedis(t);
    if (!r) return;
    const registry = new Registry();
    const limiter = createRateLimiter({ redisUrl: r.url, keyPrefix: 'grpc1:' }, { registry, model: seedModel() });
    await limiter.ready();
    const server = await startRateLimitServer(limiter);
    const client = new RlsClient(`127.0.0.1:${server.port}`);
    cleanup.push(
      () => server.close(),
      () => client.close(),
      () => limiter.close(),
    );
    // Concurrent, so decisions are batched; still exactly 30 pass.
    const results = await Promise.all(Array.from({ length: 45 }, () => client.call(wayne)));
    assert.equal(results.filter((x) => x.overall_code === CODE.OK).length, 30);
    const refused = results.find((x) => x.overall_code === CODE.OVER_LIMIT)!;
    assert.equal(headers(refused)['X-RateLimit-Limit'], '30');
    assert.equal(headers(refused)['Retry-After'], String(JSON.parse(body(refused)).retry_after));
    // 30/hour: the next token in 120 s.
    assert.ok(Number(headers(refused)['Retry-After']) > 100 && Number(headers(refused)['Retry-After']) <= 120);
    // Shadow plan through Redis: never refused.
    const stark = descriptor({ portico_route: 'shop/orders', portico_partner: 'stark', remote_address: '203.0.113.9' });
    const shadow = await Promise.all(Array.from({ length: 6 }, () => client.call(stark)));
    assert.ok(shadow.every((x) => x.overall_code === CODE.OK));
    assert.equal(await metric(registry, 'portico_ratelimit_decisions_total', { partner: 'stark', outcome: 'shadow_limited' }), 3);
    assert.ok((await metric(registry, 'portico_ratelimit_redis_round_trips_total')) < 51, 'batched round trips');
  });

  it('two limiter processes sharing one Redis enforce one global limit', async (t) => {
    const r = await needRedis(t);
    if (!r) return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-rl-'));
    const modelFile = path.join(dir, 'model.json');
    writeFileSync(modelFile, JSON.stringify(modelToDocument(seedModel())));
    const procs: RunningProcess[] = [];
    cleanup.push(async () => {
      for (const p of procs) await p.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const ports: number[] = [];
    // One replica on each transport (the lean HTTP/2 listener and grpc-js).
    for (const transport of ['http2', 'grpc-js']) {
      const i = procs.length;
      const p = startProcess(process.execPath, ['--import', 'tsx', 'src/ratelimit/standalone.ts'], {
        cwd: ROOT,
        env: { ...process.env, PORTICO_RL_MODEL: modelFile, REDIS_URL: r.url, PORTICO_LOG_LEVEL: 'warn', PORTICO_RL_TRANSPORT: transport },
      });
      procs.push(p);
      const line = await waitFor(`limiter ${i} to listen`, () => {
        if (p.child.exitCode !== null) throw new Error(`limiter exited: ${p.output()}`);
        return /\{"port":(\d+)/.exec(p.output())?.[1];
      });
      ports.push(Number(line));
    }
    const clients = ports.map((p) => new RlsClient(`127.0.0.1:${p}`));
    cleanup.push(() => clients.forEach((c) => c.close()));
    // Each replica alone would admit 30; together they must admit 30, whichever gets the traffic.
    const req = descriptor({ portico_route: 'shop/orders', portico_partner: 'wayne', remote_address: '192.0.2.44' });
    for (let i = 0; i < 20; i++) assert.equal((await clients[i % 2]!.call(req)).overall_code, CODE.OK, `alternating request ${i}`);
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => clients[i % 2]!.call(req)));
    const okBy = [0, 1].map((c) => results.filter((x, i) => i % 2 === c && x.overall_code === CODE.OK).length);
    assert.equal(okBy[0]! + okBy[1]!, 10, `admitted per replica after 20: ${okBy}`);
    // And in sequence, alternating: both now refuse.
    assert.equal((await clients[0]!.call(req)).overall_code, CODE.OVER_LIMIT);
    assert.equal((await clients[1]!.call(req)).overall_code, CODE.OVER_LIMIT);
  });

  it('Redis stopped and restarted mid-traffic: fail open (counted, logged once), then recover with the counters intact', async (t) => {
    const r = await needRedis(t);
    if (!r) return;
    const registry = new Registry();
    const lines: Array<{ level: string; msg: string }> = [];
    const logger: LimiterLogger = { info: (_o, msg) => lines.push({ level: 'info', msg }), warn: (_o, msg) => lines.push({ level: 'warn', msg }) };
    const open = createRateLimiter({ redisUrl: r.url, keyPrefix: 'outage:', redisTimeoutMs: 200 }, { registry, logger, model: seedModel() });
    const closed = createRateLimiter({ redisUrl: r.url, keyPrefix: 'outage:', failureMode: 'closed' }, { registry: new Registry(), model: seedModel() });
    await open.ready();
    await closed.ready();
    const server = await startRateLimitServer(open);
    const server2 = await startRateLimitServer(closed);
    const client = new RlsClient(`127.0.0.1:${server.port}`);
    const client2 = new RlsClient(`127.0.0.1:${server2.port}`);
    cleanup.push(
      () => server.close(),
      () => server2.close(),
      () => client.close(),
      () => client2.close(),
      () => open.close(),
      () => closed.close(),
    );
    const req = descriptor({ portico_route: 'shop/orders', portico_partner: 'wayne', remote_address: '192.0.2.45' });

    for (let i = 0; i < 25; i++) assert.equal((await client.call(req)).overall_code, CODE.OK);
    assert.equal(headers(await client.call(req))['X-RateLimit-Remaining'], '4');

    await r.pause();
    const during = await Promise.all(Array.from({ length: 40 }, () => client.call(req)));
    assert.ok(
      during.every((x) => x.overall_code === CODE.OK && x.response_headers_to_add.length === 0),
      'fail open: allowed, no limit headers',
    );
    const closedAnswer = await client2.call(req);
    assert.equal(closedAnswer.overall_code, CODE.OVER_LIMIT, 'fail closed refuses');
    assert.equal(JSON.parse(body(closedAnswer)).error, 'rate_limit_unavailable');
    assert.equal(await metric(registry, 'portico_ratelimit_backend_errors_total'), 40);
    assert.equal(await metric(registry, 'portico_ratelimit_decisions_total', { partner: 'wayne', outcome: 'error' }), 40);
    assert.equal(await metric(registry, 'portico_ratelimit_backend_up'), 0);
    assert.deepEqual(
      lines.map((l) => l.level),
      ['warn'],
      'one log line for the whole outage',
    );

    await r.start();
    const back = await waitFor('the limiter to use Redis again', async () => {
      const x = await client.call(req);
      return x.response_headers_to_add.length > 0 ? x : undefined;
    });
    // The counters survived the restart (append-only file): 4 were left, this took one.
    assert.equal(headers(back)['X-RateLimit-Remaining'], '3');
    for (let i = 0; i < 3; i++) assert.equal((await client.call(req)).overall_code, CODE.OK);
    assert.equal((await client.call(req)).overall_code, CODE.OVER_LIMIT);
    assert.deepEqual(
      lines.map((l) => l.level),
      ['warn', 'info'],
    );
    assert.equal(await metric(registry, 'portico_ratelimit_backend_up'), 1);
  });
});
