// The demo across restarts, as a user lives it: the model and the credentials stay in the data
// directory (the credentials in a 0600 file, shown again on start), the same admin token and API key
// keep working, Envoy's access log goes to a file instead of the terminal, and --reset starts over.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../support/components.ts';
import { demoPorts, startDemo, type DemoRun } from '../support/demo.ts';

async function status(url: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<number> {
  return (await fetch(url, { ...init, headers })).status;
}

describe('portico demo across restarts', () => {
  it('keeps the model and credentials, logs requests to a file, and --reset starts over', { timeout: 900_000 }, async (t) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portico-demo-'));
    const ports = await demoPorts();
    let demo: DemoRun | undefined = await startDemo(t, dataDir, ports);
    if (!demo) return;
    try {
      const first = demo.credentials();
      const file = path.join(dataDir, 'demo-credentials.env');
      assert.equal(statSync(file).mode & 0o777, 0o600, 'the credentials file is readable by its owner only');
      assert.match(first.PORTICO_TOKEN!, /^demo-/);
      assert.match(first.DEMO_API_KEY!, /^ptk_/);
      assert.equal(first.PORTICO_URL, demo.adminUrl);
      assert.match(demo.banner, /first start: examples\/gateway\.yaml applied/);
      assert.ok(demo.banner.includes(`PORTICO_TOKEN=${first.PORTICO_TOKEN}`), 'the banner shows the admin token');
      assert.ok(demo.banner.includes(`DEMO_API_KEY=${first.DEMO_API_KEY}`), 'the banner shows the API key');
      assert.match(demo.banner, /A 429: .*\n\s+for i in \$\(seq 12\); do curl .* -X POST localhost:\d+\/api\/auth\/login; done; echo/);

      const admin = { authorization: `Bearer ${first.PORTICO_TOKEN}` };
      const key = { 'x-api-key': first.DEMO_API_KEY! };
      assert.equal(await status(`${demo.gateway}/api/users/usr_8a3f`, key), 200);
      assert.equal(await status(`${demo.gateway}/api/orders/ord_x7k9`, { authorization: `Bearer ${first.DEMO_JWT}` }), 200);
      // Something the user builds: it must survive the restart.
      const created = await fetch(`${demo.adminUrl}/api/v1/services`, {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'mine', endpoints: [{ host: '127.0.0.1', port: 3999 }] }),
      });
      assert.equal(created.status, 201, await created.text());

      // Requests are logged to .data/envoy-access.log, not to the terminal.
      const accessLog = path.join(dataDir, 'envoy-access.log');
      await waitFor('access log lines in the file', () => (readFileSync(accessLog, 'utf8').includes('/api/users/usr_8a3f') ? true : undefined), 60_000, 250);
      assert.doesNotMatch(demo.proc.output(), /usr_8a3f"|"response_code"|"path":/, 'no access-log line in the terminal');

      await demo.stop();
      assert.equal(demo.proc.child.exitCode, 0, demo.proc.output().slice(-2000));

      demo = await startDemo(t, dataDir, ports);
      assert.ok(demo);
      const second = demo.credentials();
      assert.equal(second.PORTICO_TOKEN, first.PORTICO_TOKEN, 'the same admin token');
      assert.equal(second.DEMO_API_KEY, first.DEMO_API_KEY, 'the same API key');
      assert.match(demo.banner, /model and credentials kept in .*; --reset starts over/);
      assert.ok(demo.banner.includes(`PORTICO_TOKEN=${first.PORTICO_TOKEN}`), 'shown again on start');
      assert.equal(await status(`${demo.gateway}/api/users/usr_8a3f`, key), 200, 'the old API key still works');
      assert.equal(await status(`${demo.adminUrl}/api/v1/services/mine`, admin), 200, 'the old admin token works, and the model kept what the user made');
      assert.equal(await status(`${demo.adminUrl}/api/v1/services/mine`, { authorization: 'Bearer demo-wrong' }), 401);
      assert.equal(await status(`${demo.gateway}/api/users/usr_8a3f`, { 'x-api-key': `${first.DEMO_API_KEY}x` }), 401);

      // A second demo on the same data directory is refused in one sentence (the first keeps running).
      const second2 = await import('node:child_process').then(({ spawnSync }) =>
        spawnSync(path.resolve(import.meta.dirname, '../../bin/portico'), ['demo'], { env: demo!.env, encoding: 'utf8', timeout: 120_000 }),
      );
      assert.equal(second2.status, 1, second2.stderr);
      assert.equal(second2.stderr, `portico: a Portico demo (pid ${demo.proc.child.pid}) is already running on ${dataDir}: stop it, or set PORTICO_DATA_DIR to another directory\n`);
      assert.equal(await status(`${demo.gateway}/api/users/usr_8a3f`, key), 200, 'the running demo is unharmed');

      await demo.stop();
      demo = await startDemo(t, dataDir, ports, ['--reset']);
      assert.ok(demo);
      const third = demo.credentials();
      assert.notEqual(third.PORTICO_TOKEN, first.PORTICO_TOKEN, '--reset mints a new admin token');
      assert.notEqual(third.DEMO_API_KEY, first.DEMO_API_KEY);
      assert.match(demo.banner, /first start/);
      assert.equal(await status(`${demo.adminUrl}/api/v1/services/mine`, admin), 401, 'the old token is gone');
      assert.equal(await status(`${demo.adminUrl}/api/v1/services/mine`, { authorization: `Bearer ${third.PORTICO_TOKEN}` }), 404, 'the model started over');
      assert.equal(await status(`${demo.gateway}/api/users/usr_8a3f`, key), 401, 'the old API key is gone');
    } finally {
      await demo?.stop();
    }
  });
});
