// Composition root: settings → store → model snapshot → servers (admin API, gRPC for xDS and
// the callouts), and an orderly shutdown of all of them.
import type { FastifyInstance } from 'fastify';
import { buildAdminServer } from './admin/server.ts';
import type { Settings } from './settings.ts';
import { openDatabase, type Database } from './store/database.ts';
import { loadKeyRing } from './store/secrets.ts';
import type { ModelStore } from './store/store.ts';
import { createLogger, type Logger } from './telemetry/log.ts';

export interface Portico {
  settings: Settings;
  store: ModelStore;
  database: Database;
  admin: FastifyInstance;
  /** Base URL of the admin API (with the port actually bound). */
  adminUrl: string;
  /** Token printed at first start, when one was generated. */
  generatedAdminToken?: string;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
}

export async function startPortico(settings: Settings, opts: StartOptions = {}): Promise<Portico> {
  const log = opts.logger ?? createLogger(settings.logLevel);
  const keys = loadKeyRing(settings, (msg) => log.warn(msg));
  const database = await openDatabase({
    databaseUrl: settings.databaseUrl,
    dataDir: settings.dataDir,
    migrate: settings.migrate,
    keys,
    log: (msg) => log.info(msg),
  });
  const store = database.store;
  log.info({ database: database.kind, revision: store.current().revision }, 'model loaded');

  // First start without any way in: mint an admin token and show it once.
  let generatedAdminToken: string | undefined;
  if (!settings.adminToken && store.adminTokenCount() === 0) {
    const { token } = await store.createAdminToken({ name: 'initial-admin', role: 'admin', description: 'created at first start' }, 'portico');
    generatedAdminToken = token;
    process.stderr.write(`\nPortico created an admin token (shown only now; store it safely):\n\n    ${token}\n\n`);
  }

  const ready = { loaded: true };
  const admin = await buildAdminServer({
    store,
    ...(settings.adminToken ? { bootstrapToken: settings.adminToken } : {}),
    bodyLimitBytes: settings.adminBodyLimitBytes,
    logger: log.child({ component: 'admin' }),
    readiness: {
      ready: () => ready.loaded,
      details: () => ({
        database: database.kind,
        migrations: { applied: database.migrations.applied.length, pending: database.migrations.pending.length },
        modelRevision: store.current().revision,
      }),
    },
  });
  await admin.listen({ host: settings.adminHost, port: settings.adminPort });
  const addr = admin.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : settings.adminPort;
  const adminUrl = `http://${settings.adminHost.includes(':') ? `[${settings.adminHost}]` : settings.adminHost}:${port}`;
  log.info({ url: adminUrl }, 'admin API listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      log.info('shutting down');
      await admin.close();
      await database.close();
    })());

  return { settings, store, database, admin, adminUrl, ...(generatedAdminToken ? { generatedAdminToken } : {}), close };
}
