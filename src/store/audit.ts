// The audit log as the admin API reads it: who changed what, when, before and after, newest first.
import type { Tx } from './sql.ts';

export interface AuditQuery {
  kind?: string;
  key?: string;
  actor?: string;
  limit: number;
  /** Return entries with id below this (for paging backwards). */
  before?: bigint;
}

export interface AuditRecord {
  id: string;
  changeId: string;
  at: string;
  actor: string;
  action: string;
  kind: string;
  key: string;
  before: unknown;
  after: unknown;
}

/** Audit entries matching the query, newest first (secrets were removed when they were written). */
export async function queryAudit(db: Tx, q: AuditQuery): Promise<AuditRecord[]> {
  const rows = await db.auditEntry.findMany({
    where: {
      ...(q.kind ? { kind: q.kind } : {}),
      ...(q.key ? { key: q.key } : {}),
      ...(q.actor ? { actor: q.actor } : {}),
      ...(q.before !== undefined ? { id: { lt: q.before } } : {}),
    },
    orderBy: { id: 'desc' },
    take: q.limit,
  });
  return rows.map((r) => ({
    id: r.id.toString(),
    changeId: r.changeId.toString(),
    at: r.at.toISOString(),
    actor: r.actor,
    action: r.action,
    kind: r.kind,
    key: r.key,
    before: r.before ?? undefined,
    after: r.after ?? undefined,
  }));
}
