// Schema migrations with Prisma's own schema engine (WebAssembly build), reading the migration
// folders in prisma/migrations — the same history `prisma migrate deploy` applies.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { bindMigrationAwareSqlAdapterFactory, type SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { SchemaEngine, MigrationList } from '@prisma/schema-engine-wasm';

export const PRISMA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../prisma');
export const MIGRATIONS_DIR = path.join(PRISMA_DIR, 'migrations');
export const SCHEMA_FILE = path.join(PRISMA_DIR, 'schema.prisma');

const noFilter = { externalTables: [], externalEnums: [] };

/**
 * Loads the engine without Node's --experimental-wasm-modules flag: the package imports its .wasm
 * as an ES module, so instantiate it by hand with the glue module as its import object.
 */
async function loadEngineModule(): Promise<typeof import('@prisma/schema-engine-wasm')> {
  const require = createRequire(import.meta.url);
  const glueFile = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
  const dir = path.dirname(glueFile);
  const glue = (await import(pathToFileURL(glueFile).href)) as typeof import('@prisma/schema-engine-wasm') & {
    __wbg_set_wasm(exports: WebAssembly.Exports): void;
  };
  const bytes = readFileSync(path.join(dir, 'schema_engine_bg.wasm'));
  const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': glue as unknown as WebAssembly.ModuleImports });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports.__wbindgen_start as () => void)();
  return glue;
}

let engineModule: Promise<typeof import('@prisma/schema-engine-wasm')> | undefined;

/**
 * Runs `fn` with a schema engine connected to the database, then frees the engine and closes the
 * connections it opened (free() alone leaves the driver's pool open).
 */
export async function withSchemaEngine<T>(databaseUrl: string, fn: (engine: SchemaEngine) => Promise<T>, schema = readFileSync(SCHEMA_FILE, 'utf8')): Promise<T> {
  engineModule ??= loadEngineModule();
  const { SchemaEngine } = await engineModule;
  const factory = new PrismaPg({ connectionString: databaseUrl, max: 1 });
  const opened: Array<{ dispose(): Promise<void> }> = [];
  const track = <A extends { dispose(): Promise<void> }>(a: A): A => {
    opened.push(a);
    return readsCharColumnsAsText(a);
  };
  const tracking: SqlMigrationAwareDriverAdapterFactory = {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => track(await factory.connect()),
    connectToShadowDb: async () => track(await factory.connectToShadowDb()),
  };
  const engine = await SchemaEngine.new({ datamodels: [['schema.prisma', schema]] }, () => {}, bindMigrationAwareSqlAdapterFactory(tracking));
  try {
    return await fn(engine);
  } finally {
    engine.free();
    await Promise.allSettled(opened.map((a) => a.dispose()));
  }
}

/**
 * The pg adapter refuses result columns of PostgreSQL's internal one-byte `"char"` type (OID 18),
 * which the engine's introspection queries return (pg_class.relkind and friends). Report them as
 * text: the values are plain one-letter strings. Applied only to the schema engine's connections.
 */
function readsCharColumnsAsText<A>(adapter: A): A {
  type Field = { dataTypeID: number };
  const target = adapter as unknown as { performIO(query: unknown): Promise<{ fields: Field[] }> };
  const original = target.performIO.bind(adapter);
  target.performIO = async (query: unknown) => {
    const result = await original(query);
    for (const f of result.fields) if (f.dataTypeID === 18) f.dataTypeID = 25;
    return result;
  };
  return adapter;
}

/** The migration folders on disk, in the shape the engine expects. */
export function readMigrations(dir = MIGRATIONS_DIR): MigrationList {
  const lockPath = path.join(dir, 'migration_lock.toml');
  const migrationDirectories = existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort()
        .map((name) => ({
          path: name,
          migrationFile: {
            path: 'migration.sql',
            content: { tag: 'ok' as const, value: readFileSync(path.join(dir, name, 'migration.sql'), 'utf8') },
          },
        }))
    : [];
  return {
    baseDir: dir,
    lockfile: { path: 'migration_lock.toml', content: existsSync(lockPath) ? readFileSync(lockPath, 'utf8') : null },
    shadowDbInitScript: '',
    migrationDirectories,
  };
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  failed: string[];
  /** Names applied by this call. */
  appliedNow: string[];
}

/** Our own lock key (not the engine's 72707369): held in a separate session around the engine. */
export const MIGRATION_LOCK = 0x506f7274; // 'Port'

/**
 * Runs `fn` while holding a session advisory lock on its own connection. Replicas that start
 * together then migrate one after another: the schema engine's own lock gives up after 10 s,
 * which a slow first migration on a busy machine can exceed, and the replica would exit.
 */
async function withMigrationLock<T>(databaseUrl: string, fn: () => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    return await fn();
  } finally {
    // Ending the session releases the lock even if the unlock query fails.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/**
 * Applies pending migrations when `apply` is set, then reports what the database holds.
 * `serialize` takes a lock first so concurrent starters wait (needs a second session: not for
 * embedded PGlite, which has one and only one server process anyway).
 */
export async function migrate(databaseUrl: string, apply: boolean, serialize = false): Promise<MigrationStatus> {
  if (serialize && apply) return withMigrationLock(databaseUrl, () => migrate(databaseUrl, apply, false));
  return withSchemaEngine(databaseUrl, async (engine) => {
    const list = readMigrations();
    const appliedNow = apply ? (await engine.applyMigrations({ migrationsList: list, filters: noFilter })).appliedMigrationNames : [];
    const d = await engine.diagnoseMigrationHistory({ migrationsList: list, optInToShadowDatabase: false, filters: noFilter });
    const all = list.migrationDirectories.map((m) => m.path);
    const pending = d.history?.diagnostic === 'databaseIsBehind' || d.history?.diagnostic === 'historiesDiverge' ? d.history.unappliedMigrationNames : d.hasMigrationsTable ? [] : all;
    return { applied: all.filter((n) => !pending.includes(n)), pending, failed: d.failedMigrationNames, appliedNow };
  });
}

/**
 * The status read straight from the history table, when it needs no schema engine: every migration
 * on disk recorded as finished and not rolled back, and none started without finishing. Starting the
 * engine (a worker thread and its WebAssembly) costs about half a second of every start, and a
 * migrated database is the usual case. Anything else (no table yet, pending, failed) gives undefined,
 * and the engine decides and applies as before. Rows for migrations not on disk (a newer release
 * migrated this database) count as the engine counts them: not pending.
 */
export async function settledStatus(databaseUrl: string, dir = MIGRATIONS_DIR): Promise<MigrationStatus | undefined> {
  const all = readMigrations(dir).migrationDirectories.map((m) => m.path);
  const client = new pg.Client({ connectionString: databaseUrl });
  try {
    await client.connect();
    const rows = (
      await client.query<{ name: string; finished: boolean; rolledBack: boolean }>(
        'SELECT migration_name AS name, finished_at IS NOT NULL AS finished, rolled_back_at IS NOT NULL AS "rolledBack" FROM _prisma_migrations',
      )
    ).rows;
    if (rows.some((r) => !r.finished && !r.rolledBack)) return undefined;
    const done = new Set(rows.filter((r) => r.finished && !r.rolledBack).map((r) => r.name));
    return all.every((n) => done.has(n)) ? { applied: all, pending: [], failed: [], appliedNow: [] } : undefined;
  } catch {
    // No history table (an empty database) or no answer: the engine reports it properly.
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * SQL that takes the database described by `from` to `schema`: `empty` (to author the first
 * migration) or the migration history (replayed in a shadow database: needs a PostgreSQL that
 * may create databases).
 */
export async function diffToSchema(databaseUrl: string, schema: string, from: 'empty' | 'migrations'): Promise<string> {
  return withSchemaEngine(
    databaseUrl,
    async (engine) =>
      (
        await engine.diff({
          from: from === 'empty' ? { tag: 'empty' } : { tag: 'migrations', ...readMigrations() },
          to: { tag: 'schemaDatamodel', files: [{ path: 'schema.prisma', content: schema }] },
          script: true,
          exitCode: null,
          filters: noFilter,
        })
      ).stdout ?? '',
    schema,
  );
}
