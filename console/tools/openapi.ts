// Dumps the admin API's OpenAPI document as the server produces it: builds the fastify app on an
// in-memory store without listening, so the console's client is generated from the live routes.
import { randomBytes } from 'node:crypto';
import { buildAdminServer } from '../../src/admin/index.ts';
import { loadSettings } from '../../src/settings.ts';
import { loadKeyRing, openDatabase } from '../../src/store/index.ts';

export async function openApiDocument(): Promise<Record<string, unknown>> {
  const settings = loadSettings({ PORTICO_DATA_DIR: 'memory://', PORTICO_MASTER_KEY: randomBytes(32).toString('base64'), PORTICO_LOG_LEVEL: 'silent' });
  const database = await openDatabase({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, migrate: settings.migrate, keys: loadKeyRing(settings) });
  try {
    const app = await buildAdminServer({
      store: database.store,
      readiness: { ready: () => true, draining: () => false, details: () => ({}) },
      fleet: () => ({}),
      // Only the routes are wanted here (the document), not a working flow engine.
      flowTools: { check: () => [], run: async () => ({ ok: false, errors: [] }) },
    });
    await app.ready();
    const doc = app.swagger() as Record<string, unknown>;
    await app.close();
    return doc;
  } finally {
    await database.close();
  }
}
