// Idempotency-Key through real Envoys and a counting upstream. One control plane with the
// processor inside (memory store): a repeat is replayed without reaching the upstream, a repeat in
// flight is 409, another body 422, keys per partner, expiry, a required key, server errors not
// kept, and bad settings refused by the admin API. Then the production shape: two Envoys, a control
// plane process and a separate processor process (PORTICO_ROLE=idempotency) on a real Redis; the
// control plane is SIGKILLed and the processor restarted, and duplicates are still caught across
// both Envoys.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { freePort, startProcess, startRedis, waitFor, type RunningProcess } from '../support/components.ts';
import { startEnvoy } from '../support/envoy.ts';
import { ApiClient, assertProblem } from '../support/portico.ts';
import { newApiKey, startGateway } from './ratelimit-envoy-fixture.ts';
import { countingUpstream, idempotencyDocument, newKey, post, requestsCounted } from './idempotency-fixture.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('Idempotency-Key through a real Envoy', () => {
  it('replays, refuses conflicts and mismatches, scopes keys per partner, expires them', { timeout: 300_000 }, async (t) => {
    const upstream = await countingUpstream();
    t.after(() => upstream.close());
    const g = await startGateway(t, { nodeId: 'idem', upstream: { name: 'orders', ...upstream } });
    if (!g) return;
    const keys = { acme: newApiKey(), globex: newApiKey() };
    await g.apply(idempotencyDocument({ groups: [{ name: 'edge', port: await freePort() }], upstreamPort: upstream.port, keys }));
    const acme = { apiKey: keys.acme };
    const metrics = async () => (await fetch(`${g.portico.adminUrl}/metrics`)).text();

    await t.test('two identical POSTs: the upstream sees one, both get its response, the second marked replayed', async () => {
      const key = newKey();
      const first = await post(g.gw, '/shop/orders/new', { ...acme, key });
      assert.equal(first.status, 201, first.text);
      assert.equal(first.headers.get('idempotent-replayed'), null);
      // The processor never changes a body: the first response keeps the upstream's length (not chunked).
      assert.equal(first.headers.get('content-length'), String(Buffer.byteLength(first.text)));
      const second = await post(g.gw, '/shop/orders/new', { ...acme, key });
      assert.equal(second.status, 201, second.text);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      assert.equal(second.text, first.text, 'the same body');
      assert.equal(second.headers.get('x-order-id'), first.headers.get('x-order-id'));
      assert.equal(second.headers.get('location'), first.headers.get('location'));
      assert.equal(second.headers.get('content-type'), 'application/json');
      assert.equal(upstream.count('/orders/new'), 1, 'one request reached the upstream');
      assert.equal(first.json.partner, 'acme');
      // A key sent without the structured-field quotes is the same key.
      const bare = await post(g.gw, '/shop/orders/new', { ...acme, key: key.slice(1, -1) });
      assert.equal(bare.headers.get('idempotent-replayed'), 'true');
      assert.equal(upstream.count('/orders/new'), 1);
    });

    await t.test('the same key with another body (or path) is 422, and nothing reaches the upstream', async () => {
      const key = newKey();
      assert.equal((await post(g.gw, '/shop/orders/other', { ...acme, key })).status, 201);
      const body = await post(g.gw, '/shop/orders/other', { ...acme, key, body: '{"item":"book","qty":2}' });
      assert.equal(body.status, 422, body.text);
      assert.equal(body.json.error, 'idempotency_key_reused');
      const elsewhere = await post(g.gw, '/shop/orders/elsewhere', { ...acme, key });
      assert.equal(elsewhere.status, 422, elsewhere.text);
      assert.equal(upstream.count('/orders/other') + upstream.count('/orders/elsewhere'), 1);
    });

    await t.test('a repeat while the first is in flight is 409; once it is done, the repeat is replayed', async () => {
      const key = newKey();
      const first = post(g.gw, '/shop/orders/slow', { ...acme, key });
      await waitFor('the first request to reach the upstream', () => (upstream.count('/orders/slow') === 1 ? true : undefined), 20_000);
      const during = await post(g.gw, '/shop/orders/slow', { ...acme, key });
      assert.equal(during.status, 409, during.text);
      assert.equal(during.json.error, 'idempotency_key_in_use');
      assert.equal(during.headers.get('retry-after'), '1');
      upstream.releaseSlow();
      const done = await first;
      assert.equal(done.status, 201, done.text);
      const after = await post(g.gw, '/shop/orders/slow', { ...acme, key });
      assert.equal(after.headers.get('idempotent-replayed'), 'true');
      assert.equal(after.text, done.text);
      assert.equal(upstream.count('/orders/slow'), 1);
    });

    await t.test('keys are scoped per partner: another partner with the same key is a new request', async () => {
      const key = newKey();
      const a = await post(g.gw, '/shop/orders/scoped', { ...acme, key });
      const b = await post(g.gw, '/shop/orders/scoped', { apiKey: keys.globex, key });
      assert.equal(a.status, 201);
      assert.equal(b.status, 201);
      assert.equal(b.headers.get('idempotent-replayed'), null);
      assert.equal(b.json.partner, 'globex');
      assert.equal(upstream.count('/orders/scoped'), 2);
      // Anonymous callers of a public route share one scope.
      const k2 = newKey();
      assert.equal((await post(g.gw, '/open/orders/anon', { key: k2 })).status, 201);
      assert.equal((await post(g.gw, '/open/orders/anon', { key: k2 })).headers.get('idempotent-replayed'), 'true');
      assert.equal(upstream.count('/orders/anon'), 1);
    });

    await t.test('unprotected requests pass: no key where none is required, GET, a route without settings', async () => {
      for (let i = 0; i < 2; i++) assert.equal((await post(g.gw, '/shop/orders/nokey', acme)).status, 201);
      assert.equal(upstream.count('/orders/nokey'), 2);
      const key = newKey();
      for (let i = 0; i < 2; i++) assert.equal((await post(g.gw, '/shop/orders/read', { ...acme, key, method: 'GET' })).status, 201);
      assert.equal(upstream.count('/orders/read'), 2, 'GET is safe: never replayed');
      for (let i = 0; i < 2; i++) assert.equal((await post(g.gw, '/shop/plain/x', { ...acme, key })).status, 201);
      assert.equal(upstream.count('/plain/x'), 2);
    });

    await t.test('bodies arrive in many chunks: fingerprinted whole, a large response replayed whole; over 960 KiB is 413', async () => {
      const key = newKey();
      const big = JSON.stringify({ items: 'x'.repeat(300_000) });
      const first = await post(g.gw, '/shop/payments/big', { ...acme, key, body: big });
      assert.equal(first.status, 201, first.text.slice(0, 200));
      assert.equal(first.json.body, big, 'the upstream got the whole body');
      const again = await post(g.gw, '/shop/payments/big', { ...acme, key, body: big });
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.equal(again.text, first.text, 'the whole response (the body echoed back) was stored');
      const other = await post(g.gw, '/shop/payments/big', { ...acme, key, body: `${big.slice(0, -2)}y"}` });
      assert.equal(other.status, 422, 'a change in the last chunk is another request');
      const tooLarge = await post(g.gw, '/shop/payments/huge', { ...acme, key: newKey(), body: JSON.stringify({ items: 'x'.repeat(1_000_000) }) });
      assert.equal(tooLarge.status, 413, tooLarge.text);
      assert.equal(tooLarge.json.error, 'idempotency_body_too_large');
      assert.equal(upstream.count('/payments/big') + upstream.count('/payments/huge'), 1);
      // A response over Envoy's buffer limit reaches the client whole and is not kept: the repeat reaches the upstream.
      const largeKey = newKey();
      for (const seen of [1, 2]) {
        const large = await post(g.gw, '/shop/orders/large', { ...acme, key: largeKey });
        assert.equal(large.status, 201, large.text.slice(0, 200));
        assert.equal(large.json.seen, seen);
        assert.equal(large.json.padding.length, 1_500_000);
        assert.equal(large.headers.get('idempotent-replayed'), null);
      }
      // Without a key (not required on this route), a body passes chunk by chunk, every time.
      for (let i = 0; i < 2; i++) assert.equal((await post(g.gw, '/shop/orders/nokey-big', { ...acme, body: big })).json.body, big);
      assert.equal(upstream.count('/orders/nokey-big'), 2);
    });

    await t.test('a required key: missing or malformed is 400; PUT is protected there too', async () => {
      const missing = await post(g.gw, '/shop/payments/p1', acme);
      assert.equal(missing.status, 400, missing.text);
      assert.equal(missing.json.error, 'idempotency_key_missing');
      for (const bad of ['""', '"unterminated', 'has space', 'x'.repeat(256)]) {
        const r = await post(g.gw, '/shop/payments/p1', { ...acme, key: bad });
        assert.equal(r.status, 400, `${bad}: ${r.text}`);
        assert.equal(r.json.error, 'invalid_idempotency_key');
      }
      assert.equal(upstream.count('/payments/p1'), 0);
      const key = newKey();
      assert.equal((await post(g.gw, '/shop/payments/p1', { ...acme, key, method: 'PUT' })).status, 201);
      assert.equal((await post(g.gw, '/shop/payments/p1', { ...acme, key, method: 'PUT' })).headers.get('idempotent-replayed'), 'true');
      assert.equal(upstream.count('/payments/p1'), 1);
    });

    await t.test('a server error is not kept: the retry reaches the upstream', async () => {
      const key = newKey();
      assert.equal((await post(g.gw, '/shop/orders/flaky', { ...acme, key })).status, 500);
      const retry = await post(g.gw, '/shop/orders/flaky', { ...acme, key });
      assert.equal(retry.status, 201, retry.text);
      assert.equal(retry.headers.get('idempotent-replayed'), null);
      assert.equal(upstream.count('/orders/flaky'), 2);
    });

    await t.test('keys expire after their ttl: then the same request reaches the upstream again', async () => {
      const key = newKey();
      assert.equal((await post(g.gw, '/shop/quick/q', { ...acme, key })).status, 201);
      const started = Date.now();
      // Replayed until the 1 s ttl lapses; the first repeat after it proceeds (polled, never slept on).
      const fresh = await waitFor(
        'the key to expire',
        async () => {
          const r = await post(g.gw, '/shop/quick/q', { ...acme, key });
          return r.headers.get('idempotent-replayed') === 'true' ? undefined : r;
        },
        30_000,
        100,
      );
      assert.equal(fresh.status, 201);
      assert.ok(Date.now() - started >= 900, 'not before its ttl');
      assert.equal(upstream.count('/quick/q'), 2);
    });

    await t.test('metrics count replays, conflicts and mismatches per product and route', async () => {
      const text = await metrics();
      assert.ok(
        requestsCounted(text, 'shop', 'orders', 'replayed') >= 3,
        text
          .split('\n')
          .filter((l) => l.includes('idempotency'))
          .join('\n'),
      );
      assert.equal(requestsCounted(text, 'shop', 'orders', 'conflict'), 1);
      assert.equal(requestsCounted(text, 'shop', 'orders', 'mismatch'), 2);
      assert.equal(requestsCounted(text, 'shop', 'payments', 'missing_key'), 1);
      assert.equal(requestsCounted(text, 'shop', 'payments', 'invalid_key'), 4);
      // The server error, and the two responses over Envoy's buffer limit.
      assert.match(text, /portico_idempotency_responses_total\{product="shop",route="orders",result="released"\} 3/);
    });

    await t.test('bad settings are refused with 422 naming the field, and change nothing', async () => {
      const base = { match: { path: { type: 'prefix', value: '/bad' } }, service: 'orders' };
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ ...base, name: 'bad1', idempotency: { methods: ['GET'] } }, /idempotency\.methods/],
        [{ ...base, name: 'bad2', idempotency: { ttlSeconds: 0 } }, /idempotency\.ttlSeconds/],
        [{ ...base, name: 'bad3', idempotency: { required: 'yes' } }, /idempotency\.required/],
        [{ ...base, name: 'bad4', idempotency: { retries: 1 } }, /idempotency/],
        [{ ...base, name: 'bad5', match: { ...base.match, methods: ['GET'] }, idempotency: {} }, /idempotency/],
        [{ name: 'bad6', match: base.match, directResponse: { status: 200 }, idempotency: {} }, /idempotency/],
      ];
      for (const [body, field] of cases) {
        const r = await g.portico.api.post('/api/v1/products/shop/routes', body);
        assertProblem(r, r.status === 400 ? 400 : 422, field);
      }
      assert.equal((await g.portico.api.get('/api/v1/products/shop/routes/bad1')).status, 404);
    });

    // Envoy's ext_proc client resets every processor stream when it has its last answer, unless the
    // bootstrap's ext_proc_graceful_grpc_close has it half-close instead; Node's HTTP/2 server ends a
    // connection (GOAWAY) that resets ~1,000 streams faster than 33 a second, refusing the streams in
    // flight (503; test/unit/idempotency-processor.test.ts). So: no reset, and one connection lasts.
    await t.test('1,500 protected requests on one processor connection: Envoy half-closes every stream, the processor never sends GOAWAY, none fails', async () => {
      const cx = async () => {
        const s = await g.envoy.stats('^cluster\\.portico_idempotency\\.upstream_(cx_total|cx_close_notify|cx_protocol_error|rq_tx_reset|rq_completed)$');
        const n = (k: string) => s.get(`cluster.portico_idempotency.upstream_${k}`) ?? 0;
        return { total: n('cx_total'), goaway: n('cx_close_notify'), protocolErrors: n('cx_protocol_error'), resets: n('rq_tx_reset'), completed: n('rq_completed') };
      };
      const before = await cx();
      const failed: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 1_500 / 8; i++) {
            const r = await post(g.gw, '/open/orders/many', { key: newKey() });
            if (r.status !== 201) failed.push(`${r.status} ${r.text.slice(0, 200)}`);
          }
        }),
      );
      const after = await cx();
      assert.deepEqual(failed, []);
      assert.equal(after.goaway - before.goaway, 0, 'no GOAWAY from the processor');
      assert.ok(after.completed - before.completed >= 1_500, `${after.completed - before.completed} processor streams completed`);
      assert.equal(after.resets - before.resets, 0, 'Envoy reset no processor stream (it half-closes them)');
      assert.equal(after.total - before.total, 0, 'no new processor connection');
      assert.equal(after.protocolErrors - before.protocolErrors, 0, 'no processor connection ended in a protocol error');
    });
  });
});

describe('Idempotency-Key with two Envoys, Redis and the processor apart from the control plane', () => {
  it('a duplicate through the other Envoy is caught; killing the control plane or restarting the processor changes nothing', { timeout: 600_000 }, async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    t.after(() => redis.stop());
    const upstream = await countingUpstream();
    t.after(() => upstream.close());
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portico-idem-'));
    const [adminPort, grpcPort, calloutPort, flowsPort, stepPort, processorPort, processorAdminPort, portA, portB] = (await Promise.all(Array.from({ length: 9 }, () => freePort()))) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    // Nothing inherited from the CI environment's Portico settings.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PORTICO_(?!TEST_)|DATABASE_URL$|REDIS_URL$)/.test(k)));
    const token = 'idem-test-admin-token';
    const cpEnv = {
      ...inherited,
      PORTICO_DATA_DIR: dataDir,
      PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
      PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}`,
      PORTICO_FLOWS_LISTEN_ADDR: `127.0.0.1:${flowsPort}`,
      PORTICO_FLOWS_STEP_ADDR: `127.0.0.1:${stepPort}`,
      PORTICO_IDEMPOTENCY_ADDR: `127.0.0.1:${processorPort}`,
      PORTICO_ADMIN_TOKEN: token,
      PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
      PORTICO_LOG_LEVEL: 'warn',
    };
    const processorEnv = {
      ...inherited,
      PORTICO_ROLE: 'idempotency',
      REDIS_URL: redis.url,
      PORTICO_IDEMPOTENCY_LISTEN_ADDR: `127.0.0.1:${processorPort}`,
      PORTICO_ADMIN_ADDR: `127.0.0.1:${processorAdminPort}`,
      PORTICO_LOG_LEVEL: 'warn',
    };
    const running: RunningProcess[] = [];
    t.after(async () => {
      for (const p of running) await p.stop('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    });
    const launch = async (env: Record<string, string | undefined>, readyUrl: string, what: string) => {
      const p = startProcess(path.join(ROOT, 'bin/portico'), ['serve'], { env, cwd: ROOT });
      running.push(p);
      await waitFor(
        what,
        async () => {
          if (p.child.exitCode !== null) throw new Error(`${what}: exited (${p.child.exitCode}): ${p.output().slice(-3000)}`);
          return (await fetch(readyUrl, { signal: AbortSignal.timeout(2000) })).status === 200 ? true : undefined;
        },
        120_000,
        200,
      );
      return p;
    };
    const controlPlane = await launch(cpEnv, `http://127.0.0.1:${adminPort}/readyz`, 'the control plane to be ready');
    let processor = await launch(processorEnv, `http://127.0.0.1:${processorAdminPort}/readyz`, 'the idempotency processor to be ready');
    const api = new ApiClient(`http://127.0.0.1:${adminPort}`, token);
    const keys = { acme: newApiKey() };
    const applied = await api.post(
      '/api/v1/config',
      YAML.stringify(
        idempotencyDocument({
          groups: [
            { name: 'edge-a', port: portA },
            { name: 'edge-b', port: portB },
          ],
          upstreamPort: upstream.port,
          keys,
          // Envoy decides API keys itself: what keeps requests flowing while the control plane is gone.
          native: true,
        }),
      ),
      { 'content-type': 'application/yaml' },
    );
    assert.equal(applied.status, 200, applied.text);
    const a = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${grpcPort}`], group: 'edge-a', nodeId: 'idem-a' });
    const b = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${grpcPort}`], group: 'edge-b', nodeId: 'idem-b' });
    if (!a || !b) return;
    const gwA = `http://127.0.0.1:${portA}`;
    const gwB = `http://127.0.0.1:${portB}`;
    const acme = { apiKey: keys.acme };
    for (const gw of [gwA, gwB]) {
      await waitFor(`${gw} to serve the model`, async () => ((await post(gw, '/shop/plain/ready', acme)).status === 201 ? true : undefined), 60_000, 200);
    }

    try {
      const k1 = newKey();
      await t.test('a duplicate sent to the other Envoy is replayed from Redis', async () => {
        const first = await post(gwA, '/shop/orders/k1', { ...acme, key: k1 });
        assert.equal(first.status, 201, first.text);
        const again = await post(gwB, '/shop/orders/k1', { ...acme, key: k1 });
        assert.equal(again.status, 201, again.text);
        assert.equal(again.headers.get('idempotent-replayed'), 'true');
        assert.equal(again.text, first.text);
        assert.equal(upstream.count('/orders/k1'), 1);
      });

      await t.test('the control plane SIGKILLed: both Envoys still protect, 409 and 422 across them', async () => {
        await controlPlane.stop('SIGKILL');
        assert.equal(controlPlane.child.signalCode, 'SIGKILL');
        await assert.rejects(fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(2000) }), 'the control plane is gone');
        const k2 = newKey();
        const first = await post(gwB, '/shop/orders/k2', { ...acme, key: k2 });
        assert.equal(first.status, 201, first.text);
        const again = await post(gwA, '/shop/orders/k2', { ...acme, key: k2 });
        assert.equal(again.headers.get('idempotent-replayed'), 'true', again.text);
        assert.equal((await post(gwA, '/shop/orders/k2', { ...acme, key: k2, body: '{"other":true}' })).status, 422);
        const k3 = newKey();
        const slow = post(gwA, '/shop/orders/slow', { ...acme, key: k3 });
        await waitFor('the slow request to reach the upstream', () => (upstream.count('/orders/slow') === 1 ? true : undefined), 20_000);
        const during = await post(gwB, '/shop/orders/slow', { ...acme, key: k3 });
        assert.equal(during.status, 409, during.text);
        upstream.releaseSlow();
        assert.equal((await slow).status, 201);
        assert.equal((await post(gwB, '/shop/orders/slow', { ...acme, key: k3 })).headers.get('idempotent-replayed'), 'true');
        assert.equal(upstream.count('/orders/k2') + upstream.count('/orders/slow'), 2);
      });

      await t.test('the processor SIGKILLed and restarted: keys live in Redis, duplicates are still caught', async () => {
        await processor.stop('SIGKILL');
        processor = await launch(processorEnv, `http://127.0.0.1:${processorAdminPort}/readyz`, 'the idempotency processor to be ready again');
        // Envoy reconnects to the processor on its own; until then it answers 503 (closed, never unprotected).
        const replay = await waitFor(
          'Envoy to reach the restarted processor',
          async () => {
            const r = await post(gwB, '/shop/orders/k1', { ...acme, key: k1 });
            return r.status === 503 ? undefined : r;
          },
          60_000,
          200,
        );
        assert.equal(replay.headers.get('idempotent-replayed'), 'true', replay.text);
        assert.equal(upstream.count('/orders/k1'), 1, 'the upstream never saw a duplicate');
        const metrics = await (await fetch(`http://127.0.0.1:${processorAdminPort}/metrics`)).text();
        assert.equal(requestsCounted(metrics, 'shop', 'orders', 'replayed'), 1, 'the restarted processor counts its own replays');
      });
    } catch (e) {
      t.diagnostic(processor.output().slice(-3000));
      t.diagnostic(a.output().slice(-2000));
      throw e;
    }
  });
});
