// The designer's side of the engine: step detail only when asked (the runtime's runs copy nothing),
// what it records per step kind, and the redaction of credentials in a trace (pure).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redact, runFlow, sampleRequest, type CompiledFlow } from '../../src/flows/index.ts';
import { homeFlow, homeRequest, memoryIO, seedServices, SEED_USER } from '../../src/flows/fixtures.ts';
import { checkFlow } from '../support/flows.ts';

function compile(flow: unknown): CompiledFlow {
  const r = checkFlow(flow);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.flow;
}

describe('flow designer (engine detail, redaction)', () => {
  it('records no inputs, outputs or switch choices unless detail is asked for', async () => {
    const flow = compile({ steps: [{ name: 's', switch: { cases: [{ when: 'true', steps: [...homeFlow().steps] }] } }] });
    const plain = await runFlow(flow, homeRequest(), memoryIO(seedServices));
    assert.equal(plain.status, 200);
    assert.ok(plain.trace.length >= 5);
    for (const t of plain.trace) assert.ok(!('input' in t) && !('output' in t), `no detail on ${t.name}`);
    assert.ok(!plain.trace.some((t) => t.kind === 'switch'), 'switches are not traced on the hot path');

    const detailed = await runFlow(flow, homeRequest(), { ...memoryIO(seedServices), detail: true });
    const by = new Map(detailed.trace.map((t) => [t.name, t]));
    assert.deepEqual(by.get('s')!.output, { case: 0 });
    assert.deepEqual(by.get('user')!.input, { service: 'users', method: 'GET', path: `/users/${SEED_USER.id}`, headers: {} });
    assert.deepEqual((by.get('user')!.output as { body: unknown }).body, SEED_USER);
    assert.deepEqual(by.get('profile')!.input, SEED_USER);
    assert.equal((by.get('reply')!.output as { status: number }).status, 200);
    assert.equal(detailed.body, plain.body, 'detail changes nothing of the answer');
  });

  it('records the fallback a failed step yields under onError: continue', async () => {
    const flow = compile({ steps: [{ name: 'o', call: { service: 'orders', path: '/' }, onError: 'continue', fallback: ['none'] }] });
    const r = await runFlow(flow, { method: 'GET', path: '/', headers: {} }, { ...memoryIO({ orders: () => ({ status: 500, headers: {}, body: '' }) }), detail: true });
    assert.equal(r.trace[0]!.outcome, 'failed');
    assert.deepEqual((r.trace[0]!.output as { body: unknown }).body, ['none']);
  });

  it('redacts credential fields by name and masks secret values anywhere', () => {
    const trace = { headers: { authorization: 'Bearer abcd1234', 'x-api-key': 'k_secret', accept: 'json' }, body: 'echo: k_secret and abcd1234', n: 1, list: ['abcd1234'] };
    const out = redact(trace, ['abcd1234', 'k_secret', 'ab']);
    assert.deepEqual(out, { headers: { authorization: '[redacted]', 'x-api-key': '[redacted]', accept: 'json' }, body: 'echo: [redacted] and [redacted]', n: 1, list: ['[redacted]'] });
    assert.equal(trace.headers.authorization, 'Bearer abcd1234', 'the input is not changed');
  });

  it('turns a sample into the engine request: lower-case headers, JSON bodies typed', () => {
    const r = sampleRequest({ method: 'post', headers: { 'X-A': '1' }, body: { a: 1 } });
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/');
    assert.deepEqual(r.headers, { 'x-a': '1', 'content-type': 'application/json' });
    assert.equal(r.body, '{"a":1}');
    assert.equal(sampleRequest({ body: 'raw' }).body, 'raw');
  });
});
