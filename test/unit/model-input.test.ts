// Request limits before any schema sees a value: bounded depth and no NUL, each error naming the field.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inputErrors, MAX_INPUT_DEPTH } from '../../src/model/input.ts';
import { parseDocumentText, DocumentSyntaxError, parseModelDocument } from '../../src/model/declarative.ts';
import { joinField } from '../../src/model/validate.ts';

describe('inputErrors', () => {
  it('names each string holding a NUL, in values and property names', () => {
    assert.deepEqual(inputErrors({ a: 'ok', b: ['x', 'y\u0000'], 'c\u0000': 1, d: { e: '\u0000' } }), [
      { field: 'b[1]', message: 'must not contain a NUL character' },
      { field: '["c\\u0000"]', message: 'is a property name with a NUL character' },
      { field: 'd.e', message: 'must not contain a NUL character' },
    ]);
    assert.deepEqual(inputErrors('a\u0000', 'query parameter key'), [{ field: 'query parameter key', message: 'must not contain a NUL character' }]);
    assert.deepEqual(inputErrors({ name: 'fine', n: 1, t: true, z: null }), []);
  });

  it('stops at the depth limit without recursing, however deep the value', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    const errors = inputErrors(deep);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.field, '[0]'.repeat(MAX_INPUT_DEPTH));
    let ok: unknown = 'x';
    for (let i = 0; i < MAX_INPUT_DEPTH; i++) ok = { a: ok };
    assert.deepEqual(inputErrors(ok), []);
  });

  it('names an empty property name', () => {
    assert.equal(joinField('', ''), '[""]');
    assert.equal(joinField('a', ''), 'a[""]');
    assert.equal(joinField('a', 'b'), 'a.b');
  });
});

describe('parseDocumentText on hostile documents', () => {
  it('refuses an alias bomb and overflowing nesting as syntax errors', () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', ...'bcdefg'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`)].join('\n');
    assert.throws(() => parseDocumentText(bomb), DocumentSyntaxError);
    assert.throws(() => parseDocumentText(`${'['.repeat(50_000)}${']'.repeat(50_000)}`), DocumentSyntaxError);
  });
});

describe('a document without key hashes (a viewer export)', () => {
  it('keeps the stored hash when the prefix matches, and refuses a prefix it does not know', () => {
    const existing = parseModelDocument(parseDocumentText(`portico: v1\npartners:\n  - name: a\n    apiKeys:\n      - name: k\n        prefix: abcdefgh\n        hash: ${'h'.repeat(43)}\n`), {
      hashApiKey: () => ({ prefix: 'x', hash: 'y' }),
    }).model;
    const parse = (prefix: string) =>
      parseModelDocument(parseDocumentText(`portico: v1\npartners:\n  - name: a\n    apiKeys:\n      - name: k\n        prefix: ${prefix}\n`), {
        hashApiKey: () => ({ prefix: 'x', hash: 'y' }),
        existing,
      });
    const kept = parse('abcdefgh');
    assert.deepEqual(kept.errors, []);
    assert.equal(kept.model.apiKeys.get('a/k')?.hash, 'h'.repeat(43));
    assert.deepEqual(
      parse('zzzzzzzz').errors.map((e) => e.field),
      ['partners[0].apiKeys[0].hash'],
    );
  });
});
