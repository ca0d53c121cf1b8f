// Baseline server for bench/ratelimit.ts: the same transport, service definition, codecs and
// options as the real rate-limit service, but the handler answers a constant OK without deciding.
// What it costs per call is the transport floor the real service cannot go below.
// PORTICO_RL_TRANSPORT: http2 (the lean listener, default) or grpc-js.
import * as grpc from '@grpc/grpc-js';
import { UnaryGrpcServer } from '../src/grpc/unary-server.ts';
import { CODE, encodeRateLimitResponse, rateLimitServiceDefinition, SHOULD_RATE_LIMIT_PATH, type RateLimitResponseMessage } from '../src/ratelimit/service.ts';

const answer: RateLimitResponseMessage = {
  overall_code: CODE.OK,
  statuses: [{ code: CODE.OK }],
  response_headers_to_add: [
    { key: 'X-RateLimit-Limit', value: '100' },
    { key: 'X-RateLimit-Remaining', value: '99' },
  ],
};

async function main(): Promise<void> {
  if ((process.env.PORTICO_RL_TRANSPORT ?? 'http2') === 'http2') {
    const lean = new UnaryGrpcServer();
    const bytes = encodeRateLimitResponse(answer);
    lean.handle(SHOULD_RATE_LIMIT_PATH, () => ({ ok: true, response: bytes }));
    process.stdout.write(`${JSON.stringify({ port: await lean.listen('127.0.0.1', 0) })}\n`);
    process.once('SIGTERM', () => void lean.close(100).then(() => process.exit(0)));
    return;
  }
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  server.addService(rateLimitServiceDefinition(), {
    ShouldRateLimit: (_call: grpc.ServerUnaryCall<unknown, RateLimitResponseMessage>, cb: grpc.sendUnaryData<RateLimitResponseMessage>) => cb(null, answer),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.once('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
  });
}

void main();
