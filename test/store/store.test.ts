// The store's write path on real databases: one snapshot per committed write, nothing on a
// failed write, a second replica on the same PostgreSQL catching up before it validates, and a
// reload that reads one state of the database.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres, createDatabase, waitFor, type PostgresServer } from '../support/components.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, type Database } from '../../src/store/database.ts';
import { dataDirOwner } from '../../src/store/embedded.ts';
import { ChangeFeed } from '../../src/store/feed.ts';
import { KeyRing, parseMasterKey, generateMasterKey } from '../../src/store/secrets.ts';
import { ModelValidationError } from '../../src/store/errors.ts';
import type { ModelSnapshot, Mutation } from '../../src/model/model.ts';

const keys = new KeyRing(parseMasterKey(generateMasterKey()));
const put = (kind: Mutation['kind'], key: string, resource: object): Mutation => ({ kind, op: 'put', key, resource: resource as Mutation['resource'] });

describe('model store', () => {
  const open: Database[] = [];
  let pg: PostgresServer | undefined;
  after(async () => {
    for (const d of open) await d.close();
    await pg?.stop();
  });

  it('publishes exactly one snapshot per committed write and none for failed or no-op writes', async () => {
    const db = await openDatabase({ databaseUrl: undefined, dataDir: 'memory://', migrate: true, keys });
    open.push(db);
    const seen: ModelSnapshot[] = [];
    db.store.subscribe((s) => seen.push(s));
    const r1 = await db.store.commit({ actor: 't', summary: 'one', mutations: [put('partners', 'a', { name: 'a' }), put('partners', 'b', { name: 'b' })] });
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.revision, r1.snapshot.revision);
    await db.store.commit({ actor: 't', summary: 'same again', mutations: [put('partners', 'a', { name: 'a' })] });
    assert.equal(seen.length, 1, 'a write that changes nothing publishes nothing');
    await assert.rejects(db.store.commit({ actor: 't', summary: 'bad', mutations: [put('subscriptions', 'a/nope', { partner: 'a', product: 'nope', plan: 'nope' })] }), ModelValidationError);
    assert.equal(seen.length, 1);
    // Snapshots are immutable: the first one still shows the old world after later writes.
    await db.store.commit({ actor: 't', summary: 'c', mutations: [put('partners', 'c', { name: 'c' })] });
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.partners.has('c'), false);
    assert.equal(seen[1]!.partners.has('c'), true);
    assert.equal(seen[1]!.revision, seen[0]!.revision + 1);
  });

  it('creates an embedded database on its first start in a child process, then holds it itself', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-store-'));
    try {
      const refused = openDatabase({ databaseUrl: undefined, dataDir: path.join(dir, 'unmigrated'), migrate: false, keys });
      await assert.rejects(refused, /database schema is not current \(pending: .*init/);
      const first = await openDatabase({ databaseUrl: undefined, dataDir: dir, migrate: true, keys });
      try {
        assert.ok(first.migrations.appliedNow.length > 0, 'the child reports the migrations it applied');
        assert.deepEqual(first.migrations.pending, []);
        assert.equal(dataDirOwner(path.join(dir, 'pglite')), process.pid, 'the server, not the finished child, holds the lock');
        await first.store.commit({ actor: 't', summary: 'one', mutations: [put('partners', 'a', { name: 'a' })] });
      } finally {
        await first.close();
      }
      const again = await openDatabase({ databaseUrl: undefined, dataDir: dir, migrate: true, keys });
      try {
        assert.deepEqual(again.migrations.appliedNow, [], 'a restart finds the schema at head');
        assert.equal(again.store.current().partners.has('a'), true);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lets a replica that is behind catch up inside the write lock (shared PostgreSQL)', async (t) => {
    pg = await startPostgres(t);
    if (!pg) return;
    const url = createDatabase(pg, 'replicas');
    const a = await openDatabase({ databaseUrl: url, dataDir: 'memory://', migrate: true, keys });
    const b = await openDatabase({ databaseUrl: url, dataDir: 'memory://', migrate: false, keys });
    open.push(a, b);
    assert.equal(a.store.apiKeyHasher().hash('x'), b.store.apiKeyHasher().hash('x'), 'replicas share the key-hashing secret');
    await a.store.commit({ actor: 'a', summary: 'group', mutations: [put('gatewayGroups', 'edge', { name: 'edge', listeners: [{ name: 'h', port: 80 }] })] });
    assert.equal(b.store.current().gatewayGroups.has('edge'), false, 'b has not heard of it yet');
    // b validates against the database's latest model, so this reference resolves.
    const r = await b.store.commit({ actor: 'b', summary: 'product', mutations: [put('products', 'p', { name: 'p', gatewayGroups: ['edge'] })] });
    assert.ok(r.snapshot.gatewayGroups.has('edge'));
    assert.equal(r.snapshot.revision, 2);
    assert.equal(await a.store.catchUp(), true);
    assert.equal(a.store.current().revision, 2);
    assert.ok(a.store.current().products.has('p'));
    assert.deepEqual(a.store.current().meta.get('products/p'), b.store.current().meta.get('products/p'));
  });

  it('reloads a revision and the tables as one state while another replica writes', async (t) => {
    pg ??= await startPostgres(t);
    if (!pg) return;
    const url = createDatabase(pg, 'reload');
    const a = await openDatabase({ databaseUrl: url, dataDir: 'memory://', migrate: true, keys });
    const b = await openDatabase({ databaseUrl: url, dataDir: 'memory://', migrate: false, keys });
    open.push(a, b);
    // Each write adds one partner, so revision r holds exactly r partners. Read one after another
    // outside a transaction, a write committing between the revision and the tables broke this.
    let writing = true;
    const writes = (async () => {
      for (let i = 1; i <= 40; i++) await a.store.commit({ actor: 'a', summary: `p-${i}`, mutations: [put('partners', `p-${i}`, { name: `p-${i}` })] });
      writing = false;
    })();
    const seen = new Set<number>();
    while (writing) {
      const s = await b.store.reload();
      assert.equal(s.partners.size, s.revision, `revision ${s.revision}`);
      seen.add(s.revision);
    }
    await writes;
    assert.equal((await b.store.reload()).partners.size, 40);
    assert.ok(seen.size > 1, 'the reloads overlapped the writes');
  });

  it('follows other replicas through LISTEN/NOTIFY, incrementally, including deletes and admin tokens', async (t) => {
    pg ??= await startPostgres(t);
    if (!pg) return;
    const url = createDatabase(pg, 'feed');
    const a = await openDatabase({ databaseUrl: url, dataDir: 'memory://', migrate: true, keys });
    const b = await openDatabase({ databaseUrl: url, dataDir: 'memory://', migrate: false, keys });
    open.push(a, b);
    const quiet = { info: () => {}, warn: () => {} };
    const feed = new ChangeFeed(b.store, { databaseUrl: url, reconcileMs: 60_000, log: quiet });
    feed.start();
    try {
      const seen: number[] = [];
      b.store.subscribe((s) => seen.push(s.revision));
      await a.store.commit({ actor: 'a', summary: 'x', mutations: [put('partners', 'x', { name: 'x' }), put('partners', 'y', { name: 'y' })] });
      await waitFor('b to see the write', () => (b.store.current().partners.has('y') ? true : undefined), 5000);
      await a.store.commit({ actor: 'a', summary: 'del', mutations: [{ kind: 'partners', op: 'delete', key: 'x' }] });
      await waitFor('b to see the delete', () => (!b.store.current().partners.has('x') ? true : undefined), 5000);
      assert.equal(b.store.current().revision, a.store.current().revision);
      assert.equal(b.store.current().meta.has('partners/x'), false);
      const { token } = await a.store.adminTokens.create({ name: 'ops', role: 'viewer' }, 'a');
      await waitFor('b to know the new admin token', () => b.store.adminTokens.verify(token), 5000);
      assert.ok(seen.length >= 2);
    } finally {
      await feed.stop();
    }
  });
});
