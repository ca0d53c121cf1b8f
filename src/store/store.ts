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
  sameResource,
  validateModel,
  type AnyResource,
  type KindName,
  type ModelSnapshot,
  type Mutation,
  type ResourceMeta,
  type ModelError,
} from '../model/index.ts';
import { KEY_COLUMNS, TABLE, rowKey, rowMeta, rowToResource, type Row } from './rows.ts';
import { SecretHasher, type KeyRing } from './secrets.ts';
import { AdminTokens } from './admin-tokens.ts';
import { queryAudit, type AuditQuery, type AuditRecord } from './audit.ts';
import { ModelValidationError, databaseFailure, isDatabaseError } from './errors.ts';
import { resealSecrets } from './reseal.ts';
import { keyRow, notifyChange, type Tx } from './sql.ts';
import { checkPreconditions, planBatch, takeBatch, type AppliedChange, type BatchPlan, type CommitRequest, type CommitResult, type Pending } from './batch.ts';
import { writeBatch } from './write.ts';

export type { AppliedChange, CommitRequest, CommitResult } from './batch.ts';
export { redact } from './redact.ts';

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

export class ModelStore {
  private snapshot: ModelSnapshot = emptySnapshot();
  private readonly events = new EventEmitter();
  private writeChain: Promise<unknown> = Promise.resolve();
  /** Writes waiting for the next batch. */
  private readonly queue: Pending[] = [];
  private draining = false;
  private validators: ModelValidator[] = [];
  /** What validators load before the first write (see addValidator). */
  private preparers: Array<() => Promise<void> | undefined> = [];
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

  /**
   * `prepare` loads what the (synchronous) validator needs, once, before the write that first needs
   * it (the flow compiler's code sandbox: a process that never takes a write never loads it); it
   * returns undefined once that is done, and a write waits for it before it is queued.
   */
  addValidator(v: ModelValidator, prepare?: () => Promise<void> | undefined): void {
    this.validators.push(v);
    if (prepare) this.preparers.push(prepare);
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
    // One RepeatableRead transaction: the revision and the 11 tables are one state of the database
    // (read one after another outside it, a write committing in between was labelled with the older revision).
    const next = await this.prisma.$transaction((tx) => this.readSnapshot(tx), { isolationLevel: 'RepeatableRead' });
    if (next.revision !== this.snapshot.revision || this.snapshot.revision === 0) this.publish(next);
    return this.snapshot;
  }

  /** The revision of the newest committed change in the database. */
  async databaseRevision(db: Tx = this.prisma): Promise<number> {
    const last = await db.modelChange.findFirst({ orderBy: { id: 'desc' }, select: { id: true } });
    return last ? Number(last.id) : 0;
  }

  private async readSnapshot(db: Tx): Promise<ModelSnapshot> {
    // All queries issued at once: Prisma maps one table's rows while the database answers the next.
    const [revision, ...tables] = await Promise.all([this.databaseRevision(db), ...KIND_ORDER.map((kind) => table(db, kind).findMany({ orderBy: KEY_COLUMNS[kind].map((c) => ({ [c]: 'asc' })) }))]);
    const out: Record<string, unknown> = { revision };
    const meta = new Map<string, ResourceMeta>();
    const codec = this.keys;
    for (const [i, kind] of KIND_ORDER.entries()) {
      const rows = tables[i]!;
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
   * advisory lock; a replica that is behind reloads inside the lock before validating. Writes that
   * queue while a batch commits go together in the next one (group commit, see batch.ts): one
   * validation of the model with all of them, one transaction; each still commits or fails whole,
   * with its own change and audit entries, and is refused alone when it is the one that is invalid.
   */
  commit(req: CommitRequest): Promise<CommitResult> {
    const loading = this.preparers.map((p) => p()).filter((p) => p !== undefined);
    if (loading.length) return Promise.all(loading).then(() => this.commit(req));
    return new Promise<CommitResult>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (this.draining) return;
      this.draining = true;
      const run = this.writeChain.then(() => this.drain());
      this.writeChain = run.catch(() => undefined);
    });
  }

  /** Commits batches until the queue is empty (runs on the write chain, so never beside a catch-up). */
  private async drain(): Promise<void> {
    try {
      for (let batch = takeBatch(this.queue); batch.length; batch = takeBatch(this.queue)) await this.commitBatch(batch);
    } finally {
      this.draining = false;
    }
  }

  /** Validates a candidate without any database access (dry runs against the current snapshot). */
  check(req: CommitRequest): CommitResult {
    return this.prepare(this.snapshot, req);
  }

  private validate(candidate: ModelSnapshot): ModelError[] {
    const errors = validateModel(candidate);
    // Extra validators (the translator) may assume a model whose references resolve.
    if (!errors.length) for (const v of this.validators) errors.push(...v(candidate));
    return errors;
  }

  private prepare(base: ModelSnapshot, req: CommitRequest): CommitResult {
    checkPreconditions(base, req);
    const candidate = applyMutations(base, req.mutations);
    const changes = diffSnapshots(base, candidate);
    if (changes.length === 0) return { snapshot: base, changes };
    const errors = this.validate(candidate);
    if (errors.length) throw new ModelValidationError(errors);
    return { snapshot: candidate, changes };
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    const dry = batch[0]!;
    if (dry.req.dryRun) {
      try {
        dry.resolve(this.prepare(this.snapshot, dry.req));
      } catch (e) {
        dry.reject(e);
      }
      return;
    }
    let plan: BatchPlan;
    let tokensChanged = false;
    try {
      plan = await this.prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${ADVISORY_LOCK})`);
        // Another replica (or an admin-token change) may have committed since this one last looked.
        const behind = await this.readChanges(tx, this.snapshot);
        const base = behind?.snapshot ?? this.snapshot;
        if (behind?.tokens) tokensChanged = true;
        const planned = planBatch(base, batch, { domain: validateModel, extra: (candidate) => this.validators.flatMap((v) => v(candidate)) });
        if (!planned.accepted.some((w) => w.changes.length)) return { ...planned, snapshot: base };
        const snapshot = await writeBatch(tx, base, planned.snapshot, planned.accepted, this.keys);
        // Delivered to listening replicas when (and only if) this transaction commits.
        await notifyChange(tx, snapshot.revision);
        return { ...planned, snapshot };
      });
    } catch (e) {
      const error = isDatabaseError(e) ? databaseFailure(e, 'the write was not saved') : e;
      for (const p of batch) p.reject(error);
      return;
    }
    if (tokensChanged) await this.adminTokens.reload().catch(() => undefined);
    try {
      if (plan.snapshot !== this.snapshot) this.publish(plan.snapshot);
    } catch (e) {
      // A subscriber failed on the new model: committed, but each write learns of it as before.
      for (const p of batch) p.reject(e);
      return;
    }
    for (const w of plan.accepted) w.pending.resolve({ snapshot: plan.snapshot, changes: w.changes });
    for (const r of plan.rejected) r.pending.reject(r.error);
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
