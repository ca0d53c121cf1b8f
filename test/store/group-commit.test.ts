// Group commit on the embedded database: writes queued together are validated and committed
// together, yet each one succeeds or fails exactly as it would have alone, in queue order, and
// leaves its own change and audit entries under its own actor.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, type Database } from '../../src/store/database.ts';
import { KeyRing, parseMasterKey, generateMasterKey } from '../../src/store/secrets.ts';
import { ModelValidationError, PreconditionFailedError } from '../../src/store/errors.ts';
import type { CommitRequest } from '../../src/store/store.ts';
import type { ModelSnapshot, Mutation } from '../../src/model/model.ts';

const keys = new KeyRing(parseMasterKey(generateMasterKey()));
const put = (kind: Mutation['kind'], key: string, resource: object): Mutation => ({ kind, op: 'put', key, resource: resource as Mutation['resource'] });

const SEED: Mutation[] = [
  put('gatewayGroups', 'edge', { name: 'edge', listeners: [{ name: 'h', port: 8080 }] }),
  put('services', 's', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }),
  put('products', 'p', { name: 'p', gatewayGroups: ['edge'] }),
  put('plans', 'gold', { name: 'gold', limits: [{ requests: 10, per: 'second' }] }),
  put('partners', 'base', { name: 'base' }),
];

/**
 * A mixed workload whose outcomes depend on order: creates, writes invalid on purpose (whole request
 * refused), routes whose matches collide with earlier ones, stale revisions, deletes of what an
 * earlier write created.
 */
function workload(n: number): CommitRequest[] {
  return Array.from({ length: n }, (_, i): CommitRequest => {
    const actor = `w${i}`;
    switch (i % 6) {
      case 0:
        return { actor, summary: 'create', mutations: [put('partners', `pa${i}`, { name: `pa${i}` })], preconditions: [{ kind: 'partners', key: `pa${i}`, revision: 'absent' }] };
      case 1:
        return { actor, summary: 'nested', mutations: [put('partners', `pb${i}`, { name: `pb${i}` }), put('subscriptions', `pb${i}/p`, { partner: `pb${i}`, product: 'p', plan: 'gold' })] };
      case 2:
        // Invalid: the plan does not exist, so the partner is not created either.
        return { actor, summary: 'invalid', mutations: [put('partners', `pc${i}`, { name: `pc${i}` }), put('subscriptions', `pc${i}/p`, { partner: `pc${i}`, product: 'p', plan: 'nope' })] };
      case 3:
        // Paths repeat every fourth such write: the later route conflicts with the earlier one.
        return { actor, summary: 'route', mutations: [put('routes', `p/r${i}`, { product: 'p', name: `r${i}`, match: { path: { type: 'prefix', value: `/dup${i % 4}` } }, service: 's' })] };
      case 4:
        // Everyone read revision 1: only the first such write may change it.
        return { actor, summary: 'stale', mutations: [put('partners', 'base', { name: 'base', displayName: `by ${i}` })], preconditions: [{ kind: 'partners', key: 'base', revision: 1 }] };
      default:
        return { actor, summary: 'delete', mutations: [{ kind: 'partners', op: 'delete', key: `pa${i - 5}` }] };
    }
  });
}

type Outcome = string;
const outcome = (r: PromiseSettledResult<unknown>): Outcome =>
  r.status === 'fulfilled'
    ? 'ok'
    : r.reason instanceof ModelValidationError
      ? `invalid: ${r.reason.message}`
      : r.reason instanceof PreconditionFailedError
        ? `precondition: ${r.reason.message}`
        : `error: ${(r.reason as Error).message}`;

/** What must be the same after either run: every resource with its revision, and the model revision. */
function state(s: ModelSnapshot): unknown {
  return {
    revision: s.revision,
    partners: [...s.partners.keys()].sort(),
    subscriptions: [...s.subscriptions.keys()].sort(),
    routes: [...s.routes.keys()].sort(),
    meta: [...s.meta].map(([k, m]) => [k, m.revision]).sort(),
  };
}

async function auditByActor(db: Database): Promise<Map<string, { entries: number; changes: Set<string> }>> {
  const out = new Map<string, { entries: number; changes: Set<string> }>();
  for (const e of await db.store.audit({ limit: 10_000 })) {
    const a = out.get(e.actor) ?? { entries: 0, changes: new Set<string>() };
    a.entries++;
    a.changes.add(e.changeId);
    out.set(e.actor, a);
  }
  return out;
}

describe('group commit', () => {
  const open: Database[] = [];
  after(async () => {
    for (const d of open) await d.close();
  });
  const fresh = async () => {
    const db = await openDatabase({ databaseUrl: undefined, dataDir: 'memory://', migrate: true, keys });
    open.push(db);
    let validations = 0;
    db.store.addValidator(() => {
      validations++;
      return [];
    });
    await db.store.commit({ actor: 'seed', summary: 'seed', mutations: SEED });
    return { db, validations: () => validations };
  };

  it('gives concurrent writes the outcomes sequential writes get, with fewer validations', async () => {
    const requests = workload(60);
    const seq = await fresh();
    const sequential: Outcome[] = [];
    for (const r of requests) sequential.push(outcome((await Promise.allSettled([seq.db.store.commit(r)]))[0]!));
    const seqValidations = seq.validations();

    const con = await fresh();
    const before = con.validations();
    let published = 0;
    con.db.store.subscribe(() => published++);
    const concurrent = (await Promise.allSettled(requests.map((r) => con.db.store.commit(r)))).map(outcome);

    assert.deepEqual(concurrent, sequential);
    // The workload refuses writes of every kind, so the comparison means something.
    assert.ok(sequential.filter((o) => o.startsWith('invalid: ')).length >= 10);
    assert.ok(
      sequential.some((o) => o.includes('already matches')),
      'a route conflict was refused',
    );
    assert.ok(sequential.filter((o) => o.startsWith('precondition: ')).length >= 9);
    assert.deepEqual(state(con.db.store.current()), state(seq.db.store.current()));
    assert.ok(con.validations() - before < seqValidations / 2, `validated ${con.validations() - before} times for 60 writes (sequential: ${seqValidations})`);
    assert.ok(published < 30, `one new model per batch, not per write (${published})`);

    // Every successful write: its own change, one audit entry per resource it changed, under its actor.
    const audit = await auditByActor(con.db);
    const seqAudit = await auditByActor(seq.db);
    requests.forEach((r, i) => {
      const a = audit.get(r.actor);
      assert.equal(a?.entries, seqAudit.get(r.actor)?.entries, `audit entries of ${r.actor}`);
      if (sequential[i] === 'ok') assert.equal(a?.changes.size, 1, `${r.actor} has one change`);
      else assert.equal(a, undefined, `${r.actor} was refused and left no audit entry`);
    });
  });

  it('refuses an invalid write alone while the rest of its batch commits', async () => {
    const { db } = await fresh();
    const writes = Array.from({ length: 20 }, (_, i) =>
      db.store.commit({
        actor: `a${i}`,
        summary: 'sub',
        mutations: [put('partners', `q${i}`, { name: `q${i}` }), put('subscriptions', `q${i}/p`, { partner: `q${i}`, product: 'p', plan: i === 7 ? 'missing' : 'gold' })],
      }),
    );
    const results = await Promise.allSettled(writes);
    results.forEach((r, i) => assert.equal(r.status, i === 7 ? 'rejected' : 'fulfilled', `write ${i}`));
    const reason = (results[7] as PromiseRejectedResult).reason as ModelValidationError;
    assert.ok(reason instanceof ModelValidationError);
    assert.deepEqual(
      reason.errors.map((e) => [e.kind, e.key, e.field]),
      [['subscriptions', 'q7/p', 'plan']],
    );
    const model = db.store.current();
    assert.equal(model.partners.has('q7'), false, 'nothing of the refused write was committed');
    assert.equal(model.partners.has('q19') && model.subscriptions.has('q19/p'), true);
    const audit = await auditByActor(db);
    assert.equal(audit.get('a7'), undefined);
    for (let i = 0; i < 20; i++) if (i !== 7) assert.equal(audit.get(`a${i}`)?.entries, 2, `a${i}: partner and subscription`);
  });
});
