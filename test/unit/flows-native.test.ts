// Flows that run in Envoy (execution: envoy): the plan the flows Wasm filter runs, built from the flow,
// and the write gate's refusals naming the step and field of what the filter cannot run, or naming
// the missing module.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileModelFlows } from '../../src/flows/index.ts';
import { homeFlow } from '../../src/flows/fixtures.ts';
import { nativeFlowPlan, parseModelDocument, type FlowSpec } from '../../src/model/index.ts';

/** Seed 003's home flow reading the user from the query (Envoy's templates read query and headers). */
function envoyHome(): FlowSpec {
  const text = JSON.stringify(homeFlow()).replaceAll('request.identity.claims.sub', 'request.query.user');
  return { ...(JSON.parse(text) as FlowSpec), execution: 'envoy' };
}

function refusal(flow: FlowSpec, field: string, message: RegExp): void {
  const r = nativeFlowPlan(flow);
  assert.equal(r.ok, false, 'the flow should have been refused');
  const at = r.ok ? [] : r.errors.filter((e) => e.field === field);
  assert.equal(at.length, 1, `expected one error at ${field}, got ${JSON.stringify(r.ok ? [] : r.errors)}`);
  assert.match(at[0]!.message, message);
}

const home = envoyHome();
const step = (f: FlowSpec, i: number, j: number) => f.steps[i]!.parallel!.steps[j]!;
const edit = (f: (flow: FlowSpec) => void): FlowSpec => {
  const copy = structuredClone(home);
  f(copy);
  return copy;
};

describe('the Envoy plan of a flow', () => {
  it("is seed 003's aggregation: three parallel calls, the user picked, fallbacks, the reply keys", () => {
    const r = nativeFlowPlan(home);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.deepEqual(r.plan.calls[0], { name: 'user', service: 'users', path: '/users/{request.query.user}', query: [], timeoutMs: 1000, pick: ['id', 'name', 'avatar_url', 'membership'] });
    assert.deepEqual(r.plan.calls[1], {
      name: 'orders',
      service: 'orders',
      path: '/orders',
      query: [
        ['user', '{request.query.user}'],
        ['limit', '3'],
      ],
      timeoutMs: 1000,
      fallback: [],
    });
    assert.deepEqual(r.plan.reply, [
      { key: 'user', step: 'user' },
      { key: 'recent_orders', step: 'orders' },
      { key: 'recommendations', step: 'recommendations' },
    ]);
  });

  it("reads claims from the headers the route's issuers forward them in (seed 003's own flow)", () => {
    const seed = { ...homeFlow(), execution: 'envoy' as const };
    const identity = {
      claims: new Map([
        ['sub', ['x-user-id', 'x-sub']],
        ['role', ['x-user-role']],
      ]),
    };
    const r = nativeFlowPlan(seed, 'flow', { identity });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.equal(r.plan.calls[0]!.path, '/users/{request.identity.claims.sub}');
    // Only the claims the templates read, with every header that may carry them.
    assert.deepEqual(r.plan.identity, [['claims.sub', ['x-user-id', 'x-sub']]]);
    const none = nativeFlowPlan(home, 'flow', { identity });
    assert.ok(none.ok);
    assert.equal(none.plan.identity, undefined, 'no identity read, none in the plan');
    const field = 'flow.steps[0].parallel.steps[0].call.path';
    const refused = (opts: Parameters<typeof nativeFlowPlan>[2], message: RegExp) => {
      const x = nativeFlowPlan(seed, 'flow', opts);
      assert.ok(!x.ok && x.errors.some((e) => e.field === field && message.test(e.message)), JSON.stringify(x));
    };
    refused({ identity: { claims: new Map([['role', ['x-user-role']]]) } }, /claim sub, which none of the product's JWT issuers forwards/);
    refused({ identity: { noClaims: 'this route takes no JWT, so its callers have no claims' } }, /claim sub, but this route takes no JWT/);
    refused({ identity: { claims: new Map(), ambiguous: new Map([['sub', 'shared']]) } }, /claim sub, but shared/);
    const dotted = JSON.parse(JSON.stringify(seed).replaceAll('claims.sub', 'claims.org.unit')) as FlowSpec;
    const d = nativeFlowPlan(dotted, 'flow', { identity: { claims: new Map([['org.unit', ['x-unit']]]) } });
    assert.ok(!d.ok && d.errors.some((e) => e.field === field && /no dots/.test(e.message)), JSON.stringify(d));
  });

  it("caps a call's timeout by the flow's and gives a failed step without fallback none", () => {
    const r = nativeFlowPlan(
      edit((f) => {
        f.timeoutMs = 300;
        delete step(f, 0, 1).fallback;
      }),
    );
    assert.ok(r.ok);
    assert.deepEqual(
      r.plan.calls.map((c) => c.timeoutMs),
      [300, 300, 300],
    );
    assert.equal(r.plan.calls[1]!.fallback, null, 'onError continue without fallback yields null, as in the runtime');
  });

  it('refuses what the filter cannot run, naming the step and field', () => {
    refusal(
      edit((f) => (step(f, 0, 0).call!.method = 'POST')),
      'flow.steps[0].parallel.steps[0].call.method',
      /only GET/,
    );
    refusal(
      edit((f) => (step(f, 0, 1).call!.path = '/orders/{request.identity.claims.sub}')),
      'flow.steps[0].parallel.steps[1].call.path',
      /reads claim sub, but the route has no claims/,
    );
    refusal(
      edit((f) => (step(f, 0, 1).call!.path = '/orders/{request.identity.partner}')),
      'flow.steps[0].parallel.steps[1].call.path',
      /reads \{request\.identity\.partner\}, but the route has no identity/,
    );
    refusal(
      edit((f) => (step(f, 0, 1).call!.path = '/orders/{request.identity.credential}')),
      'flow.steps[0].parallel.steps[1].call.path',
      /request\.identity\.claims\.NAME, request\.identity\.partner and request\.identity\.plan/,
    );
    refusal(
      edit((f) => (step(f, 0, 1).call!.path = '/orders/{request.params.id}')),
      'flow.steps[0].parallel.steps[1].call.path',
      /request\.identity\.claims\.NAME only/,
    );
    refusal(
      edit((f) => (step(f, 0, 2).call!.headers = { 'x-a': 'b' })),
      'flow.steps[0].parallel.steps[2].call.headers',
      /headers are not supported/,
    );
    refusal(
      edit((f) => (step(f, 0, 0).when = 'true')),
      'flow.steps[0].parallel.steps[0].when',
      /conditional/,
    );
    refusal(
      edit((f) => (f.steps[0]!.parallel!.wait = 'referenced')),
      'flow.steps[0].parallel.wait',
      /wait: all/,
    );
    refusal(
      edit((f) => (f.steps[1]!.transform!.map = '$')),
      'flow.steps[1].transform.map',
      /map/,
    );
    refusal(
      edit((f) => (f.steps[1]!.transform!.pick = ['a.b'])),
      'flow.steps[1].transform.pick',
      /top-level/,
    );
    refusal(
      edit((f) => (f.steps[2]!.respond!.status = 201)),
      'flow.steps[2].respond.status',
      /default status/,
    );
    refusal(
      edit((f) => (f.steps[2]!.respond!.body = 'steps.user.body')),
      'flow.steps[2].respond.body',
      /object of step bodies/,
    );
    refusal(
      edit((f) => (f.steps[2]!.respond!.body = '{"u": steps.user.body.name}')),
      'flow.steps[2].respond.body',
      /is not "key": steps.NAME.body/,
    );
    refusal(
      edit((f) => (f.steps[2]!.respond!.body = '{"u": steps.user.body, "p": steps.profile.body}')),
      'flow.steps[2].respond.body',
      /both raw and transformed/,
    );
    refusal(
      edit((f) => f.steps.splice(1, 0, { name: 'js', code: { source: 'return 1' } })),
      'flow.steps[1]',
      /only calls, parallel calls, transforms/,
    );
    refusal(
      edit((f) => f.steps.pop()),
      'flow.steps',
      /end with a respond step/,
    );
  });
});

describe('the write gate for flows that run in Envoy', () => {
  const model = (flow: FlowSpec, retried?: string, accept: string[] = ['none'], authzMode?: 'exact') => {
    const doc = {
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }], ...(authzMode ? { authz: { mode: authzMode } } : {}) }],
      services: ['users', 'orders', 'products'].map((name) => ({ name, endpoints: [{ host: '127.0.0.1', port: 1 }], ...(name === retried ? { retries: { attempts: 2 } } : {}) })),
      jwtIssuers: [{ name: 'idp', issuer: 'https://idp.example', audiences: ['api'], jwksUri: 'https://idp.example/jwks', partnerClaim: 'team', forwardClaims: { sub: 'X-User-Id' } }],
      products: [{ name: 'app', gatewayGroups: ['edge'], basePath: '/api', auth: { accept }, routes: [{ name: 'home', match: { path: { type: 'exact', value: '/home' } }, flow }] }],
    };
    const { model, errors } = parseModelDocument(doc, { hashApiKey: (key) => ({ prefix: key.slice(0, 8), hash: key, secret: key }) });
    assert.deepEqual(errors, []);
    return model;
  };

  it('passes a flow the filter can run when the module is there', () => {
    assert.deepEqual(compileModelFlows(model(home), { envoyExecution: {} }).errors, []);
  });

  it("refuses it with the plan builder's reasons, on the route", () => {
    const errors = compileModelFlows(model(edit((f) => (step(f, 0, 0).call!.method = 'DELETE'))), { envoyExecution: {} }).errors;
    assert.deepEqual(
      errors.map((e) => [e.kind, e.key, e.field]),
      [['routes', 'app/home', 'flow.steps[0].parallel.steps[0].call.method']],
    );
  });

  it("passes seed 003's own flow (claims.sub) on a JWT route whose issuer forwards sub; refuses it where callers have no token", () => {
    const seed = { ...homeFlow(), execution: 'envoy' as const };
    assert.deepEqual(compileModelFlows(model(seed, undefined, ['jwt']), { envoyExecution: {} }).errors, []);
    const errors = compileModelFlows(model(seed), { envoyExecution: {} }).errors;
    assert.deepEqual(
      errors.map((e) => [e.key, e.field]),
      [
        ['app/home', 'flow.steps[0].parallel.steps[0].call.path'],
        ['app/home', 'flow.steps[0].parallel.steps[1].call.query.user'],
        ['app/home', 'flow.steps[0].parallel.steps[2].call.query.user'],
      ],
    );
    assert.match(errors[0]!.message, /claim sub, but this route takes no JWT/);
  });

  it('refuses a claim whose header another issuer of the product fills with another claim', () => {
    const m = model({ ...homeFlow(), execution: 'envoy' }, undefined, ['jwt']);
    const other = { ...m.jwtIssuers.get('idp')!, name: 'idp2', issuer: 'https://idp2.example', forwardClaims: { email: 'X-User-Id' } };
    const shared = { ...m, jwtIssuers: new Map([...m.jwtIssuers, ['idp2', other]]) };
    const errors = compileModelFlows(shared, { envoyExecution: {} }).errors;
    assert.equal(errors.length, 3, JSON.stringify(errors));
    assert.match(errors[0]!.message, /claim sub, but the product's issuers forward different claims \(email, sub\) in x-user-id/);
  });

  it('reads the partner and plan where the callout sets them before the filter: exact mode, authenticated callers only', () => {
    const flow = edit((f) => {
      step(f, 0, 1).call!.query = { partner: '{request.identity.partner}', plan: '{request.identity.plan}' };
    });
    const field = (p: string) => `flow.steps[0].parallel.steps[1].call.query.${p}`;
    assert.deepEqual(compileModelFlows(model(flow, undefined, ['jwt'], 'exact'), { envoyExecution: {} }).errors, []);
    const native = compileModelFlows(model(flow, undefined, ['jwt']), { envoyExecution: {} }).errors;
    assert.deepEqual(
      native.map((e) => e.field),
      [field('partner'), field('plan')],
    );
    assert.match(native[0]!.message, /gateway group edge authorizes in native mode, where the partner and plan are not known before the router/);
    const anonymous = compileModelFlows(model(flow, undefined, ['jwt', 'none'], 'exact'), { envoyExecution: {} }).errors;
    assert.match(anonymous[0]?.message ?? '', /takes anonymous callers/);
  });

  it("refuses a call to a service with retries (Envoy's calls from the filter have no retry policy)", () => {
    const errors = compileModelFlows(model(home, 'orders'), { envoyExecution: {} }).errors;
    assert.deepEqual(
      errors.map((e) => e.field),
      ['flow.steps[0].parallel.steps[1].call.service'],
    );
    assert.match(errors[0]!.message, /service orders has retries/);
    assert.deepEqual(compileModelFlows(model({ ...home, execution: 'runtime' }, 'orders'), { envoyExecution: {} }).errors, []);
  });

  it('refuses any flow asking for Envoy when the module is missing, and none that does not', () => {
    const unavailable = { envoyExecution: { unavailable: 'the flows Wasm module /x cannot be read (ENOENT)' } };
    const errors = compileModelFlows(model(home), unavailable).errors;
    assert.deepEqual(
      errors.map((e) => [e.field, e.message]),
      [['flow.execution', 'envoy is unavailable: the flows Wasm module /x cannot be read (ENOENT)']],
    );
    assert.deepEqual(compileModelFlows(model({ ...home, execution: 'runtime' }), unavailable).errors, []);
  });
});
