// The README's "Put your API behind Portico", run literally: every fenced block marked
// `walkthrough` (```sh walkthrough, or ```yaml walkthrough:FILE, saved as FILE) in order, in one
// bash session, against `portico demo` with a real Envoy, ending with a 200 and a 429 per style.
// The only edits are the demo's ports, moved into the test's range: localhost:10000 (the gateway)
// and port 3003 (the upstream) become the demo's PORTICO_DEMO_PORT_BASE block.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { demoPorts, startDemo } from '../support/demo.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

interface Block {
  lang: string;
  file?: string;
  body: string;
}

/** The marked blocks, in README order. */
function walkthroughBlocks(markdown: string): Block[] {
  const out: Block[] = [];
  for (const m of markdown.matchAll(/^```(\w+) walkthrough(?::(\S+))?\n([\s\S]*?)^```$/gm)) {
    out.push({ lang: m[1]!, ...(m[2] ? { file: m[2] } : {}), body: m[3]! });
  }
  return out;
}

describe('README walkthrough', () => {
  it('the quick start is exactly two commands', () => {
    const quick = /## Quick start\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(README);
    assert.ok(quick, 'a sh block under "Quick start"');
    assert.deepEqual(
      quick[1]!
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => l.split(/\s+#/)[0]!.trim()),
      ['npm run demo', 'npm test'],
    );
  });

  it('"Put your API behind Portico", both styles, against the demo: a 200, then a 429', { timeout: 900_000 }, async (t) => {
    const blocks = walkthroughBlocks(README);
    assert.ok(blocks.length >= 5, `marked blocks found: ${blocks.length}`);
    assert.ok(
      blocks.some((b) => b.file === 'inventory.yaml'),
      'the YAML file is one of them',
    );

    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portico-readme-'));
    const ports = await demoPorts();
    const demo = await startDemo(t, dataDir, ports);
    if (!demo) return;
    try {
      // The user's shell: at a checkout's root (bin/ and the demo's .data/ are where the README says).
      const work = mkdtempSync(path.join(os.tmpdir(), 'portico-readme-shell-'));
      symlinkSync(path.join(ROOT, 'bin'), path.join(work, 'bin'));
      symlinkSync(dataDir, path.join(work, '.data'));
      const movePorts = (text: string) =>
        text
          .replaceAll('localhost:10000', `localhost:${ports.portBase}`)
          .replaceAll('port: 3003', `port: ${ports.portBase + 4}`)
          .replaceAll('"port":3003', `"port":${ports.portBase + 4}`);
      // Not `set -e`: `portico diff` exits 2 when it finds differences, as the README's first use of
      // it does; what each command must produce is asserted below.
      const script: string[] = ['set -uo pipefail'];
      for (const b of blocks) {
        if (b.file) writeFileSync(path.join(work, b.file), movePorts(b.body));
        else script.push(movePorts(b.body));
      }
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? work, LANG: 'C.UTF-8' };
      const r = spawnSync('bash', ['-c', script.join('\n')], { cwd: work, env, encoding: 'utf8', timeout: 600_000 });
      const out = `${r.stdout}\n--- stderr ---\n${r.stderr}`;
      assert.equal(r.status, 0, out);

      // apply created the file's resources and deleted nothing.
      assert.match(r.stdout, /^\+ service inventory$/m, out);
      assert.match(r.stdout, /changed: \d+ created, 0 updated, 0 deleted, \d+ kept/, out);
      // The upstream answered through the gateway, for the partner the key belongs to.
      const answers = r.stdout.split('\n').filter((l) => l.startsWith('{"service":'));
      assert.equal(answers.length, 2, out);
      assert.match(answers[0]!, /"path":"\/inventory\/items\/42".*"x-portico-partner":"acme"/);
      assert.match(answers[1]!, /"path":"\/shipping\/rates\/eu".*"x-portico-partner":"globex"/);
      assert.match(r.stdout, /^401$/m, 'no credential: 401');
      // Each style's loop: the rest of the five a minute, then refusals.
      const loops = r.stdout.split('\n').filter((l) => /^((200|429) )+$/.test(l));
      assert.equal(loops.length, 2, out);
      for (const l of loops) assert.match(l, /^(200 )+(429 )+$/, `a 200 and then a 429: ${l}`);
      // And the 429 as the README shows it.
      assert.match(r.stdout, /^HTTP\/1\.1 429 Too Many Requests\r?$/m, out);
      assert.match(r.stdout, /^x-ratelimit-limit: 5\r?$/m);
      assert.match(r.stdout, /^x-ratelimit-remaining: 0\r?$/m);
      assert.match(r.stdout, /^\{"error":"rate_limit_exceeded","message":"Too many requests\. Retry after (1 second|\d+ seconds)\.","retry_after":\d+\}$/m);
    } finally {
      await demo.stop();
    }
  });
});
