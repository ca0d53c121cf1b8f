// The flow designer's endpoints against a real control plane and real upstreams on loopback:
// /api/v1/flows/check (the runtime's compiler, 422 naming the field) and /api/v1/flows/try (seed
// 003's /api/home run once, every step traced with its input and output; credentials redacted;
// admin only). Bad input is a 4xx naming the field, never a 5xx.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { homeFlow, SEED_HOME_BODY, SEED_ORDERS, SEED_RECOMMENDATIONS, SEED_USER } from '../../src/flows/index.ts';
import { startFlowUpstreams, type FlowUpstreams } from '../support/flows-gateway.ts';
import { assertProblem, startTestPortico, type ApiClient, type TestPortico } from '../support/portico.ts';

interface Trace {
  name: string;
  kind: string;
  outcome: string;
  durationMs: number;
  service?: string;
  input?: any;
  output?: any;
  error?: { kind: string; message: string };
}

const HOME_REQUEST = { method: 'GET', path: '/api/home', identity: { partner: 'mobile-app', claims: { sub: SEED_USER.id } } };

describe('flow designer endpoints (check and try it)', () => {
  let portico: TestPortico;
  let upstreams: FlowUpstreams;
  let viewer: ApiClient;
  before(async () => {
    upstreams = await startFlowUpstreams(0);
    portico = await startTestPortico();
    const services = Object.entries(upstreams.servers).map(([name, s]) => ({ name, endpoints: [{ host: '127.0.0.1', port: s.port }] }));
    const r = await portico.api.post('/api/v1/config', { portico: 'v1', services });
    assert.equal(r.status, 200, r.text);
    const token = await portico.api.post('/api/v1/admin-tokens', { name: 'designer-viewer', role: 'viewer' });
    assert.equal(token.status, 201, token.text);
    viewer = portico.api.withToken(token.body.token);
  });
  after(async () => {
    await portico?.close();
    await upstreams?.close();
  });

  it('checks a good flow (200) and names the field of a bad expression (422), changing nothing', async () => {
    const revision = portico.store.current().revision;
    const good = await portico.api.post('/api/v1/flows/check', { flow: homeFlow() });
    assert.equal(good.status, 200, good.text);
    assert.deepEqual(good.body, { valid: true });
    const flow = homeFlow();
    flow.steps[2]!.respond!.body = '{"user": steps.profile.body';
    const bad = await portico.api.post('/api/v1/flows/check', { flow });
    assertProblem(bad, 422, 'flow.steps[2].respond.body');
    // A reference to a later step, a missing service: the compiler's checks, with their paths.
    const later = await portico.api.post('/api/v1/flows/check', {
      flow: {
        steps: [
          { name: 'r', respond: { body: 'steps.u.body' } },
          { name: 'u', call: { service: 'users', path: '/' } },
        ],
      },
    });
    assertProblem(later, 422, 'flow.steps[0].respond.body');
    const ghost = await portico.api.post('/api/v1/flows/check', { flow: { steps: [{ name: 'g', call: { service: 'ghost', path: '/' } }] } });
    assertProblem(ghost, 422, 'flow.steps[0].call.service');
    assert.equal(portico.store.current().revision, revision, 'checking stores nothing');
    // Viewers may check (it changes nothing).
    assert.equal((await viewer.post('/api/v1/flows/check', { flow: homeFlow() })).status, 200);
  });

  it("tries seed 003's /api/home against the real upstreams: each step's input, output and time", async () => {
    const before = upstreams.seen.users!.length;
    const r = await portico.api.post('/api/v1/flows/try', { flow: homeFlow(), request: HOME_REQUEST });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 200, r.body.body);
    assert.deepEqual(JSON.parse(r.body.body), SEED_HOME_BODY);
    const trace = r.body.trace as Trace[];
    const byName = new Map(trace.map((s) => [s.name, s]));
    const user = byName.get('user')!;
    assert.equal(user.kind, 'call');
    assert.equal(user.service, 'users');
    assert.equal(user.outcome, 'ok');
    assert.equal(user.input.path, `/users/${SEED_USER.id}`);
    assert.equal(user.output.status, 200);
    assert.deepEqual(user.output.body, SEED_USER);
    assert.ok(user.durationMs >= 0);
    assert.equal(byName.get('orders')!.input.path, `/orders?user=${SEED_USER.id}&limit=3`);
    assert.deepEqual(byName.get('orders')!.output.body, SEED_ORDERS);
    assert.deepEqual(byName.get('recommendations')!.output.body, SEED_RECOMMENDATIONS);
    assert.deepEqual(byName.get('profile')!.input, SEED_USER, "the transform's input");
    assert.deepEqual(byName.get('profile')!.output.body, SEED_HOME_BODY.user);
    assert.equal(byName.get('reply')!.output.status, 200);
    // The calls really reached the upstreams.
    assert.equal(upstreams.seen.users!.length, before + 1);
    assert.equal(upstreams.seen.users!.at(-1)!.path, `/users/${SEED_USER.id}`);
  });

  it('shows a failing step and which way a switch went', async () => {
    const flow = {
      steps: [
        {
          name: 'pick',
          switch: { cases: [{ when: 'request.query.mode = "broken"', steps: [{ name: 'bad', call: { service: 'broken', path: '/x' } }] }], default: [{ name: 'fine', respond: { status: 204 } }] },
        },
      ],
    };
    const failed = await portico.api.post('/api/v1/flows/try', { flow, request: { path: '/', query: { mode: 'broken' } } });
    assert.equal(failed.status, 200, failed.text);
    assert.equal(failed.body.status, 502);
    assert.equal(failed.body.failedStep, 'bad');
    const trace = failed.body.trace as Trace[];
    assert.deepEqual(trace.find((s) => s.name === 'pick')!.output, { case: 0 });
    const bad = trace.find((s) => s.name === 'bad')!;
    assert.equal(bad.outcome, 'failed');
    assert.equal(bad.error?.kind, 'status');
    assert.equal(bad.output.status, 500);
    const other = await portico.api.post('/api/v1/flows/try', { flow, request: { path: '/' } });
    assert.equal(other.body.status, 204);
    assert.deepEqual((other.body.trace as Trace[]).find((s) => s.name === 'pick')!.output, { case: 'default' });
  });

  it('never shows credentials: headers redacted by name, their values masked wherever a step echoed them', async () => {
    const flow = {
      steps: [
        { name: 'up', call: { service: 'echo', forward: true, path: '/echo', method: 'POST', body: 'request.headers' } },
        { name: 'reply', respond: { body: '{"seen": steps.up.body, "headers": request.headers}' } },
      ],
    };
    const r = await portico.api.post('/api/v1/flows/try', {
      flow,
      request: { method: 'POST', path: '/', headers: { Authorization: 'Bearer tok-very-secret-123', 'X-Api-Key': 'pk_live_abcdef', 'x-note': 'hello' }, body: { a: 1 } },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 200, r.body.body);
    assert.doesNotMatch(r.text, /tok-very-secret-123|pk_live_abcdef/);
    assert.match(r.text, /\[redacted\]/);
    assert.match(r.text, /hello/, 'other headers stay');
    // The upstream did get them (the run is real); only the trace hides them.
    assert.match(upstreams.seen.echo!.at(-1)!.body, /pk_live_abcdef/);
  });

  it('refuses a viewer (403) and asks for a token (401)', async () => {
    assertProblem(await viewer.post('/api/v1/flows/try', { flow: homeFlow(), request: HOME_REQUEST }), 403);
    assertProblem(await portico.api.withToken(undefined).post('/api/v1/flows/try', { flow: homeFlow() }), 401);
  });

  const bad: Array<[string, unknown, string | RegExp, number?]> = [
    ['no body', undefined, '(body)'],
    ['a body that is not an object', [1, 2], '(body)'],
    ['no flow', { request: {} }, 'flow'],
    ['a flow without steps', { flow: { steps: [] } }, 'flow.steps'],
    ['a step of no kind', { flow: { steps: [{ name: 'x' }] } }, 'flow.steps[0]'],
    ['a bad expression', { flow: { steps: [{ name: 'r', respond: { body: '$$$(' } }] } }, 'flow.steps[0].respond.body'],
    ['an unknown method', { flow: homeFlow(), request: { method: 'BREW' } }, 'request.method'],
    ['a path without a slash', { flow: homeFlow(), request: { path: 'api' } }, 'request.path'],
    ['a header value with a newline', { flow: homeFlow(), request: { headers: { 'x-a': 'a\nb' } } }, /request\.headers/],
    ['an unknown request field', { flow: homeFlow(), request: { cookies: 'x' } }, /request/],
    ['an unknown top-level field', { flow: homeFlow(), extra: 1 }, /extra|\(body\)/],
  ];
  for (const [what, body, field, status] of bad) {
    it(`try: ${what} → ${status ?? 422} naming ${field}`, async () => {
      const r = await portico.api.post('/api/v1/flows/try', body);
      assertProblem(r, status ?? 422, field);
    });
  }
});
