// Authors a migration folder in prisma/migrations from the difference between the migration
// history and prisma/schema.prisma, using Prisma's schema engine (no engine download).
// Usage: tsx scripts/new-migration.ts <name>   (DATABASE_URL: a scratch PostgreSQL for the shadow
// database; not needed for the first migration).
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { MIGRATIONS_DIR, SCHEMA_FILE, diffToSchema, readMigrations } from '../src/store/migrate.ts';
import { openEmbeddedDatabase } from '../src/store/embedded.ts';

const name = process.argv[2];
if (!name || !/^[a-z0-9_]+$/.test(name)) {
  console.error('usage: tsx scripts/new-migration.ts <name: lowercase letters, digits, _>');
  process.exit(2);
}
const schema = readFileSync(SCHEMA_FILE, 'utf8');
const first = readMigrations().migrationDirectories.length === 0;
let sql: string;
if (first) {
  const db = await openEmbeddedDatabase('memory://');
  sql = await diffToSchema(db.url(), schema, 'empty');
  await db.close();
} else {
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error('DATABASE_URL must name a scratch PostgreSQL (used for a shadow database)');
    process.exit(2);
  }
  sql = await diffToSchema(url, schema, 'migrations');
}
if (!sql.trim() || /^-- This is an empty migration/.test(sql.trim())) {
  console.log('schema and migrations agree; nothing to write');
  process.exit(0);
}
const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
const dir = path.join(MIGRATIONS_DIR, `${stamp}_${name}`);
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, 'migration.sql'), sql);
const lock = path.join(MIGRATIONS_DIR, 'migration_lock.toml');
if (!existsSync(lock)) writeFileSync(lock, '# Written by scripts/new-migration.ts; the provider must match prisma/schema.prisma.\nprovider = "postgresql"\n');
console.log(`wrote ${path.relative(process.cwd(), dir)}/migration.sql`);
