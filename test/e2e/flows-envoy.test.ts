// Flows that run in Envoy (execution: envoy) through the whole pipeline: the control plane sends
// the flows Wasm filter and each route's plan to a real Envoy, which makes the calls itself. Seed
// 003's /api/home over three upstreams answering after 50 ms each, a failing step under both
// failure policies and a step past its timeout (the same answers as the runtime's), a model change without a restart, per-step
// Envoy stats, and the write gate's 422s (a flow the filter cannot run; no module). Seed 003's own
// flow, reading the caller's sub claim, run by Envoy behind a real JWT in callout and native mode.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { SEED_HOME_BODY, SEED_USER } from '../../src/flows/fixtures.ts';
import type { FlowSpec } from '../../src/flows/index.ts';
import { requireComponent, waitFor } from '../support/components.ts';
import { authzDecisions, startAuthzGateway, type AuthzGateway } from '../support/authz-gateway.ts';
import { OTHER_USER, startFlowUpstreams, testHomeFlow, type FlowUpstreams } from '../support/flows-gateway.ts';
import { startTestPortico } from '../support/portico.ts';

const DELAY_MS = 50;

/** The test's home flow reading the user from the query: Envoy's templates read query and headers. */
function homeByQuery(execution?: 'envoy'): FlowSpec {
  const flow = JSON.parse(JSON.stringify(testHomeFlow()).replaceAll('request.identity.claims.sub', 'request.query.user')) as FlowSpec;
  return execution ? { ...flow, execution } : flow;
}

const strict = (execution?: 'envoy'): FlowSpec => ({
  ...(execution ? { execution } : {}),
  steps: [
    { name: 'user', call: { service: 'f-users', path: '/users/{request.query.user}' } },
    { name: 'audit', call: { service: 'f-broken', path: '/audit' } },
    { name: 'reply', respond: { body: '{"user": steps.user.body, "audit": steps.audit.body}' } },
  ],
});

/** A call to the echo service's /gate, which answers only when the test releases it: the step times out. */
const slow = (execution?: 'envoy'): FlowSpec => ({
  ...(execution ? { execution } : {}),
  steps: [
    { name: 'wait', call: { service: 'f-echo', path: '/gate', timeoutMs: 300 } },
    { name: 'reply', respond: { body: '{"wait": steps.wait.body}' } },
  ],
});

const route = (name: string, flow: FlowSpec) => ({ name, match: { path: { type: 'exact', value: `/${name}` }, methods: ['GET'] }, flow });

/** Seed 003's flow exactly as homeFlow() (reading request.identity.claims.sub), run by Envoy, on a JWT product partner web-app subscribes to. */
function addMeProduct(doc: Record<string, any>, partnerRoute = false): void {
  // In exact mode the callout sets the partner and plan before the filter: a flow can read them there.
  const who: FlowSpec = {
    execution: 'envoy',
    steps: [
      { name: 'echo', call: { service: 'f-echo', path: '/who/{request.identity.partner}/{request.identity.plan}' } },
      { name: 'reply', respond: { body: '{"echo": steps.echo.body}' } },
    ],
  };
  const routes = [route('home', { ...testHomeFlow(), execution: 'envoy' }), ...(partnerRoute ? [route('who', who)] : [])];
  doc.products.push({ name: 'me', gatewayGroups: ['edge'], basePath: '/me', auth: { accept: ['jwt'] }, routes });
  doc.plans.push({ name: 'me-unlimited' });
  doc.partners.find((p: { name: string }) => p.name === 'web-app').subscriptions.push({ product: 'me', plan: 'me-unlimited' });
}

/**
 * /me/home through the gateway: the caller's sub claim (forwarded by the seed's issuer as X-User-Id,
 * set by the gateway's authentication before the flows filter) picks the user; no token is the
 * route's 401 and the flow never runs; a client-sent X-User-Id changes nothing.
 */
async function claimChecks(t: TestContext, g: AuthzGateway, upstreams: FlowUpstreams, mode: 'callout' | 'native'): Promise<void> {
  const callouts = () => authzDecisions(g.portico.adminUrl, { product: 'me' });
  const calloutsBefore = await callouts();
  const alice = await g.issuer.token({ sub: SEED_USER.id, claims: { team: 'web-app' } });
  const bo = await g.issuer.token({ sub: OTHER_USER.id, claims: { team: 'web-app' } });
  const get = (token?: string, headers: Record<string, string> = {}) => g.call('/me/home', { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
  await t.test("the caller's sub claim: seed 003's body for its subject, another subject's user for another token", async () => {
    const r = await get(alice);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, SEED_HOME_BODY);
    const other = await get(bo);
    assert.equal(other.status, 200, other.text);
    const { id, name, avatar_url, membership } = OTHER_USER;
    assert.deepEqual(other.json, { ...SEED_HOME_BODY, user: { id, name, avatar_url, membership } });
    assert.equal(upstreams.seen.orders!.at(-1)!.path, `/orders?user=${OTHER_USER.id}&limit=3`);
    const stats = await g.envoy.stats('portico_flows\\.me\\.home\\.');
    assert.ok((stats.get('wasmcustom.portico_flows.me.home.user.ok') ?? 0) >= 2, `Envoy ran the flow: ${JSON.stringify([...stats])}`); // Who verified the token: ext_authz (the callout) in callout mode, jwt_authn alone in native mode.
    if (mode === 'callout') assert.ok((await callouts()) > calloutsBefore, 'the callout authenticated the caller');
    else assert.equal(await callouts(), calloutsBefore, 'no callout: Envoy verified the token');
  });
  await t.test("no token: the route's 401, the flow never runs", async () => {
    const before = upstreams.seen.users!.length;
    const r = await get(undefined, { 'x-user-id': SEED_USER.id });
    assert.equal(r.status, 401, r.text);
    assert.equal(upstreams.seen.users!.length, before, 'no call was made');
  });
  await t.test('a client-sent X-User-Id (the header the claim travels in) changes nothing', async () => {
    const r = await get(bo, { 'x-user-id': SEED_USER.id });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.user.id, OTHER_USER.id);
    assert.equal(upstreams.seen.users!.at(-1)!.path, `/users/${OTHER_USER.id}`);
  });
}

describe('flows run by Envoy', () => {
  it("answer seed 003's aggregation in Envoy, fail as the runtime does, follow model changes, and are refused when Envoy cannot run them", { timeout: 300_000 }, async (t) => {
    if (!requireComponent(t, 'flows-wasm')) return;
    const upstreams = await startFlowUpstreams(DELAY_MS);
    t.after(() => upstreams.close());
    const g = await startAuthzGateway(t, {
      nodeId: 'edge-flows-envoy',
      mutate: (doc) => {
        for (const [name, s] of Object.entries(upstreams.servers)) doc.services.push({ name: `f-${name}`, endpoints: [{ host: '127.0.0.1', port: s.port }] });
        const lenient = strict('envoy');
        lenient.steps[1] = { ...lenient.steps[1]!, onError: 'continue', fallback: { audited: false } };
        doc.products.push({
          name: 'native',
          gatewayGroups: ['edge'],
          basePath: '/native',
          auth: { accept: ['none'] },
          routes: [
            route('home', homeByQuery('envoy')),
            route('home-runtime', homeByQuery()),
            route('strict', strict('envoy')),
            route('strict-runtime', strict()),
            route('slow', slow('envoy')),
            route('slow-runtime', slow()),
            route('lenient', lenient),
          ],
        });
        addMeProduct(doc, true);
      },
    });
    if (!g) return;
    const user = `user=${SEED_USER.id}`;

    await t.test("GET /native/home: seed 003's body from Envoy, in about one call's time", async () => {
      const times: number[] = [];
      // Up to 20 tries, until one is fast: a loaded machine can stall any single request.
      for (let i = 0; i < 20 && !(i >= 5 && Math.min(...times) < 3 * DELAY_MS); i++) {
        const t0 = performance.now();
        const r = await g.call(`/native/home?${user}`);
        times.push(performance.now() - t0);
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json, SEED_HOME_BODY);
        assert.equal(r.headers.get('x-portico-flow-incomplete'), null);
      }
      // Three sequential 50 ms calls take at least 150 ms: the fastest of a few tries proves they overlapped.
      assert.ok(Math.min(...times) < 3 * DELAY_MS, `fastest of ${times.map((x) => x.toFixed(0)).join(', ')} ms should be under ${3 * DELAY_MS} ms`);
      // Byte for byte the runtime's answer to the same flow (the picked fields in the pick's order).
      const runtime = await g.call(`/native/home-runtime?${user}`);
      assert.equal(runtime.status, 200, runtime.text);
      assert.equal((await g.call(`/native/home?${user}`)).text, runtime.text);
      assert.equal(upstreams.seen.users!.at(-1)!.path, `/users/${SEED_USER.id}`);
      assert.equal(upstreams.seen.orders!.at(-1)!.path, `/orders?user=${SEED_USER.id}&limit=3`);
      // Envoy made the calls (its step stats count them); the flow runtime never saw the request.
      const stats = await g.envoy.stats('portico_flows\\.native\\.home\\.');
      assert.ok((stats.get('wasmcustom.portico_flows.native.home.user.ok') ?? 0) >= times.length, JSON.stringify([...stats]));
      assert.equal(await g.envoy.stat('cluster.portico.flows.upstream_rq_total'), 0, 'no request went to the flow runtime');
    });

    await t.test('a failing step: onError fail answers as the runtime does (status and body); continue answers with the fallback and says so', async () => {
      const native = await g.call(`/native/strict?${user}`);
      const runtime = await g.call(`/native/strict-runtime?${user}`);
      assert.equal(native.status, 502, native.text);
      assert.equal(runtime.status, 502, runtime.text);
      assert.deepEqual(native.json, runtime.json);
      assert.deepEqual(native.json, { error: 'flow_step_failed', message: 'Step audit failed: f-broken answered 500.', step: 'audit' });
      // A step past its timeout: 504 naming the step, as the runtime answers.
      const late = await g.call('/native/slow');
      const lateRuntime = await g.call('/native/slow-runtime');
      upstreams.gate.release();
      assert.equal(late.status, 504, `native: ${late.text}`);
      assert.equal(lateRuntime.status, 504, `runtime: ${lateRuntime.text}`);
      assert.deepEqual(late.json, lateRuntime.json);
      assert.deepEqual(late.json, { error: 'flow_step_timeout', message: 'Step wait failed: f-echo did not answer within 300 ms.', step: 'wait' });
      const lenient = await g.call(`/native/lenient?${user}`);
      assert.equal(lenient.status, 200, lenient.text);
      assert.deepEqual(lenient.json, { user: JSON.parse(JSON.stringify(SEED_USER)), audit: { audited: false } });
      assert.equal(lenient.headers.get('x-portico-flow-incomplete'), 'audit');
    });

    // Callout mode (the seed's): ext_authz sets the forwarded claims before the flows filter.
    await claimChecks(t, g, upstreams, 'callout');

    await t.test('exact mode: the partner and plan the callout set, whatever the caller sends', async () => {
      const token = await g.issuer.token({ sub: SEED_USER.id, claims: { team: 'web-app' } });
      const r = await g.call('/me/who', { headers: { authorization: `Bearer ${token}`, 'x-portico-partner': 'mobile-app', 'x-portico-plan': 'gold' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.echo.path, '/who/web-app/me-unlimited');
    });

    await t.test('a model change (a renamed reply key) applies without a restart', async () => {
      const current = await g.api.get('/api/v1/products/native/routes/home');
      assert.equal(current.status, 200, current.text);
      const next = structuredClone(current.body);
      delete next.revision;
      next.flow.steps[2].respond.body = next.flow.steps[2].respond.body.replace('"recent_orders"', '"orders"');
      const put = await g.api.put('/api/v1/products/native/routes/home', next, { 'if-match': current.headers.get('etag')! });
      assert.equal(put.status, 200, put.text);
      const { recent_orders, ...rest } = SEED_HOME_BODY;
      await waitFor(
        'the renamed key',
        async () => {
          const r = await g.call(`/native/home?${user}`);
          return r.status === 200 && r.json.orders !== undefined ? r : undefined;
        },
        30_000,
        100,
      ).then((r) => assert.deepEqual(r.json, { ...rest, orders: recent_orders }));
      assert.equal(g.envoy.process.child.exitCode, null, 'the same Envoy, never restarted');
    });

    await t.test('a flow the filter cannot run is refused with 422 naming the step and field; nothing is stored', async () => {
      const bad = route('bad', {
        execution: 'envoy',
        steps: [
          { name: 'post', call: { service: 'f-echo', method: 'POST', path: '/x' } },
          { name: 'reply', respond: { body: '{"a": steps.post.body}' } },
        ],
      });
      const r = await g.api.post('/api/v1/products/native/routes', bad);
      assert.equal(r.status, 422, r.text);
      assert.match(r.headers.get('content-type') ?? '', /problem\+json/);
      assert.ok(
        r.body.errors.some((e: { field: string; message: string }) => e.field === 'flow.steps[0].call.method' && /only GET/.test(e.message)),
        r.text,
      );
      assert.equal((await g.api.get('/api/v1/products/native/routes/bad')).status, 404);
      // The same flow run by the runtime is fine.
      const ok = await g.api.post('/api/v1/products/native/routes', { ...bad, flow: { ...bad.flow, execution: 'runtime' } });
      assert.equal(ok.status, 201, ok.text);
    });
  });

  it("reads the caller's claims in native mode: jwt_authn verifies the token and sets the forwarded claims before the flows filter", { timeout: 300_000 }, async (t) => {
    if (!requireComponent(t, 'flows-wasm')) return;
    const upstreams = await startFlowUpstreams(0);
    t.after(() => upstreams.close());
    const g = await startAuthzGateway(t, {
      nodeId: 'edge-flows-envoy-native',
      modes: 'native',
      mutate: (doc) => {
        for (const [name, s] of Object.entries(upstreams.servers)) doc.services.push({ name: `f-${name}`, endpoints: [{ host: '127.0.0.1', port: s.port }] });
        addMeProduct(doc);
      },
    });
    if (!g) return;
    await claimChecks(t, g, upstreams, 'native');
  });

  it('without the module, a flow asking for Envoy is refused at write time with 422 naming flow.execution', { timeout: 60_000 }, async (t) => {
    const portico = await startTestPortico({ env: { PORTICO_FLOWS_WASM_MODULE: '/nonexistent/portico_flows.wasm' } });
    t.after(() => portico.close());
    const doc = {
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
      services: [{ name: 'users', endpoints: [{ host: '127.0.0.1', port: 9 }] }],
      products: [
        {
          name: 'app',
          gatewayGroups: ['edge'],
          basePath: '/app',
          auth: { accept: ['none'] },
          routes: [
            route('home', {
              execution: 'envoy',
              steps: [
                { name: 'u', call: { service: 'users', path: '/u' } },
                { name: 'reply', respond: { body: '{"u": steps.u.body}' } },
              ],
            }),
          ],
        },
      ],
    };
    const r = await portico.api.post('/api/v1/config', doc);
    assert.equal(r.status, 422, r.text);
    assert.ok(
      r.body.errors.some((e: { field: string; message: string }) => e.field === 'flow.execution' && /nonexistent\/portico_flows\.wasm cannot be read/.test(e.message)),
      r.text,
    );
    // Run by the runtime, the same flow is accepted.
    doc.products[0]!.routes[0]!.flow.execution = 'runtime';
    const ok = await portico.api.post('/api/v1/config', doc);
    assert.equal(ok.status, 200, ok.text);
  });
});
