// Expressions and templates: the synchronous shortcut gives exactly what JSONata gives, references
// to steps are found wherever they are written, templates escape braces and fail clearly.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import jsonata from 'jsonata';
import { compileExpression, compileTemplate, renderTemplate, ExpressionError } from '../../src/flows/expressions.ts';
import { truthy } from '../../src/flows/engine.ts';

const data = {
  request: { method: 'GET', query: { tags: ['a', 'b'], one: 'x' }, identity: { claims: { sub: 'u1', n: 0 } } },
  steps: {
    user: { status: 200, body: { id: 'u1', nested: { deep: [1, 2] }, list: [{ id: 1 }, { id: 2 }], single: [7], empty: [], nul: null, zero: 0, f: false } },
    list: { status: 200, body: [{ id: 1 }, { id: 2 }] },
  },
};

describe('expressions', () => {
  it('evaluates plain paths and object constructors synchronously, with the same result as JSONata', async () => {
    const sources = [
      'request.method',
      'request.identity.claims.sub',
      'request.identity.claims.n',
      'steps.user.body',
      'steps.user.body.nested.deep',
      'steps.user.body.single',
      'steps.user.body.empty',
      'steps.user.body.nul',
      'steps.user.body.zero',
      'steps.user.body.f',
      'steps.user.body.missing.more',
      'steps.user.body.id.length',
      'steps.list.body',
      'steps.list.body.id', // an array on the way: JSONata maps over it
      'steps.user.body.list.id',
      'request.query.tags',
      '{"a": steps.user.body.id, "b": steps.user.body.missing, "c": steps.user.body.single, "d": {"e": request.method, "n": 3, "t": true, "z": null}}',
      '{"ids": steps.list.body.id}',
      '"literal"',
      '42',
    ];
    for (const src of sources) {
      const e = compileExpression(src);
      const mine = await e.evaluate(data);
      const theirs = await jsonata(src).evaluate(data);
      // JSONata's sequences carry bookkeeping properties; compare the JSON a response would hold.
      assert.deepEqual(JSON.stringify(mine), JSON.stringify(theirs), src);
    }
    // The shortcut is synchronous where no array is met on the way, and hands over where one is.
    assert.equal(compileExpression('steps.user.body.id').evaluate(data), 'u1');
    assert.ok(compileExpression('steps.list.body.id').evaluate(data) instanceof Promise);
    assert.ok(compileExpression('$uppercase(request.method)').evaluate(data) instanceof Promise);
  });

  it('finds the steps an expression reads, however it is written', () => {
    const refs = (src: string) => {
      const r = compileExpression(src).refs;
      return r === 'all' ? 'all' : [...r].sort();
    };
    assert.deepEqual(refs('steps.user.body'), ['user']);
    assert.deepEqual(refs('$.steps.a.body & $$.steps.b.body'), ['a', 'b']);
    assert.deepEqual(refs('$steps.c.body'), ['c']);
    assert.deepEqual(refs('steps.list.body[id > steps.min.body.n].id'), ['list', 'min']);
    assert.deepEqual(refs('{"x": $map(steps.a.body, function($v) { $v + steps.b.body })}'), ['a', 'b']);
    assert.deepEqual(refs('request.steps.user'), [], 'a field named steps elsewhere in a path is not a reference');
    assert.equal(refs('$keys(steps)'), 'all');
    assert.equal(refs('$lookup(steps, "a")'), 'all');
    assert.equal(refs('steps.*.status'), 'all');
  });

  it('refuses $eval and reports JSONata syntax errors with a position', () => {
    assert.throws(() => compileExpression('$eval("1+1")'), /may not call \$eval/);
    assert.throws(() => compileExpression('$map([1], $eval)'), /may not call \$eval/);
    try {
      compileExpression('request.(');
      assert.fail('should not compile');
    } catch (e) {
      assert.ok(e instanceof ExpressionError);
      assert.match(e.message, /not a valid JSONata expression/);
      assert.equal(typeof e.position, 'number');
    }
  });

  it('stops a runaway expression by its guardrails instead of hanging', async () => {
    await assert.rejects(async () => compileExpression('($f := function($n) { $f($n + 1) + 1 }; $f(0))').evaluate({}), /stack|depth|deep/i);
    await assert.rejects(async () => compileExpression('[1..1000000]').evaluate({}), /sequence|exceed/i);
  });

  it('applies JSONata truthiness to conditions', () => {
    for (const v of [true, 1, 'x', [0, 1], { a: 1 }, [true]]) assert.equal(truthy(v), true, JSON.stringify(v));
    for (const v of [false, 0, '', [], {}, null, undefined, [0], [false, '']]) assert.equal(truthy(v), false, JSON.stringify(v));
  });
});

describe('templates', () => {
  const render = async (src: string, encode = (s: string) => s) => renderTemplate(compileTemplate(src), data, encode);

  it('interpolates expressions, with {{ and }} for literal braces', async () => {
    assert.equal(await render('/users/{request.identity.claims.sub}/x'), '/users/u1/x');
    assert.equal(await render('{{"literal": {request.method}}}'), '{"literal": GET}');
    assert.equal(await render('{steps.user.body.zero} and {steps.user.body.nested.deep} and {steps.user.body.f}'), '0 and [1,2] and false');
    assert.equal(await render('no expressions'), 'no expressions');
  });

  it('skips braces inside string literals and nested object constructors of an expression', async () => {
    assert.equal(await render('a{"}"}b'), 'a}b');
    assert.equal(await render("x{ {'k': '{'}.k }y"), 'x{y');
    assert.equal(await render('{$string({"n": 1})}'), '{"n":1}');
  });

  it('is undefined when it is one expression that yields nothing, so the parameter is left out', async () => {
    assert.equal(await render('{steps.user.body.missing}'), undefined);
    assert.equal(await render('x{steps.user.body.missing}'), 'x');
  });

  it('encodes each value (not the literal text) with the given encoder', async () => {
    assert.equal(await render('/a b/{request.query.one}', (s) => `<${s}>`), '/a b/<x>');
  });

  it('fails clearly on unbalanced or empty braces', () => {
    assert.throws(() => compileTemplate('/users/{request.id'), /unclosed \{ at 7; write \{\{ for a literal brace/);
    assert.throws(() => compileTemplate('/users/}'), /unmatched \} at 7; write \}\} for a literal brace/);
    assert.throws(() => compileTemplate('/users/{ }'), /empty \{\}/);
    assert.throws(() => compileTemplate('/users/{request.}'), /part \{request\.\} is not a valid JSONata expression/);
  });
});
