// The SQL the store runs inside Prisma transactions beyond the ORM: bulk writes (one statement per
// kind and action), the change announcement to other replicas, and the transaction type they take.
import type { KindName } from '../model/index.ts';
import type { PrismaClient } from './generated/client.ts';
import { KEY_COLUMNS, splitKey } from './rows.ts';

/** Channel on which every committed write is announced to the other replicas. */
export const CHANGE_CHANNEL = 'portico_model';

/** A Prisma client or an interactive transaction. */
export type Tx = Omit<PrismaClient, '$connect' | '$disconnect' | '$on' | '$transaction' | '$extends'>;

/** Announces a committed change (its id) on CHANGE_CHANNEL, inside the transaction that commits it. */
export async function notifyChange(tx: Tx, id: bigint | number): Promise<void> {
  await tx.$executeRawUnsafe(`SELECT pg_notify('${CHANGE_CHANNEL}', $1)`, String(id));
}

/** The key columns of a row, from its model key. */
export function keyRow(kind: KindName, key: string): Record<string, string> {
  const cols = KEY_COLUMNS[kind];
  if (cols.length === 1) return { [cols[0]!]: key };
  const [a, b] = splitKey(key);
  return { [cols[0]!]: a, [cols[1]!]: b };
}

// Bulk writes: one statement per kind and action, rows shipped as one JSON parameter and expanded
// by PostgreSQL (json_populate_recordset). Per-row ORM calls made a large apply take minutes.
const BULK_CHUNK = 5000;
const quote = (c: string) => `"${c}"`;
const recordset = (table: string) => `json_populate_recordset(NULL::${quote(table)}, $1::json)`;

async function inChunks(rows: readonly object[], run: (json: string) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += BULK_CHUNK) await run(JSON.stringify(rows.slice(i, i + BULK_CHUNK)));
}

export async function bulkInsert(tx: Tx, table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
  if (!rows.length) return;
  const cols = Object.keys(rows[0]!).map(quote).join(', ');
  await inChunks(rows, (json) => tx.$executeRawUnsafe(`INSERT INTO ${quote(table)} (${cols}) SELECT ${cols} FROM ${recordset(table)}`, json));
}

export async function bulkUpdate(tx: Tx, table: string, keyCols: readonly string[], rows: readonly Record<string, unknown>[]): Promise<void> {
  if (!rows.length) return;
  const cols = Object.keys(rows[0]!).filter((c) => !keyCols.includes(c));
  const set = `(${cols.map(quote).join(', ')}) = (${cols.map((c) => `r.${quote(c)}`).join(', ')})`;
  const match = keyCols.map((k) => `t.${quote(k)} = r.${quote(k)}`).join(' AND ');
  await inChunks(rows, (json) => tx.$executeRawUnsafe(`UPDATE ${quote(table)} AS t SET ${set} FROM ${recordset(table)} AS r WHERE ${match}`, json));
}

export async function bulkDelete(tx: Tx, table: string, keyCols: readonly string[], keys: readonly Record<string, string>[]): Promise<void> {
  if (!keys.length) return;
  const match = keyCols.map((k) => `t.${quote(k)} = r.${quote(k)}`).join(' AND ');
  await inChunks(keys, (json) => tx.$executeRawUnsafe(`DELETE FROM ${quote(table)} AS t USING ${recordset(table)} AS r WHERE ${match}`, json));
}
