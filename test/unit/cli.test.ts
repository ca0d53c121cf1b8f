// The `portico` command's conventions, as a user meets them: bare `portico` and --help explain and
// start nothing, --version, per-command help, errors as one plain line with exit status 1 (diff's
// "differences found" is 2: test/admin/declarative.test.ts), a busy port or data directory named
// with the setting that moves it, and the Envoy bootstrap renderer refusing to run without its node id.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, serveListenEnv } from '../support/components.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/portico');
const VERSION = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;

function portico(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, PORTICO_TOKEN: '', ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One line on stderr, prefixed, without a stack trace or a library's raw error code. */
function assertPlainError(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, /^portico: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at |EADDRINUSE|No address added|Error:/);
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

describe('portico command line', () => {
  it('prints help for bare portico, --help and -h, and starts nothing', () => {
    for (const args of [[], ['--help'], ['-h'], ['help']]) {
      const r = portico(args, { PORTICO_ADMIN_ADDR: '127.0.0.1:1' });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^usage: portico <command>/);
      for (const c of ['serve', 'demo', 'apply', 'diff', 'export', 'translate', 'migrate', 'certs']) assert.match(r.stdout, new RegExp(`\\n  ${c}\\b`));
      assert.match(r.stdout, /exit status: 0 success, 1 error, 2 differences found \(diff only\)/);
      assert.equal(r.stderr, '', 'no admin token printed, nothing started');
    }
  });

  it('prints the version', () => {
    for (const args of [['--version'], ['-V'], ['version']]) {
      const r = portico(args);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `portico ${VERSION}\n`);
    }
  });

  it("prints one command's help with --help, -h or `help <command>`", () => {
    for (const args of [
      ['apply', '--help'],
      ['apply', '-h'],
      ['help', 'apply'],
    ]) {
      const r = portico(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^usage: portico apply -f FILE \[--prune\]/);
      assert.match(r.stdout, /Nothing the file leaves out is deleted unless --prune/);
    }
    assert.match(portico(['diff', '--help']).stdout, /Exit status: 0 no differences, 2 differences found, 1 error/);
    assert.match(portico(['serve', '--help']).stdout, /^usage: portico serve/);
    assert.match(portico(['demo', '-h']).stdout, /--reset/);
    assert.match(portico(['demo', '-h']).stdout, /\.data\/demo-credentials\.env \(mode 0600/, 'names the file the demo really writes');
    assert.match(portico(['certs', '--help']).stdout, /^usage: portico certs ca/);
  });

  it('reports usage mistakes in one line, naming the help to read, with exit status 1', () => {
    assertPlainError(portico(['bogus']), /unknown command 'bogus' \(see 'portico --help'\)/);
    assertPlainError(portico(['--bogus']), /unknown option '--bogus'/);
    assertPlainError(portico(['apply', '--bogus']), /unknown option '--bogus' \(see 'portico apply --help'\)/);
    assertPlainError(portico(['diff']), /-f FILE is required \(see 'portico diff --help'\)/);
    assertPlainError(portico(['diff', '-f', '/nonexistent/model.yaml']), /cannot read \/nonexistent\/model\.yaml: no such file/);
    assertPlainError(portico(['export']), /set PORTICO_TOKEN/);
    assertPlainError(portico(['help', 'bogus']), /unknown command 'bogus'/);
  });

  it('says that nothing answers when no Portico runs at PORTICO_URL', async () => {
    const port = await freePort();
    const r = portico(['export'], { PORTICO_TOKEN: 'pta_x', PORTICO_URL: `http://127.0.0.1:${port}` });
    assertPlainError(r, new RegExp(`nothing answers at http://127\\.0\\.0\\.1:${port}: is Portico running\\?`));
  });

  it('names a port in use and the setting that moves it, instead of a socket error', async () => {
    const [busy, admin, grpc, callouts] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const blocker = await listenOn(busy);
    try {
      const base = {
        ...(await serveListenEnv()),
        PORTICO_DATA_DIR: 'memory://cli-test',
        PORTICO_LOG_LEVEL: 'silent',
        PORTICO_ADMIN_ADDR: `127.0.0.1:${admin}`,
        PORTICO_GRPC_ADDR: `127.0.0.1:${grpc}`,
        PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${callouts}`,
      };
      for (const [setting, what] of [
        ['PORTICO_FLOWS_LISTEN_ADDR', 'the flow runtime'],
        ['PORTICO_GRPC_ADDR', 'gRPC for xDS'],
        ['PORTICO_CALLOUT_LISTEN_ADDR', 'the callouts'],
        ['PORTICO_ADMIN_ADDR', 'the admin API'],
      ] as const) {
        const r = portico(['serve'], { ...base, [setting]: `127.0.0.1:${busy}` });
        assertPlainError(r, new RegExp(`port ${busy} \\(${what}\\) is in use: is another Portico running\\? Stop it or set ${setting}$`));
        assert.doesNotMatch(r.stderr, /admin token/, 'a start that fails creates no admin token');
      }
    } finally {
      blocker.close();
    }
  });

  it('refuses a second Portico on the same data directory', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-lock-'));
    const { openEmbeddedDatabase } = await import('../../src/store/embedded.ts');
    const first = await openEmbeddedDatabase(dir);
    try {
      await assert.rejects(openEmbeddedDatabase(dir), /the data directory .* is in use by another Portico \(pid \d+\): stop it, or set PORTICO_DATA_DIR/);
    } finally {
      await first.close();
    }
    const again = await openEmbeddedDatabase(dir);
    await again.close();
  });

  it('the bootstrap renderer warns without a node id and gateway group, and --strict refuses', () => {
    const render = (args: string[], env: NodeJS.ProcessEnv) => {
      const clean = { ...process.env, ENVOY_NODE_ID: '', ENVOY_GATEWAY_GROUP: '', ...env };
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/xds/bootstrap.ts'), ...args], { encoding: 'utf8', env: clean, cwd: ROOT, timeout: 120_000 });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const warned = render(['edge'], {});
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /warning: ENVOY_NODE_ID is not set: the bootstrap has no node id; set it, or start Envoy with --service-node <id>/);
    assert.match(warned.stderr, /warning: ENVOY_GATEWAY_GROUP is not set/);
    assert.equal(JSON.parse(warned.stdout).node.id, undefined);
    const strict = render(['edge', '--strict'], {});
    assert.equal(strict.code, 1);
    assert.equal(strict.stdout, '');
    assert.match(strict.stderr, /^bootstrap: ENVOY_NODE_ID is not set/);
    const ok = render(['edge', '--strict'], { ENVOY_NODE_ID: 'edge-1', ENVOY_GATEWAY_GROUP: 'public' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stderr, '');
    assert.deepEqual([JSON.parse(ok.stdout).node.id, JSON.parse(ok.stdout).node.cluster], ['edge-1', 'public']);
    const bad = render(['edge'], { ENVOY_NODE_ID: 'edge-1', ENVOY_GATEWAY_GROUP: 'public', ENVOY_ADMIN_PORT: 'x' });
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "bootstrap: ENVOY_ADMIN_PORT must be a positive integer, got 'x'\n");
    assert.equal(render(['bogus'], {}).code, 1);
  });

  it('in production runs the compiled build, with a small young generation only in the xds role and a fixed malloc trim threshold in every role', () => {
    // A stand-in compiled build beside a copy of bin/portico: it prints the flags node got.
    const root = mkdtempSync(path.join(os.tmpdir(), 'portico-bin-'));
    mkdirSync(path.join(root, 'bin'));
    mkdirSync(path.join(root, 'dist'));
    copyFileSync(BIN, path.join(root, 'bin/portico'));
    writeFileSync(path.join(root, 'dist/cli.js'), 'console.log(JSON.stringify({ flags: process.execArgv, args: process.argv.slice(2), trim: process.env.MALLOC_TRIM_THRESHOLD_ }));\n');
    const run = (env: NodeJS.ProcessEnv) => {
      const base = { ...process.env };
      delete base.MALLOC_TRIM_THRESHOLD_;
      const r = spawnSync(path.join(root, 'bin/portico'), ['serve'], { encoding: 'utf8', env: { ...base, NODE_ENV: 'production', PORTICO_ROLE: '', PORTICO_NODE_FLAGS: '', ...env } });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { flags: string[]; args: string[]; trim?: string };
    };
    // Roles that answer requests (all: flows, callouts, idempotency) keep V8's default young generation.
    assert.deepEqual(run({}), { flags: ['--expose-gc'], args: ['serve'], trim: '131072' });
    assert.equal(run({ PORTICO_ROLE: 'xds' }).trim, '131072');
    // An operator's own malloc setting wins.
    assert.equal(run({ MALLOC_TRIM_THRESHOLD_: '1048576' }).trim, '1048576');
    assert.deepEqual(run({ PORTICO_ROLE: 'flows' }).flags, ['--expose-gc']);
    assert.deepEqual(run({ PORTICO_ROLE: 'xds' }).flags, ['--expose-gc', '--max-semi-space-size=4']);
    // PORTICO_NODE_FLAGS comes last, so an operator's size wins.
    assert.deepEqual(run({ PORTICO_ROLE: 'xds', PORTICO_NODE_FLAGS: '--max-semi-space-size=16' }).flags, ['--expose-gc', '--max-semi-space-size=4', '--max-semi-space-size=16']);
    rmSync(path.join(root, 'dist/cli.js'));
    const none = spawnSync(path.join(root, 'bin/portico'), ['serve'], { encoding: 'utf8', env: { ...process.env, NODE_ENV: 'production' } });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /dist\/cli\.js is missing: run `npm run build`/);
    rmSync(root, { recursive: true, force: true });
  });
});
