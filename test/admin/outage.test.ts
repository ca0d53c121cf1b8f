// A database outage: reads keep being served from memory, writes fail with 503 problem+json and
// change nothing, and everything recovers by itself when PostgreSQL returns; and the outage costs
// the event loop (which answers the callouts) no stack formatting.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { startPostgres, waitFor, type PostgresServer } from '../support/components.ts';
import { startTestPortico, type TestPortico } from '../support/portico.ts';

describe('database outage', () => {
  let pg: PostgresServer | undefined;
  let portico: TestPortico | undefined;
  after(async () => {
    await portico?.close();
    await pg?.stop();
  });

  it('serves reads, refuses writes with 503, and recovers without a restart', async (t) => {
    pg = await startPostgres(t);
    if (!pg) return;
    portico = await startTestPortico({ databaseUrl: pg.url });
    const api = portico.api;
    assert.equal((await api.put('/api/v1/partners/before', { name: 'before' })).status, 201);

    await pg.pause();
    const read = await api.get('/api/v1/partners/before');
    assert.equal(read.status, 200, 'reads come from the in-memory model');
    const write = await api.put('/api/v1/partners/during', { name: 'during' });
    assert.equal(write.status, 503, write.text);
    assert.equal(write.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.equal(write.headers.get('retry-after'), '5');
    assert.match(write.body.detail, /the write was not saved/);
    assert.equal(portico.store.current().partners.has('during'), false, 'the failed write changed nothing');
    // The audit log is the one read that goes to the database: a 503 too, and the document says so.
    const audit = await api.get('/api/v1/audit?limit=1');
    assert.equal(audit.status, 503, audit.text);
    assert.equal(audit.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.ok((await api.get('/openapi.json')).body.paths['/api/v1/audit'].get.responses['503'], 'GET /api/v1/audit documents its 503');
    assert.equal((await api.withToken(undefined).get('/healthz')).status, 200);

    await pg.start();
    const recovered = await waitFor(
      'writes to work again',
      async () => {
        const r = await api.put('/api/v1/partners/after', { name: 'after' });
        return r.status === 201 ? r : undefined;
      },
      30_000,
      250,
    );
    assert.equal(recovered.body.name, 'after');
    assert.deepEqual([...portico.store.current().partners.keys()].sort(), ['after', 'before']);
  });
});

describe('database outage: nothing on the way formats a stack', () => {
  let pg: PostgresServer | undefined;
  let portico: TestPortico | undefined;
  const saved = Error.prepareStackTrace;
  after(async () => {
    Error.prepareStackTrace = saved;
    await portico?.close();
    await pg?.stop();
  });

  // Formatting a stack runs through the source maps (a megabyte of Prisma's, parsed on first use)
  // synchronously; when the database drops, every replica's refused writes, failed queries and
  // their log lines used to do it at once and stall the callouts past their deadline (issue 10).
  it('refused writes, failed change-feed reads and their log lines format no stack; the log names the cause', async (t) => {
    pg = await startPostgres(t);
    if (!pg) return;
    const lines: string[] = [];
    const logTo = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        cb();
      },
    });
    portico = await startTestPortico({ databaseUrl: pg.url, env: { PORTICO_LOG_LEVEL: 'warn', PORTICO_RECONCILE_MS: '100' }, logTo });
    const api = portico.api;
    assert.equal((await api.put('/api/v1/partners/before', { name: 'before' })).status, 201);

    await pg.pause();
    const formatted: string[] = [];
    // Records every stack formatted in this process from now on (a user hook takes precedence over
    // Node's own) that holds a frame of a module (source-mapped: tsx, Prisma). Node's streams touch
    // the stack of each socket error, whose frames are all Node's own (no source map): cheap, not counted.
    Error.prepareStackTrace = (err: Error, frames: NodeJS.CallSite[]) => {
      const files = frames.map((f) => f.getFileName() ?? '').filter((f) => f && !f.startsWith('node:'));
      if (files.length) formatted.push(`${err.name}: ${err.message} (${files[0]})`);
      return `${err.name}: ${err.message}\n${frames.map((f) => `    at ${f}`).join('\n')}`;
    };
    for (const name of ['during-1', 'during-2']) {
      const write = await api.put(`/api/v1/partners/${name}`, { name });
      assert.equal(write.status, 503, write.text);
      assert.equal(write.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    }
    // A query outside a transaction (Prisma renders its error with the caller's location unless told not to).
    const audit = await api.get('/api/v1/audit?limit=5');
    assert.equal(audit.status, 503, audit.text);
    const feedLine = await waitFor('the change feed to report the database unreachable', async () => lines.find((l) => l.includes('cannot read changes from the database')), 30_000, 50);
    Error.prepareStackTrace = saved;
    assert.deepEqual(formatted, [], 'no stack with module frames formatted during the outage');

    const refused = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'admin request failed: database unavailable');
    assert.equal(refused.length, 3, lines.join('\n'));
    for (const l of refused) {
      assert.equal(l.level, 'warn');
      assert.match(l.database.message, /the (write was not saved|audit log was not read)/);
      assert.match(String(l.database.code), /^(E[A-Z]+|57P\d\d|08\d\d\d|P1\d\d\d)$/, 'the driver code says why');
      assert.equal(JSON.stringify(l).includes('    at '), false, 'no stack in the log line');
    }
    assert.equal(feedLine.includes('    at '), false);
    await pg.start();
  });
});
