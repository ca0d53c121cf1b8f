// Flows through a real Envoy: authentication and limits in Envoy, the flow in the runtime, step calls
// back through Envoy's step listener. Seed 003's /api/home aggregation (three upstreams answering
// after 300 ms each: the answer takes about one call, not three), switches on a JWT claim and on a
// body field, a call using an earlier step's output, custom responses, a failing step under both
// failure policies, fields removed and renamed on an ordinary route, JSON ↔ XML both ways, a code
// step that never ends, a bad flow refused with 422, and a model change during a request.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SEED_HOME_BODY, SEED_USER } from '../../src/flows/fixtures.ts';
import { waitFor } from '../support/components.ts';
import { startFlowGateway } from '../support/flows-gateway.ts';
import { parseScrape, sum } from './observability-promql.ts';

const DELAY_MS = 300;

describe('flows through a real Envoy', () => {
  it('aggregates, switches, chains, transforms, contains failures and follows model changes', { timeout: 300_000 }, async (t) => {
    const g = await startFlowGateway(t, 'edge-flows', DELAY_MS);
    if (!g) return;
    const admin = await g.issuer.token({ sub: SEED_USER.id, claims: { team: 'web-app', role: 'admin' } });
    const viewer = await g.issuer.token({ sub: 'usr_other', claims: { team: 'web-app', role: 'viewer' } });
    const as = (token: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${token}`, ...extra });
    const get = (path: string, token = admin, extra: Record<string, string> = {}) => g.call(path, { headers: as(token, extra) });

    await t.test('without a token the flow never runs: Envoy authenticates first', async () => {
      const before = g.upstreams.seen.users!.length;
      const r = await g.call('/flows/home');
      assert.equal(r.status, 401, r.text);
      assert.equal(g.upstreams.seen.users!.length, before, 'no step call was made');
    });

    await t.test("GET /flows/home: seed 003's body, in about one upstream call's time, not the sum of three", async () => {
      // The fastest of a few tries: a loaded machine can stall any single request; three sequential
      // calls can never take less than 3 × 300 ms, so under 2 × 300 ms proves they overlapped.
      const times: number[] = [];
      for (let i = 0; i < 4; i++) {
        const t0 = performance.now();
        const r = await get('/flows/home');
        times.push(performance.now() - t0);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json, SEED_HOME_BODY);
        assert.equal(r.headers.get('x-portico-flow-incomplete'), null);
      }
      assert.ok(Math.min(...times) < 2 * DELAY_MS, `fastest of ${times.map((x) => x.toFixed(0)).join(', ')} ms should be under ${2 * DELAY_MS} ms (sum: ${3 * DELAY_MS})`);
      // Each upstream saw the caller's identity as the gateway set it, and the flow's own path and query.
      const u = g.upstreams.seen.users!.at(-1)!;
      assert.equal(u.path, `/users/${SEED_USER.id}`);
      assert.equal(u.headers['x-portico-partner'], 'web-app');
      assert.equal(u.headers['x-user-id'], undefined, 'claims reach flows as identity, not as headers to every call');
      assert.equal(u.headers['x-portico-service'], undefined, 'the step routing header stays in the gateway');
      assert.equal(u.headers.authorization, undefined, 'the token stays at the gateway');
      assert.equal(g.upstreams.seen.orders!.at(-1)!.path, `/orders?user=${SEED_USER.id}&limit=3`);
    });

    await t.test('step calls go straight to a service that needs nothing only Envoy gives, through Envoy to one with retries (which recover a failed attempt)', async () => {
      const direct = g.upstreams.seen.users!.at(-1)!;
      assert.equal(direct.headers['x-envoy-expected-rq-timeout-ms'], undefined, 'no Envoy on the direct path');
      const r = await get('/flows/retried');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { attempt: 2 });
      const tries = g.upstreams.seen.flaky!;
      assert.equal(tries.length, 2, 'one failed attempt, one retry');
      assert.equal(tries[0]!.headers['x-request-id'], tries[1]!.headers['x-request-id']);
      assert.ok(
        tries.every((a) => a.headers['x-envoy-expected-rq-timeout-ms'] !== undefined),
        "the calls went through Envoy's step listener",
      );
    });

    await t.test('switch on a JWT claim', async () => {
      assert.deepEqual((await get('/flows/greet')).json, { greeting: 'welcome back, administrator', partner: 'web-app' });
      assert.deepEqual((await get('/flows/greet', viewer)).json, { greeting: 'hello usr_other', partner: 'web-app' });
    });

    await t.test('switch on a body field', async () => {
      const post = (total: number) => g.call('/flows/order', { method: 'POST', headers: as(admin, { 'content-type': 'application/json' }), body: JSON.stringify({ total }) });
      const big = await post(250);
      assert.equal(big.status, 202, big.text);
      assert.deepEqual(big.json, { queue: 'manual-review', total: 250 });
      const small = await post(20);
      assert.equal(small.status, 201, small.text);
      assert.deepEqual(small.json, { queue: 'automatic', total: 20 });
      const bad = await g.call('/flows/order', { method: 'POST', headers: as(admin, { 'content-type': 'application/json' }), body: '{"total": ' });
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.json.error, 'bad_request');
    });

    await t.test("a second call built from the first call's answer", async () => {
      const r = await get('/flows/chain');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { name: SEED_USER.name, summary: { user: SEED_USER.id, membership: SEED_USER.membership } });
    });

    await t.test('a custom response: status, templated header, body as JSON or XML by Accept', async () => {
      const r = await get('/flows/teapot?kind=oolong');
      assert.equal(r.status, 418, r.text);
      assert.equal(r.headers.get('x-brewed-for'), 'web-app');
      assert.deepEqual(r.json, { tea: { kind: 'oolong', cups: 2 } });
      const x = await get('/flows/teapot?kind=oolong', admin, { accept: 'application/xml' });
      assert.equal(x.status, 418);
      assert.match(x.headers.get('content-type') ?? '', /xml/);
      assert.match(x.text, /<tea>\s*<kind>oolong<\/kind>\s*<cups>2<\/cups>\s*<\/tea>/);
    });

    await t.test('a failing step: onError fail answers 502 naming the step; continue answers with the fallback and says so', async () => {
      const strict = await get('/flows/strict');
      assert.equal(strict.status, 502, strict.text);
      assert.equal(strict.json.step, 'audit');
      const lenient = await get('/flows/lenient');
      assert.equal(lenient.status, 200, lenient.text);
      assert.deepEqual(lenient.json, { audit: { audited: false }, error: 'status' });
      assert.equal(lenient.headers.get('x-portico-flow-incomplete'), 'audit');
    });

    await t.test('an ordinary route with a body transform: internal fields removed, one renamed, XML on request', async () => {
      const r = await get(`/flows/users/${SEED_USER.id}`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, {
        id: SEED_USER.id,
        name: SEED_USER.name,
        avatar_url: SEED_USER.avatar_url,
        membership: SEED_USER.membership,
        email: SEED_USER.email_address,
      });
      const x = await get(`/flows/users/${SEED_USER.id}`, admin, { accept: 'application/xml' });
      assert.match(x.headers.get('content-type') ?? '', /xml/);
      assert.match(x.text, /<email>alice@example\.com<\/email>/);
      assert.doesNotMatch(x.text, /internal_id|db_shard/);
      // The upstream's own status passes through, its body reshaped alike.
      const missing = await get('/flows/users/nobody');
      assert.equal(missing.status, 404);
    });

    await t.test('XML in, JSON to the service', async () => {
      const r = await g.call('/flows/xml-in', {
        method: 'POST',
        headers: as(admin, { 'content-type': 'application/xml' }),
        body: '<order><id>ord_1</id><items><sku>a</sku></items><items><sku>b</sku></items><total>12.5</total></order>',
      });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.path, '/xml-in');
      assert.match(r.json.contentType, /^application\/json/);
      assert.deepEqual(JSON.parse(r.json.body), { order: { id: 'ord_1', items: [{ sku: 'a' }, { sku: 'b' }], total: 12.5 } });
    });

    await t.test('a code step that never ends is stopped by its CPU limit, and the gateway keeps serving', async () => {
      const r = await get('/flows/loop');
      assert.equal(r.status, 500, r.text);
      assert.equal(r.json.step, 'spin');
      assert.match(r.json.message, /time|limit/i);
      const after = await get('/flows/home');
      assert.equal(after.status, 200, after.text);
      assert.deepEqual(after.json, SEED_HOME_BODY);
    });

    await t.test('a bad flow is refused with 422 naming the step and field; nothing is stored', async () => {
      const bad = {
        name: 'bad',
        match: { path: { type: 'exact', value: '/bad' } },
        flow: {
          steps: [
            { name: 'first', respond: { body: 'steps.later.body' } },
            { name: 'later', call: { service: 'f-users', path: '/users/x' } },
          ],
        },
      };
      const r = await g.api.post('/api/v1/products/flows/routes', bad);
      assert.equal(r.status, 422, r.text);
      assert.ok(
        r.body.errors.some((e: { field: string }) => e.field.startsWith('flow.steps[0].respond.body')),
        r.text,
      );
      const missing = await g.api.post('/api/v1/products/flows/routes', { ...bad, flow: { steps: [{ name: 'x', call: { service: 'nowhere', path: '/' } }] } });
      assert.equal(missing.status, 422, missing.text);
      assert.ok(
        missing.body.errors.some((e: { field: string }) => e.field === 'flow.steps[0].call.service'),
        missing.text,
      );
      assert.equal((await g.api.get('/api/v1/products/flows/routes/bad')).status, 404);
    });

    await t.test('a model change applies without a restart; a request in progress finishes on the flow it started with', async () => {
      const inFlight = get('/flows/gated');
      await waitFor('the request reached the upstream', () => (g.upstreams.gate.arrived > 0 ? true : undefined), 30_000);
      const current = await g.api.get('/api/v1/products/flows/routes/gated');
      const next = structuredClone(current.body);
      next.flow.steps[1].respond.body = '{"version": 2, "upstream": steps.wait.body}';
      delete next.revision;
      const put = await g.api.put('/api/v1/products/flows/routes/gated', next, { 'if-match': current.headers.get('etag')! });
      assert.equal(put.status, 200, put.text);
      g.upstreams.gate.release();
      const old = await inFlight;
      assert.deepEqual(old.json, { version: 1, upstream: { gate: 'open' } });
      // The gate stays open from now on for new arrivals only when released again: release as they come.
      const releaser = setInterval(() => g.upstreams.gate.release(), 20);
      try {
        const fresh = await get('/flows/gated');
        assert.deepEqual(fresh.json, { version: 2, upstream: { gate: 'open' } });
      } finally {
        clearInterval(releaser);
      }
    });

    await t.test('metrics per step, and the access-log line names the flow', async () => {
      const text = await (await fetch(`${g.portico.adminUrl}/metrics`)).text();
      const samples = parseScrape(text);
      assert.ok(sum(samples, 'portico_flow_step_duration_seconds_count', { product: 'flows', route: 'home', step: 'user', outcome: 'ok' }) >= 4, 'home/user steps counted');
      assert.ok(sum(samples, 'portico_flow_step_errors_total', { product: 'flows', route: 'strict', step: 'audit', kind: 'status' }) >= 1);
      assert.ok(
        sum(samples, 'portico_flow_step_errors_total', { product: 'flows', route: 'loop', step: 'spin', kind: 'code' }) >= 1,
        text
          .split('\n')
          .filter((l) => l.includes('spin'))
          .join('\n'),
      );
      await waitFor('an access-log line for the home flow', () => (/"flow":"flows\/home"/.test(g.envoy.output()) ? true : undefined), 10_000);
    });
  });
});
