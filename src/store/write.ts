// Group commit, the database half: writes a planned batch inside the caller's transaction: one
// model change per write (its actor and summary), the rows of every resource changed, and one audit
// entry per changed resource under its own write's change.
import { KIND_ORDER, metaKey, type KindName, type ModelSnapshot, type ResourceMeta } from '../model/index.ts';
import type { AppliedChange, Planned } from './batch.ts';
import { KEY_COLUMNS, SQL_TABLE, resourceToRow } from './rows.ts';
import type { KeyRing } from './secrets.ts';
import { bulkDelete, bulkInsert, bulkUpdate, keyRow, type Tx } from './sql.ts';
import { redact } from './redact.ts';

/**
 * Writes the batch's changing writes; returns the model with the new revision (the last change's id)
 * and bookkeeping. The writes touch disjoint resources, so their rows go in one statement per kind
 * and action, exactly as one write's would.
 */
export async function writeBatch(tx: Tx, base: ModelSnapshot, next: ModelSnapshot, writes: readonly Planned[], keys: KeyRing): Promise<ModelSnapshot> {
  const changing = writes.filter((w) => w.changes.length);
  const now = new Date();
  const stamp = now.toISOString();
  // Change ids taken up front, in queue order, so every audit entry can name its own write's change.
  const ids = (await tx.$queryRawUnsafe<Array<{ id: string }>>(`SELECT nextval(pg_get_serial_sequence('"ModelChange"', 'id'))::text AS id FROM generate_series(1, ${changing.length})`))
    .map((r) => BigInt(r.id))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  await bulkInsert(
    tx,
    'ModelChange',
    changing.map((w, i) => ({ id: String(ids[i]), at: stamp, actor: w.pending.req.actor, summary: w.pending.req.summary.slice(0, 1000) })),
  );
  const meta = new Map(base.meta);
  const byKind = new Map<KindName, AppliedChange[]>();
  for (const w of changing) for (const c of w.changes) byKind.set(c.kind, [...(byKind.get(c.kind) ?? []), c]);
  // Deletes children-first, creates parents-first, so foreign keys hold at every statement.
  for (const kind of [...KIND_ORDER].reverse()) {
    const deletes = (byKind.get(kind) ?? []).filter((c) => c.action === 'delete');
    await bulkDelete(
      tx,
      SQL_TABLE[kind],
      KEY_COLUMNS[kind],
      deletes.map((c) => keyRow(kind, c.key)),
    );
    for (const c of deletes) meta.delete(metaKey(kind, c.key));
  }
  for (const kind of KIND_ORDER) {
    const changes = byKind.get(kind) ?? [];
    const creates = changes.filter((c) => c.action === 'create');
    const fresh: ResourceMeta = { revision: 1, createdAt: stamp, updatedAt: stamp };
    await bulkInsert(
      tx,
      SQL_TABLE[kind],
      creates.map((c) => ({ ...resourceToRow(kind, c.after!, keys), ...fresh })),
    );
    for (const c of creates) meta.set(metaKey(kind, c.key), fresh);
    const rows = changes
      .filter((x) => x.action === 'update')
      .map((c) => {
        const old = base.meta.get(metaKey(kind, c.key))!;
        const revision = old.revision + 1;
        meta.set(metaKey(kind, c.key), { ...old, revision, updatedAt: stamp });
        return { ...resourceToRow(kind, c.after!, keys), revision, updatedAt: stamp };
      });
    await bulkUpdate(tx, SQL_TABLE[kind], KEY_COLUMNS[kind], rows);
  }
  await bulkInsert(
    tx,
    'AuditEntry',
    changing.flatMap((w, i) =>
      w.changes.map((c) => ({
        changeId: String(ids[i]),
        at: stamp,
        actor: w.pending.req.actor,
        action: c.action,
        kind: c.kind,
        key: c.key,
        before: redact(c.kind, c.before) ?? null,
        after: redact(c.kind, c.after) ?? null,
      })),
    ),
  );
  return { ...next, revision: Number(ids[ids.length - 1]), meta } as ModelSnapshot;
}
