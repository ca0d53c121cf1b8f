// Flow validation at write time: a bad flow is refused with errors naming the step and the field,
// for the schema (shape) and for meaning (expressions, references, reachability, limits).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FLOW_LIMITS, type FlowError, type FlowSpec } from '../../src/flows/index.ts';
import { checkFlow, checkRouteTransform } from '../support/flows.ts';
import { CodeSandbox } from '../../src/flows/code.ts';
import { homeFlow } from '../../src/flows/fixtures.ts';

const services = new Set(['users', 'orders', 'products']);

function errorsOf(flow: unknown, opts: Parameters<typeof checkFlow>[1] = { services }): FlowError[] {
  const r = checkFlow(flow, opts);
  assert.equal(r.ok, false, 'the flow should have been refused');
  return r.ok ? [] : r.errors;
}

/** The one error at `field`, whose message must match. */
function expectError(flow: unknown, field: string, message: RegExp, code: FlowError['code'] = 'invalid'): void {
  const errors = errorsOf(flow);
  const at = errors.filter((e) => e.field === field);
  assert.equal(at.length, 1, `expected one error at ${field}, got ${JSON.stringify(errors)}`);
  assert.match(at[0]!.message, message);
  assert.equal(at[0]!.code, code);
}

const call = (name: string, path = '/x', extra: object = {}) => ({ name, call: { service: 'users', path }, ...extra });

describe('flow validation', () => {
  it('accepts the seed 003 home flow', () => {
    const r = checkFlow(homeFlow(), { services });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  });

  it('names the field of a schema error, inside nested steps', () => {
    expectError({ steps: [{ name: 'a', call: { service: 'users', path: '/x', timeoutMs: 0 } }] }, 'flow.steps[0].call.timeoutMs', /must be >= 1/);
    expectError({ steps: [{ name: 'a', call: { service: 'users', path: '/x', retry: 3 } }] }, 'flow.steps[0].call.retry', /not a known field/);
    expectError({ steps: [{ name: 'p', parallel: { steps: [{ name: 'b', call: { service: 'users', path: 'x' } }] } }] }, 'flow.steps[0].parallel.steps[0].call.path', /invalid format/);
    expectError({ steps: [{ name: '1st', respond: {} }] }, 'flow.steps[0].name', /invalid format/);
  });

  it('refuses a step that does nothing or two things', () => {
    expectError({ steps: [{ name: 'a' }] }, 'flow.steps[0]', /must have one of call, parallel, switch, respond, transform, code/);
    expectError({ steps: [{ name: 'a', call: { service: 'users', path: '/x' }, respond: {} }] }, 'flow.steps[0]', /has call and respond/);
  });

  it('names the step and field of an expression that does not compile', () => {
    expectError({ steps: [call('a'), { name: 'r', respond: { body: '{"x": steps.a.body' } }] }, 'flow.steps[1].respond.body', /not a valid JSONata expression/);
    expectError({ steps: [call('a', '/users/{request.params.id +}')] }, 'flow.steps[0].call.path', /part \{request\.params\.id \+\} is not a valid JSONata/);
    expectError({ steps: [{ name: 'a', call: { service: 'users', path: '/x', query: { q: '{' } } }] }, 'flow.steps[0].call.query.q', /unclosed \{/);
    expectError({ steps: [{ name: 'a', call: { service: 'users', path: '/x', headers: { 'x-a': 'b}' } } }] }, 'flow.steps[0].call.headers["x-a"]', /unmatched \}.*write \}\}/);
    expectError({ steps: [{ name: 'r', respond: { body: '$eval(request.body.code)' } }] }, 'flow.steps[0].respond.body', /may not call \$eval/);
    expectError({ steps: [call('a', '/x', { when: 'request.method = ' })] }, 'flow.steps[0].when', /not a valid JSONata/);
  });

  it('refuses references to unknown, later, parallel and result-less steps, and to itself', () => {
    expectError({ steps: [{ name: 'r', respond: { body: 'steps.nobody.body' } }] }, 'flow.steps[0].respond.body', /steps\.nobody, which is not a step of this flow/, 'reference');
    expectError({ steps: [call('a', '/u/{steps.b.body.id}'), call('b')] }, 'flow.steps[0].call.path', /steps\.b \(flow\.steps\[1\]\), which runs after this step/, 'reference');
    expectError({ steps: [call('a', '/u/{steps.a.body.id}')] }, 'flow.steps[0].call.path', /steps\.a, its own step/, 'reference');
    expectError(
      { steps: [{ name: 'p', parallel: { steps: [call('x'), call('y', '/u/{steps.x.body}')] } }] },
      'flow.steps[0].parallel.steps[1].call.path',
      /steps\.x, which runs in parallel with this step/,
      'reference',
    );
    expectError(
      {
        steps: [
          { name: 'p', parallel: { steps: [call('x')] } },
          { name: 'r', respond: { body: 'steps.p.body' } },
        ],
      },
      'flow.steps[1].respond.body',
      /steps\.p, a parallel step, which has no result/,
      'reference',
    );
    expectError(
      {
        steps: [
          {
            name: 's',
            switch: {
              cases: [
                { when: 'true', steps: [call('x', '/{steps.x2.body}')] },
                { when: 'false', steps: [call('x2')] },
              ],
            },
          },
        ],
      },
      'flow.steps[0].switch.cases[0].steps[0].call.path',
      /steps\.x2 .*which runs after this step/,
      'reference',
    );
  });

  it('accepts references to earlier steps, nested ones, and across a finished parallel group', () => {
    const r = checkFlow(
      {
        steps: [
          { name: 'p', parallel: { steps: [call('x'), call('y')] } },
          { name: 's', switch: { cases: [{ when: 'steps.x.status = 200', steps: [call('z', '/z/{steps.y.body.id}')] }] } },
          { name: 'r', respond: { body: '{"x": steps.x.body, "z": steps.z.body, "all": $keys(steps)}' } },
        ],
      },
      { services },
    );
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  });

  it('refuses unreachable steps: after an unconditional respond, after a switch that always responds, after an always-true case', () => {
    expectError({ steps: [{ name: 'r', respond: {} }, call('late')] }, 'flow.steps[1]', /is unreachable: flow\.steps\[0\] always responds/);
    expectError(
      {
        steps: [{ name: 's', switch: { cases: [{ when: 'request.method = "GET"', steps: [{ name: 'r1', respond: {} }] }], default: [{ name: 'r2', respond: { status: 404 } }] } }, call('late')],
      },
      'flow.steps[1]',
      /is unreachable/,
    );
    expectError(
      {
        steps: [
          {
            name: 's',
            switch: {
              cases: [
                { when: 'true', steps: [call('a')] },
                { when: 'request.method = "GET"', steps: [call('b')] },
              ],
            },
          },
        ],
      },
      'flow.steps[0].switch.cases[1]',
      /is unreachable: flow\.steps\[0\]\.switch\.cases\[0\]\.when always matches/,
    );
    // A respond guarded by `when` does not end the sequence.
    assert.ok(checkFlow({ steps: [{ name: 'r', when: 'request.query.fast', respond: {} }, call('a')] }, { services }).ok);
  });

  it('refuses a respond inside a parallel branch, and duplicate step names', () => {
    expectError(
      { steps: [{ name: 'p', parallel: { steps: [{ name: 's', switch: { cases: [{ when: 'true', steps: [{ name: 'r', respond: {} }] }] } }] } }] },
      'flow.steps[0].parallel.steps[0]',
      /may not respond/,
    );
    expectError({ steps: [call('a'), call('a')] }, 'flow.steps[1].name', /repeats the name a \(first at flow\.steps\[0\]\)/);
  });

  it('enforces the limits on steps, calls, branches and nesting', () => {
    const many = Array.from({ length: FLOW_LIMITS.calls + 1 }, (_, i) => call(`c${i}`));
    expectError({ steps: many }, 'flow.steps', new RegExp(`has ${FLOW_LIMITS.calls + 1} call steps in all; the limit is ${FLOW_LIMITS.calls}`));
    const wide = { steps: [{ name: 'p', parallel: { steps: Array.from({ length: FLOW_LIMITS.branches + 1 }, (_, i) => call(`b${i}`)) } }] };
    assert.ok(errorsOf(wide).some((e) => e.field === 'flow.steps[0].parallel.steps' && /must NOT have more than 16 items/.test(e.message)));
    let nested: object = call('leaf');
    for (let d = 0; d < FLOW_LIMITS.depth + 1; d++) nested = { name: `s${d}`, switch: { cases: [{ when: 'true', steps: [nested] }] } };
    assert.ok(errorsOf({ steps: [nested] }).some((e) => /nests deeper than 4 levels/.test(e.message)));
  });

  it('checks services against the model, and failure-policy fields against the step kind', () => {
    expectError({ steps: [{ name: 'a', call: { service: 'billing', path: '/x' } }] }, 'flow.steps[0].call.service', /names service billing, which does not exist/, 'reference');
    assert.deepEqual(errorsOf({ steps: [{ name: 'a', call: { service: 'billing', path: '/x' } }] })[0]!.target, { kind: 'services', key: 'billing' });
    expectError({ steps: [call('a', '/x', { fallback: {} })] }, 'flow.steps[0].fallback', /needs onError: continue/);
    expectError({ steps: [{ name: 'r', respond: {}, onError: 'continue' }] }, 'flow.steps[0].onError', /applies only to call, transform and code steps/);
    expectError({ steps: [{ name: 'a', call: { service: 'users' } }] }, 'flow.steps[0].call.path', /is required unless forward is true/);
  });

  it('compiles code steps at write time and names a syntax error', async () => {
    const sandbox = await CodeSandbox.create();
    const flow = { steps: [{ name: 'c', code: { source: 'return input.steps.a.body +' } }] };
    const r = checkFlow(flow, { services, checkCode: (s) => sandbox.check(s) });
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.errors[0]!.field, 'flow.steps[0].code.source');
    assert.match(!r.ok ? r.errors[0]!.message : '', /does not compile: SyntaxError/);
  });

  it('validates transforms: reshape paths and map expressions', () => {
    expectError({ steps: [call('a'), { name: 't', transform: { from: 'steps.a.body', pick: ['a', 'a.b'] } }] }, 'flow.steps[1].transform.pick', /names both a and a field inside it/);
    expectError({ steps: [call('a'), { name: 't', transform: { from: 'steps.a.body', map: '$steps.zz' } }] }, 'flow.steps[1].transform.map', /steps\.zz, which is not a step/, 'reference');
    const bad = checkRouteTransform('users', { response: { rename: { email_address: 'e.mail' } } });
    assert.equal(bad.ok, false);
    assert.equal(!bad.ok && bad.errors[0]!.field, 'transform.response.rename.email_address');
    const refs = checkRouteTransform('users', { response: { map: '$steps.x' } });
    assert.equal(!refs.ok && refs.errors[0]!.message, 'may not refer to steps: a route transform has none');
  });

  it('keeps nothing from a refused flow: the result carries no compiled flow', () => {
    const r = checkFlow({ steps: [call('a'), { name: 'r', respond: { body: 'steps.b.body' } }] } as FlowSpec, { services });
    assert.equal(r.ok, false);
    assert.equal('flow' in r, false);
  });
});
