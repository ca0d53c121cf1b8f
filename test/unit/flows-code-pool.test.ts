// Code steps on worker threads: a step spinning to its CPU limit holds a worker, not the event
// loop (timers, other flows and other code steps go on); a worker that outlives a run's limit is
// terminated and replaced; a pool that cannot start a worker fails its runs at once, never hangs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { CodeSandbox } from '../../src/flows/code.ts';
import { CodePool } from '../../src/flows/code-pool.ts';
import { runFlow, type CompiledFlow } from '../../src/flows/index.ts';
import { checkFlow } from '../support/flows.ts';
import { json, memoryIO } from '../../src/flows/fixtures.ts';

// Runs that must finish get a limit no busy machine reaches; worker start-up (tsx and QuickJS in a
// new thread) takes seconds on a loaded host, so every test has its own bound well under the runner's.
const limits = { timeMs: 5000, memoryBytes: 16 << 20, maxOutputBytes: 1 << 20 };
const BOUND = { timeout: 90_000 };

describe('code pool', () => {
  let sandbox: CodeSandbox;
  const pools: CodePool[] = [];
  const pool = (opts: ConstructorParameters<typeof CodePool>[0]): CodePool => {
    const p = new CodePool(opts);
    pools.push(p);
    return p;
  };
  before(async () => {
    sandbox = await CodeSandbox.create();
  });
  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });
  const compile = (yaml: string): CompiledFlow => {
    const r = checkFlow(parseYaml(yaml), { checkCode: (s) => sandbox.check(s) });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.flow;
  };

  it('runs code on a worker thread (under tsx here; dist/ starts code-worker.js)', BOUND, async () => {
    const p = pool({ size: 2 });
    assert.deepEqual(await p.run('return input.n * 2', '{"n": 21}', limits), { ok: true, value: 42 });
    assert.deepEqual(await p.run('throw new TypeError("bad input")', '{}', limits), { ok: false, kind: 'error', message: 'TypeError: bad input' });
    assert.equal(p.stats().workers, 1, 'one run at a time needs one worker');
  });

  it('while a code step spins, timers fire and other flows (calls and code) are served', BOUND, async () => {
    const p = pool({ size: 2 });
    await Promise.all([p.run('return 1', 'null', limits), p.run('return 2', 'null', limits)]); // both workers started
    const events: string[] = [];
    const spinning = p.run('while (true) {}', 'null', limits).then((r) => {
      events.push('spin ended');
      return r;
    });
    setTimeout(() => events.push('timer'), 1);
    const other = compile(`
steps:
  - { name: user, call: { service: users, path: /u } }
  - { name: double, code: { source: 'return input.steps.user.body.n * 2', timeMs: 1000 } }
  - { name: reply, respond: { body: steps.double.body } }
`);
    const io = memoryIO({ users: () => new Promise((r) => setTimeout(() => r(json({ n: 21 })), 10)) }, { sandbox: p });
    const served = await runFlow(other, { method: 'GET', path: '/x', headers: {} }, io);
    events.push('other flow served');
    assert.equal(served.status, 200);
    assert.equal(served.body, '42');
    const spun = await spinning;
    assert.equal(spun.ok, false);
    assert.match((spun as { message: string }).message, /ran past its 5000 ms CPU limit/);
    assert.deepEqual(events, ['timer', 'other flow served', 'spin ended']);
  });

  it('in process, by contrast, a spinning step holds the event loop until its limit', BOUND, async () => {
    const events: string[] = [];
    setTimeout(() => events.push('timer'), 1);
    sandbox.run('while (true) {}', 'null', { ...limits, timeMs: 200 });
    events.push('spin ended');
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(events, ['spin ended', 'timer']);
  });

  it("a flow's spinning code step gives the flow its step failure", BOUND, async () => {
    const p = pool({ size: 1 });
    const flow = compile(`
steps:
  - { name: spin, code: { source: 'while (true) {}', timeMs: 50 } }
`);
    const r = await runFlow(flow, { method: 'GET', path: '/x', headers: {} }, memoryIO({}, { sandbox: p }));
    assert.equal(r.status, 500);
    assert.equal(JSON.parse(r.body).step, 'spin');
    assert.match(JSON.parse(r.body).message, /^Step spin failed: code ran past its 50 ms CPU limit/);
  });

  it('the watchdog terminates a worker that outlives its allowance and starts a replacement', BOUND, async () => {
    const reasons: string[] = [];
    // An allowance far below the run's own limit: from the watchdog's side the worker is stuck.
    const p = pool({ size: 1, watchdogMs: (t) => (t === 600_000 ? 200 : t + 60_000), onReplace: (r) => reasons.push(r) });
    assert.deepEqual(await p.run('return 1', 'null', limits), { ok: true, value: 1 });
    const stuck = await p.run('while (true) {}', 'null', { ...limits, timeMs: 600_000 });
    assert.deepEqual(stuck, { ok: false, kind: 'timeout', message: 'ran past its 600000 ms CPU limit (its worker was stopped)' });
    assert.equal(p.stats().replaced, 1);
    assert.equal(reasons.length, 1);
    assert.match(reasons[0]!, /held its worker past 200 ms/);
    // The replacement serves the next run (the watchdog's allowance is per run).
    assert.deepEqual(await p.run('return input.n * 2', '{"n": 4}', limits), { ok: true, value: 8 });
    assert.equal(p.stats().workers, 1);
  });

  it('a run waiting for a busy worker is dropped when its flow stops waiting', BOUND, async () => {
    const p = pool({ size: 1, watchdogMs: () => 60_000 });
    await p.run('return 0', 'null', limits); // the worker is up
    const spinning = p.run('while (true) {}', 'null', { ...limits, timeMs: 1000 });
    const gone = new AbortController();
    const waiting = p.run('return 1', 'null', limits, gone.signal);
    assert.equal(p.stats().queued, 1);
    gone.abort();
    assert.deepEqual(await waiting, { ok: false, kind: 'error', message: 'the flow no longer waits for this step' });
    assert.equal(p.stats().queued, 0);
    assert.equal((await spinning).ok, false);
  });

  it('a worker that cannot start fails the runs waiting for it at once, without retrying in a loop', BOUND, async () => {
    const p = pool({ size: 2, startMs: 1 });
    const r = await p.run('return 1', 'null', limits);
    assert.equal(r.ok, false);
    assert.match((r as { message: string }).message, /^the code sandbox could not start: a code worker did not start within 1 ms/);
    assert.equal(p.stats().workers, 0);
    assert.equal(p.stats().replaced, 0);
  });
});
