// Declarative configuration end to end: apply the example file through the API and the CLI,
// export → apply → export byte-identical, dry runs, tag slices, and all-or-nothing failures.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { startPostgres, type PostgresServer } from '../support/components.ts';
import { startTestPortico, ADMIN_TOKEN, type TestPortico } from '../support/portico.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const EXAMPLE = readFileSync(path.join(ROOT, 'examples/gateway.yaml'), 'utf8');
const yaml = { 'content-type': 'application/yaml' };

async function cli(portico: TestPortico, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, PORTICO_URL: portico.adminUrl, PORTICO_TOKEN: ADMIN_TOKEN };
  try {
    const child = run(path.join(ROOT, 'bin/portico'), args, { env, maxBuffer: 64 * 1024 * 1024 });
    if (input !== undefined) {
      child.child.stdin!.end(input);
    }
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

for (const backend of ['pglite', 'postgresql'] as const) {
  describe(`declarative config on ${backend}`, () => {
    let pg: PostgresServer | undefined;
    let portico: TestPortico;

    before(async (t) => {
      if (backend === 'postgresql') {
        pg = await startPostgres(t as never);
        if (!pg) return;
      }
      portico = await startTestPortico(pg ? { databaseUrl: pg.url } : {});
    });
    after(async () => {
      await portico?.close();
      await pg?.stop();
    });

    it('applies the example, and applying it again changes nothing', async () => {
      const first = await portico.api.post('/api/v1/config', EXAMPLE, yaml);
      assert.equal(first.status, 200, first.text);
      assert.equal(first.body.changed, true);
      assert.equal(first.body.summary.delete, 0);
      assert.ok(first.body.summary.create >= 20);
      const revision = portico.store.current().revision;
      const again = await portico.api.post('/api/v1/config', EXAMPLE, yaml);
      assert.equal(again.body.changed, false);
      assert.deepEqual(again.body.changes, []);
      assert.equal(portico.store.current().revision, revision, 'an idempotent apply commits nothing');
    });

    it('exports, re-applies and re-exports byte-identically', async () => {
      const key = await portico.api.post('/api/v1/partners/web-app/api-keys', { name: 'svc', tags: ['rotating'] });
      assert.equal(key.status, 201);
      const export1 = await portico.api.get('/api/v1/config');
      assert.equal(export1.status, 200);
      assert.match(export1.headers.get('content-type') ?? '', /application\/yaml/);
      assert.ok(!export1.text.includes(key.body.key), 'the API key secret is never exported');
      const apply = await portico.api.post('/api/v1/config', export1.text, yaml);
      assert.equal(apply.status, 200, apply.text);
      assert.equal(apply.body.changed, false, JSON.stringify(apply.body.changes));
      const export2 = await portico.api.get('/api/v1/config');
      assert.equal(export2.text, export1.text);
      // JSON export describes the same model.
      const asJson = await portico.api.get('/api/v1/config?format=json');
      assert.deepEqual(asJson.body, YAML.parse(export1.text));
    });

    it('previews changes with a dry run and writes nothing', async () => {
      const doc = YAML.parse(EXAMPLE);
      doc.services.find((s: { name: string }) => s.name === 'orders').endpoints[0].port = 4002;
      doc.products = doc.products.filter((p: { name: string }) => p.name !== 'users');
      doc.partners[0].subscriptions = doc.partners[0].subscriptions.filter((s: { product: string }) => s.product !== 'users');
      const before = portico.store.current();
      // Without prune, what the document leaves out stays, and is listed as what a prune would delete.
      const keep = await portico.api.post('/api/v1/config?dryRun=true', YAML.stringify(doc), yaml);
      assert.equal(keep.status, 200, keep.text);
      assert.equal(keep.body.prune, false);
      assert.deepEqual(
        keep.body.changes.map((c: { action: string; kind: string; key: string }) => `${c.action} ${c.kind} ${c.key}`),
        ['update services orders'],
      );
      assert.deepEqual(keep.body.summary, { create: 0, update: 1, delete: 0 });
      const leftOut = keep.body.leftOut.map((c: { kind: string; key: string }) => `${c.kind} ${c.key}`);
      for (const k of ['products users', 'routes users/users', 'subscriptions web-app/users']) assert.ok(leftOut.includes(k), `${k} listed as left out: ${leftOut}`);
      const dry = await portico.api.post('/api/v1/config?dryRun=true&prune=true', YAML.stringify(doc), yaml);
      assert.equal(dry.status, 200, dry.text);
      assert.equal(dry.body.dryRun, true);
      assert.equal(dry.body.prune, true);
      assert.deepEqual(dry.body.leftOut, []);
      const summary = dry.body.changes.map((c: { action: string; kind: string; key: string }) => `${c.action} ${c.kind} ${c.key}`);
      assert.ok(summary.includes('update services orders'));
      assert.ok(summary.includes('delete products users'));
      assert.ok(summary.includes('delete routes users/users'), 'children of a removed product go too');
      assert.ok(summary.includes('delete subscriptions web-app/users'));
      const update = dry.body.changes.find((c: { kind: string; key: string }) => c.kind === 'services' && c.key === 'orders');
      assert.deepEqual(update.fields, [{ field: 'endpoints', before: [{ host: '127.0.0.1', port: 3002 }], after: [{ host: '127.0.0.1', port: 4002 }] }]);
      assert.equal(portico.store.current(), before, 'a dry run leaves the model untouched');
    });

    it('is all-or-nothing: one bad resource among many changes nothing', async () => {
      const exportBefore = (await portico.api.get('/api/v1/config')).text;
      const doc = YAML.parse(EXAMPLE);
      doc.services.push({ name: 'new-one', endpoints: [{ host: '10.1.1.1', port: 80 }] });
      doc.products[1].routes.push({ name: 'broken', match: { path: { type: 'prefix', value: '/broken' } }, service: 'missing-service' });
      const res = await portico.api.post('/api/v1/config', YAML.stringify(doc), yaml);
      assert.equal(res.status, 422);
      assert.match(res.body.detail, /route 'catalog\/broken': service refers to service 'missing-service'/);
      assert.equal((await portico.api.get('/api/v1/config')).text, exportBefore);

      const schemaBad = await portico.api.post('/api/v1/config', 'portico: v1\nservices:\n  - name: x\n    endpoints: [{host: 10.0.0.1, port: 0}]\n', yaml);
      assert.equal(schemaBad.status, 422);
      assert.deepEqual(schemaBad.body.errors, [{ field: 'services[0].endpoints[0].port', message: 'must be >= 1' }]);
      const syntax = await portico.api.post('/api/v1/config', 'portico: v1\nservices: [\n', yaml);
      assert.equal(syntax.status, 400);
      const unknownSection = await portico.api.post('/api/v1/config', 'portico: v1\nroutes: []\n', yaml);
      assert.equal(unknownSection.status, 422);
      assert.equal(unknownSection.body.errors[0].field, 'routes');
      const dup = await portico.api.post('/api/v1/config', 'portico: v1\npartners: [{name: a}, {name: a}]\n', yaml);
      assert.equal(dup.status, 422);
      assert.match(dup.body.errors[0].message, /appears twice/);
      assert.equal((await portico.api.get('/api/v1/config')).text, exportBefore);
    });

    it('limits an apply to one tag slice and leaves the rest alone', async () => {
      const doc = 'portico: v1\npartners:\n  - name: team-a-svc\n    tags: [team:a]\n  - name: team-a-batch\n    tags: [team:a]\n';
      const a = await portico.api.post('/api/v1/config?tag=team:a', doc, yaml);
      assert.equal(a.status, 200, a.text);
      assert.equal(a.body.summary.create, 2);
      assert.equal(a.body.summary.delete, 0, 'resources outside the slice are not deleted');
      assert.ok(portico.store.current().products.has('orders'));
      const partial = await portico.api.post('/api/v1/config?tag=team:a', 'portico: v1\npartners:\n  - name: team-a-svc\n    tags: [team:a]\n', yaml);
      assert.equal(partial.body.changed, false, 'without prune, the partner the file leaves out stays');
      assert.deepEqual(partial.body.leftOut, [{ kind: 'partners', key: 'team-a-batch' }], 'only the slice is in question');
      const shrink = await portico.api.post('/api/v1/config?tag=team:a&prune=true', 'portico: v1\npartners:\n  - name: team-a-svc\n    tags: [team:a]\n', yaml);
      assert.deepEqual(
        shrink.body.changes.map((c: { action: string; key: string }) => `${c.action} ${c.key}`),
        ['delete team-a-batch'],
      );
      const outside = await portico.api.post('/api/v1/config?tag=team:a', 'portico: v1\npartners:\n  - name: untagged\n', yaml);
      assert.equal(outside.status, 422);
      assert.match(outside.body.errors[0].message, /does not carry tag 'team:a'/);
      const sliceExport = await portico.api.get('/api/v1/config?tag=team:a&format=json');
      assert.deepEqual(
        sliceExport.body.partners.map((p: { name: string }) => p.name),
        ['team-a-svc'],
      );
      assert.equal(sliceExport.body.services, undefined);
      await portico.api.post('/api/v1/config?tag=team:a', 'portico: v1\n', yaml);
      assert.equal(portico.store.current().partners.has('team-a-svc'), true, 'an empty file without prune deletes nothing');
      await portico.api.post('/api/v1/config?tag=team:a&prune=true', 'portico: v1\n', yaml);
      assert.equal(portico.store.current().partners.has('team-a-svc'), false);
    });

    it('drives the same through the portico CLI', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-cli-'));
      const file = path.join(dir, 'model.yaml');
      const exported = await cli(portico, ['export']);
      assert.equal(exported.code, 0, exported.stderr);
      writeFileSync(file, exported.stdout);
      const same = await cli(portico, ['diff', '-f', file]);
      assert.equal(same.code, 0, same.stderr);
      assert.match(same.stdout, /would change: 0 created, 0 updated, 0 deleted/);
      writeFileSync(file, exported.stdout.replace('port: 3003', 'port: 3333'));
      const changed = await cli(portico, ['diff', '-f', file]);
      assert.equal(changed.code, 2, 'diff exits 2 when there are differences');
      assert.match(changed.stdout, /~ service products\n\s+endpoints: .*3003.* → .*3333/);
      const applied = await cli(portico, ['apply', '-f', file]);
      assert.equal(applied.code, 0, applied.stderr);
      assert.equal(portico.store.current().services.get('products')!.endpoints[0]!.port, 3333);
      const bad = await cli(portico, ['apply', '-f', '-'], 'portico: v1\nservices: [{name: x}]\n');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /services\[0\]\.endpoints is required/);
      const noToken = await run(path.join(ROOT, 'bin/portico'), ['export'], { env: { ...process.env, PORTICO_URL: portico.adminUrl, PORTICO_TOKEN: '' } }).catch((e) => e);
      assert.equal(noToken.code, 1, 'an error is 1, distinct from diff finding differences (2)');
      assert.match(noToken.stderr, /PORTICO_TOKEN/);
      const badToken = await run(path.join(ROOT, 'bin/portico'), ['diff', '-f', file], { env: { ...process.env, PORTICO_URL: portico.adminUrl, PORTICO_TOKEN: 'pta_wrong' } }).catch((e) => e);
      assert.equal(badToken.code, 1);
      assert.match(badToken.stderr, /^portico: .* refused the token \(401\)/);

      // A file with one service: apply keeps everything else; diff says so, and what --prune would delete.
      const one = path.join(dir, 'one-service.yaml');
      writeFileSync(one, 'portico: v1\nservices:\n  - name: solo\n    endpoints: [{host: 127.0.0.1, port: 3999}]\n');
      const countBefore = portico.store.current().products.size;
      const oneDiff = await cli(portico, ['diff', '-f', one]);
      assert.equal(oneDiff.code, 2);
      assert.match(oneDiff.stdout, /^\+ service solo$/m);
      assert.match(oneDiff.stdout, /Not in the file, so kept \(only --prune would delete them\):\n( {2}- .*\n)* {2}- product orders\n/);
      assert.doesNotMatch(oneDiff.stdout, /DELETE/);
      const oneApply = await cli(portico, ['apply', '-f', one]);
      assert.equal(oneApply.code, 0, oneApply.stderr);
      assert.match(oneApply.stdout, /changed: 1 created, 0 updated, 0 deleted, \d+ kept/);
      assert.match(oneApply.stdout, /Kept \d+ resources the file leaves out \(`portico diff` lists them; --prune deletes them\)/);
      assert.equal(portico.store.current().products.size, countBefore, 'nothing the file leaves out was deleted');
      assert.ok(portico.store.current().services.has('solo'));
      const pruneDiff = await cli(portico, ['diff', '-f', one, '--prune']);
      assert.equal(pruneDiff.code, 2);
      assert.match(pruneDiff.stdout, /^- DELETE product orders$/m);
      assert.match(pruneDiff.stdout, /WOULD DELETE \d+ resources the file leaves out \(--prune\)\./);
      assert.equal(portico.store.current().products.size, countBefore, 'diff --prune writes nothing');
      // A file that refers to what it leaves out cannot be pruned to: the refusal says why.
      const refers = path.join(dir, 'one-product.yaml');
      writeFileSync(refers, 'portico: v1\nproducts:\n  - name: solo\n    gatewayGroups: [edge]\n    basePath: /solo\n');
      const refersDiff = await cli(portico, ['diff', '-f', refers, '--prune']);
      assert.equal(refersDiff.code, 1, refersDiff.stdout);
      assert.match(refersDiff.stderr, /gateway group 'edge', which does not exist\n/);
      assert.match(refersDiff.stderr, /--prune deletes what the file leaves out, so what it refers to must be in it too/);
      assert.doesNotMatch((await cli(portico, ['diff', '-f', refers])).stderr, /--prune deletes/, 'without --prune, no such hint');
      // Back to the full model, pruning the extra service.
      const restore = await cli(portico, ['apply', '-f', file, '--prune']);
      assert.equal(restore.code, 0, restore.stderr);
      assert.match(restore.stdout, /^- DELETE service solo$/m);
      assert.equal(portico.store.current().services.has('solo'), false);
    });
  });
}
