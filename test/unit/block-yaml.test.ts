// The plain block-style YAML reader must give exactly what the YAML parser gives, or nothing (then
// the YAML parser reads the document): compared on every YAML file in the repository, exported
// models, the admin-apply benchmark's document and thousands of generated documents with tricky scalars.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { parseBlockYaml } from '../../src/model/block-yaml.ts';
import { DocumentSyntaxError, documentToYaml, modelToDocument, parseDocumentText } from '../../src/model/declarative.ts';
import { benchDocument } from '../../bench/bench-model.ts';
import { seedModel } from '../support/ratelimit-fixtures.ts';

/** The YAML parser's reading, as parseDocumentText makes it; undefined when it reports errors. */
function general(text: string): unknown {
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  return doc.errors.length ? undefined : doc.toJS({ maxAliasCount: 100 });
}

/** The reader gives the parser's value or declines; returns whether it read the document. */
function agrees(text: string): boolean {
  const fast = parseBlockYaml(text);
  if (fast === undefined) return false;
  assert.deepStrictEqual(fast, general(text), `read differently:\n${text}`);
  return true;
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(name)) out.push(p);
  }
  return out;
}

/** A small deterministic generator (the same documents every run). */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

const SCALARS = [
  'plain',
  'two words',
  '10.0.0.1',
  'http://x.example/a?b=c',
  'a#b',
  'a: b',
  'a #c',
  'x:',
  ':x',
  '',
  '~',
  'null',
  'Null',
  'NULL',
  'nul',
  'true',
  'True',
  'TRUE',
  'tRue',
  'false',
  'yes',
  'no',
  'on',
  '0',
  '7',
  '42',
  '007',
  '-1',
  '+1',
  '1.5',
  '1e3',
  '.5',
  '.inf',
  '-.Inf',
  '.nan',
  '0x1f',
  '0o17',
  '1_000',
  '9007199254740993',
  "'single'",
  "'it''s'",
  "'a: b'",
  '"double"',
  '"esc\\n"',
  '"a\'b"',
  "'unterminated",
  '*alias',
  '&anchor value',
  '!tag value',
  '|',
  '>',
  '[a, b]',
  '{a: 1}',
  '- item',
  '? q',
  '%pct',
  '@at',
  '`tick',
  'ünïcode',
  'tab\there',
  'back\\slash',
  '# comment',
  '-',
  'a,b',
  'trailing   ',
  '[a, b]',
  '[]',
  '[ ]',
  '[1, x, 5xx]',
  '[a, ]',
  '[a b]',
  '[ a ]',
  '[a,b]',
  '[a, [b]]',
  '[a: 1]',
  '[a, ~, true]',
  '[a]]',
  '[-1]',
  "['q']",
  '[a, #b]',
];
/** Scalars any document may hold; the tricky ones above are mixed in now and then. */
const COMMON = ['plain', 'two words', '10.0.0.1', 'http://x.example/a', '0', '42', 'true', '~', "'single'", '"double"', '[a, b]', '[GET]'];
const KEYS = ['name', 'port', 'a.b', 'x-id', 'k/v', '__proto__', 'true', 'null', '1', 'bad key', '"quoted"', 'name'];

function generated(next: () => number, depth = 0, indent = ''): string {
  const choose = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!;
  const pick = <T>(xs: readonly T[]): T | string => (xs === (SCALARS as unknown) && next() < 0.85 ? choose(COMMON) : choose(xs));
  const anyKey = () => (next() < 0.9 ? choose(KEYS.slice(0, 5)) : choose(KEYS));
  const lines: string[] = [];
  const entries = 1 + Math.floor(next() * 3);
  const asSequence = depth > 0 && next() < 0.4;
  for (let i = 0; i < entries; i++) {
    const lead = asSequence ? `${indent}- ` : indent;
    const r = next();
    if (asSequence && r < 0.3) lines.push(`${lead}${pick(SCALARS)}`);
    else if (depth < 3 && r < 0.55) {
      const key = anyKey();
      const inner = asSequence ? `${indent}  ` : `${indent}  `;
      lines.push(`${lead}${key}:`);
      const child = generated(next, depth + 1, next() < 0.15 && !asSequence ? indent : inner);
      lines.push(child);
    } else lines.push(`${lead}${pick(KEYS)}: ${pick(SCALARS)}`);
    if (asSequence && next() < 0.5) lines.push(`${indent}  ${pick(KEYS)}: ${pick(SCALARS)}`);
    if (next() < 0.05) lines.push(choose(['', '# note', `${indent} odd: indent`, `${indent}  continued`, '---', '\t']));
  }
  return lines.join('\n');
}

describe('plain block-style YAML reader', () => {
  it('reads every YAML file in the repository as the YAML parser does, or leaves it', () => {
    const files = yamlFiles(path.resolve(import.meta.dirname, '../..'));
    assert.ok(files.length > 20);
    let read = 0;
    for (const f of files) if (agrees(readFileSync(f, 'utf8'))) read++;
    assert.ok(read >= 5, `read ${read} of ${files.length} files`);
  });

  it('reads exported models and the admin-apply document exactly', () => {
    assert.ok(agrees(documentToYaml(modelToDocument(seedModel()))), 'an exported model is plain block style');
    const big = benchDocument({ products: 50, services: 10, partners: 50, keysPerPartner: 3, plans: 5, decorated: true });
    assert.ok(agrees(big), 'the benchmark document is read directly');
    assert.deepStrictEqual(parseDocumentText(big), general(big));
  });

  it('gives the YAML parser each generated document it would read differently', () => {
    const next = random(13);
    let read = 0;
    const total = 4000;
    for (let i = 0; i < total; i++) if (agrees(generated(next))) read++;
    // Both sides are exercised: many documents read directly, many left to the parser.
    assert.ok(read > total * 0.1 && read < total * 0.9, `read ${read} of ${total}`);
  });

  it('reads each scalar and key form in each position as the YAML parser does, or leaves it', () => {
    let read = 0;
    for (const v of SCALARS) {
      for (const text of [`a: ${v}\n`, `a:\n- ${v}\n`, `a:\n  - ${v}\n  - x\n`, `- b: ${v}\n  c: 1\n`, `a: [${v}]\n`, `a: [x, ${v}]\n`, `a: ${v}\nb: 1\n`]) if (agrees(text)) read++;
    }
    for (const k of KEYS) if (agrees(`${k}: 1\nz:\n  ${k}: 2\n`)) read++;
    assert.ok(read > 200, `read ${read}`);
  });

  it('reads these scalars as the core schema does', () => {
    assert.deepStrictEqual(parseBlockYaml('a: 0\nb: 42\nc: ~\nd: null\ne: True\nf: false\ng: 10.0.0.1\nh: "x y"\ni: \'p: q\'\nj:\nk: a#b\n'), {
      a: 0,
      b: 42,
      c: null,
      d: null,
      e: true,
      f: false,
      g: '10.0.0.1',
      h: 'x y',
      i: 'p: q',
      j: null,
      k: 'a#b',
    });
    assert.deepStrictEqual(parseBlockYaml('list:\n- a\n-\n  b: 1\n  c:\n  - 2\nafter: x\n'), { list: ['a', { b: 1, c: [2] }], after: 'x' });
  });

  it('leaves anchors, flow style, block scalars, duplicates and other forms to the YAML parser', () => {
    for (const text of [
      'a: &x 1\nb: *x\n',
      'a: [1, {b: 2}]\n',
      'a: |\n  text\n',
      'a: 1\na: 2\n',
      'a: b\n  continued\n',
      'a: 1 # comment\n',
      'a:\n\tb: 1\n',
      '---\na: 1\n',
      'a: 1.5\n',
      'a: 007\n',
      'a: "esc\\n"\n',
      '1: one\n',
      '__proto__: x\n',
      'a: 1\r\n',
    ])
      assert.equal(parseBlockYaml(text), undefined, text);
    // The errors are the YAML parser's own.
    assert.throws(
      () => parseDocumentText('a: 1\na: 2\n'),
      (e) => e instanceof DocumentSyntaxError && /unique/i.test(e.message),
    );
  });
});
