// Benchmark: ext_authz Check throughput and latency through the real gRPC service (grpc-js load
// generator in a child process), on the grpc-js server and on the lean HTTP/2 listener, for API
// keys, JWT RS256 and ES256 (repeated tokens hit the verified-token cache; distinct tokens with the
// cache off pay for every signature), a no-op baseline per transport, and the in-process costs
// (decode, decide, verify, encode). Prints JSON.
// Usage: tsx bench/authz.ts [--duration 5] [--concurrency 64] [--channels 2] [--tokens 3000]
//        [--only api_key,jwt_es256_cached,...] [--transports grpc-js,h2] [--skip-micro]
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { decide, jwtToVerify, type JwtOutcome } from '../src/authz/decide.ts';
import { checkRequestJson, mintApiKey, ordersModel, testHasher } from '../test/support/authz-fixtures.ts';
import { AuthzService, registerAuthzService, registerAuthzUnary } from '../src/authz/service.ts';
import { UnaryGrpcServer } from '../src/grpc/unary-server.ts';
import { decodeCheckRequest, encodeCheckResponse } from '../src/authz/wire.ts';
import { decodeMessage, encodeMessage, lookupType } from '../src/proto/index.ts';
import { flags, printJson, round2 } from './harness.ts';

const checkRequestType = lookupType('envoy.service.auth.v3.CheckRequest');

const PATH = '/envoy.service.auth.v3.Authorization/Check';
const raw = (b: Buffer) => b;
const RAW_DEF: grpc.ServiceDefinition = {
  Check: { path: PATH, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw, originalName: 'check' },
};

// ── load generator (child process) ───────────────────────────────────────────

interface ClientResult {
  calls: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
}

async function runClient(): Promise<void> {
  const { address, file, durationMs, concurrency, channels } = JSON.parse(process.argv[3]!) as {
    address: string;
    file: string;
    durationMs: number;
    concurrency: number;
    channels: number;
  };
  const requests = (JSON.parse(readFileSync(file, 'utf8')) as string[]).map((b) => Buffer.from(b, 'base64'));
  const Client = grpc.makeGenericClientConstructor(RAW_DEF, 'Authorization');
  const clients = Array.from(
    { length: channels },
    (_, i) =>
      new Client(address, grpc.credentials.createInsecure(), { 'grpc.channel_id': i } as grpc.ChannelOptions) as unknown as {
        Check(req: Buffer, cb: (e: grpc.ServiceError | null) => void): void;
      },
  );
  let next = 0;
  const lat: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const loop = (c: (typeof clients)[number]) =>
    new Promise<void>((resolve) => {
      const one = () => {
        if (stop) return resolve();
        const req = requests[next++ % requests.length]!;
        const t = performance.now();
        c.Check(req, (e) => {
          if (measuring) {
            lat.push(performance.now() - t);
            if (e) errors++;
          }
          one();
        });
      };
      one();
    });
  const loops = Array.from({ length: concurrency }, (_, i) => loop(clients[i % clients.length]!));
  await new Promise((r) => setTimeout(r, 1000)); // warm-up: JIT, connections, caches
  measuring = true;
  process.send!({ phase: 'start' });
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  process.send!({ phase: 'end' });
  stop = true;
  await Promise.all(loops);
  lat.sort((a, b) => a - b);
  const q = (p: number) => Math.round((lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? NaN) * 1000) / 1000;
  const result: ClientResult = { calls: lat.length, errors, seconds, p50Ms: q(0.5), p90Ms: q(0.9), p99Ms: q(0.99) };
  process.send!({ phase: 'result', result });
  for (const c of clients) (c as unknown as grpc.Client).close();
}

// ── server side (this process) ───────────────────────────────────────────────

async function bind(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
}

async function drive(address: string, requests: Buffer[], opts: { durationMs: number; concurrency: number; channels: number }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-bench-authz-'));
  const file = path.join(dir, 'requests.json');
  writeFileSync(file, JSON.stringify(requests.map((b) => b.toString('base64'))));
  try {
    const child = fork(new URL(import.meta.url).pathname, ['--client', JSON.stringify({ address, file, ...opts })], { execArgv: ['--import', 'tsx'] });
    let cpu0 = process.cpuUsage();
    let cpu = { user: 0, system: 0 };
    const result = await new Promise<ClientResult>((resolve, reject) => {
      child.on('message', (m: { phase: string; result?: ClientResult }) => {
        if (m.phase === 'start') cpu0 = process.cpuUsage();
        else if (m.phase === 'end') cpu = process.cpuUsage(cpu0);
        else if (m.phase === 'result') resolve(m.result!);
      });
      child.on('exit', (code) => (code ? reject(new Error(`load generator exited with ${code}`)) : undefined));
    });
    await new Promise((r) => child.on('exit', r));
    const serverCpuSeconds = (cpu.user + cpu.system) / 1e6;
    return {
      checksPerSecond: Math.round(result.calls / result.seconds),
      serverCpuCores: Math.round((serverCpuSeconds / result.seconds) * 100) / 100,
      checksPerServerCpuSecond: Math.round(result.calls / serverCpuSeconds),
      p50Ms: result.p50Ms,
      p90Ms: result.p90Ms,
      p99Ms: result.p99Ms,
      calls: result.calls,
      errors: result.errors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function micro(name: string, iterations: number, fn: (i: number) => unknown): { name: string; usPerOp: number; opsPerSecond: number } {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(i);
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) fn(i);
  const ms = performance.now() - t0;
  return { name, usPerOp: Math.round((ms / iterations) * 1000 * 100) / 100, opsPerSecond: Math.round(iterations / (ms / 1000)) };
}

async function microAsync(name: string, iterations: number, fn: (i: number) => unknown, parallel = 64) {
  const t0 = performance.now();
  let i = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (i < iterations) await fn(i++);
    }),
  );
  const ms = performance.now() - t0;
  return { name, usPerOp: Math.round((ms / iterations) * 1000 * 100) / 100, opsPerSecond: Math.round(iterations / (ms / 1000)) };
}

async function main(): Promise<void> {
  const args = flags({ duration: 5, concurrency: 64, channels: 2, only: undefined, tokens: 3000, transports: 'grpc-js,h2', 'skip-micro': false });
  const transports = args.transports.split(',') as Array<'grpc-js' | 'h2'>;
  const opts = { durationMs: args.duration * 1000, concurrency: args.concurrency, channels: args.channels };
  const only = args.only ? new Set(args.only.split(',')) : undefined;
  const distinctTokens = args.tokens;

  // Model: one product accepting API keys and JWTs from two issuers (RS256, ES256), one subscribed partner.
  const hasher = testHasher();
  const key = mintApiKey(hasher, 'acme', 'bench');
  const rs = await generateKeyPair('RS256', { extractable: true });
  const es = await generateKeyPair('ES256', { extractable: true });
  const model = ordersModel(key.resource, [await issuer('rsa-idp', 'https://rsa.example/', 'RS256', rs.publicKey, 'rs'), await issuer('ec-idp', 'https://ec.example/', 'ES256', es.publicKey, 'es')]);
  const token = (alg: 'RS256' | 'ES256', i: number) =>
    new SignJWT({ iss: alg === 'RS256' ? 'https://rsa.example/' : 'https://ec.example/', aud: 'orders', org: 'acme', sub: `user-${i}`, role: 'customer' })
      .setProtectedHeader({ alg, kid: alg === 'RS256' ? 'rs' : 'es', typ: 'JWT' })
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(alg === 'RS256' ? rs.privateKey : es.privateKey);
  const envoyLike = (headers: Record<string, string>, i = 0) =>
    Buffer.from(
      encodeMessage(
        'envoy.service.auth.v3.CheckRequest',
        checkRequestJson({
          product: 'orders',
          route: 'list',
          accept: 'api_key,jwt',
          path: `/orders/${i}?page=2`,
          requestId: `6f1c0a52-2b0e-4a0e-9a57-${String(i).padStart(12, '0')}`,
          headers: { accept: 'application/json', 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-envoy-expected-rq-timeout-ms': '15000', ...headers },
        }),
      ),
    );

  const cached = new AuthzService({ hasher, registry: new Registry() });
  const uncached = new AuthzService({ hasher, registry: new Registry(), jwt: { tokenCacheSize: 0 } });
  cached.update(model);
  uncached.update(model);
  await Promise.all([cached.ready(), uncached.ready()]);

  // The no-op server's fixed answer: an allow for acme on orders/list.
  const who = { product: 'orders', route: 'list', partner: 'acme', plan: 'gold' } as const;
  const fixedOk = encodeCheckResponse({
    allowed: true,
    ...who,
    credential: 'api_key',
    setHeaders: [['x-portico-partner', 'acme']],
    removeHeaders: ['x-api-key'],
    removeQuery: [],
    metadata: { product: 'orders', partner: 'acme' },
  });
  const grpcServers = { cached: new grpc.Server(), uncached: new grpc.Server(), noop: new grpc.Server() };
  registerAuthzService(grpcServers.cached, cached);
  registerAuthzService(grpcServers.uncached, uncached);
  grpcServers.noop.addService(RAW_DEF, { Check: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, fixedOk) });
  const h2Servers = { cached: new UnaryGrpcServer(), uncached: new UnaryGrpcServer(), noop: new UnaryGrpcServer() };
  registerAuthzUnary(h2Servers.cached, cached);
  registerAuthzUnary(h2Servers.uncached, uncached);
  h2Servers.noop.handle(PATH, () => ({ ok: true, response: fixedOk }));
  const ports = {
    'grpc-js': { cached: await bind(grpcServers.cached), uncached: await bind(grpcServers.uncached), noop: await bind(grpcServers.noop) },
    h2: { cached: await h2Servers.cached.listen('127.0.0.1', 0), uncached: await h2Servers.uncached.listen('127.0.0.1', 0), noop: await h2Servers.noop.listen('127.0.0.1', 0) },
  };

  const apiKeyReqs = Array.from({ length: 64 }, (_, i) => envoyLike({ 'x-api-key': key.secret }, i));
  const rsOne = await token('RS256', 0);
  const esOne = await token('ES256', 0);
  const t0 = performance.now();
  const rsMany = await Promise.all(Array.from({ length: distinctTokens }, (_, i) => token('RS256', i)));
  const esMany = await Promise.all(Array.from({ length: distinctTokens }, (_, i) => token('ES256', i)));
  const tokenGenMs = Math.round(performance.now() - t0);

  // Every scenario's requests must be allowed: a benchmark of denials would flatter the numbers.
  const check = async (svc: AuthzService, b: Buffer) => {
    const d = await svc.check(decodeCheckRequest(b));
    if (!d?.allowed) throw new Error(`benchmark request not allowed: ${JSON.stringify(d)}`);
  };
  for (const b of [apiKeyReqs[0]!, envoyLike({ authorization: `Bearer ${rsOne}` }), envoyLike({ authorization: `Bearer ${esMany[5]!}` })]) await check(uncached, b);

  const scenarios: Array<{ name: string; server: 'cached' | 'uncached' | 'noop'; requests: Buffer[]; note: string }> = [
    { name: 'noop_baseline', server: 'noop', requests: apiKeyReqs, note: 'answers a fixed pre-encoded response without decoding: the transport ceiling' },
    { name: 'api_key', server: 'cached', requests: apiKeyReqs, note: 'header API key, HMAC-SHA256 verify per check' },
    {
      name: 'jwt_rs256_cached',
      server: 'cached',
      requests: Array.from({ length: 64 }, (_, i) => envoyLike({ authorization: `Bearer ${rsOne}` }, i)),
      note: 'one RS256 token repeated: verified-token cache hits',
    },
    {
      name: 'jwt_es256_cached',
      server: 'cached',
      requests: Array.from({ length: 64 }, (_, i) => envoyLike({ authorization: `Bearer ${esOne}` }, i)),
      note: 'one ES256 token repeated: verified-token cache hits',
    },
    {
      name: 'jwt_rs256_distinct',
      server: 'uncached',
      requests: rsMany.map((t, i) => envoyLike({ authorization: `Bearer ${t}` }, i)),
      note: `${distinctTokens} RS256 tokens, cache off: a signature check per request`,
    },
    {
      name: 'jwt_es256_distinct',
      server: 'uncached',
      requests: esMany.map((t, i) => envoyLike({ authorization: `Bearer ${t}` }, i)),
      note: `${distinctTokens} ES256 tokens, cache off: a signature check per request`,
    },
  ];

  const grpcResults: Record<string, Record<string, unknown>> = {};
  for (const s of scenarios) {
    if (only && !only.has(s.name)) continue;
    grpcResults[s.name] = { note: s.note };
    for (const t of transports) grpcResults[s.name]![t] = await drive(`127.0.0.1:${ports[t][s.server]}`, s.requests, opts);
  }

  // In-process costs, no gRPC.
  const index = cached.index!;
  const keyReq = decodeCheckRequest(apiKeyReqs[0]!);
  const jwtReq = decodeCheckRequest(envoyLike({ authorization: `Bearer ${rsOne}` }));
  const plan = jwtToVerify(index, jwtReq)!;
  const verified = (await cached.verifier.verify(plan.token, plan.issuers, Date.now())) as JwtOutcome;
  const allowDecision = decide(index, keyReq, Date.now());
  const rsReqs = rsMany.slice(0, 1500).map((t) => decodeCheckRequest(envoyLike({ authorization: `Bearer ${t}` })));
  const esReqs = esMany.slice(0, 1500).map((t) => decodeCheckRequest(envoyLike({ authorization: `Bearer ${t}` })));
  const inProcess = args['skip-micro']
    ? []
    : [
        micro('decodeCheckRequest (1.3 KB, 13 headers)', 100_000, (i) => decodeCheckRequest(apiKeyReqs[i % 64]!)),
        micro('for comparison: protobufjs Type.decode of the same request', 100_000, (i) => checkRequestType.decode(apiKeyReqs[i % 64]!)),
        micro('for comparison: proto3-JSON decode (the generic serviceDefinition codec)', 50_000, (i) => decodeMessage('envoy.service.auth.v3.CheckRequest', apiKeyReqs[i % 64]!)),
        micro('encodeCheckResponse (allow, shared decision: cached bytes)', 100_000, () => encodeCheckResponse(allowDecision)),
        micro('encodeCheckResponse (allow, per-request decision)', 100_000, () => encodeCheckResponse({ ...allowDecision })),
        micro('decide api_key (incl. HMAC verify)', 100_000, () => decide(index, keyReq, Date.now())),
        micro('decide jwt (claims already verified)', 100_000, () => decide(index, jwtReq, Date.now(), verified)),
        micro('service.check api_key', 100_000, () => cached.check(keyReq)),
        micro('service.check jwt cached token (sha256 + LRU + decide)', 100_000, () => cached.check(jwtReq)),
      ];
  if (!args['skip-micro']) {
    inProcess.push(await microAsync('service.check jwt RS256, cache off (jose/WebCrypto verify, 64 in flight)', rsReqs.length, (i) => uncached.check(rsReqs[i]!)));
    inProcess.push(await microAsync('service.check jwt ES256, cache off (jose/WebCrypto verify, 64 in flight)', esReqs.length, (i) => uncached.check(esReqs[i]!)));
  }

  for (const s of Object.values(grpcServers)) s.forceShutdown();
  for (const s of Object.values(h2Servers)) await s.close(100);
  cached.close();
  uncached.close();

  printJson({
    benchmark: 'authz',
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadAverage: os.loadavg().map(round2), node: process.version },
    settings: { ...opts, distinctTokens, tokenGenerationMs: tokenGenMs },
    targetChecksPerSecondPerCore: 15_000,
    transports: { 'grpc-js': 'the shared @grpc/grpc-js server (role all)', h2: 'UnaryGrpcServer on node:http2 (role callouts)' },
    grpc: grpcResults,
    inProcess,
  });
}

if (process.argv[2] === '--client') await runClient();
else await main();

/** A JWT issuer of the benchmark's model: one inline key, the partner in `org`, two forwarded claims. */
async function issuer(name: string, iss: string, alg: 'RS256' | 'ES256', publicKey: CryptoKey, kid: string) {
  return {
    name,
    issuer: iss,
    audiences: ['orders'],
    algorithms: [alg],
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid }] },
    partnerClaim: 'org',
    forwardClaims: { sub: 'X-User-Id', role: 'X-User-Role' },
  };
}
