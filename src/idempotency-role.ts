// Composition of the idempotency processor: its store (Redis when REDIS_URL is set, else memory),
// served on the control plane's callout listener (role all) or on its own (`PORTICO_ROLE=idempotency`:
// no database, no model — each route's settings come with its requests — plus /metrics and /healthz).
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';
import { bind } from './bind.ts';
import { ChannelGuard, TlsMaterial, UnaryGrpcServer } from './grpc/index.ts';
import { IdempotencyProcessor, MemoryIdempotencyStore, RedisIdempotencyStore, type IdempotencyStore, type ServiceHost } from './idempotency/index.ts';
import type { Settings } from './settings.ts';
import { createLogger, createRegistry, type Logger } from './telemetry/index.ts';

/** The processor and its store, registered on `host` (which listens and closes it); close() closes the store. */
export function createProcessor(
  settings: Settings,
  host: ServiceHost,
  deps: { registry: Registry; logger: Logger },
): { processor: IdempotencyProcessor; store: IdempotencyStore; close(): Promise<void> } {
  const store: IdempotencyStore = settings.redisUrl ? new RedisIdempotencyStore(settings.redisUrl) : new MemoryIdempotencyStore();
  const processor = new IdempotencyProcessor({ store, registry: deps.registry, logger: deps.logger });
  processor.register(host);
  return { processor, store, close: () => store.close() };
}

/** `PORTICO_ROLE=idempotency`: the processor alone on PORTICO_IDEMPOTENCY_LISTEN_ADDR, /metrics, /healthz and /readyz on PORTICO_ADMIN_ADDR. */
export async function startIdempotencyRole(settings: Settings, logger = createLogger(settings.logLevel)): Promise<{ close(): Promise<void>; port: number; adminPort: number }> {
  const registry = createRegistry();
  const tls = settings.tls ? new TlsMaterial(settings.tls, { reloadMs: settings.tlsReloadMs, logger: logger.child({ component: 'tls' }) }) : undefined;
  // The lean node:http2 server (src/grpc): Envoy's ext_proc stream without grpc-js's call machinery.
  // Under mTLS only Envoys with a node certificate from the CA are served (as on the callouts).
  const guard = new ChannelGuard({ security: tls ? 'mtls' : 'plaintext', trustDomain: settings.trustDomain });
  const server = new UnaryGrpcServer({ maxMessageBytes: 64 * 1024 * 1024, logger: logger.child({ component: 'idempotency-grpc' }), ...(tls ? { tls: { material: tls, guard } } : {}) });
  const running = createProcessor(settings, server, { registry, logger: logger.child({ component: 'idempotency' }) });
  const { idempotencyListenHost: host, idempotencyListenPort: listenPort } = settings;
  const stopGrpc = (graceMs: number) => server.close(graceMs);
  const port = await bind('the idempotency processor', 'PORTICO_IDEMPOTENCY_LISTEN_ADDR', host, listenPort, () => server.listen(host, listenPort)).catch(async (e) => {
    await running.close();
    tls?.close();
    throw e;
  });
  logger.info({ address: `${host}:${port}`, store: running.store.kind }, 'idempotency processor listening');
  if (running.store instanceof RedisIdempotencyStore)
    await running.store.ready(10_000).catch((e: Error) => logger.warn({ err: e.message }, 'Redis not reachable yet: protected requests get 503 until it is'));
  const http = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
      return;
    }
    if (req.method === 'GET' && (req.url === '/healthz' || req.url === '/readyz')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', role: 'idempotency', store: running.store.kind }));
      return;
    }
    res
      .writeHead(404, { 'content-type': 'application/problem+json' })
      .end(JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'this role serves /metrics, /healthz and /readyz only' }));
  });
  const adminPort = await bind(
    'the metrics listener',
    'PORTICO_ADMIN_ADDR',
    settings.adminHost,
    settings.adminPort,
    () =>
      new Promise<number>((resolve, reject) => {
        http.once('error', reject);
        http.listen(settings.adminPort, settings.adminHost, () => {
          const a = http.address();
          resolve(typeof a === 'object' && a ? a.port : settings.adminPort);
        });
      }),
  ).catch(async (e) => {
    await stopGrpc(0);
    await running.close();
    tls?.close();
    throw e;
  });
  logger.info({ address: `${settings.adminHost}:${adminPort}` }, 'idempotency role: metrics and health listening');
  return {
    port,
    adminPort,
    close: async () => {
      await stopGrpc(settings.shutdownGraceMs);
      await running.close();
      await new Promise<void>((r) => http.close(() => r()));
      tls?.close();
    },
  };
}
