// The code step: JavaScript in QuickJS (WebAssembly) with CPU-time and memory limits, no host
// access, no state carried from one run to the next; a runaway step is stopped and the next runs.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { CodeSandbox } from '../../src/flows/code.ts';
import { runFlow, INCOMPLETE_HEADER, type CompiledFlow } from '../../src/flows/index.ts';
import { checkFlow } from '../support/flows.ts';
import { json, memoryIO, SEED_ORDERS } from '../../src/flows/fixtures.ts';

// Runs that must finish get a limit no busy machine reaches (the limit is measured on the wall
// clock, so a preempted run spends it waiting); only runs that must be stopped get a small one.
const limits = { timeMs: 5000, memoryBytes: 16 << 20, maxOutputBytes: 1 << 20 };
const spin = { ...limits, timeMs: 50 };

describe('code sandbox', () => {
  let sandbox: CodeSandbox;
  before(async () => {
    sandbox = await CodeSandbox.create();
  });

  it('runs a function of its JSON input and returns JSON', () => {
    const r = sandbox.run('return { total: input.orders.reduce((a, o) => a + o.total, 0), n: input.orders.length }', JSON.stringify({ orders: SEED_ORDERS }), limits);
    assert.deepEqual(r, { ok: true, value: { total: 213.48, n: 3 } });
    assert.deepEqual(sandbox.run('return undefined', '{}', limits), { ok: true, value: null });
  });

  it('stops an endless loop at its CPU limit, and the next run works', () => {
    const stopped = sandbox.run('while (true) {}', '{}', spin);
    assert.deepEqual(stopped, { ok: false, kind: 'timeout', message: 'ran past its 50 ms CPU limit' });
    // The same source again (its runtime was replaced), and another one.
    assert.equal(sandbox.run('while (true) {}', '{}', spin).ok, false);
    assert.deepEqual(sandbox.run('return input.n * 2', '{"n": 21}', limits), { ok: true, value: 42 });
  });

  it('stops a run that goes over its memory limit, and the next run works', async () => {
    const tight = { ...limits, memoryBytes: 8 << 20 };
    const over = { ok: false, kind: 'memory', message: 'went over its 8 MiB memory limit' };
    // Large buffers, many small objects, and one allocation past the instance's hard ceiling.
    assert.deepEqual(sandbox.run('const parts = []; for (let i = 0; i < 64; i++) parts.push(new Uint8Array(1 << 20)); return parts.length', '{}', tight), over);
    // Once the fresh instance is in place, the first run's growth is not the next one's allowance.
    await sandbox.settled();
    assert.deepEqual(sandbox.run('const parts = []; for (let i = 0; i < 64; i++) parts.push(new Uint8Array(1 << 20)); return parts.length', '{}', tight), over);
    assert.deepEqual(sandbox.run('const all = []; for (;;) all.push({ n: all.length })', '{}', tight), over);
    assert.deepEqual(sandbox.run('return new Uint8Array(1024 * 1024 * 1024).length', '{}', tight), over);
    assert.deepEqual(sandbox.run('return 1', '{}', limits), { ok: true, value: 1 });
    // Within its limit a run is fine.
    assert.deepEqual(sandbox.run('return new Uint8Array(1 << 20).length', '{}', tight), { ok: true, value: 1 << 20 });
  });

  it('turns a stack overflow and a thrown error into errors', () => {
    const deep = sandbox.run('function f(n) { return f(n + 1) + 1 } return f(0)', '{}', limits);
    assert.equal(deep.ok, false);
    assert.match(!deep.ok ? deep.message : '', /stack overflow/);
    assert.deepEqual(sandbox.run('throw new TypeError("bad input")', '{}', limits), { ok: false, kind: 'error', message: 'TypeError: bad input' });
  });

  it('gives the code no host: no require, process, fetch, timers or file access', () => {
    const r = sandbox.run('return [typeof require, typeof process, typeof fetch, typeof setTimeout, typeof std, typeof os, typeof globalThis.__input]', '{}', limits);
    assert.deepEqual(r, { ok: true, value: ['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined'] });
  });

  it('carries no state from one run to the next: globals and built-ins are frozen', () => {
    const src = 'try { globalThis.seen = input.who } catch (e) { } try { Array.prototype.leak = input.who } catch (e) { } return [globalThis.seen, [].leak]';
    assert.deepEqual(sandbox.run(src, '{"who": "first caller"}', limits), { ok: true, value: [null, null] });
    assert.deepEqual(sandbox.run(src, '{"who": "second caller"}', limits), { ok: true, value: [null, null] });
  });

  it('refuses output larger than its limit', () => {
    const r = sandbox.run('return "x".repeat(2000)', '{}', { ...limits, maxOutputBytes: 1000 });
    assert.deepEqual(r, { ok: false, kind: 'memory', message: 'returned more than 1000 bytes' });
  });

  it('names the syntax error of source that does not compile', () => {
    assert.equal(sandbox.check('return 1'), undefined);
    assert.match(sandbox.check('return )') ?? '', /SyntaxError/);
  });
});

describe('code sandbox without a spare (the write-time check)', () => {
  it('checks code, and a run over its memory limit is followed by a fresh instance, loaded then', async () => {
    const sandbox = await CodeSandbox.create({ spare: false });
    assert.equal(sandbox.check('return 1'), undefined);
    assert.match(sandbox.check('return )') ?? '', /SyntaxError/);
    const tight = { ...limits, memoryBytes: 8 << 20 };
    assert.equal(sandbox.run('const parts = []; for (let i = 0; i < 64; i++) parts.push(new Uint8Array(1 << 20)); return parts.length', '{}', tight).ok, false);
    await sandbox.settled();
    assert.deepEqual(sandbox.run('return input.n * 2', '{"n": 21}', limits), { ok: true, value: 42 });
    assert.equal(sandbox.check('return 2'), undefined);
  });
});

describe('code steps in flows', () => {
  let sandbox: CodeSandbox;
  before(async () => {
    sandbox = await CodeSandbox.create();
  });
  const compile = (yaml: string): CompiledFlow => {
    const r = checkFlow(parseYaml(yaml), { checkCode: (s) => sandbox.check(s) });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.flow;
  };

  it('computes from earlier steps and the request', async () => {
    const flow = compile(`
steps:
  - { name: orders, call: { service: orders, path: /orders } }
  - name: summary
    code:
      timeMs: 1000
      source: |
        const spent = input.steps.orders.body.reduce((a, o) => a + o.total, 0);
        return { who: input.request.identity.partner, spent: Math.round(spent * 100) / 100 };
  - { name: reply, respond: { body: steps.summary.body } }
`);
    const r = await runFlow(flow, { method: 'GET', path: '/x', headers: {}, identity: { partner: 'team-a' } }, memoryIO({ orders: () => json(SEED_ORDERS) }, { sandbox }));
    assert.deepEqual(JSON.parse(r.body), { who: 'team-a', spent: 213.48 });
  });

  it('a code step that loops forever is stopped by its limit (500 under fail, fallback under continue), and the next request is served', async () => {
    const failing = compile(`
steps:
  - { name: spin, code: { source: 'while (true) {}', timeMs: 20 } }
`);
    const r = await runFlow(failing, { method: 'GET', path: '/x', headers: {} }, memoryIO({}, { sandbox }));
    assert.equal(r.status, 500);
    assert.deepEqual(JSON.parse(r.body), { error: 'flow_step_error', message: 'Step spin failed: code ran past its 20 ms CPU limit.', step: 'spin' });
    const tolerant = compile(`
steps:
  - { name: spin, code: { source: 'while (true) {}', timeMs: 20 }, onError: continue, fallback: { spun: false } }
  - { name: reply, respond: { body: '{"spin": steps.spin.body}' } }
`);
    const t = await runFlow(tolerant, { method: 'GET', path: '/x', headers: {} }, memoryIO({}, { sandbox }));
    assert.equal(t.status, 200);
    assert.deepEqual(JSON.parse(t.body), { spin: { spun: false } });
    assert.equal(t.headers[INCOMPLETE_HEADER], 'spin');
    const next = compile(`
steps:
  - { name: ok, code: { source: 'return input.request.method', input: '{"request": request}', timeMs: 1000 } }
`);
    const n = await runFlow(next, { method: 'DELETE', path: '/x', headers: {} }, memoryIO({}, { sandbox }));
    assert.equal(n.status, 200);
    assert.equal(n.body, 'DELETE');
  });

  it('a code step without a sandbox fails clearly', async () => {
    const flow = compile(`
steps:
  - { name: c, code: { source: 'return 1' } }
`);
    const r = await runFlow(flow, { method: 'GET', path: '/x', headers: {} }, memoryIO({}));
    assert.equal(r.status, 500);
    assert.match(JSON.parse(r.body).message, /no code sandbox/);
  });
});
