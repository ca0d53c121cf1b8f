// Group commit, the pure half: which queued writes go into one batch (never two touching the same
// resource), and which of them commit, validating the model with all of them once instead of once each.
import { KIND_ORDER, KINDS, applyMutations, childKinds, metaKey, sameResource, type AnyResource, type KindName, type ModelError, type ModelSnapshot, type Mutation } from '../model/index.ts';
import { ModelValidationError, PreconditionFailedError, type Precondition } from './errors.ts';

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

/** A write waiting in the store's queue, settled when its batch commits (or it is refused). */
export interface Pending {
  req: CommitRequest;
  resolve(result: CommitResult): void;
  reject(error: unknown): void;
}

/** A write the batch commits, with what it changes (empty: it changes nothing). */
export interface Planned {
  pending: Pending;
  changes: AppliedChange[];
}

export interface BatchPlan {
  /** The model with every accepted write. */
  snapshot: ModelSnapshot;
  /** In queue order, except that writes validated one by one come after the rest. */
  accepted: Planned[];
  rejected: Array<{ pending: Pending; error: unknown }>;
}

/** A whole-model check: the errors it finds in a candidate. */
export type Validate = (candidate: ModelSnapshot) => ModelError[];

/** The domain rules (cheap), and the extra validators (the translator's gate), run only on a model the rules accept. */
export interface Validators {
  domain: Validate;
  extra: Validate;
}

function full(v: Validators, candidate: ModelSnapshot): ModelError[] {
  const errors = v.domain(candidate);
  return errors.length ? errors : v.extra(candidate);
}

/** A write with more mutations than this (a declarative apply) commits alone. */
const SOLO_MUTATIONS = 1000;
const MAX_BATCH = 200;

/**
 * The resources a write reads or writes: each mutated key, its parent's (a parent's delete removes
 * the children, and a nested write lists its siblings), and each precondition's.
 */
function touchedKeys(req: CommitRequest): string[] {
  const out: string[] = [];
  for (const m of req.mutations) {
    out.push(metaKey(m.kind, m.key));
    const parent = KINDS[m.kind].parent;
    if (parent) out.push(metaKey(parent.kind, m.key.slice(0, m.key.indexOf('/'))));
  }
  for (const p of req.preconditions ?? []) out.push(metaKey(p.kind, p.key));
  return out;
}

/**
 * Takes the next batch off the queue: writes touching disjoint resources, in queue order. A write
 * that overlaps one already taken (or one left for later) waits for a later batch, so writes to one
 * resource keep their order. Dry runs and large writes go alone.
 */
export function takeBatch(queue: Pending[]): Pending[] {
  const first = queue[0];
  if (!first) return [];
  if (first.req.dryRun || first.req.mutations.length > SOLO_MUTATIONS) return queue.splice(0, 1);
  const taken: Pending[] = [];
  const left: Pending[] = [];
  const busy = new Set<string>();
  let i = 0;
  for (; i < queue.length && taken.length < MAX_BATCH; i++) {
    const p = queue[i]!;
    // A solo write further back stops the batch there: what follows it waits behind it.
    if (p.req.dryRun || p.req.mutations.length > SOLO_MUTATIONS) break;
    const keys = touchedKeys(p.req);
    const free = keys.every((k) => !busy.has(k));
    for (const k of keys) busy.add(k);
    (free ? taken : left).push(p);
  }
  queue.splice(0, i, ...left);
  return taken;
}

/** What `req` changes from `base` to `next` (which holds it and other writes to disjoint resources), in dependency order. */
function changesOf(base: ModelSnapshot, next: ModelSnapshot, req: CommitRequest): AppliedChange[] {
  const keys = new Map<string, { kind: KindName; key: string }>();
  for (const m of req.mutations) {
    keys.set(metaKey(m.kind, m.key), { kind: m.kind, key: m.key });
    if (m.op !== 'delete') continue;
    // Children removed with their parent.
    for (const child of childKinds(m.kind)) {
      for (const k of (base[child] as ReadonlyMap<string, unknown>).keys()) if (k.startsWith(`${m.key}/`)) keys.set(metaKey(child, k), { kind: child, key: k });
    }
  }
  const out: AppliedChange[] = [];
  for (const { kind, key } of keys.values()) {
    const before = (base[kind] as ReadonlyMap<string, AnyResource>).get(key);
    const after = (next[kind] as ReadonlyMap<string, AnyResource>).get(key);
    if (before && !after) out.push({ kind, key, action: 'delete', before });
    else if (!before && after) out.push({ kind, key, action: 'create', after });
    else if (before && after && before !== after && !sameResource(kind, before, after)) out.push({ kind, key, action: 'update', before, after });
  }
  const order = (k: KindName) => KIND_ORDER.indexOf(k);
  return out.sort((a, b) => order(a.kind) - order(b.kind) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Throws PreconditionFailedError when `base` is not what the write expects. */
export function checkPreconditions(base: ModelSnapshot, req: CommitRequest): void {
  for (const p of req.preconditions ?? []) {
    const actual = base.meta.get(metaKey(p.kind, p.key))?.revision;
    const ok = p.revision === 'absent' ? actual === undefined : p.revision === 'exists' ? actual !== undefined : actual === p.revision;
    if (!ok) throw new PreconditionFailedError(p.kind, p.key, p.revision, actual);
  }
}

/** The batch's writes whose preconditions hold, applied together (their resources are disjoint). */
function applyAll(base: ModelSnapshot, batch: readonly Pending[], rejected: BatchPlan['rejected']): { snapshot: ModelSnapshot; steps: Planned[] } {
  const ok: Pending[] = [];
  for (const p of batch) {
    try {
      checkPreconditions(base, p.req);
      ok.push(p);
    } catch (e) {
      rejected.push({ pending: p, error: e });
    }
  }
  const snapshot = applyMutations(
    base,
    ok.flatMap((p) => p.req.mutations),
  );
  return { snapshot, steps: ok.map((pending) => ({ pending, changes: changesOf(base, snapshot, pending.req) })) };
}

/** Validation errors, or the exception a validator threw. */
function check(validate: Validate, candidate: ModelSnapshot): ModelError[] | { thrown: unknown } {
  try {
    return validate(candidate);
  } catch (e) {
    return { thrown: e };
  }
}

/**
 * Plans a batch against `base`. The domain rules run on the model with every write; a write that
 * an error blames alone (it refers to something missing that no other write of the batch touches)
 * is refused with those errors, as it would be alone, and the rules run again without it. Then the
 * extra validators (the translator's gate, the costly part) run once on the model with the rest;
 * when it passes all of them commit. Otherwise see `sortOut`.
 */
export function planBatch(base: ModelSnapshot, batch: readonly Pending[], v: Validators): BatchPlan {
  const rejected: BatchPlan['rejected'] = [];
  let all = applyAll(base, batch, rejected);
  if (!all.steps.some((s) => s.changes.length)) return { snapshot: base, accepted: all.steps, rejected };
  // One write: validated on the model already built (an apply's 18k mutations are not applied twice).
  if (all.steps.length === 1) {
    const step = all.steps[0]!;
    return settle(step, all.snapshot, v, rejected) ? { snapshot: all.snapshot, accepted: [step], rejected } : { snapshot: base, accepted: [], rejected };
  }
  for (;;) {
    const domain = check(v.domain, all.snapshot);
    if (Array.isArray(domain) && !domain.length) break;
    const own = Array.isArray(domain) ? blamedAlone(all.steps, domain) : undefined;
    if (!own) return sortOut(base, all.steps, domain, v, rejected);
    for (const [step, errors] of own) rejected.push({ pending: step.pending, error: new ModelValidationError(errors) });
    all = applyAll(
      base,
      all.steps.filter((s) => !own.has(s)).map((s) => s.pending),
      rejected,
    );
    if (!all.steps.some((s) => s.changes.length)) return { snapshot: base, accepted: all.steps, rejected };
  }
  const extra = check(v.extra, all.snapshot);
  if (Array.isArray(extra) && !extra.length) return { snapshot: all.snapshot, accepted: all.steps, rejected };
  return sortOut(base, all.steps, extra, v, rejected);
}

/**
 * For reference errors that name exactly one write of the batch (as the resource at fault or the
 * missing target) and whose target no other write touches: that write's errors. Such a write fails
 * alone exactly so, in any order. Undefined when any error is of another sort.
 */
function blamedAlone(steps: readonly Planned[], errors: readonly ModelError[]): Map<Planned, ModelError[]> | undefined {
  const owner = new Map<string, Planned>();
  for (const s of steps) for (const c of s.changes) owner.set(metaKey(c.kind, c.key), s);
  const out = new Map<Planned, ModelError[]>();
  for (const e of errors) {
    if (e.code !== 'reference' || !e.target) return undefined;
    const at = owner.get(metaKey(e.kind, e.key));
    const to = owner.get(metaKey(e.target.kind, e.target.key));
    const step = at ?? to;
    if (!step || (at && to && at !== to)) return undefined;
    out.set(step, [...(out.get(step) ?? []), e]);
  }
  return out;
}

/**
 * When the model with the batch is invalid in a way no single write owns: the writes the errors
 * name are set aside, the rest validated together again, and the set-aside writes then validated
 * one by one on top, each accepted or refused with its own errors exactly as if it came alone.
 * When an error names no write of the batch, every write is validated one by one.
 */
function sortOut(base: ModelSnapshot, steps: readonly Planned[], result: ModelError[] | { thrown: unknown }, v: Validators, rejected: BatchPlan['rejected']): BatchPlan {
  const named = Array.isArray(result) ? implicated(steps, result) : undefined;
  if (named && named.size < steps.length) {
    const clean = applyAll(
      base,
      steps.filter((s) => !named.has(s)).map((s) => s.pending),
      rejected,
    );
    const again = check((m) => full(v, m), clean.snapshot);
    if (Array.isArray(again) && !again.length) {
      const alone = oneByOne(
        clean.snapshot,
        steps.filter((s) => named.has(s)).map((s) => s.pending),
        v,
        rejected,
      );
      return { snapshot: alone.snapshot, accepted: [...clean.steps, ...alone.accepted], rejected };
    }
  }
  const alone = oneByOne(
    base,
    steps.map((s) => s.pending),
    v,
    rejected,
  );
  return { ...alone, rejected };
}

/** The writes the errors name; undefined when an error names none of them. */
function implicated(steps: readonly Planned[], errors: readonly ModelError[]): Set<Planned> | undefined {
  const owner = new Map<string, Planned>();
  for (const s of steps) for (const c of s.changes) owner.set(metaKey(c.kind, c.key), s);
  const out = new Set<Planned>();
  for (const e of errors) {
    const named = [owner.get(metaKey(e.kind, e.key)), e.target ? owner.get(metaKey(e.target.kind, e.target.key)) : undefined].filter((s) => s !== undefined);
    if (!named.length) return undefined;
    for (const s of named) out.add(s);
  }
  return out;
}

/** Each write validated alone on top of the ones accepted before it: sequential semantics. */
function oneByOne(base: ModelSnapshot, pendings: readonly Pending[], v: Validators, rejected: BatchPlan['rejected']): { snapshot: ModelSnapshot; accepted: Planned[] } {
  let snapshot = base;
  const accepted: Planned[] = [];
  for (const pending of pendings) {
    const one = applyAll(snapshot, [pending], rejected);
    const step = one.steps[0];
    if (!step) continue;
    if (!step.changes.length) {
      accepted.push(step);
      continue;
    }
    if (settle(step, one.snapshot, v, rejected)) {
      accepted.push(step);
      snapshot = one.snapshot;
    }
  }
  return { snapshot, accepted };
}

/** Validates the model holding one write (and those before it); false when the write was refused (it is then in `rejected`). */
function settle(step: Planned, candidate: ModelSnapshot, v: Validators, rejected: BatchPlan['rejected']): boolean {
  const result = check((m) => full(v, m), candidate);
  if (Array.isArray(result) && !result.length) return true;
  rejected.push({ pending: step.pending, error: Array.isArray(result) ? new ModelValidationError(result) : result.thrown });
  return false;
}
