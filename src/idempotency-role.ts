// Composition of the idempotency processor: its store (Redis when REDIS_URL is set, else memory),
// served on the control plane's gRPC listener (role all) or on its own (`PORTICO_ROLE=idempotency`:
// no database, no model — each route's settings come with its requests — plus /metrics and /healthz).
import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { bind } from './bind.ts';
import { TlsMaterial } from './grpc/index.ts';
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
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  const running = createProcessor(settings, server, { registry, logger: logger.child({ component: 'idempotency' }) });
  // Under mTLS only Envoys with a certificate from the CA may connect.
  const credentials = tls ? grpc.experimental.createCertificateProviderServerCredentials(tls, tls, true) : grpc.ServerCredentials.createInsecure();
  const { idempotencyListenHost: host, idempotencyListenPort: listenPort } = settings;
  const stopGrpc = (graceMs: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  const port = await bind(
    'the idempotency processor',
    'PORTICO_IDEMPOTENCY_LISTEN_ADDR',
    host,
    listenPort,
    () => new Promise<number>((resolve, reject) => server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${listenPort}`, credentials, (e, p) => (e ? reject(e) : resolve(p)))),
  ).catch(async (e) => {
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
