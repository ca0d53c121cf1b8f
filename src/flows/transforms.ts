// Reshaping JSON values: pick, remove and rename fields by dot paths (into every element of an
// array on the way), then an optional JSONata map. Inputs are never modified: changed parts are copied.
import { compileExpression, type CompiledExpression, type StepRefs } from './expressions.ts';
import type { ReshapeSpec } from '../model/index.ts';

/** A set of dot paths as a tree: a leaf holds what to do with the field (true, or a new name). */
type PathTree<L> = Map<string, PathTree<L> | L>;

export interface CompiledReshape {
  readonly pick?: PathTree<true>;
  readonly remove?: PathTree<true>;
  readonly rename?: PathTree<string>;
  readonly map?: CompiledExpression;
  readonly refs: StepRefs;
}

export class ReshapeError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** Compiles the reshape part of a step or route transform; errors name the field (pick, rename[...], map). */
export function compileReshape(spec: ReshapeSpec): CompiledReshape {
  const out: { -readonly [K in keyof CompiledReshape]: CompiledReshape[K] } = { refs: new Set() };
  if (spec.pick)
    out.pick = tree(
      spec.pick.map((p) => [p, true as const]),
      'pick',
    );
  if (spec.remove)
    out.remove = tree(
      spec.remove.map((p) => [p, true as const]),
      'remove',
    );
  if (spec.rename) out.rename = tree(Object.entries(spec.rename), 'rename');
  if (spec.map !== undefined) {
    try {
      out.map = compileExpression(spec.map);
    } catch (e) {
      throw new ReshapeError('map', (e as Error).message);
    }
    out.refs = out.map.refs;
  }
  return out;
}

function tree<L>(entries: Array<[string, L]>, field: string): PathTree<L> {
  const root: PathTree<L> = new Map();
  for (const [path, leaf] of entries) {
    const parts = path.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const next = node.get(parts[i]!);
      if (next !== undefined && !(next instanceof Map)) throw new ReshapeError(`${field}`, `names both ${parts.slice(0, i + 1).join('.')} and a field inside it`);
      if (next === undefined) node.set(parts[i]!, new Map());
      node = node.get(parts[i]!) as PathTree<L>;
    }
    const last = parts[parts.length - 1]!;
    if (node.get(last) instanceof Map) throw new ReshapeError(`${field}`, `names both ${path} and a field inside it`);
    node.set(last, leaf);
  }
  return root;
}

/** Applies pick, remove, rename, then map (which may be asynchronous). */
export function reshape(r: CompiledReshape, value: unknown, bindings: Record<string, unknown>): unknown {
  let v = value;
  if (r.pick) v = pick(v, r.pick);
  if (r.remove) v = remove(v, r.remove);
  if (r.rename) v = rename(v, r.rename);
  return r.map ? r.map.evaluate(v, bindings) : v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Sets a field as an own property, even one named __proto__ (plain assignment would set the prototype). */
function put(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function pick(v: unknown, t: PathTree<true>): unknown {
  if (Array.isArray(v)) return v.map((e) => pick(e, t));
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, sub] of t) {
    if (!Object.hasOwn(v, k)) continue;
    put(out, k, sub === true ? v[k] : pick(v[k], sub));
  }
  return out;
}

function remove(v: unknown, t: PathTree<true>): unknown {
  if (Array.isArray(v)) return v.map((e) => remove(e, t));
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const sub = t.get(k);
    if (sub === true) continue;
    put(out, k, sub === undefined ? v[k] : remove(v[k], sub));
  }
  return out;
}

function rename(v: unknown, t: PathTree<string>): unknown {
  if (Array.isArray(v)) return v.map((e) => rename(e, t));
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const sub = t.get(k);
    if (typeof sub === 'string') put(out, sub, v[k]);
    else if (sub === undefined) {
      // A field already holding a rename's target name loses to the renamed one.
      if (!Object.hasOwn(out, k)) put(out, k, v[k]);
    } else put(out, k, rename(v[k], sub));
  }
  return out;
}
