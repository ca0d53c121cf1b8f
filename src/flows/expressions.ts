// JSONata expressions and {expression} templates, compiled once per model snapshot: each knows
// which earlier steps it reads, and plain paths (steps.user.body) are evaluated without JSONata.
import jsonata from 'jsonata';

/**
 * Guardrails on every evaluation, against an author's mistake (a runaway recursion, a huge range):
 * depth and sequence length are exact; the time limit is wall-clock from the evaluation's start,
 * which includes waiting behind other requests' evaluations on a busy runtime — so it is set far
 * above any sane expression's cost (a few µs) and only catches runaways (JSONata's tail calls
 * loop without deepening the stack).
 */
const GUARDRAILS = { stack: 200, timeout: 1000, sequence: 100_000 };

/** Names of the steps an expression reads, or 'all' when it reads `steps` as a whole. */
export type StepRefs = ReadonlySet<string> | 'all';

export interface CompiledExpression {
  readonly source: string;
  readonly refs: StepRefs;
  /** Synchronous for plain paths, a promise otherwise. */
  evaluate(input: unknown, bindings?: Record<string, unknown>): unknown;
}

export class ExpressionError extends Error {
  constructor(
    message: string,
    /** Character position in the source, when JSONata gave one. */
    readonly position?: number,
  ) {
    super(message);
  }
}

interface JsonataNode {
  type?: string;
  value?: unknown;
  steps?: JsonataNode[];
  procedure?: JsonataNode;
  [k: string]: unknown;
}

const cache = new Map<string, CompiledExpression | ExpressionError>();
const CACHE_LIMIT = 20_000;

/**
 * Compiles one JSONata expression; throws ExpressionError with JSONata's message when it does not
 * parse. Compiled expressions are immutable and shared by source, so a new model snapshot only
 * parses the expressions it has not seen before.
 */
export function compileExpression(source: string): CompiledExpression {
  let hit = cache.get(source);
  if (!hit) {
    try {
      hit = compileFresh(source);
    } catch (e) {
      hit = e instanceof ExpressionError ? e : new ExpressionError(String(e));
    }
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(source, hit);
  }
  if (hit instanceof ExpressionError) throw hit;
  return hit;
}

function compileFresh(source: string): CompiledExpression {
  let expr: ReturnType<typeof jsonata>;
  try {
    expr = jsonata(source, GUARDRAILS as never);
  } catch (e) {
    const err = e as { message?: string; position?: number };
    throw new ExpressionError(`is not a valid JSONata expression: ${err.message ?? String(e)}`, err.position);
  }
  const ast = expr.ast() as JsonataNode;
  const banned = findFunction(ast, 'eval');
  if (banned) throw new ExpressionError('may not call $eval (it would run expressions built from request data)');
  const refs = stepRefs(ast);
  const fast = shortcut(ast);
  const slow = (input: unknown, bindings?: Record<string, unknown>) => expr.evaluate(input, bindings).catch(rethrow);
  if (!fast) return { source, refs, evaluate: slow };
  return {
    source,
    refs,
    evaluate(input, bindings) {
      const v = fast(input);
      return v === HAND_OVER ? slow(input, bindings) : v;
    },
  };
}

function rethrow(e: unknown): never {
  const err = e as { message?: string; position?: number; code?: string };
  throw new ExpressionError(err.message ?? String(e), err.position);
}

/** Returned by a shortcut when JSONata's own rules would differ from the plain reading. */
const HAND_OVER = Symbol('hand over to JSONata');
type Shortcut = (input: unknown) => unknown;

/**
 * A synchronous evaluator for the shapes most flows are made of — a path of plain field names
 * (steps.user.body), a literal, and object constructors of those — giving exactly what JSONata
 * gives; anything else (and any array met inside a path) is JSONata's job.
 */
function shortcut(ast: JsonataNode): Shortcut | undefined {
  if (hasOnly(ast, ['type', 'value', 'position']) && (ast.type === 'string' || ast.type === 'number' || ast.type === 'value')) {
    const v = ast.value;
    return () => v;
  }
  if (ast.type === 'path') {
    const path = plainPath(ast);
    return path && ((input) => walk(input, path));
  }
  if (ast.type === 'unary' && ast.value === '{' && hasOnly(ast, ['type', 'value', 'position', 'lhs'])) {
    const pairs = ast.lhs as Array<[JsonataNode, JsonataNode]>;
    const keys = new Set<string>();
    const fields: Array<[string, Shortcut]> = [];
    for (const [k, v] of pairs) {
      if (k.type !== 'string' || typeof k.value !== 'string' || keys.has(k.value) || k.value === '__proto__') return undefined;
      keys.add(k.value);
      const f = shortcut(v);
      if (!f) return undefined;
      fields.push([k.value, f]);
    }
    return (input) => {
      const out: Record<string, unknown> = {};
      for (const [k, f] of fields) {
        const v = f(input);
        if (v === HAND_OVER) return HAND_OVER;
        // JSONata leaves out fields whose value is undefined.
        if (v !== undefined) out[k] = v;
      }
      return out;
    };
  }
  return undefined;
}

function hasOnly(n: JsonataNode, keys: readonly string[]): boolean {
  return Object.keys(n).every((k) => keys.includes(k));
}

/**
 * A path of plain field names (a.b.c), as JSONata evaluates it when no array is met before the
 * last field: missing fields and non-objects give undefined, the last value is returned as is.
 */
function walk(input: unknown, path: readonly string[]): unknown {
  let v = input;
  for (let i = 0; i < path.length; i++) {
    if (v === null || typeof v !== 'object') return undefined;
    if (Array.isArray(v)) return HAND_OVER;
    v = (v as Record<string, unknown>)[path[i]!];
    if (v === undefined) return undefined;
  }
  return v;
}

function plainPath(ast: JsonataNode): string[] | undefined {
  if (ast.type !== 'path' || !ast.steps || !hasOnly(ast, ['type', 'steps', 'position'])) return undefined;
  const names: string[] = [];
  for (const s of ast.steps) {
    // Only bare names: anything else (predicates, stages, grouping, keepArray) is JSONata's job.
    if (s.type !== 'name' || typeof s.value !== 'string' || !hasOnly(s, ['type', 'value', 'position'])) return undefined;
    names.push(s.value);
  }
  return names;
}

/**
 * The steps an expression reads: steps.<name> at the head of a path (also after $ or $$, and
 * $steps.<name> where $steps is bound), or 'all' when `steps` is used as a whole.
 */
export function stepRefs(ast: JsonataNode): StepRefs {
  const names = new Set<string>();
  let all = false;
  const extras = (s: JsonataNode) => Object.entries(s).filter(([k]) => k !== 'type' && k !== 'value' && k !== 'position');
  const visit = (node: unknown): void => {
    if (all || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach(visit);
    const n = node as JsonataNode;
    if (n.type === 'path' && n.steps) {
      let i = 0;
      if (n.steps[0]?.type === 'variable' && (n.steps[0].value === '' || n.steps[0].value === '$')) i = 1;
      const head = n.steps[i];
      const isSteps = head && ((head.type === 'name' && i <= 1) || (head.type === 'variable' && i === 0)) && head.value === 'steps';
      if (isSteps) {
        const next = n.steps[i + 1];
        if (extras(head).length === 0 && next?.type === 'name' && typeof next.value === 'string') names.add(next.value);
        else all = true;
      }
      // Field names inside a path are not references; their predicates and stages may hold some.
      for (const s of n.steps) {
        if (s.type === 'name' || (s === head && isSteps)) extras(s).forEach(([, v]) => visit(v));
        else visit(s);
      }
      for (const [k, v] of Object.entries(n)) if (k !== 'steps') visit(v);
      return;
    }
    if ((n.type === 'name' || n.type === 'variable') && n.value === 'steps') all = true;
    for (const v of Object.values(n)) visit(v);
  };
  visit(ast);
  return all ? 'all' : names;
}

function findFunction(node: unknown, name: string): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some((n) => findFunction(n, name));
  const n = node as JsonataNode;
  if ((n.type === 'function' || n.type === 'partial') && n.procedure?.type === 'variable' && n.procedure.value === name) return true;
  if (n.type === 'variable' && n.value === name) return true;
  return Object.values(n).some((v) => findFunction(v, name));
}

export function mergeRefs(...all: StepRefs[]): StepRefs {
  const out = new Set<string>();
  for (const r of all) {
    if (r === 'all') return 'all';
    for (const n of r) out.add(n);
  }
  return out;
}

// ── templates ─────────────────────────────────────────────────────────────────

export interface CompiledTemplate {
  readonly source: string;
  readonly refs: StepRefs;
  /** True when the template is literal text only. */
  readonly constant: boolean;
  /** The parts, literal text and expressions alternating (literal first, possibly empty). */
  readonly literals: readonly string[];
  readonly expressions: readonly CompiledExpression[];
}

/**
 * Splits `text {expr} text` into literal parts and compiled expressions. `{{` and `}}` stand for
 * literal braces; inside an expression, braces nest and quoted strings are skipped, so object
 * constructors and string literals with braces work.
 */
export function compileTemplate(source: string): CompiledTemplate {
  const literals: string[] = [];
  const expressions: CompiledExpression[] = [];
  let text = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c === '{' && source[i + 1] === '{') {
      text += '{';
      i += 2;
    } else if (c === '}' && source[i + 1] === '}') {
      text += '}';
      i += 2;
    } else if (c === '}') {
      throw new ExpressionError(`has an unmatched } at ${i}; write }} for a literal brace`, i);
    } else if (c === '{') {
      const end = closingBrace(source, i);
      const inner = source.slice(i + 1, end).trim();
      if (!inner) throw new ExpressionError(`has an empty {} at ${i}; write {{ and }} for literal braces`, i);
      try {
        expressions.push(compileExpression(inner));
      } catch (e) {
        throw new ExpressionError(`part {${inner}} ${(e as Error).message}`, i);
      }
      literals.push(text);
      text = '';
      i = end + 1;
    } else {
      text += c;
      i++;
    }
  }
  literals.push(text);
  return { source, refs: mergeRefs(...expressions.map((e) => e.refs)), constant: expressions.length === 0, literals, expressions };
}

function closingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"' || c === "'" || c === '`') {
      // Skip a quoted string or a backquoted name; backslash escapes the next character.
      for (i++; i < s.length && s[i] !== c; i++) if (s[i] === '\\' && c !== '`') i++;
      continue;
    }
    if (c === '/' && s[i + 1] === '*') {
      const end = s.indexOf('*/', i + 2);
      if (end < 0) break;
      i = end + 1;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  throw new ExpressionError(`has an unclosed { at ${open}; write {{ for a literal brace`, open);
}

/**
 * Renders a template: each expression's value goes through `encode` (URL-encoding for paths,
 * identity for headers). Returns undefined when the template is one expression whose value is
 * undefined, so an optional query parameter or header can be left out.
 */
export function renderTemplate(t: CompiledTemplate, input: unknown, encode: (value: string) => string): string | undefined | Promise<string | undefined> {
  if (t.constant) return t.literals[0]!;
  const values = t.expressions.map((e) => e.evaluate(input));
  if (values.some((v) => v instanceof Promise)) return Promise.all(values).then((vs) => join(t, vs, encode));
  return join(t, values, encode);
}

function join(t: CompiledTemplate, values: unknown[], encode: (value: string) => string): string | undefined {
  if (values.length === 1 && values[0] === undefined && t.literals[0] === '' && t.literals[1] === '') return undefined;
  let out = t.literals[0]!;
  for (let i = 0; i < values.length; i++) out += encode(stringify(values[i])) + t.literals[i + 1]!;
  return out;
}

/** A value as template text: strings as they are, undefined as nothing, everything else as JSON. */
export function stringify(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === undefined) return '';
  return JSON.stringify(v) ?? '';
}
