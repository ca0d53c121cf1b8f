// The write gate of a process that loads the code sandbox only when a write needs it
// (PORTICO_ROLE=xds: no flow runtime, so no QuickJS at start): code steps are still compiled before
// anything is stored. The process's first write, whose code step does not compile, is refused with
// 422 at its field; one that compiles is stored; the console's check names the field too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDatabase, startPostgres } from '../support/components.ts';
import { startTestPortico } from '../support/portico.ts';

const route = (name: string, source: string) => ({
  name,
  match: { path: { type: 'prefix', value: `/${name}` }, methods: ['GET'] },
  flow: { steps: [{ name: 'js', code: { source } }] },
});

describe('role xds: code steps are checked at write time though the sandbox is loaded on the first write', () => {
  it('refuses code that does not compile from the very first write, and stores code that does', { timeout: 120_000 }, async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    t.after(() => pg.stop());
    const portico = await startTestPortico({
      databaseUrl: createDatabase(pg, 'portico_flows_code_xds'),
      env: { PORTICO_ROLE: 'xds', PORTICO_FLOWS_ADDR: '127.0.0.1:18081', PORTICO_CALLOUT_ADDR: '127.0.0.1:18082' },
    });
    t.after(() => portico.close());
    assert.equal(portico.flows, undefined, 'role xds runs no flow runtime');
    const config = (source: string) => ({
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 18080 }] }],
      products: [{ name: 'app', gatewayGroups: ['edge'], basePath: '/app', auth: { accept: ['none'] }, routes: [route('js', source)] }],
    });
    // The process's first write: its code step does not compile.
    const bad = await portico.api.post('/api/v1/config', config('return {'));
    assert.equal(bad.status, 422, bad.text);
    assert.ok(
      (bad.body.errors as Array<{ field: string; message: string }>).some((e) => e.field.endsWith('flow.steps[0].code.source') && /does not compile/.test(e.message)),
      bad.text,
    );
    assert.equal(portico.store.current().products.size, 0, 'nothing stored');
    const good = await portico.api.post('/api/v1/config', config('return { sum: input.a + 1 };'));
    assert.equal(good.status, 200, good.text);
    assert.equal(portico.store.current().products.size, 1);

    const check = await portico.api.post('/api/v1/flows/check', { flow: { steps: [{ name: 'js', code: { source: 'return input +' } }] } });
    assert.equal(check.status, 422, check.text);
    assert.ok(
      check.body.errors.some((e: { field: string }) => e.field === 'flow.steps[0].code.source'),
      check.text,
    );
  });
});
