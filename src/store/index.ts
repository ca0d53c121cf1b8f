// Public surface of src/store: the database (embedded PGlite or PostgreSQL) and its migrations, the
// ModelStore with its change feed, audit log and admin tokens, declarative apply, and secret sealing.
export * from './admin-tokens.ts';
export * from './apply.ts';
export * from './audit.ts';
export * from './database.ts';
export { dataDirOwner } from './embedded.ts';
export * from './errors.ts';
export * from './feed.ts';
export * from './secrets.ts';
export * from './store.ts';
