// A rate-limit service on its own: loads a declarative model file and serves ShouldRateLimit with
// memory or Redis counters. Used by tests and benchmarks to run several limiter replicas, and as
// the shape of a separate limiter deployment. Prints one JSON line {"port":…} once listening.
//
// Environment: PORTICO_RL_MODEL (path of a YAML/JSON model document, required), PORTICO_RL_ADDR
// (host:port, default 127.0.0.1:0), PORTICO_RL_TRANSPORT (http2: the lean HTTP/2 unary listener,
// default; grpc-js), REDIS_URL, PORTICO_RATELIMIT_FAILURE_MODE, PORTICO_LOG_LEVEL.
import { readFileSync } from 'node:fs';
import { parseDocumentText, parseModelDocument, validateModel } from '../model/index.ts';
import { createLogger } from '../telemetry/index.ts';
import { createRateLimiter } from './limiter.ts';
import { UnaryGrpcServer } from '../grpc/index.ts';
import { registerRateLimitUnary, startRateLimitServer } from './service.ts';

async function main(): Promise<void> {
  const env = process.env;
  const file = env.PORTICO_RL_MODEL;
  if (!file) throw new Error('PORTICO_RL_MODEL must name a model document');
  const parsed = parseModelDocument(parseDocumentText(readFileSync(file, 'utf8')), {
    hashApiKey: () => {
      throw new Error('API keys are not used by the rate limiter');
    },
  });
  const errors = [...parsed.errors, ...validateModel(parsed.model)];
  if (errors.length) throw new Error(`invalid model: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`);
  const log = createLogger(env.PORTICO_LOG_LEVEL ?? 'info', process.stderr);
  const failureMode = env.PORTICO_RATELIMIT_FAILURE_MODE;
  if (failureMode !== undefined && failureMode !== 'open' && failureMode !== 'closed') {
    throw new Error(`PORTICO_RATELIMIT_FAILURE_MODE must be open or closed, not ${failureMode}`);
  }
  const limiter = createRateLimiter({ redisUrl: env.REDIS_URL || undefined, failureMode }, { logger: log, model: parsed.model });
  await limiter.ready().catch(() => log.warn({}, 'rate limit: counters not reachable yet; starting anyway (failure mode applies until they are)'));
  const [host, port] = splitAddr(env.PORTICO_RL_ADDR ?? '127.0.0.1:0');
  const transport = env.PORTICO_RL_TRANSPORT ?? 'http2';
  let server: { port: number; close(graceMs?: number): Promise<void> };
  if (transport === 'http2') {
    const lean = new UnaryGrpcServer({ logger: log });
    registerRateLimitUnary(lean, limiter);
    server = { port: await lean.listen(host, port), close: (g) => lean.close(g) };
  } else if (transport === 'grpc-js') server = await startRateLimitServer(limiter, { host, port });
  else throw new Error(`PORTICO_RL_TRANSPORT must be http2 or grpc-js, not ${transport}`);
  process.stdout.write(`${JSON.stringify({ port: server.port, backend: limiter.backend.kind, transport })}\n`);
  const stop = async () => {
    await server.close(2_000);
    await limiter.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

function splitAddr(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}

main().catch((e: unknown) => {
  process.stderr.write(`rate limit service failed: ${(e as Error).message}\n`);
  process.exit(1);
});
