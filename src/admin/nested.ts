// A parent's write body may carry its children as `export` writes them (a product with its routes,
// a partner with its subscriptions, API keys and mTLS identities): parsed exactly as a declarative
// document parses them, and written with the parent in one all-or-nothing commit.
import { CHILD_FIELD, childKinds, DOCUMENT_VERSION, KINDS, parseModelDocument, type AnyResource, type FieldError, type KindName, type ModelSnapshot, type Mutation } from '../model/index.ts';
import { ModelValidationError, type ModelStore } from '../store/index.ts';

/** Fields the API returns but a client never sets; a child echoed from a GET may carry them. */
const OUTPUT_ONLY = ['revision', 'createdAt', 'updatedAt'];

export interface Split {
  own: Record<string, unknown>;
  /** The child lists the body carried, by child kind (only the fields present). */
  children: Map<KindName, unknown>;
}

/** Separates the child lists (routes, subscriptions, …) from the parent's own fields. */
export function splitChildren(kind: KindName, body: Record<string, unknown>): Split {
  const own = { ...body };
  const children = new Map<KindName, unknown>();
  for (const child of childKinds(kind)) {
    const field = CHILD_FIELD[child]!;
    if (field in own) {
      children.set(child, own[field]);
      delete own[field];
    }
  }
  return { own, children };
}

export interface NestedWrite {
  mutations: Mutation[];
  errors: FieldError[];
  /** Where a child resource sits in the body (`routes[1]`), to name whole-model errors about it. */
  fieldOf: Map<string, string>;
}

/**
 * The child mutations that make the parent's children of each given kind exactly the listed ones
 * (creating, replacing, and deleting those left out). Field errors are named from the body
 * (`routes[1].match.path`), as for any other write.
 */
export function nestedMutations(kind: KindName, parentKey: string, parent: AnyResource, children: Map<KindName, unknown>, store: ModelStore, model: ModelSnapshot): NestedWrite {
  const entry: Record<string, unknown> = { ...(parent as unknown as Record<string, unknown>) };
  for (const [child, list] of children) {
    entry[CHILD_FIELD[child]!] = Array.isArray(list) ? list.map((c) => withoutOutputOnly(c, KINDS[child].parent!.field, parentKey)) : list;
  }
  const hasher = store.apiKeyHasher();
  const parsed = parseModelDocument({ portico: DOCUMENT_VERSION, [kind]: [entry] }, { existing: model, hashApiKey: (key) => ({ prefix: key.split('_')[1]!, hash: hasher.hash(key), secret: key }) });
  const section = `${kind}[0]`;
  const errors = parsed.errors.map((e) => ({ ...e, field: e.field === section ? '(body)' : e.field.replace(`${section}.`, '') }));
  if (errors.length) return { mutations: [], errors, fieldOf: new Map() };
  const fieldOf = new Map<string, string>();
  for (const [child, list] of children) {
    const keyField = KINDS[child].keyField;
    (list as Array<Record<string, unknown>>).forEach((c, i) => fieldOf.set(`${child}|${parentKey}/${String(c[keyField])}`, `${CHILD_FIELD[child]}[${i}]`));
  }
  const mutations: Mutation[] = [];
  for (const child of children.keys()) {
    const wanted = parsed.model[child] as ReadonlyMap<string, AnyResource>;
    for (const [key, resource] of wanted) mutations.push({ kind: child, op: 'put', key, resource });
    for (const key of (model[child] as ReadonlyMap<string, AnyResource>).keys()) {
      if (key.startsWith(`${parentKey}/`) && !wanted.has(key)) mutations.push({ kind: child, op: 'delete', key });
    }
  }
  return { mutations, errors: [], fieldOf };
}

/** Whole-model errors about nested children, named by where the child sits in the body. */
export function nameNestedErrors(err: ModelValidationError, fieldOf: ReadonlyMap<string, string>): ModelValidationError {
  return new ModelValidationError(
    err.errors.map((e) => {
      const at = fieldOf.get(`${e.kind}|${e.key}`);
      return at ? { ...e, field: `${at}.${e.field}` } : e;
    }),
  );
}

/** A child entry without output-only fields, and without its parent field when it names this parent. */
function withoutOutputOnly(c: unknown, parentField: string, parentKey: string): unknown {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return c;
  const out = { ...(c as Record<string, unknown>) };
  for (const f of OUTPUT_ONLY) delete out[f];
  if (out[parentField] === parentKey) delete out[parentField];
  return out;
}
