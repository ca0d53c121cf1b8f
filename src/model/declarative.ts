// The declarative file: the whole model (or one tag's slice of it) as one YAML/JSON document.
// Parse → model, model → document, and the plan that takes the store from one to the other.
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import { parseBlockYaml } from './block-yaml.ts';
import { canonicalResource } from './canonical.ts';
import { KINDS, KIND_ORDER, childKinds, emptySnapshot, keyOf, sortedValues, type AnyResource, type KindName, type ModelSnapshot, type Mutation } from './model.ts';
import { joinField, resourceSchemaErrors, type FieldError } from './validate.ts';
import type { ApiKeyInput } from './schemas.ts';

export const DOCUMENT_VERSION = 'v1';

/** Top-level document sections, in the order they are written. */
/** Kinds written at the top of a document, in this order (the others nest in their parents). */
export const TOP_LEVEL_KINDS: readonly KindName[] = ['gatewayGroups', 'certificates', 'services', 'jwtIssuers', 'products', 'plans', 'partners'];
const TOP_LEVEL = TOP_LEVEL_KINDS;

/** Children are written inside their parent entry under these fields. */
export const CHILD_FIELD: Partial<Record<KindName, string>> = {
  routes: 'routes',
  subscriptions: 'subscriptions',
  apiKeys: 'apiKeys',
  mtlsIdentities: 'mtlsIdentities',
};

/** Turns an API key entry from a file into its stored form (hashing an imported plaintext key). */
/** Hashes a whole key on arrival; `secret` is the key itself, kept (sealed) so Envoy can check it natively. */
export type ApiKeyHasher = (key: string) => { prefix: string; hash: string; secret?: string };

export interface ParsedDocument {
  model: ModelSnapshot;
  errors: FieldError[];
}

export class DocumentSyntaxError extends Error {}

/** Parses YAML or JSON text into a plain value, with the line of any syntax error. */
export function parseDocumentText(text: string): unknown {
  // Plain block style (large generated documents) is read directly; everything else, and every error, by the YAML parser.
  const plain = parseBlockYaml(text);
  if (plain !== undefined) return plain;
  let doc: YAML.Document.Parsed;
  try {
    doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  } catch (e) {
    // The parser recurses per nesting level: a hostile document can exhaust the stack.
    throw new DocumentSyntaxError(e instanceof RangeError ? 'the document nests too deeply' : (e as Error).message);
  }
  if (doc.errors.length) throw new DocumentSyntaxError(doc.errors.map((e) => e.message).join('; '));
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // An alias bomb (aliases of aliases expanding to millions of nodes) is refused here, as is
    // a value nested deeper than the stack allows.
    throw new DocumentSyntaxError(e instanceof RangeError ? 'the document nests too deeply' : `the document expands too much: ${(e as Error).message}`);
  }
}

/**
 * Validates a document and builds the model it describes. Existing resources are consulted only
 * for write-only fields a file may omit (certificate keys, API key hashes), which are kept.
 */
export function parseModelDocument(doc: unknown, opts: { hashApiKey: ApiKeyHasher; existing?: ModelSnapshot }): ParsedDocument {
  const errors: FieldError[] = [];
  const out: Record<string, Map<string, AnyResource>> = {};
  for (const k of KIND_ORDER) out[k] = new Map();
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return { model: emptySnapshot(), errors: [{ field: '(document)', message: 'must be a mapping with sections such as services and products' }] };
  }
  const d = doc as Record<string, unknown>;
  if (d.portico !== DOCUMENT_VERSION) errors.push({ field: 'portico', message: `must be '${DOCUMENT_VERSION}' (the document format version)` });
  for (const field of Object.keys(d)) {
    if (field !== 'portico' && !(TOP_LEVEL as readonly string[]).includes(field)) {
      errors.push({ field: joinField('', field), message: `is not a known section (expected one of ${TOP_LEVEL.join(', ')})` });
    }
  }

  const add = (kind: KindName, entry: unknown, field: string, parent?: string) => {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      errors.push({ field, message: 'must be a mapping' });
      return;
    }
    const own: Record<string, unknown> = { ...(entry as Record<string, unknown>) };
    const children: Array<[KindName, unknown]> = [];
    for (const child of childKinds(kind)) {
      const cf = CHILD_FIELD[child]!;
      if (cf in own) {
        children.push([child, own[cf]]);
        delete own[cf];
      }
    }
    const schemaErrors = resourceSchemaErrors(kind, own, field);
    if (schemaErrors.length) {
      errors.push(...schemaErrors);
      return;
    }
    const info = KINDS[kind];
    let resource = (info.parent ? { [info.parent.field]: parent, ...own } : own) as unknown as AnyResource;
    if (kind === 'apiKeys') {
      const r = storedApiKey(resource as unknown as ApiKeyInput & { partner: string }, field, opts, errors);
      if (!r) return;
      resource = r;
    }
    if (kind === 'certificates') resource = keepPrivateKey(resource, opts.existing);
    const key = keyOf(kind, resource);
    if (out[kind]!.has(key)) {
      errors.push({ field: `${field}.${info.keyField}`, message: `${info.singular} '${key}' appears twice in the document` });
      return;
    }
    out[kind]!.set(key, resource);
    for (const [child, list] of children) {
      const cf = `${field}.${CHILD_FIELD[child]}`;
      if (!Array.isArray(list)) {
        errors.push({ field: cf, message: 'must be a list' });
        continue;
      }
      list.forEach((c, i) => add(child, c, `${cf}[${i}]`, String((own as { name?: string }).name)));
    }
  };

  for (const kind of TOP_LEVEL) {
    const list = d[kind];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      errors.push({ field: kind, message: 'must be a list' });
      continue;
    }
    list.forEach((entry, i) => add(kind, entry, `${kind}[${i}]`));
  }
  const model = { ...emptySnapshot(), ...out } as ModelSnapshot;
  return { model, errors };
}

function storedApiKey(r: ApiKeyInput & { partner: string }, field: string, opts: { hashApiKey: ApiKeyHasher; existing?: ModelSnapshot }, errors: FieldError[]): AnyResource | undefined {
  const { key, prefix, hash, ...rest } = r;
  if (key !== undefined) {
    if (prefix !== undefined || hash !== undefined) {
      errors.push({ field: `${field}.key`, message: 'give either key or prefix and hash, not both' });
      return undefined;
    }
    return { ...rest, ...opts.hashApiKey(key) } as AnyResource;
  }
  const existing = opts.existing?.apiKeys.get(`${r.partner}/${r.name}`);
  // A re-applied export carries no secrets: a key of the same hash keeps its sealed copy.
  const sealed = (h: string) => (existing?.hash === h && existing.secret !== undefined ? { secret: existing.secret } : {});
  if (prefix !== undefined && hash !== undefined) return { ...rest, prefix, hash, ...sealed(hash) } as AnyResource;
  // An export without hashes (a viewer's) names the key by prefix: the stored key, unchanged.
  if (prefix !== undefined && hash === undefined && existing?.prefix === prefix) return { ...rest, prefix, hash: existing.hash, ...sealed(existing.hash) } as AnyResource;
  if (prefix !== undefined || hash !== undefined) {
    errors.push({ field: `${field}.${prefix === undefined ? 'prefix' : 'hash'}`, message: `is required with ${prefix === undefined ? 'hash' : 'prefix'}` });
    return undefined;
  }
  if (existing) return { ...rest, prefix: existing.prefix, hash: existing.hash, ...sealed(existing.hash) } as AnyResource;
  errors.push({ field, message: 'a new API key needs key (an existing secret to import) or prefix and hash (from an export); create keys through the API to have one generated' });
  return undefined;
}

function keepPrivateKey(resource: AnyResource, existing: ModelSnapshot | undefined): AnyResource {
  const c = resource as { name: string; privateKey?: string };
  if (c.privateKey !== undefined) return resource;
  const old = existing?.certificates.get(c.name);
  return old?.privateKey !== undefined ? ({ ...c, privateKey: old.privateKey } as AnyResource) : resource;
}

// ── export ────────────────────────────────────────────────────────────────────
/** Whether a top-level resource is in a tag's slice (children follow their parent). */
function inSlice(resource: AnyResource, tag: string | undefined): boolean {
  return tag === undefined || ((resource as { tags?: string[] }).tags ?? []).includes(tag);
}

/** The model as a document: sections and entries in a fixed order, secrets left out. */
/**
 * The model (or a tag's slice) as a document. `keyHashes: false` leaves out API key hashes (what
 * a viewer may see); such a document still applies, keeping the stored hashes.
 */
export function modelToDocument(model: ModelSnapshot, opts: { tag?: string; keyHashes?: boolean } = {}): { portico: string } & Record<string, unknown> {
  const doc: { portico: string } & Record<string, unknown> = { portico: DOCUMENT_VERSION };
  for (const kind of TOP_LEVEL) {
    const entries = sortedValues(model, kind)
      .filter((r) => inSlice(r, opts.tag))
      .map((r) => {
        const entry = exportable(kind, r, opts);
        const parentKey = keyOf(kind, r);
        for (const child of childKinds(kind)) {
          const list = sortedValues(model, child)
            .filter((c) => keyOf(child, c).startsWith(`${parentKey}/`))
            .map((c) => {
              const e = exportable(child, c, opts);
              delete e[KINDS[child].parent!.field];
              return e;
            });
          if (list.length) entry[CHILD_FIELD[child]!] = list;
        }
        return entry;
      });
    if (entries.length) doc[kind] = entries;
  }
  return doc;
}

function exportable(kind: KindName, r: AnyResource, opts: { keyHashes?: boolean }): Record<string, unknown> {
  const e = { ...(canonicalResource(kind, r) as Record<string, unknown>) };
  if (kind === 'certificates') delete e.privateKey;
  if (kind === 'apiKeys' && opts.keyHashes === false) delete e.hash;
  if (kind === 'apiKeys') delete e.secret;
  return e;
}

export function documentToYaml(doc: Record<string, unknown>): string {
  return YAML.stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false, sortMapEntries: false });
}

// ── apply plan ────────────────────────────────────────────────────────────────
/**
 * The mutations that make the document's resources exist as written (within a tag's slice, if
 * given). Every top-level resource in a tagged document must carry the tag. What the document leaves
 * out is deleted only with `prune` (then `current` becomes exactly `desired`); without it, those
 * resources are kept and listed in `leftOut`, so a partial file never silently removes the rest.
 */
export function planApply(
  current: ModelSnapshot,
  desired: ModelSnapshot,
  opts: { tag?: string; prune?: boolean } = {},
): { mutations: Mutation[]; errors: FieldError[]; leftOut: Array<{ kind: KindName; key: string }> } {
  const errors: FieldError[] = [];
  const mutations: Mutation[] = [];
  const deletions: Mutation[] = [];
  if (opts.tag) {
    for (const kind of TOP_LEVEL) {
      for (const r of sortedValues(desired, kind)) {
        if (!inSlice(r, opts.tag)) {
          errors.push({ field: `${kind}`, message: `${KINDS[kind].singular} '${keyOf(kind, r)}' does not carry tag '${opts.tag}', so it is outside this apply` });
        }
        const existing = (current[kind] as ReadonlyMap<string, AnyResource>).get(keyOf(kind, r));
        if (existing && !inSlice(existing, opts.tag)) {
          errors.push({ field: `${kind}`, message: `${KINDS[kind].singular} '${keyOf(kind, r)}' exists without tag '${opts.tag}'; it belongs to another slice` });
        }
      }
    }
  }
  // Top-level resources in scope, and the parents whose children the document owns.
  const scopeParents = new Set<string>();
  for (const kind of TOP_LEVEL) {
    for (const [key, r] of current[kind] as ReadonlyMap<string, AnyResource>) {
      if (inSlice(r, opts.tag)) {
        scopeParents.add(`${kind}/${key}`);
        if (!(desired[kind] as ReadonlyMap<string, AnyResource>).has(key)) deletions.push({ kind, op: 'delete', key });
      }
    }
    for (const [key, r] of desired[kind] as ReadonlyMap<string, AnyResource>) {
      scopeParents.add(`${kind}/${key}`);
      mutations.push({ kind, op: 'put', key, resource: r });
    }
  }
  for (const kind of KIND_ORDER) {
    const parent = KINDS[kind].parent;
    if (!parent) continue;
    for (const key of (current[kind] as ReadonlyMap<string, AnyResource>).keys()) {
      const parentKey = key.slice(0, key.indexOf('/'));
      if (scopeParents.has(`${parent.kind}/${parentKey}`) && !(desired[kind] as ReadonlyMap<string, AnyResource>).has(key)) {
        deletions.push({ kind, op: 'delete', key });
      }
    }
    for (const [key, r] of desired[kind] as ReadonlyMap<string, AnyResource>) mutations.push({ kind, op: 'put', key, resource: r });
  }
  if (opts.prune) return { mutations: [...deletions, ...mutations], errors, leftOut: [] };
  return { mutations, errors, leftOut: deletions.map((d) => ({ kind: d.kind, key: d.key })) };
}

// ── diff rendering ────────────────────────────────────────────────────────────
export interface FieldChange {
  field: string;
  before?: unknown;
  after?: unknown;
}

/** Field-level differences between two versions of a resource (for dry runs and reviews). */
export function fieldChanges(kind: KindName, before: AnyResource, after: AnyResource): FieldChange[] {
  const out: FieldChange[] = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const isObj = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x);
    if (isObj(a) && isObj(b)) {
      const ao = a as Record<string, unknown>;
      const bo = b as Record<string, unknown>;
      for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])]) walk(ao[k], bo[k], path ? `${path}.${k}` : k);
      return;
    }
    out.push({ field: path, ...(a !== undefined ? { before: a } : {}), ...(b !== undefined ? { after: b } : {}) });
  };
  walk(redactForDiff(kind, canonicalResource(kind, before)), redactForDiff(kind, canonicalResource(kind, after)), '');
  return out;
}

function redactForDiff(kind: KindName, v: unknown): unknown {
  const o = { ...(v as Record<string, unknown>) };
  if (kind === 'certificates' && o.privateKey !== undefined) o.privateKey = `[sealed ${fingerprint(String(o.privateKey))}]`;
  if (kind === 'apiKeys') {
    delete o.hash;
    delete o.secret;
  }
  return o;
}

/** A short digest so a dry run shows that a private key changed without showing the key. */
function fingerprint(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

// ── apply results (what the admin API answers an apply or dry run with, and `portico diff` prints) ──

export interface ApplyChange {
  action: 'create' | 'update' | 'delete';
  kind: KindName;
  key: string;
  fields?: FieldChange[];
}

export interface ApplyResult {
  dryRun: boolean;
  /** Whether what the document leaves out was deleted (or, in a dry run, would be). */
  prune: boolean;
  changed: boolean;
  revision: number;
  summary: { create: number; update: number; delete: number };
  changes: ApplyChange[];
  /** Resources the document leaves out, kept because the apply did not prune: a prune would delete them. */
  leftOut: Array<{ kind: KindName; key: string }>;
}

/** Human-readable diff lines (used by `portico diff` and `apply`); deletions stand out, and kept resources are named. */
export function renderChanges(result: ApplyResult): string {
  const lines: string[] = [];
  for (const c of result.changes) {
    const mark = c.action === 'create' ? '+' : c.action === 'delete' ? '-' : '~';
    lines.push(`${mark} ${c.action === 'delete' ? 'DELETE ' : ''}${KINDS[c.kind].singular} ${c.key}`);
    for (const f of c.fields ?? []) {
      lines.push(`    ${f.field}: ${f.before === undefined ? '(unset)' : JSON.stringify(f.before)} → ${f.after === undefined ? '(unset)' : JSON.stringify(f.after)}`);
    }
  }
  const s = result.summary;
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  if (s.delete > 0) {
    lines.push('', `${result.dryRun ? 'WOULD DELETE' : 'DELETED'} ${count(s.delete, 'resource')} the file leaves out (--prune).`);
  }
  if (result.leftOut.length > 0 && result.dryRun) {
    lines.push('', `Not in the file, so kept (only --prune would delete ${result.leftOut.length === 1 ? 'it' : 'them'}):`);
    for (const r of result.leftOut) lines.push(`  - ${KINDS[r.kind].singular} ${r.key}`);
  } else if (result.leftOut.length > 0) {
    lines.push('', `Kept ${count(result.leftOut.length, 'resource')} the file leaves out (\`portico diff\` lists them; --prune deletes them).`);
  }
  lines.push(`${result.dryRun ? 'would change' : 'changed'}: ${s.create} created, ${s.update} updated, ${s.delete} deleted${result.leftOut.length ? `, ${result.leftOut.length} kept` : ''}`);
  return lines.join('\n');
}
