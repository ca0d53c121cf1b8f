// The test command's reporter (test/support/reporter.mjs), on a passing and a failing file written
// here: a progress line per file, each failure as it happens and again at the end with its error,
// and the runner's totals last, where CI reads them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const REPORTER = path.resolve(import.meta.dirname, '../support/reporter.mjs');

describe('test reporter', () => {
  it('prints progress per file, the failures with their errors, and the totals', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-reporter-'));
    writeFileSync(path.join(dir, 'a.test.mjs'), "import { it } from 'node:test';\nit('adds', () => {});\nit('is skipped', { skip: 'not today' }, () => {});\n");
    writeFileSync(
      path.join(dir, 'b.test.mjs'),
      "import { describe, it } from 'node:test';\nimport assert from 'node:assert/strict';\ndescribe('math', () => {\n  it('passes', () => {});\n  it('fails', () => assert.equal(1 + 1, 3, 'one and one'));\n});\n",
    );
    // Without NODE_TEST_CONTEXT (set for this file's own process), the child is a runner of its own.
    const env: NodeJS.ProcessEnv = { ...process.env, PORTICO_TEST_FILE_COUNT: '2' };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(
      process.execPath,
      ['--test', `--test-reporter=${REPORTER}`, '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${path.join(dir, 'out.tap')}`, 'a.test.mjs', 'b.test.mjs'],
      { cwd: dir, encoding: 'utf8', env, timeout: 60_000 },
    );
    assert.equal(r.status, 1, 'a failing test fails the run');
    const lines = r.stdout.split('\n');
    assert.match(r.stdout, /^✔ \[1\/2\] a\.test\.mjs {2}1 passed, 1 skipped {2}\d+\.\ds$/m);
    assert.match(r.stdout, /^ {4}✖ math › fails: one and one$/m, 'the failure as it happens');
    assert.match(r.stdout, /^✖ \[2\/2\] b\.test\.mjs {2}1 failed, 1 passed {2}\d+\.\ds$/m);
    assert.match(r.stdout, /^1 failing test:$/m);
    assert.match(r.stdout, /^not ok 1 - b\.test\.mjs:5: math › fails\n {4}one and one\n/m, 'at the end, with where and why');
    const totals = lines.filter((l) => l.startsWith('# '));
    assert.deepEqual(
      totals.map((l) => l.split(' ')[1]),
      ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo', 'duration_ms'],
    );
    assert.ok(r.stdout.trimEnd().endsWith(totals.at(-1)!), 'the totals come last');
    assert.ok(lines.includes('# fail 1') && lines.includes('# pass 2'), r.stdout);
    assert.doesNotMatch(r.stdout, /TAP version|duration_ms: /, 'no raw TAP on the terminal');
    assert.match(readFileSync(path.join(dir, 'out.tap'), 'utf8'), /^\s*not ok \d+ - fails\n[\s\S]*2 !== 3/m, 'the full TAP goes to the file');
  });

  it('names the line of a failing TypeScript test run through tsx, not a line of the compiled code', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-reporter-ts-'));
    // Types and blank lines that the compiled code does not keep: its line numbers differ from these.
    writeFileSync(
      path.join(dir, 'c.test.ts'),
      "import { it } from 'node:test';\nimport assert from 'node:assert/strict';\n\ntype Pair = { a: number; b: number };\n\nit('sums', () => {\n  const p: Pair = { a: 1, b: 1 };\n  assert.equal(p.a + p.b, 3, 'one and one');\n});\n",
    );
    const env: NodeJS.ProcessEnv = { ...process.env, PORTICO_TEST_FILE_COUNT: '1' };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), '--test', `--test-reporter=${REPORTER}`, '--test-reporter-destination=stdout', 'c.test.ts'], {
      cwd: dir,
      encoding: 'utf8',
      env,
      timeout: 60_000,
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^not ok 1 - c\.test\.ts:8: sums\n {4}one and one\n/m, r.stdout);
  });
});
