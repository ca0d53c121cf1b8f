// Applies a declarative document to the store: parse against the current model, plan the
// mutations (whole model or one tag's slice), and commit them as one write (or dry-run them).
import { parseModelDocument, planApply, type FieldError, type KindName } from '../model/index.ts';
import type { CommitResult, ModelStore } from './store.ts';

/** The document itself is invalid (schema, duplicates, tag slice): nothing was written. */
export class DocumentError extends Error {
  constructor(readonly errors: FieldError[]) {
    super(`the document is invalid: ${errors[0]!.field} ${errors[0]!.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`);
  }
}

export interface ApplyOptions {
  actor: string;
  summary: string;
  tag?: string;
  dryRun?: boolean;
  /** Delete what the document leaves out (in the tag's slice); without it, those resources stay. */
  prune?: boolean;
  /** Keep API keys the document does not list (their secrets cannot be in a file), even when pruning. */
  keepUnlistedApiKeys?: boolean;
}

export interface ApplyDocumentResult extends CommitResult {
  /** What a prune would delete, kept because the apply did not prune (empty when it did). */
  leftOut: Array<{ kind: KindName; key: string }>;
}

export async function applyDocument(store: ModelStore, document: unknown, opts: ApplyOptions): Promise<ApplyDocumentResult> {
  const current = store.current();
  const hasher = store.apiKeyHasher();
  const parsed = parseModelDocument(document, {
    existing: current,
    hashApiKey: (key) => ({ prefix: key.split('_')[1]!, hash: hasher.hash(key), secret: key }),
  });
  if (parsed.errors.length) throw new DocumentError(parsed.errors);
  let desired = parsed.model;
  if (opts.keepUnlistedApiKeys) {
    const kept = [...current.apiKeys].filter(([, k]) => desired.partners.has(k.partner));
    desired = { ...desired, apiKeys: new Map([...kept, ...desired.apiKeys]) };
  }
  const plan = planApply(current, desired, { ...(opts.tag ? { tag: opts.tag } : {}), prune: opts.prune === true });
  if (plan.errors.length) throw new DocumentError(plan.errors);
  const result = await store.commit({ mutations: plan.mutations, actor: opts.actor, summary: opts.summary, ...(opts.dryRun ? { dryRun: true } : {}) });
  return { ...result, leftOut: plan.leftOut };
}
