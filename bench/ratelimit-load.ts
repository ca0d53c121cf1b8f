// Load generator for bench/ratelimit.ts: a grpc-js client in its own process keeping CONCURRENCY
// ShouldRateLimit calls in flight for DURATION_MS against ADDR; prints one JSON line of results.
// Requests are pre-encoded (a pool of callers) so the client spends its CPU on gRPC, not encoding.
import * as grpc from '@grpc/grpc-js';
import { encodeRateLimitRequest, rateLimitServiceDefinition } from '../src/ratelimit/service.ts';

const addr = process.env.ADDR!;
const durationMs = Number(process.env.DURATION_MS ?? 5000);
const concurrency = Number(process.env.CONCURRENCY ?? 64);
const channels = Number(process.env.CHANNELS ?? 2);
const users = Number(process.env.USERS ?? 1000);

// The mix: acme's users on orders (shared default budget) and search (override), anonymous
// callers by IP, and globex (a rate plus day and month quotas: three counters per decision).
const pool: Buffer[] = [];
for (let i = 0; i < users; i++) {
  const ip = `10.${(i >> 8) & 255}.${i & 255}.7`;
  const e = (entries: Record<string, string>) => encodeRateLimitRequest({ domain: 'portico', descriptors: [{ entries: Object.entries(entries).map(([key, value]) => ({ key, value })) }] });
  pool.push(e({ portico_route: 'shop/orders', remote_address: ip, portico_partner: 'acme', 'portico_header.x-user-id': `user-${i}` }));
  pool.push(e({ portico_route: 'shop/search', remote_address: ip, portico_partner: 'acme', 'portico_header.x-user-id': `user-${i}` }));
  if (i % 4 === 0) pool.push(e({ portico_route: 'shop/orders', remote_address: ip }));
  if (i % 10 === 0) pool.push(e({ portico_route: 'shop/orders', remote_address: ip, portico_partner: 'globex' }));
}

const def = rateLimitServiceDefinition().ShouldRateLimit!;
const clients = Array.from({ length: channels }, (_, i) => new grpc.Client(addr, grpc.credentials.createInsecure(), { 'grpc.channel_id': i } as grpc.ChannelOptions));
const pass = (b: Buffer) => b;
/** overall_code is field 1 (a varint) and protobufjs writes it first: 0x08, code. */
const code = (b: Buffer) => (b[0] === 0x08 ? b[1]! : 0);

const latencies: number[] = [];
let ok = 0;
let over = 0;
let errors = 0;
let next = 0;
let stopAt = 0;
let done = 0;

function one(worker: number, resolve: () => void): void {
  if (performance.now() >= stopAt) {
    resolve();
    return;
  }
  const req = pool[next++ % pool.length]!;
  const t0 = performance.now();
  clients[worker % channels]!.makeUnaryRequest(def.path, pass, pass, req, (err, res) => {
    latencies.push(performance.now() - t0);
    if (err) errors++;
    else if (code(res!) === 2) over++;
    else ok++;
    one(worker, resolve);
  });
}

async function main(): Promise<void> {
  await Promise.all(clients.map((c) => new Promise<void>((r, j) => c.waitForReady(Date.now() + 10_000, (e) => (e ? j(e) : r())))));
  const t0 = performance.now();
  stopAt = t0 + durationMs;
  await Promise.all(Array.from({ length: concurrency }, (_, w) => new Promise<void>((r) => one(w, r))));
  const elapsed = performance.now() - t0;
  done = latencies.length;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => Math.round(latencies[Math.min(done - 1, Math.floor(done * p))]! * 1000) / 1000;
  process.stdout.write(
    `${JSON.stringify({ calls: done, ok, overLimit: over, errors, elapsedMs: Math.round(elapsed), perSecond: Math.round((done / elapsed) * 1000), p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: pct(1) })}\n`,
  );
  for (const c of clients) c.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`load generator failed: ${(e as Error).message}\n`);
  process.exit(1);
});
