// Validation and compilation of a flow, in one pass: every expression compiles, every reference
// names a step that has finished before the reader starts, nothing is unreachable, the limits
// hold. Errors name the field (flow.steps[2].call.path) like the model's validation does.
import { compileExpression, compileTemplate, mergeRefs, type CompiledExpression, type CompiledTemplate, type StepRefs } from './expressions.ts';
import { compileReshape, ReshapeError, type CompiledReshape } from './transforms.ts';
import { FLOW_DEFAULTS, FLOW_LIMITS, type FlowSpec, type FlowStepSpec } from '../model/index.ts';
import type { CompiledFlow, CompiledStep } from './types.ts';

/** A field error, in the shape of the model's ModelError without the resource (the caller adds it). */
export interface FlowError {
  field: string;
  message: string;
  code: 'invalid' | 'reference';
  /** For references to the model, what is missing. */
  target?: { kind: 'services'; key: string };
}

export interface CompileOptions {
  /** Field path of the flow in its resource; default 'flow'. */
  prefix?: string;
  /** Services of the model; when given, calls to others are reference errors. */
  services?: ReadonlySet<string>;
  /** Compiles a code step's source; returns why it does not compile. */
  checkCode?: (source: string) => string | undefined;
}

export const DEFAULTS = FLOW_DEFAULTS;

const KINDS = ['call', 'parallel', 'switch', 'respond', 'transform', 'code'] as const;
const NO_RESULT = new Set(['parallel', 'switch', 'respond']);

interface Placed {
  field: string;
  kind: string;
  /** Names of the parallel group's other branches (and their nested steps), when in one. */
  siblings: ReadonlySet<string>;
  /** Names of the steps that contain this one. */
  ancestors: ReadonlySet<string>;
}

export type CompileResult = { ok: true; flow: CompiledFlow } | { ok: false; errors: FlowError[] };

export function compileFlow(spec: FlowSpec, opts: CompileOptions = {}): CompileResult {
  return new Compiler(opts).flow(spec);
}

class Compiler {
  private readonly errors: FlowError[] = [];
  private readonly placed = new Map<string, Placed>();
  private count = 0;
  private calls = 0;
  private hasCode = false;

  constructor(private readonly opts: CompileOptions) {}

  flow(spec: FlowSpec): CompileResult {
    const prefix = this.opts.prefix ?? 'flow';
    if (!Array.isArray(spec?.steps) || spec.steps.length === 0) return { ok: false, errors: [{ field: `${prefix}.steps`, message: 'must have at least one step', code: 'invalid' }] };
    this.place(spec.steps, `${prefix}.steps`, new Set(), new Set(), 1);
    if (this.count > FLOW_LIMITS.steps) this.invalid(`${prefix}.steps`, `has ${this.count} steps in all; the limit is ${FLOW_LIMITS.steps}`);
    if (this.calls > FLOW_LIMITS.calls) this.invalid(`${prefix}.steps`, `has ${this.calls} call steps in all; the limit is ${FLOW_LIMITS.calls}`);
    const steps = this.errors.length ? [] : this.sequence(spec.steps, `${prefix}.steps`, new Set());
    if (this.errors.length) return { ok: false, errors: this.errors };
    return {
      ok: true,
      flow: {
        steps,
        timeoutMs: spec.timeoutMs ?? DEFAULTS.flowTimeoutMs,
        maxRequestBytes: spec.maxRequestBytes ?? DEFAULTS.maxRequestBytes,
        maxResponseBytes: spec.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
        hasCode: this.hasCode,
      },
    };
  }

  private invalid(field: string, message: string): void {
    this.errors.push({ field, message, code: 'invalid' });
  }

  /** First pass: names, kinds, nesting and counts, so references can be judged in the second. */
  private place(steps: readonly FlowStepSpec[], field: string, siblings: ReadonlySet<string> | ((i: number) => ReadonlySet<string>), ancestors: ReadonlySet<string>, depth: number): Set<string> {
    const names = new Set<string>();
    const siblingsOf = typeof siblings === 'function' ? siblings : () => siblings;
    steps.forEach((s, i) => {
      const f = `${field}[${i}]`;
      this.count++;
      const kinds = KINDS.filter((k) => s[k] !== undefined);
      if (kinds.length !== 1) this.invalid(f, kinds.length ? `has ${kinds.join(' and ')}; a step does exactly one thing` : `must have one of ${KINDS.join(', ')}`);
      const kind = kinds[0] ?? 'none';
      if (s.name === '__proto__') this.invalid(`${f}.name`, 'may not be __proto__');
      else if (this.placed.has(s.name)) this.invalid(`${f}.name`, `repeats the name ${s.name} (first at ${this.placed.get(s.name)!.field}); step names are unique in a flow`);
      else this.placed.set(s.name, { field: f, kind, siblings: siblingsOf(i), ancestors });
      names.add(s.name);
      if (kind === 'call') this.calls++;
      if (kind === 'code') this.hasCode = true;
      const inner = new Set([...ancestors, s.name]);
      if (depth > FLOW_LIMITS.depth && (s.parallel || s.switch)) this.invalid(f, `nests deeper than ${FLOW_LIMITS.depth} levels of parallel and switch`);
      if (s.parallel) {
        if (s.parallel.steps.length > FLOW_LIMITS.branches) this.invalid(`${f}.parallel.steps`, `has ${s.parallel.steps.length} branches; the limit is ${FLOW_LIMITS.branches}`);
        // Each branch sees the others (and what is inside them) as running alongside it.
        const perBranch = s.parallel.steps.map((b) => [b.name, ...descendants(b)]);
        const others = (j: number) => new Set([...siblingsOf(i), ...perBranch.flatMap((n, k) => (k === j ? [] : n))]);
        this.place(s.parallel.steps, `${f}.parallel.steps`, others, inner, depth + 1).forEach((n) => names.add(n));
        s.parallel.steps.forEach((b, j) => {
          if (containsRespond(b)) this.invalid(`${f}.parallel.steps[${j}]`, 'may not respond: a parallel branch cannot end the flow');
        });
      }
      if (s.switch) {
        s.switch.cases.forEach((c, j) => this.place(c.steps, `${f}.switch.cases[${j}].steps`, siblingsOf(i), inner, depth + 1).forEach((n) => names.add(n)));
        if (s.switch.default) this.place(s.switch.default, `${f}.switch.default`, siblingsOf(i), inner, depth + 1).forEach((n) => names.add(n));
      }
    });
    return names;
  }

  /** Second pass: compiles a sequence; `before` holds the steps that have finished before it starts. */
  private sequence(steps: readonly FlowStepSpec[], field: string, before: Set<string>): CompiledStep[] {
    const out: CompiledStep[] = [];
    let ended: string | undefined;
    steps.forEach((s, i) => {
      const f = `${field}[${i}]`;
      if (ended) this.invalid(f, `is unreachable: ${ended} always responds before it`);
      const c = this.step(s, f, before);
      if (c) out.push(c);
      before.add(s.name);
      descendants(s).forEach((n) => before.add(n));
      if (!ended && terminal(s)) ended = f;
    });
    return out;
  }

  private expr(source: string, field: string, self: string, before: ReadonlySet<string>): CompiledExpression | undefined {
    return this.compiled(compileExpression, source, field, self, before);
  }

  private template(source: string, field: string, self: string, before: ReadonlySet<string>): CompiledTemplate | undefined {
    return this.compiled(compileTemplate, source, field, self, before);
  }

  /** Compiles an expression or template and checks its references; an error is recorded at `field`. */
  private compiled<T extends { refs: StepRefs }>(compile: (source: string) => T, source: string, field: string, self: string, before: ReadonlySet<string>): T | undefined {
    try {
      const c = compile(source);
      this.checkRefs(c.refs, field, self, before);
      return c;
    } catch (err) {
      this.invalid(field, (err as Error).message);
      return undefined;
    }
  }

  private checkRefs(refs: StepRefs, field: string, self: string, before: ReadonlySet<string>): void {
    if (refs === 'all') return;
    for (const name of refs) {
      const p = this.placed.get(name);
      const fail = (message: string) => this.errors.push({ field, message, code: 'reference' });
      if (name === self) fail(`refers to steps.${name}, its own step`);
      else if (!p) fail(`refers to steps.${name}, which is not a step of this flow`);
      else if (NO_RESULT.has(p.kind)) fail(`refers to steps.${name}, a ${p.kind} step, which has no result; refer to the steps inside it`);
      else if (before.has(name)) continue;
      else if (this.placed.get(self)?.siblings.has(name)) fail(`refers to steps.${name}, which runs in parallel with this step`);
      else if (this.placed.get(self)?.ancestors.has(name)) fail(`refers to steps.${name}, which contains this step`);
      else fail(`refers to steps.${name} (${p.field}), which runs after this step`);
    }
  }

  private step(s: FlowStepSpec, f: string, before: Set<string>): CompiledStep | undefined {
    const self = s.name;
    const when = s.when !== undefined ? this.expr(s.when, `${f}.when`, self, before) : undefined;
    const kind = KINDS.find((k) => s[k] !== undefined);
    if ((s.onError !== undefined || s.fallback !== undefined) && kind && NO_RESULT.has(kind)) {
      this.invalid(s.onError !== undefined ? `${f}.onError` : `${f}.fallback`, 'applies only to call, transform and code steps');
    }
    if (s.fallback !== undefined && s.onError !== 'continue') this.invalid(`${f}.fallback`, 'needs onError: continue');
    const base = { name: self, field: f, when, onError: s.onError ?? 'fail', fallback: s.fallback ?? null } as const;
    const refsOf = (...xs: Array<{ refs: StepRefs } | undefined>) => mergeRefs(...xs.filter((x): x is { refs: StepRefs } => x !== undefined).map((x) => x.refs));

    if (s.call) {
      const c = s.call;
      if (this.opts.services && !this.opts.services.has(c.service)) {
        this.errors.push({ field: `${f}.call.service`, message: `names service ${c.service}, which does not exist`, code: 'reference', target: { kind: 'services', key: c.service } });
      }
      if (c.path === undefined && !c.forward) this.invalid(`${f}.call.path`, 'is required unless forward is true');
      const path = c.path !== undefined ? this.template(c.path, `${f}.call.path`, self, before) : undefined;
      if (path?.literals.some((l) => /[?#\s]/.test(l))) this.invalid(`${f}.call.path`, 'may not hold ?, # or spaces; put parameters in query');
      if (path && !path.literals[0]!.startsWith('/')) this.invalid(`${f}.call.path`, 'must start with /');
      const query = Object.entries(c.query ?? {}).map(([k, v]) => [k, this.template(v, fieldKey(`${f}.call.query`, k), self, before)] as const);
      const headers = Object.entries(c.headers ?? {}).map(([k, v]) => [k.toLowerCase(), this.template(v, fieldKey(`${f}.call.headers`, k), self, before)] as const);
      const body = c.body !== undefined ? this.expr(c.body, `${f}.call.body`, self, before) : undefined;
      const parts = [when, path, body, ...query.map((q) => q[1]), ...headers.map((h) => h[1])];
      return {
        ...base,
        kind: 'call',
        refs: refsOf(...parts),
        service: c.service,
        forward: c.forward ?? false,
        method: c.method,
        path,
        query: query.filter((q): q is readonly [string, CompiledTemplate] => q[1] !== undefined),
        headers: headers.filter((h): h is readonly [string, CompiledTemplate] => h[1] !== undefined),
        body,
        timeoutMs: c.timeoutMs ?? DEFAULTS.callTimeoutMs,
        ok: statusMatcher(c.okStatus ?? ['2xx']),
        parse: (c.parse ?? 'auto') as 'auto' | 'json' | 'xml' | 'text',
        xml: c.xml,
      };
    }
    if (s.parallel) {
      // Every branch starts from the same `before`: none sees another's result.
      const branches = s.parallel.steps.map((b, j) => this.step(b, `${f}.parallel.steps[${j}]`, new Set(before))).filter((b): b is CompiledStep => b !== undefined);
      return { ...base, kind: 'parallel', refs: refsOf(when), branches, wait: s.parallel.wait ?? 'all' };
    }
    if (s.switch) {
      const sw = s.switch;
      let always: string | undefined;
      const cases = sw.cases.map((c, j) => {
        const cf = `${f}.switch.cases[${j}]`;
        if (always) this.invalid(cf, `is unreachable: ${always} always matches`);
        const cond = this.expr(c.when, `${cf}.when`, self, before);
        if (cond && /^\s*true\s*$/.test(c.when)) always = `${cf}.when`;
        return { when: cond, steps: this.sequence(c.steps, `${cf}.steps`, new Set(before)) };
      });
      if (always && sw.default) this.invalid(`${f}.switch.default`, `is unreachable: ${always} always matches`);
      const otherwise = sw.default ? this.sequence(sw.default, `${f}.switch.default`, new Set(before)) : [];
      const conds = cases.map((c) => c.when);
      return {
        ...base,
        kind: 'switch',
        refs: refsOf(when, ...conds),
        cases: cases.filter((c): c is { when: CompiledExpression; steps: CompiledStep[] } => c.when !== undefined),
        otherwise,
      };
    }
    if (s.respond) {
      const r = s.respond;
      const status = typeof r.status === 'string' ? this.expr(r.status, `${f}.respond.status`, self, before) : (r.status ?? 200);
      const headers = Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), this.template(v, fieldKey(`${f}.respond.headers`, k), self, before)] as const);
      const body = r.body !== undefined ? this.expr(r.body, `${f}.respond.body`, self, before) : undefined;
      return {
        ...base,
        kind: 'respond',
        refs: refsOf(when, typeof status === 'object' ? status : undefined, body, ...headers.map((h) => h[1])),
        status: status ?? 200,
        headers: headers.filter((h): h is readonly [string, CompiledTemplate] => h[1] !== undefined),
        body,
        format: r.format ?? 'json',
        xml: r.xml,
      };
    }
    if (s.transform) {
      const from = this.expr(s.transform.from, `${f}.transform.from`, self, before);
      let reshape: CompiledReshape | undefined;
      try {
        reshape = compileReshape(s.transform);
        this.checkRefs(reshape.refs, `${f}.transform.map`, self, before);
      } catch (e) {
        this.invalid(`${f}.transform.${e instanceof ReshapeError ? e.field : 'map'}`, (e as Error).message);
      }
      if (!from || !reshape) return undefined;
      return { ...base, kind: 'transform', refs: refsOf(when, from, reshape), from, reshape };
    }
    if (s.code) {
      const c = s.code;
      const problem = this.opts.checkCode?.(c.source);
      if (problem) this.invalid(`${f}.code.source`, `does not compile: ${problem}`);
      const input = c.input !== undefined ? this.expr(c.input, `${f}.code.input`, self, before) : undefined;
      return {
        ...base,
        kind: 'code',
        // Without an input expression the code sees every earlier step.
        refs: c.input !== undefined ? refsOf(when, input) : 'all',
        source: c.source,
        input,
        timeMs: c.timeMs ?? DEFAULTS.codeTimeMs,
        memoryBytes: (c.memoryMb ?? DEFAULTS.codeMemoryMb) << 20,
      };
    }
    return undefined;
  }
}

/** A map entry's field name as the model's validation writes it: .name, or ["odd-name"]. */
function fieldKey(field: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${field}.${key}` : `${field}[${JSON.stringify(key)}]`;
}

function descendants(s: FlowStepSpec): string[] {
  const out: string[] = [];
  const add = (steps: readonly FlowStepSpec[] | undefined) => steps?.forEach((x) => out.push(x.name, ...descendants(x)));
  add(s.parallel?.steps);
  s.switch?.cases.forEach((c) => add(c.steps));
  add(s.switch?.default);
  return out;
}

function containsRespond(s: FlowStepSpec): boolean {
  if (s.respond) return true;
  const any = (steps: readonly FlowStepSpec[] | undefined) => steps?.some(containsRespond) ?? false;
  return any(s.parallel?.steps) || (s.switch?.cases.some((c) => any(c.steps)) ?? false) || any(s.switch?.default);
}

/** A step after which nothing in the same sequence can run: an unconditional respond, or a switch whose every way out responds. */
function terminal(s: FlowStepSpec): boolean {
  if (s.when !== undefined) return false;
  if (s.respond) return true;
  if (s.switch?.default) return s.switch.cases.every((c) => c.steps.some(terminal)) && s.switch.default.some(terminal);
  return false;
}

function statusMatcher(spec: ReadonlyArray<string | number>): (status: number) => boolean {
  const exact = new Set(spec.filter((x): x is number => typeof x === 'number'));
  const classes = new Set(spec.filter((x): x is string => typeof x === 'string').map((c) => Number(c[0])));
  return (status) => exact.has(status) || classes.has(Math.floor(status / 100));
}
