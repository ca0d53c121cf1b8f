// Migrations with Prisma's schema engine on embedded PGlite and real PostgreSQL: empty → head,
// the history table `prisma migrate deploy` reads, no drift between schema and migrations.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startPostgres, createDatabase, type PostgresServer } from '../support/components.ts';
import { MIGRATIONS_DIR, MIGRATION_LOCK, SCHEMA_FILE, diffToSchema, migrate, readMigrations, settledStatus } from '../../src/store/migrate.ts';
import { openEmbeddedDatabase } from '../../src/store/embedded.ts';
import { openDatabase } from '../../src/store/database.ts';
import { KeyRing, parseMasterKey, generateMasterKey } from '../../src/store/secrets.ts';

const names = readMigrations().migrationDirectories.map((m) => m.path);

async function checkHistory(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const rows = (await client.query('SELECT migration_name, checksum, finished_at, rolled_back_at, applied_steps_count FROM _prisma_migrations ORDER BY migration_name')).rows;
    assert.deepEqual(
      rows.map((r) => r.migration_name),
      names,
    );
    for (const r of rows) {
      const sql = readFileSync(path.join(MIGRATIONS_DIR, r.migration_name, 'migration.sql'));
      assert.equal(r.checksum, createHash('sha256').update(sql).digest('hex'), 'checksum is what prisma migrate deploy compares');
      assert.ok(r.finished_at instanceof Date);
      assert.equal(r.rolled_back_at, null);
    }
    const tables = (await client.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")).rows.map((r) => r.table_name);
    for (const t of [
      'GatewayGroup',
      'Service',
      'Product',
      'Route',
      'Partner',
      'Plan',
      'Subscription',
      'ApiKey',
      'JwtIssuer',
      'MtlsIdentity',
      'Certificate',
      'AdminToken',
      'AuditEntry',
      'ModelChange',
      'SealedSecret',
    ]) {
      assert.ok(tables.includes(t), `table ${t} exists`);
    }
  } finally {
    await client.end();
  }
}

describe('migrations', () => {
  let server: PostgresServer | undefined;
  after(async () => server?.stop());

  it('take embedded PGlite from empty to head, once', async () => {
    const db = await openEmbeddedDatabase('memory://');
    try {
      const before = await migrate(db.url(), false);
      assert.deepEqual(before.pending, names);
      const applied = await migrate(db.url(), true);
      assert.deepEqual(applied.appliedNow, names);
      assert.deepEqual(applied.pending, []);
      const again = await migrate(db.url(), true);
      assert.deepEqual(again.appliedNow, [], 'a second run applies nothing');
      await checkHistory(db.url());
    } finally {
      await db.close();
    }
  });

  it('read a database at head from the history table alone, and leave every other state to the engine', async () => {
    const db = await openEmbeddedDatabase('memory://');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-migrations-'));
    try {
      assert.equal(await settledStatus(db.url()), undefined, 'no history table: the engine decides');
      await migrate(db.url(), true);
      assert.deepEqual(await settledStatus(db.url()), { applied: names, pending: [], failed: [], appliedNow: [] });
      assert.deepEqual(await settledStatus(db.url()), await migrate(db.url(), false), 'the same status the engine reports');
      // A release with one more migration than the database holds: pending, so the engine applies it.
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      mkdirSync(path.join(dir, '99999999999999_later'));
      writeFileSync(path.join(dir, '99999999999999_later', 'migration.sql'), 'SELECT 1;');
      assert.equal(await settledStatus(db.url(), dir), undefined, 'a migration on disk the database lacks');
      // A migration that started and never finished (a crash mid-migration): the engine reports it failed.
      const client = new pg.Client({ connectionString: db.url() });
      await client.connect();
      await client.query('UPDATE _prisma_migrations SET finished_at = NULL WHERE migration_name = $1', [names.at(-1)]);
      await client.end();
      assert.equal(await settledStatus(db.url()), undefined, 'an unfinished migration');
      assert.deepEqual((await migrate(db.url(), false)).failed, [names.at(-1)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await db.close();
    }
  });

  it('take PostgreSQL from empty to head, and the schema matches the migration history', async (t) => {
    server = await startPostgres(t);
    if (!server) return;
    const url = createDatabase(server, 'migrations_test');
    const before = await migrate(url, false);
    assert.deepEqual(before.pending, names);
    assert.deepEqual((await migrate(url, true)).appliedNow, names);
    await checkHistory(url);
    // Drift check: replaying the history in a shadow database gives exactly schema.prisma.
    const drift = await diffToSchema(server.url, readFileSync(SCHEMA_FILE, 'utf8'), 'migrations');
    assert.match(drift.trim(), /^-- This is an empty migration\.?$/, `schema.prisma and prisma/migrations disagree:\n${drift}`);
  });

  it('replicas starting together on an empty PostgreSQL migrate one after another, without timing out', async (t) => {
    server ??= await startPostgres(t);
    if (!server) return;
    const url = createDatabase(server, 'migrations_together');
    // Someone (a slow first replica) holds the migration lock for longer than the schema engine's
    // own 10 s lock timeout would allow.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    let settled = 0;
    const runs = [0, 1, 2].map(() => migrate(url, true, true).finally(() => settled++));
    await new Promise((r) => setTimeout(r, 11_000));
    assert.equal(settled, 0, 'the starters wait for the lock');
    assert.deepEqual((await migrate(url, false)).pending, names, 'nothing applied while the lock is held');
    await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    await holder.end();
    const results = await Promise.all(runs);
    assert.deepEqual(results.map((r) => r.appliedNow.length).sort(), [0, 0, names.length], 'exactly one applies the history');
    for (const r of results) assert.deepEqual(r.pending, []);
    await checkHistory(url);
  });

  it('refuses to start on an unmigrated database when migrations are off', async () => {
    const keys = new KeyRing(parseMasterKey(generateMasterKey()));
    await assert.rejects(openDatabase({ databaseUrl: undefined, dataDir: 'memory://', migrate: false, keys }), /database schema is not current \(pending: .*init/);
  });
});
