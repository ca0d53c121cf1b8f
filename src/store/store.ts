// The model store: loads the model snapshot from the database, commits validated writes
// atomically (with audit entries and one model change per write) and feeds new snapshots to
// subscribers. Reads are served from the in-memory snapshot; only writes touch the database.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.ts';
import {
  KIND_ORDER,
  applyMutations,
  emptySnapshot,
  keyOf,
  metaKey,
  canonicalResource,
  sameResource,
  validateModel,
  type AnyResource,
  type KindName,
  type ModelSnapshot,
  type Mutation,
  type ResourceMeta,
  type ModelError,
} from '../model/index.ts';
import { KEY_COLUMNS, SQL_TABLE, TABLE, resourceToRow, rowKey, rowMeta, rowToResource, type Row } from './rows.ts';
import { SecretHasher, type KeyRing } from './secrets.ts';
import { AdminTokens } from './admin-tokens.ts';
import { queryAudit, type AuditQuery, type AuditRecord } from './audit.ts';
import { ModelValidationError, PreconditionFailedError, type Precondition, databaseFailure, isDatabaseError } from './errors.ts';
import { resealSecrets } from './reseal.ts';
import { bulkDelete, bulkInsert, bulkUpdate, keyRow, notifyChange, type Tx } from './sql.ts';

export interface CommitRequest {
  mutations: readonly Mutation[];
  actor: string;
  summary: string;
  preconditions?: readonly Precondition[];
  /** Validate and compute the result without writing. */
  dryRun?: boolean;
}

export interface AppliedChange {
  kind: KindName;
  key: string;
  action: 'create' | 'update' | 'delete';
  before?: AnyResource;
  after?: AnyResource;
}

export interface CommitResult {
  snapshot: ModelSnapshot;
  changes: AppliedChange[];
}

/** Extra validation run on every candidate model (the translator registers its gate here). */
export type ModelValidator = (candidate: ModelSnapshot) => ModelError[];

const ADVISORY_LOCK = 0x706f7274; // "port"
const API_KEY_HASH_SECRET = 'api-key-hash-key';
/** Above this many changed resources a replica re-reads the whole model instead of each one. */
const CATCH_UP_LIMIT = 2000;
/** Minimal structural view of a Prisma model delegate, enough to read any kind's rows. */
interface Table {
  findMany(args?: object): Promise<Row[]>;
}

function table(db: Tx, kind: KindName): Table {
  return (db as unknown as Record<string, Table>)[TABLE[kind]]!;
}

/** Removes what must never leave the store: private keys and key hashes. */
export function redact(kind: KindName, r: AnyResource | undefined): unknown {
  if (!r) return undefined;
  const out = { ...(canonicalResource(kind, r) as Record<string, unknown>) };
  if (kind === 'certificates' && 'privateKey' in out) out.privateKey = '[sealed]';
  if (kind === 'apiKeys') {
    delete out.hash;
    delete out.secret;
  }
  return out;
}

export class ModelStore {
  private snapshot: ModelSnapshot = emptySnapshot();
  private readonly events = new EventEmitter();
  private writeChain: Promise<unknown> = Promise.resolve();
  private validators: ModelValidator[] = [];
  /** Admin API tokens (stored hashed, checked from memory). */
  readonly adminTokens: AdminTokens;
  private hasher: SecretHasher | undefined;

  private constructor(
    readonly prisma: PrismaClient,
    private readonly keys: KeyRing,
  ) {
    this.events.setMaxListeners(0);
    this.adminTokens = new AdminTokens(prisma, () => this.apiKeyHasher());
  }

  /** Connects to a migrated database and loads the current model. */
  static async open(databaseUrl: string, keys: KeyRing, opts: { poolSize?: number } = {}): Promise<ModelStore> {
    const adapter = new PrismaPg({ connectionString: databaseUrl, max: opts.poolSize ?? 1 });
    // errorFormat 'minimal': otherwise every failed query (all of them while the database is down)
    // formats its caller's stack through the source maps and reads the caller's source file to
    // quote it in the message, synchronously on the event loop the callouts share (issue 10).
    const prisma = new PrismaClient({ adapter, errorFormat: 'minimal', transactionOptions: { maxWait: 30_000, timeout: 300_000 } });
    const store = new ModelStore(prisma, keys);
    await store.initSecrets();
    await store.reload();
    await store.adminTokens.reload();
    return store;
  }

  async close(): Promise<void> {
    await this.prisma.$disconnect();
  }

  current(): ModelSnapshot {
    return this.snapshot;
  }

  /** Subscribes to new snapshots (one per committed write); returns an unsubscribe function. */
  subscribe(listener: (snapshot: ModelSnapshot) => void): () => void {
    this.events.on('snapshot', listener);
    return () => this.events.off('snapshot', listener);
  }

  addValidator(v: ModelValidator): void {
    this.validators.push(v);
  }

  /** The keyed hasher for API keys, shared by every replica through the sealed secret. */
  apiKeyHasher(): SecretHasher {
    if (!this.hasher) throw new Error('store is not open');
    return this.hasher;
  }

  private async initSecrets(): Promise<void> {
    const purpose = `sealed:${API_KEY_HASH_SECRET}`;
    const fresh = this.keys.seal(randomBytes(32).toString('base64'), purpose);
    // Racing replicas: the first insert wins and everybody reads the winner.
    await this.prisma.sealedSecret.createMany({ data: [{ name: API_KEY_HASH_SECRET, envelope: fresh }], skipDuplicates: true });
    const row = await this.prisma.sealedSecret.findUniqueOrThrow({ where: { name: API_KEY_HASH_SECRET } });
    this.hasher = new SecretHasher(Buffer.from(this.keys.open(row.envelope, purpose), 'base64'));
  }

  /** Re-reads the whole model from the database (at start, and when another replica wrote). */
  async reload(): Promise<ModelSnapshot> {
    const next = await this.readSnapshot(this.prisma);
    if (next.revision !== this.snapshot.revision || this.snapshot.revision === 0) this.publish(next);
    return this.snapshot;
  }

  /** The revision of the newest committed change in the database. */
  async databaseRevision(db: Tx = this.prisma): Promise<number> {
    const last = await db.modelChange.findFirst({ orderBy: { id: 'desc' }, select: { id: true } });
    return last ? Number(last.id) : 0;
  }

  private async readSnapshot(db: Tx): Promise<ModelSnapshot> {
    const revision = await this.databaseRevision(db);
    const out: Record<string, unknown> = { revision };
    const meta = new Map<string, ResourceMeta>();
    const codec = this.keys;
    for (const kind of KIND_ORDER) {
      const rows = await table(db, kind).findMany({ orderBy: KEY_COLUMNS[kind].map((c) => ({ [c]: 'asc' })) });
      const m = new Map<string, AnyResource>();
      for (const row of rows) {
        const key = rowKey(kind, row);
        m.set(key, rowToResource(kind, row, codec));
        meta.set(metaKey(kind, key), rowMeta(row));
      }
      out[kind] = m;
    }
    out.meta = meta;
    return out as ModelSnapshot;
  }

  /**
   * Brings this replica up to the database's newest revision by re-reading only the resources
   * that changed since (from the audit log), or everything when much changed. Serialised with
   * writes. Returns true when the snapshot moved.
   */
  catchUp(): Promise<boolean> {
    const run = this.writeChain.then(() => this.catchUpNow());
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  private async catchUpNow(): Promise<boolean> {
    const base = this.snapshot;
    const result = await this.prisma.$transaction((tx) => this.readChanges(tx, base), { isolationLevel: 'RepeatableRead' });
    if (!result || this.snapshot !== base) return false;
    if (result.tokens) await this.adminTokens.reload();
    this.publish(result.snapshot);
    return true;
  }

  /** The snapshot at the database's newest revision, built from `base` plus what changed since. */
  private async readChanges(tx: Tx, base: ModelSnapshot): Promise<{ snapshot: ModelSnapshot; tokens: boolean } | undefined> {
    const revision = await this.databaseRevision(tx);
    if (revision <= base.revision) return undefined;
    const touched = await tx.auditEntry.findMany({
      where: { changeId: { gt: BigInt(base.revision), lte: BigInt(revision) } },
      select: { kind: true, key: true },
    });
    if (touched.length > CATCH_UP_LIMIT) return { snapshot: await this.readSnapshot(tx), tokens: true };
    const byKind = new Map<KindName, Set<string>>();
    let tokens = false;
    for (const t of touched) {
      if (t.kind === 'adminTokens') tokens = true;
      else if ((KIND_ORDER as readonly string[]).includes(t.kind)) {
        const kind = t.kind as KindName;
        byKind.set(kind, (byKind.get(kind) ?? new Set()).add(t.key));
      }
    }
    const mutations: Mutation[] = [];
    const meta = new Map(base.meta);
    for (const [kind, keys] of byKind) {
      const rows = await table(tx, kind).findMany({ where: { OR: [...keys].map((k) => keyRow(kind, k)) } });
      const found = new Map(rows.map((r) => [rowKey(kind, r), r]));
      for (const key of keys) {
        const row = found.get(key);
        if (row) {
          mutations.push({ kind, op: 'put', key, resource: rowToResource(kind, row, this.keys) });
          meta.set(metaKey(kind, key), rowMeta(row));
        } else {
          mutations.push({ kind, op: 'delete', key });
          meta.delete(metaKey(kind, key));
        }
      }
    }
    const next = applyMutations(base, mutations);
    // Children removed with their parent lose their bookkeeping too.
    for (const k of [...meta.keys()]) {
      const slash = k.indexOf('/');
      const kind = k.slice(0, slash) as KindName;
      if (!(next[kind] as ReadonlyMap<string, unknown>).has(k.slice(slash + 1))) meta.delete(k);
    }
    return { snapshot: { ...next, revision, meta } as ModelSnapshot, tokens };
  }

  private publish(next: ModelSnapshot): void {
    this.snapshot = next;
    this.events.emit('snapshot', next);
  }

  /**
   * Validates and commits a write. Writes are serialised in-process and, across replicas, by an
   * advisory lock; a replica that is behind reloads inside the lock before validating.
   */
  commit(req: CommitRequest): Promise<CommitResult> {
    const run = this.writeChain.then(() => this.commitNow(req));
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  /** Validates a candidate without any database access (dry runs against the current snapshot). */
  check(req: CommitRequest): CommitResult {
    return this.prepare(this.snapshot, req);
  }

  private prepare(base: ModelSnapshot, req: CommitRequest): CommitResult {
    for (const p of req.preconditions ?? []) {
      const actual = base.meta.get(metaKey(p.kind, p.key))?.revision;
      const ok = p.revision === 'absent' ? actual === undefined : p.revision === 'exists' ? actual !== undefined : actual === p.revision;
      if (!ok) throw new PreconditionFailedError(p.kind, p.key, p.revision, actual);
    }
    const candidate = applyMutations(base, req.mutations);
    const changes = diffSnapshots(base, candidate);
    if (changes.length === 0) return { snapshot: base, changes };
    const errors = validateModel(candidate);
    // Extra validators (the translator) may assume a model whose references resolve.
    if (!errors.length) for (const v of this.validators) errors.push(...v(candidate));
    if (errors.length) throw new ModelValidationError(errors);
    return { snapshot: candidate, changes };
  }

  private async commitNow(req: CommitRequest): Promise<CommitResult> {
    if (req.dryRun) return this.prepare(this.snapshot, req);
    let result: CommitResult;
    let tokensChanged = false;
    try {
      result = await this.prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${ADVISORY_LOCK})`);
        // Another replica (or an admin-token change) may have committed since this one last looked.
        const behind = await this.readChanges(tx, this.snapshot);
        const base = behind?.snapshot ?? this.snapshot;
        if (behind?.tokens) tokensChanged = true;
        const prepared = this.prepare(base, req);
        if (prepared.changes.length === 0) return { ...prepared, snapshot: base };
        const snapshot = await this.write(tx, base, prepared, req);
        // Delivered to listening replicas when (and only if) this transaction commits.
        await notifyChange(tx, snapshot.revision);
        return { snapshot, changes: prepared.changes };
      });
    } catch (e) {
      if (isDatabaseError(e)) throw databaseFailure(e, 'the write was not saved');
      throw e;
    }
    if (tokensChanged) await this.adminTokens.reload();
    if (result.snapshot !== this.snapshot) this.publish(result.snapshot);
    return result;
  }

  private async write(tx: Tx, base: ModelSnapshot, prepared: CommitResult, req: CommitRequest): Promise<ModelSnapshot> {
    const now = new Date();
    const stamp = now.toISOString();
    const change = await tx.modelChange.create({ data: { actor: req.actor, summary: req.summary.slice(0, 1000), at: now } });
    const meta = new Map(base.meta);
    const byKind = new Map<KindName, AppliedChange[]>();
    for (const c of prepared.changes) byKind.set(c.kind, [...(byKind.get(c.kind) ?? []), c]);
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
      await bulkInsert(
        tx,
        SQL_TABLE[kind],
        creates.map((c) => ({ ...resourceToRow(kind, c.after!, this.keys), revision: 1, createdAt: stamp, updatedAt: stamp })),
      );
      for (const c of creates) meta.set(metaKey(kind, c.key), { revision: 1, createdAt: stamp, updatedAt: stamp });
      const updates = changes.filter((x) => x.action === 'update');
      const rows = updates.map((c) => {
        const old = base.meta.get(metaKey(kind, c.key))!;
        const revision = old.revision + 1;
        meta.set(metaKey(kind, c.key), { ...old, revision, updatedAt: stamp });
        return { ...resourceToRow(kind, c.after!, this.keys), revision, updatedAt: stamp };
      });
      await bulkUpdate(tx, SQL_TABLE[kind], KEY_COLUMNS[kind], rows);
    }
    await bulkInsert(
      tx,
      'AuditEntry',
      prepared.changes.map((c) => ({
        changeId: String(change.id),
        at: stamp,
        actor: req.actor,
        action: c.action,
        kind: c.kind,
        key: c.key,
        before: redact(c.kind, c.before) ?? null,
        after: redact(c.kind, c.after) ?? null,
      })),
    );
    return { ...prepared.snapshot, revision: Number(change.id), meta } as ModelSnapshot;
  }

  // ── audit log ───────────────────────────────────────────────────────────────

  /** Audit entries matching the query, newest first. */
  async audit(q: AuditQuery): Promise<AuditRecord[]> {
    try {
      return await queryAudit(this.prisma, q);
    } catch (e) {
      throw isDatabaseError(e) ? databaseFailure(e, 'the audit log was not read', '(query)') : e;
    }
  }

  /** Re-seals every stored secret under the current master key; returns how many were re-sealed. */
  resealSecrets(): Promise<number> {
    return resealSecrets(this.prisma, this.keys);
  }
}

/** Resource-level differences between two snapshots, in dependency order. */
export function diffSnapshots(a: ModelSnapshot, b: ModelSnapshot): AppliedChange[] {
  const out: AppliedChange[] = [];
  for (const kind of KIND_ORDER) {
    const ma = a[kind] as ReadonlyMap<string, AnyResource>;
    const mb = b[kind] as ReadonlyMap<string, AnyResource>;
    if (ma === mb) continue;
    for (const key of [...new Set([...ma.keys(), ...mb.keys()])].sort()) {
      const before = ma.get(key);
      const after = mb.get(key);
      if (before && !after) out.push({ kind, key, action: 'delete', before });
      else if (!before && after) out.push({ kind, key, action: 'create', after });
      else if (before && after && before !== after && !sameResource(kind, before, after)) out.push({ kind, key, action: 'update', before, after });
    }
  }
  return out;
}

export { keyOf };
