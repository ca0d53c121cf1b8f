// Public surface of src/store: the database (embedded PGlite or PostgreSQL) and its migrations, the
// ModelStore with its change feed, declarative apply, and secret sealing and hashing.
export * from './apply.ts';
export * from './database.ts';
export * from './feed.ts';
export * from './secrets.ts';
export * from './store.ts';
