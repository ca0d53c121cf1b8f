// Opens the configured database (embedded PGlite or PostgreSQL), applies pending migrations
// when asked, and returns the store holding the current model.
import { existsSync } from 'node:fs';
import { openEmbeddedDatabase, type EmbeddedDatabase } from './embedded.ts';
import { settledStatus, type MigrationStatus } from './migrate.ts';
import { createEmbeddedInChild, migrateInWorker } from './migrate-worker.ts';
import { ModelStore } from './store.ts';
import type { KeyRing } from './secrets.ts';

export interface Database {
  kind: 'embedded' | 'postgresql';
  url: string;
  store: ModelStore;
  migrations: MigrationStatus;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  migrate: boolean;
  keys: KeyRing;
  log?: (msg: string) => void;
  /** With dataDir memory://: a dump to start from (EmbeddedDatabase.dump); migrations still check and complete it. */
  embeddedImage?: Blob;
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const log = opts.log ?? (() => {});
  let embedded: EmbeddedDatabase | undefined;
  let url: string;
  let created: MigrationStatus | undefined;
  if (opts.databaseUrl) url = opts.databaseUrl;
  else {
    const dir = opts.dataDir.startsWith('memory://') ? opts.dataDir : `${opts.dataDir}/pglite`;
    // First start on a directory: initdb and migrations run in a child process (their memory goes with it).
    if (!dir.startsWith('memory://') && !existsSync(`${dir}/PG_VERSION`)) created = await createEmbeddedInChild(dir, opts.migrate);
    embedded = await openEmbeddedDatabase(dir, opts.embeddedImage ? { image: opts.embeddedImage } : {});
    url = embedded.url();
  }
  try {
    // A database already at head needs no schema engine: the history table says so (settledStatus).
    const migrations = created ?? (await settledStatus(url)) ?? (await migrateInWorker(url, opts.migrate, !embedded));
    if (migrations.appliedNow.length) log(`applied migrations: ${migrations.appliedNow.join(', ')}`);
    if (migrations.pending.length || migrations.failed.length) {
      throw new Error(
        `database schema is not current (pending: ${migrations.pending.join(', ') || 'none'}; failed: ${migrations.failed.join(', ') || 'none'}); ` +
          'run `portico migrate` or start without PORTICO_MIGRATE=false',
      );
    }
    // PGlite is a single session: give the app a fresh socket front and a pool of one.
    if (embedded) {
      await embedded.restartSocket();
      url = embedded.url();
    }
    const store = await ModelStore.open(url, opts.keys, { poolSize: embedded ? 1 : 10 });
    return {
      kind: embedded ? 'embedded' : 'postgresql',
      url,
      store,
      migrations,
      close: async () => {
        await store.close();
        await embedded?.close();
      },
    };
  } catch (e) {
    await embedded?.close();
    throw e;
  }
}
