// Seeded fuzz of the admin API, generated from its own OpenAPI document: every operation gets wrong
// types, missing and unknown fields, NUL characters, huge strings, deep nesting, bad percent-
// encodings, broken JSON and YAML, null and missing bodies. No answer may be 5xx; every 4xx is
// problem+json naming a field, and every answer's status is one the document lists for the operation. Deterministic (fast-check with a fixed seed), bounded in count and time.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import YAML from 'yaml';
import { startTestPortico, type TestPortico } from '../support/portico.ts';
import { selfSigned } from '../support/certs.ts';

const RUNS = Number(process.env.PORTICO_FUZZ_RUNS ?? 3000);
const SEED = Number(process.env.PORTICO_FUZZ_SEED ?? 20261205);
/** Stop sending (and report how many ran) past this, so a loaded machine cannot stall the suite. */
const BUDGET_MS = Number(process.env.PORTICO_FUZZ_BUDGET_MS ?? 240_000);

interface Operation {
  method: string;
  template: string;
  path: string[];
  query: Array<{ name: string; schema: Record<string, any> }>;
  body: boolean;
  /** The status codes the OpenAPI document lists for this operation. */
  documented: Set<number>;
}

interface Case {
  op: Operation;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

// ── raw bodies no generator would stumble on by chance ────────────────────────
const deepJson = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const yamlBomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefg'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`)].join('\n');
const RAW_BODIES = [
  '',
  'null',
  '{',
  '[]',
  '"x"',
  '1',
  'true',
  '{"a":',
  '\u0000',
  deepJson(5000),
  `${'['.repeat(20000)}${']'.repeat(20000)}`,
  yamlBomb,
  'a: [1\n',
  '%YAML 9.9\n---\na: 1',
  `{"a":"${'x'.repeat(100_000)}"}`,
];
const CONTENT_TYPES = ['application/json', 'application/merge-patch+json', 'application/yaml', 'text/plain', 'application/xml', 'application/json; charset=latin1'];

const nasty = fc.oneof(
  fc.constantFrom('a\u0000b', '\u0000', '', ' ', 'x'.repeat(5000), '../../etc/passwd', '%', '__proto__', 'constructor', '-1', '1e400', 'NaN', '😀', '\uD800', 'a/b', '*'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);
const anyJson: fc.Arbitrary<Json> = fc.oneof(fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, nasty);
const headerText = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);

/** Paths of every value inside `v` (iteratively; bases are shallow). */
function paths(v: Json): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [];
  const stack: Array<[Json, Array<string | number>]> = [[v, []]];
  while (stack.length) {
    const [x, p] = stack.pop()!;
    if (p.length) out.push(p);
    if (Array.isArray(x)) x.forEach((c, i) => stack.push([c, [...p, i]]));
    else if (x && typeof x === 'object') for (const [k, c] of Object.entries(x)) stack.push([c, [...p, k]]);
  }
  return out;
}

type Mutation = { type: 'delete' | 'set' | 'deep' | 'add'; pick: number; value: Json; key: string; depth: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  type: fc.constantFrom('delete', 'set', 'set', 'deep', 'add'),
  pick: fc.nat(),
  value: anyJson,
  key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('a\u0000', '__proto__', 'revision')),
  depth: fc.integer({ min: 30, max: 3000 }),
}) as fc.Arbitrary<Mutation>;

function mutate(base: Json, ms: Mutation[]): Json {
  let body = structuredClone(base);
  for (const m of ms) {
    const all = paths(body);
    const target = all.length ? all[m.pick % all.length]! : [];
    const parentPath = target.slice(0, -1);
    const parent = parentPath.reduce<any>((o, k) => o?.[k], body);
    const last = target[target.length - 1];
    if (m.type === 'add') {
      if (body && typeof body === 'object' && !Array.isArray(body)) (body as Record<string, Json>)[m.key] = m.value;
      continue;
    }
    // Deep values stay a marker until serialised: a 3,000-deep object would overflow JSON.stringify.
    const value: Json = m.type === 'deep' ? `\u0001DEEP${m.depth}\u0001` : m.value;
    if (last === undefined || parent === null || typeof parent !== 'object') body = m.type === 'delete' ? null : value;
    else if (m.type === 'delete') Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last];
    else parent[last] = value;
  }
  return body;
}

/** JSON text for a value, with each deep marker expanded into that many nested arrays. */
function jsonText(v: Json): string {
  return (JSON.stringify(v) ?? 'null').replace(/"\\u0001DEEP(\d+)\\u0001"/g, (_, n) => `${'['.repeat(Number(n))}1${']'.repeat(Number(n))}`);
}

/** YAML for a value; JSON (also YAML) where the value holds a deep marker. */
function yamlText(v: Json): string {
  const json = jsonText(v);
  return json.includes('[[[[') ? json : YAML.stringify(v);
}

/** Builds the case generator from the OpenAPI operations, existing names and example bodies. */
function caseArbitrary(ops: Operation[], names: Map<string, string[]>, bases: Map<string, Json>): fc.Arbitrary<Case> {
  return fc.constantFrom(...ops).chain((op) => {
    const param = (template: string, name: string) => {
      const existing = names.get(`${template}|${name}`) ?? [];
      const good = existing.length ? fc.constantFrom(...existing) : fc.constant('missing');
      return fc.oneof(
        { weight: 12, arbitrary: good.map(encodeURIComponent) },
        { weight: 3, arbitrary: nasty.map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, 'x'))) },
        { weight: 1, arbitrary: fc.constantFrom('%E0%A4%A', '%zz', '%', 'a%00b', '..', '%2e%2e') },
      );
    };
    const queryValue = (schema: Record<string, any>) => {
      const valid =
        schema.type === 'integer'
          ? fc.integer({ min: schema.minimum ?? 0, max: schema.maximum ?? 100 }).map(String)
          : schema.type === 'boolean'
            ? fc.constantFrom('true', 'false')
            : schema.anyOf
              ? fc.constantFrom(...schema.anyOf.map((s: any) => String(s.const ?? s.enum?.[0])))
              : fc.string({ maxLength: 8 });
      return fc.oneof(
        { weight: 4, arbitrary: valid },
        { weight: 2, arbitrary: nasty.map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, 'x'))) },
        { weight: 1, arbitrary: fc.constantFrom('%E0%A4%A', '-5', '1.5', 'x'.repeat(3000)) },
      );
    };
    const base = bases.get(op.template) ?? {};
    const body: fc.Arbitrary<{ text?: string; type?: string }> = !op.body
      ? fc.constant({})
      : fc.oneof(
          { weight: 1, arbitrary: fc.constant({}) },
          { weight: 3, arbitrary: fc.record({ text: fc.constantFrom(...RAW_BODIES), type: fc.constantFrom(...CONTENT_TYPES) }) },
          {
            weight: 12,
            arbitrary: fc
              .record({ ms: fc.array(mutation, { minLength: 1, maxLength: 3 }), type: fc.constantFrom('json', 'json', 'json', 'json', 'yaml', 'text/plain', 'application/xml') })
              .map(({ ms, type }) => {
                const v = mutate(base, ms);
                if (type === 'yaml') return { text: yamlText(v), type: 'application/yaml' };
                if (type === 'json') return { text: jsonText(v), type: op.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' };
                return { text: jsonText(v), type };
              }),
          },
          { weight: 2, arbitrary: anyJson.map((v) => ({ text: JSON.stringify(v) ?? 'null', type: 'application/json' })) },
        );
    const headers = fc.oneof(
      { weight: 20, arbitrary: fc.constant({}) },
      { weight: 2, arbitrary: fc.oneof(headerText, fc.constantFrom('"1"', '*', 'W/"2"')).map((v) => ({ 'if-match': v })) },
      { weight: 1, arbitrary: fc.oneof(headerText, fc.constant('*')).map((v) => ({ 'if-none-match': v })) },
      { weight: 1, arbitrary: fc.constantFrom('', 'Bearer', 'Bearer nope', 'Basic eA==', `Bearer ${'x'.repeat(4000)}`).map((v) => ({ authorization: v })) },
      { weight: 1, arbitrary: fc.constant({ 'x-big': 'a'.repeat(20_000) }) },
    );
    const query = fc.array(
      fc.oneof(
        { weight: 4, arbitrary: op.query.length ? fc.constantFrom(...op.query).chain((q) => queryValue(q.schema).map((v) => `${q.name}=${v}`)) : fc.constant('') },
        { weight: 1, arbitrary: fc.tuple(headerText, headerText).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`) },
      ),
      { maxLength: 3 },
    );
    return fc.record({ params: fc.tuple(...op.path.map((n) => param(op.template, n))), query, body, headers }).map(({ params, query, body, headers }) => {
      let i = 0;
      const path = op.template.replace(/\{[^}]+\}/g, () => params[i++]!);
      const qs = query.filter(Boolean).join('&');
      return {
        op,
        url: qs ? `${path}?${qs}` : path,
        headers: { ...(body.type ? { 'content-type': body.type } : {}), ...headers },
        ...(body.text !== undefined ? { body: body.text } : {}),
      };
    });
  });
}

describe('admin API fuzz (seeded, from the OpenAPI document)', () => {
  let p: TestPortico;
  const ops: Operation[] = [];
  const names = new Map<string, string[]>();
  const bases = new Map<string, Json>();

  before(async () => {
    p = await startTestPortico();
    const seeded = await p.api.request('POST', '/api/v1/config', readFileSync(new URL('../../examples/gateway.yaml', import.meta.url), 'utf8'), { 'content-type': 'application/yaml' });
    assert.equal(seeded.status, 200, seeded.text);
    const cert = await selfSigned('fuzz.example.test');
    for (const [path, body] of [
      ['/api/v1/certificates/edge', { name: 'edge', certificate: cert.certificate, privateKey: cert.privateKey }],
      ['/api/v1/partners/fuzz', { name: 'fuzz' }],
      ['/api/v1/partners/fuzz/api-keys/ci', { name: 'ci' }],
      ['/api/v1/partners/fuzz/mtls-identities/billing', { name: 'billing', match: { type: 'spiffe_id', value: 'spiffe://example.test/billing' } }],
    ] as const) {
      const r = await p.api.put(path, body);
      assert.equal(r.status, 201, r.text);
    }
    assert.equal((await p.api.post('/api/v1/admin-tokens', { name: 'fuzz', role: 'viewer' })).status, 201);

    const doc = (await p.api.get('/openapi.json')).body;
    for (const [template, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const params = (op.parameters ?? []) as Array<{ in: string; name: string; schema: Record<string, any> }>;
        ops.push({
          method: method.toUpperCase(),
          template,
          path: params.filter((x) => x.in === 'path').map((x) => x.name),
          query: params.filter((x) => x.in === 'query').map((x) => ({ name: x.name, schema: x.schema })),
          body: ['POST', 'PUT', 'PATCH'].includes(method.toUpperCase()),
          documented: new Set(Object.keys(op.responses ?? {}).map(Number)),
        });
      }
    }
    // Existing names per path parameter, and an existing resource as the base body to mutate.
    for (const template of Object.keys(doc.paths)) {
      const m = /^\/api\/v1\/([a-z-]+)(?:\/\{parent\}\/([a-z-]+))?(\/\{name\})?$/.exec(template);
      if (!m || template.startsWith('/api/v1/admin-tokens') || template === '/api/v1/audit' || template === '/api/v1/config' || template === '/api/v1/fleet') continue;
      const [, top, child] = m;
      const tops = ((await p.api.get(`/api/v1/${top}?limit=1000`)).body.items as Array<Record<string, Json>>).map((x) => String(x.name));
      if (!child) {
        names.set(`${template}|name`, tops);
        const first = (await p.api.get(`/api/v1/${top}?limit=1`)).body.items[0];
        if (first) bases.set(template, first);
        continue;
      }
      names.set(`${template}|parent`, tops);
      const kids: string[] = [];
      for (const parent of tops) {
        const items = (await p.api.get(`/api/v1/${top}/${parent}/${child}`)).body.items as Array<Record<string, Json>>;
        for (const it of items) kids.push(String(it.name ?? it.product));
        if (items[0] && !bases.has(template)) bases.set(template, items[0]);
      }
      names.set(`${template}|name`, kids);
    }
    names.set('/api/v1/admin-tokens/{name}|name', ['fuzz']);
    bases.set('/api/v1/admin-tokens', { name: 'fuzz-two', role: 'viewer', description: 'from the fuzz test' });
    bases.set('/api/v1/config', (await p.api.get('/api/v1/config?format=json')).body);
  });
  after(() => p?.close());

  it(`answers ${RUNS} generated requests with no 5xx and problem+json naming a field for every 4xx`, { timeout: BUDGET_MS + 120_000 }, async (t) => {
    assert.ok(ops.length >= 70, `operations from the OpenAPI document: ${ops.length}`);
    const cases = fc.sample(caseArbitrary(ops, names, bases), { seed: SEED, numRuns: RUNS });
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const started = Date.now();
    let sent = 0;
    for (const c of cases) {
      if (Date.now() - started > BUDGET_MS) break;
      sent++;
      const what = `${c.op.method} ${c.url.slice(0, 160)} ${JSON.stringify(c.headers).slice(0, 120)} body=${JSON.stringify(c.body?.slice(0, 80))}`;
      let status: number;
      let text: string;
      let type: string;
      try {
        const res = await fetch(`${p.adminUrl}${c.url}`, {
          method: c.op.method,
          headers: { authorization: `Bearer ${p.api.token}`, ...c.headers },
          ...(c.body !== undefined ? { body: c.body } : {}),
          signal: AbortSignal.timeout(30_000),
        });
        status = res.status;
        type = res.headers.get('content-type') ?? '';
        text = await res.text();
      } catch (e) {
        failures.push(`${what} → no answer: ${(e as Error).message} ${(e as { cause?: Error }).cause?.message ?? ''}`);
        continue;
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (!c.op.documented.has(status)) failures.push(`${what} → ${status}, which the OpenAPI document does not list (${[...c.op.documented].join(', ')})`);
      if (status >= 500) {
        failures.push(`${what} → ${status} ${text.slice(0, 200)}`);
      } else if (status >= 400) {
        let named = false;
        try {
          const errors = JSON.parse(text).errors as Array<{ field?: unknown }>;
          named = Array.isArray(errors) && errors.length > 0 && errors.every((e) => typeof e.field === 'string' && e.field.length > 0);
        } catch {}
        if (!type.startsWith('application/problem+json') || !named) failures.push(`${what} → ${status} ${type} without a named field: ${text.slice(0, 200)}`);
      }
    }
    const seconds = (Date.now() - started) / 1000;
    const histogram = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`);
    t.diagnostic(`seed ${SEED}: ${sent} of ${cases.length} requests in ${seconds.toFixed(1)} s; statuses ${histogram.join(' ')}`);
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} bad answers`);
    // A run cut short by the time budget still covers every operation several times over.
    assert.ok(sent >= Math.min(RUNS, 500), `only ${sent} requests fit in the time budget`);
    assert.ok((statuses.get(200) ?? 0) + (statuses.get(201) ?? 0) > 0, 'some generated requests were valid');
  });
});
