// A database outage: reads keep being served from memory, writes fail with 503 problem+json and
// change nothing, and everything recovers by itself when PostgreSQL returns.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
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
