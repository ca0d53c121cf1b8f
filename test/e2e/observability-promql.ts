// Test helpers for the observability e2e test: a Prometheus text-format parser (metric families,
// sample names and their labels) and a small PromQL reader that lists the metric names, label
// matchers and grouping labels an expression uses, so every dashboard query can be checked against
// what a live scrape exports. Not a PromQL parser: enough for the dashboards this repository ships.

/** What one scrape exports: sample names → the label names seen on them, and declared families. */
export interface Scrape {
  /** Sample name (with _bucket/_sum/_count for histograms) → label names seen on its samples. */
  samples: Map<string, Set<string>>;
  /** `# TYPE` families: name → type. */
  families: Map<string, string>;
  /** Value of each sample line, keyed by name and sorted labels (for counts). */
  values: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseScrape(text: string): Scrape {
  const samples = new Map<string, Set<string>>();
  const families = new Map<string, string>();
  const values: Scrape['values'] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m) families.set(m[1]!, m[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const name = m[1]!;
    const labels: Record<string, string> = {};
    for (const p of (m[3] ?? '').matchAll(LABEL_PAIR)) labels[p[1]!] = p[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    let set = samples.get(name);
    if (!set) samples.set(name, (set = new Set()));
    for (const k of Object.keys(labels)) set.add(k);
    values.push({ name, labels, value: Number(m[4]) });
  }
  return { samples, families, values };
}

/** Sum of the samples named `name` whose labels include `match`. */
export function sum(scrape: Scrape, name: string, match: Record<string, string> = {}): number {
  return scrape.values.filter((v) => v.name === name && Object.entries(match).every(([k, want]) => v.labels[k] === want)).reduce((n, v) => n + v.value, 0);
}

/** Metric names, label matchers and grouping labels one PromQL expression uses. */
export interface PromqlRefs {
  metrics: Set<string>;
  /** Label matchers of selectors, per metric (value unquoted; VARIABLE where a dashboard variable stood). */
  matchers: Array<{ metric: string; label: string; op: string; value: string }>;
  /** Labels in by (…), without (…), on (…), ignoring (…), group_left/right (…): they must exist on the expression's metrics. */
  grouping: Set<string>;
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'inf',
  'nan',
  'sum',
  'avg',
  'count',
  'min',
  'max',
  'topk',
  'bottomk',
  'quantile',
  'stddev',
  'stdvar',
  'count_values',
  'group',
]);

/** Stands for a Grafana variable ($product, ${partner}, $__rate_interval) in a matcher's value. */
export const VARIABLE = '__grafana_variable__';

function stripVariables(expr: string): string {
  return expr.replace(/\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*/g, VARIABLE);
}

/** Reads a PromQL expression (or a Grafana `label_values(metric{…}, label)` / `query_result(…)` variable query). */
export function promqlRefs(input: string): PromqlRefs {
  const refs: PromqlRefs = { metrics: new Set(), matchers: [], grouping: new Set() };
  let expr = stripVariables(input.trim());
  const lv = /^label_values\(\s*(.*?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/s.exec(expr);
  if (lv) {
    expr = lv[1]!;
    refs.grouping.add(lv[2]!);
  } else {
    const qr = /^query_result\((.*)\)$/s.exec(expr);
    if (qr) expr = qr[1]!;
  }
  let i = 0;
  let lastIdent: string | undefined;
  let lastWasMetric = false;
  while (i < expr.length) {
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === '`') {
      const end = expr.indexOf(c, i + 1);
      i = end < 0 ? expr.length : end + 1;
      lastWasMetric = false;
      continue;
    }
    if (c === '[') {
      // Range or subquery: [5m], [1h:1m]
      const end = expr.indexOf(']', i);
      i = end < 0 ? expr.length : end + 1;
      continue;
    }
    if (c === '{') {
      const end = findClose(expr, i, '{', '}');
      const body = expr.slice(i + 1, end);
      const metric = lastWasMetric ? lastIdent : undefined;
      for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/g)) {
        if (metric) refs.matchers.push({ metric, label: m[1]!, op: m[2]!, value: m[3]!.slice(1, -1) });
        else throw new Error(`a selector without a metric name is not supported: ${input}`);
      }
      i = end + 1;
      lastWasMetric = false;
      continue;
    }
    const id = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i));
    if (id && !/[0-9.]/.test(expr[i - 1] ?? '')) {
      const word = id[0];
      i += word.length;
      const rest = expr.slice(i).trimStart();
      if (['by', 'without', 'on', 'ignoring', 'group_left', 'group_right'].includes(word) && rest.startsWith('(')) {
        const open = expr.indexOf('(', i);
        const close = findClose(expr, open, '(', ')');
        for (const l of expr
          .slice(open + 1, close)
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean))
          refs.grouping.add(l);
        i = close + 1;
        lastWasMetric = false;
        continue;
      }
      if (rest.startsWith('(') || KEYWORDS.has(word)) {
        lastWasMetric = false; // a function or an operator
        continue;
      }
      refs.metrics.add(word);
      lastIdent = word;
      lastWasMetric = true;
      continue;
    }
    if (/[0-9.]/.test(c)) {
      // Numbers (0.95, 1e3) and durations outside brackets (offset 5m)
      const n = /^[0-9.]+(e[+-]?[0-9]+)?[a-z]*/i.exec(expr.slice(i))!;
      i += n[0].length;
      lastWasMetric = false;
      continue;
    }
    if (!/\s/.test(c)) lastWasMetric = false;
    i++;
  }
  return refs;
}

function findClose(s: string, open: number, o: string, c: string): number {
  let depth = 0;
  let quote: string | undefined;
  for (let j = open; j < s.length; j++) {
    const ch = s[j]!;
    if (quote) {
      if (ch === '\\') j++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch;
    else if (ch === o) depth++;
    else if (ch === c && --depth === 0) return j;
  }
  throw new Error(`unbalanced ${o}${c} in ${s}`);
}

/** Every PromQL expression of a Grafana dashboard: panel targets (rows and nested panels too) and templating queries. */
export function dashboardQueries(dashboard: Record<string, any>): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const visit = (panels: any[] | undefined) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (typeof t.expr === 'string' && t.expr.trim()) out.push({ where: `panel '${p.title}' ${t.refId ?? ''}`.trim(), expr: t.expr });
      visit(p.panels);
    }
  };
  visit(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (typeof q === 'string' && q.trim()) out.push({ where: `variable '${v.name}'`, expr: q });
  }
  return out;
}

/**
 * Problems with one expression against scrapes: metrics no scrape exports, matchers on labels its
 * metric never carries, grouping labels none of its metrics carries. `declared` gives the label
 * names of families that exist but have no samples yet (prom-client metrics nobody touched).
 */
export function checkExpression(expr: string, scrapes: readonly Scrape[], declared: (metric: string) => readonly string[] | undefined = () => undefined): string[] {
  const refs = promqlRefs(expr);
  const problems: string[] = [];
  const labelsOf = (metric: string): Set<string> | undefined => {
    let found: Set<string> | undefined;
    for (const s of scrapes) {
      const seen = s.samples.get(metric);
      if (seen) found = new Set([...(found ?? []), ...seen]);
    }
    if (found) return found;
    // A histogram or counter family without samples: its declared labels (+ le for buckets).
    const base = metric.replace(/_(bucket|sum|count)$/, '');
    const family = scrapes.find((s) => s.families.has(metric) || (base !== metric && s.families.get(base) === 'histogram'));
    if (!family) return undefined;
    const d = declared(base) ?? declared(metric);
    return d ? new Set([...d, ...(metric.endsWith('_bucket') ? ['le'] : [])]) : new Set();
  };
  const all = new Set<string>();
  if (refs.metrics.size === 0) problems.push('no metric');
  for (const m of refs.metrics) {
    const labels = labelsOf(m);
    if (!labels) problems.push(`metric ${m} is not exported`);
    else for (const l of labels) all.add(l);
  }
  for (const { metric, label, op, value } of refs.matchers) {
    const labels = labelsOf(metric);
    if (labels && !labels.has(label)) problems.push(`metric ${metric} has no label ${label}`);
    // A fixed value (`envoy_cluster_name="portico_callouts"`) must be one some sample carries.
    else if (op === '=' && !value.includes(VARIABLE) && scrapes.some((s) => s.samples.has(metric))) {
      if (!scrapes.some((s) => s.values.some((v) => v.name === metric && v.labels[label] === value))) problems.push(`no ${metric} sample has ${label}="${value}"`);
    }
  }
  for (const l of refs.grouping) if (!all.has(l)) problems.push(`no metric of the expression has label ${l}`);
  return problems;
}
