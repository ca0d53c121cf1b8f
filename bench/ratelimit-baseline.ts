// Baseline server for bench/ratelimit.ts: the same grpc-js service definition, codecs and server
// options as the real rate-limit service, but the handler answers a constant OK without deciding.
// What it costs per call is the gRPC floor the real service cannot go below.
import * as grpc from '@grpc/grpc-js';
import { CODE, rateLimitServiceDefinition, type RateLimitResponseMessage } from '../src/ratelimit/service.ts';

const answer: RateLimitResponseMessage = {
  overall_code: CODE.OK,
  statuses: [{ code: CODE.OK }],
  response_headers_to_add: [
    { key: 'X-RateLimit-Limit', value: '100' },
    { key: 'X-RateLimit-Remaining', value: '99' },
  ],
};
const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
server.addService(rateLimitServiceDefinition(), {
  ShouldRateLimit: (_call: grpc.ServerUnaryCall<unknown, RateLimitResponseMessage>, cb: grpc.sendUnaryData<RateLimitResponseMessage>) => cb(null, answer),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.once('SIGTERM', () => server.forceShutdown());
