// The flow designer's data, as pure functions over a flow as the admin API stores it: where each
// step sits (its path in the document, and the field path the server names in errors), adding,
// removing and moving steps, new steps of each kind, and the text forms of key/value fields.

export type StepKind = 'call' | 'parallel' | 'switch' | 'respond' | 'transform' | 'code';
export const STEP_KINDS: StepKind[] = ['call', 'parallel', 'switch', 'respond', 'transform', 'code'];

/** A step as written (loosely typed: the designer holds half-made steps too; the server checks them). */
export type Step = { name: string; [field: string]: any };
export interface FlowDoc {
  timeoutMs?: number;
  steps: Step[];
  [field: string]: unknown;
}

/** Where a list of steps lives: the flow's own list, a parallel group's, a switch case's, a switch's default. */
export type ListPath = Array<string | number>;
/** A step: its list and its index there. */
export interface StepRef {
  list: ListPath;
  index: number;
}

export function kindOf(step: Step): StepKind | undefined {
  return STEP_KINDS.find((k) => step[k] !== undefined);
}

/** The field path the server's errors use: flow.steps[0].parallel.steps[2]. */
export function fieldOf(list: ListPath, index?: number): string {
  let out = 'flow';
  for (const p of list) out += typeof p === 'number' ? `[${p}]` : `.${p}`;
  return index === undefined ? out : `${out}[${index}]`;
}

export function listAt(flow: FlowDoc, list: ListPath): Step[] | undefined {
  let v: any = flow;
  for (const p of list) v = v?.[p];
  return Array.isArray(v) ? v : undefined;
}

export function stepAt(flow: FlowDoc, ref: StepRef | undefined): Step | undefined {
  return ref ? listAt(flow, ref.list)?.[ref.index] : undefined;
}

/** A deep copy with the list at `list` replaced by `f(list)` (created when missing). */
function withList(flow: FlowDoc, list: ListPath, f: (steps: Step[]) => Step[]): FlowDoc {
  const copy = structuredClone(flow);
  let parent: any = copy;
  for (const p of list.slice(0, -1)) parent = parent[p] ??= {};
  const last = list[list.length - 1]!;
  parent[last] = f(Array.isArray(parent[last]) ? parent[last] : []);
  return copy;
}

export function insertStep(flow: FlowDoc, list: ListPath, step: Step): { flow: FlowDoc; ref: StepRef } {
  let index = 0;
  const next = withList(flow, list, (steps) => {
    index = steps.length;
    return [...steps, step];
  });
  return { flow: next, ref: { list, index } };
}

export function removeStep(flow: FlowDoc, ref: StepRef): FlowDoc {
  return withList(flow, ref.list, (steps) => steps.filter((_, i) => i !== ref.index));
}

/** Moves a step up (-1) or down (+1) within its list; the new index, or the same when at an end. */
export function moveStep(flow: FlowDoc, ref: StepRef, by: -1 | 1): { flow: FlowDoc; ref: StepRef } {
  const steps = listAt(flow, ref.list) ?? [];
  const to = ref.index + by;
  if (to < 0 || to >= steps.length) return { flow, ref };
  const next = withList(flow, ref.list, (s) => {
    const out = [...s];
    [out[ref.index], out[to]] = [out[to]!, out[ref.index]!];
    return out;
  });
  return { flow: next, ref: { list: ref.list, index: to } };
}

export function replaceStep(flow: FlowDoc, ref: StepRef, step: Step): FlowDoc {
  return withList(flow, ref.list, (steps) => steps.map((s, i) => (i === ref.index ? step : s)));
}

/** Every step name in the flow, nested ones included. */
export function stepNames(flow: FlowDoc): string[] {
  const out: string[] = [];
  const walk = (steps: Step[] | undefined) => {
    for (const s of steps ?? []) {
      out.push(s.name);
      walk(s.parallel?.steps);
      for (const c of s.switch?.cases ?? []) walk(c.steps);
      walk(s.switch?.default);
    }
  };
  walk(flow.steps);
  return out;
}

/** A new step of a kind, named kind1, kind2… (the first name not taken). */
export function newStep(kind: StepKind, flow: FlowDoc, services: string[]): Step {
  const taken = new Set(stepNames(flow));
  let n = 1;
  while (taken.has(`${kind}${n}`)) n++;
  const name = `${kind}${n}`;
  switch (kind) {
    case 'call':
      return { name, call: { service: services[0] ?? '', path: '/' } };
    case 'parallel':
      return { name, parallel: { steps: [] } };
    case 'switch':
      return { name, switch: { cases: [{ when: 'true', steps: [] }] } };
    case 'respond':
      return { name, respond: { body: 'steps' } };
    case 'transform':
      return { name, transform: { from: 'request.body' } };
    case 'code':
      return { name, code: { source: 'return input;' } };
  }
}

/** One line per entry, `name<sep>value` (query: `=`, headers: `: `). */
export function recordText(record: Record<string, string> | undefined, sep: string): string {
  return Object.entries(record ?? {})
    .map(([k, v]) => `${k}${sep}${v}`)
    .join('\n');
}

/** The lines back into a record; lines without the separator are ignored; undefined when empty. */
export function parseRecord(text: string, sep: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(sep.trim());
    if (i <= 0) continue;
    out[line.slice(0, i).trim()] = line.slice(i + sep.trim().length).trim();
  }
  return Object.keys(out).length ? out : undefined;
}

/** Sets (or, for undefined, deletes) a field of a copy of `o`. */
export function setField<T extends Record<string, any>>(o: T, key: string, value: unknown): T {
  const copy: Record<string, any> = { ...o };
  if (value === undefined) delete copy[key];
  else copy[key] = value;
  return copy as T;
}

/** A one-line summary of what a step does, for its node. */
export function summary(step: Step): string {
  const k = kindOf(step);
  const b = k ? step[k] : undefined;
  switch (k) {
    case 'call':
      return `${b.method ?? (b.forward ? 'forward' : 'GET')} ${b.service || '?'} ${b.path ?? ''}`;
    case 'parallel':
      return `${b.steps?.length ?? 0} branches, wait ${b.wait ?? 'all'}`;
    case 'switch':
      return `${b.cases?.length ?? 0} cases${b.default ? ' + default' : ''}`;
    case 'respond':
      return `status ${b.status ?? 200}${b.format ? `, ${b.format}` : ''}`;
    case 'transform':
      return `from ${b.from ?? '?'}`;
    case 'code':
      return `${String(b.source ?? '')
        .split('\n')[0]!
        .slice(0, 40)}`;
    default:
      return 'choose a kind';
  }
}

/**
 * The server's field errors that belong to a step itself (its own fields, its cases' conditions),
 * not to the steps nested inside it.
 */
export function ownErrors<E extends { field: string }>(errors: E[], field: string): E[] {
  return errors.filter((e) => {
    if (e.field === field) return true;
    if (!e.field.startsWith(`${field}.`)) return false;
    return !/^\.(parallel\.steps|switch\.cases\[\d+\]\.steps|switch\.default)\[/.test(e.field.slice(field.length));
  });
}
