// The flow engine over in-memory services (the transport through Envoy comes with the integration):
// each step type, references to the request and earlier steps, both failure policies, deadlines,
// parallel waiting, limits and cancellation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { runFlow, INCOMPLETE_HEADER, type CompiledFlow, type FlowRequest } from '../../src/flows/index.ts';
import { checkFlow } from '../support/flows.ts';
import { delayed, homeFlow, homeRequest, json, memoryIO, seedServices, SEED_HOME_BODY, type Handler } from '../../src/flows/fixtures.ts';

function compile(flow: unknown): CompiledFlow {
  const r = checkFlow(typeof flow === 'string' ? parseYaml(flow) : flow);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.flow;
}

const get = (path: string, extra: Partial<FlowRequest> = {}): FlowRequest => ({ method: 'GET', path, headers: {}, ...extra });
const never: Handler = (_c, signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));

describe('flow engine', () => {
  it("answers seed 003's /api/home with the seed's body, calling the three services with the caller's id", async () => {
    const io = memoryIO(seedServices);
    const r = await runFlow(compile(homeFlow()), homeRequest(), io);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body), SEED_HOME_BODY);
    assert.deepEqual(io.calls.map((c) => `${c.service} ${c.method} ${c.path}`).sort(), [
      'orders GET /orders?user=usr_8a3f&limit=3',
      'products GET /recommendations?user=usr_8a3f&limit=2',
      'users GET /users/usr_8a3f',
    ]);
    assert.deepEqual(r.incomplete, []);
    assert.deepEqual(r.trace.map((t) => `${t.name}:${t.outcome}`).sort(), ['orders:ok', 'profile:ok', 'recommendations:ok', 'reply:ok', 'user:ok']);
  });

  it('runs a parallel group concurrently: every call starts before any answers', async () => {
    // No call answers until all three have started: run one after another, the flow would wait
    // for the first answer forever and end at its deadline instead.
    let started = 0;
    let release!: () => void;
    const allStarted = new Promise<void>((r) => (release = r));
    const held: Handler = async (c, signal) => {
      if (++started === 3) release();
      await allStarted;
      return seedServices[c.service]!(c, signal);
    };
    const r = await runFlow(compile(homeFlow()), homeRequest(), memoryIO({ users: held, orders: held, products: held }));
    assert.equal(r.status, 200);
    assert.equal(started, 3);
    assert.deepEqual(JSON.parse(r.body), SEED_HOME_BODY);
  });

  it('feeds an earlier step into a later call (path, query, header and JSON body)', async () => {
    const flow = compile(`
steps:
  - name: order
    call: { service: orders, path: '/orders/{request.params.id}' }
  - name: customer
    call:
      service: users
      method: POST
      path: /users/{steps.order.body.customer_id}/lookups
      query: { fields: '{steps.order.body.fields}', absent: '{steps.order.body.nothing}' }
      headers: { x-order: 'order {steps.order.body.id} ({{literal}})' }
      body: '{"order": steps.order.body.id, "total": steps.order.body.total * 100}'
  - name: reply
    respond: { body: '{"order": steps.order.body.id, "customer": steps.customer.body.name}' }
`);
    const io = memoryIO({
      orders: () => json({ id: 'ord_1', customer_id: 'usr 8/a', total: 12.5, fields: 'name,email' }),
      users: (c) => json({ name: 'Alice', got: c.body }),
    });
    const r = await runFlow(flow, get('/api/orders/ord_1/customer', { params: { id: 'ord_1' } }), io);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { order: 'ord_1', customer: 'Alice' });
    const second = io.calls[1]!;
    assert.equal(second.method, 'POST');
    // The value is one encoded segment; the unset parameter is left out.
    assert.equal(second.path, '/users/usr%208%2Fa/lookups?fields=name%2Cemail');
    assert.equal(second.headers['x-order'], 'order ord_1 ({literal})');
    assert.deepEqual(JSON.parse(second.body as string), { order: 'ord_1', total: 1250 });
    assert.equal(second.headers['content-type'], 'application/json');
  });

  it('never lets a request value climb out of the path: . and .. are encoded', async () => {
    const io = memoryIO({ users: () => json({}) });
    await runFlow(compile({ steps: [{ name: 'u', call: { service: 'users', path: '/users/{request.params.id}/profile' } }] }), get('/x', { params: { id: '..' } }), io);
    assert.equal(io.calls[0]!.path, '/users/%2E%2E/profile');
  });

  it('switches on a JWT claim, the caller plan and a body field', async () => {
    const flow = compile(`
steps:
  - name: route
    switch:
      cases:
        - when: request.identity.claims.role = "admin"
          steps:
            - { name: admin, respond: { body: '"admin view"', format: text } }
        - when: request.body.amount > 1000 and request.identity.plan != "gold"
          steps:
            - { name: review, respond: { status: 202, body: '{"queued": request.body.amount}' } }
      default:
        - { name: plain, respond: { body: '{"amount": request.body.amount, "plan": request.identity.plan}' } }
`);
    const post = (claims: Record<string, unknown>, plan: string, amount: number) =>
      runFlow(flow, { method: 'POST', path: '/pay', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount }), identity: { plan, claims } }, memoryIO({}));
    const admin = await post({ role: 'admin' }, 'gold', 5);
    assert.equal(admin.body, 'admin view');
    assert.equal(admin.headers['content-type'], 'text/plain; charset=utf-8');
    const big = await post({ role: 'user' }, 'standard', 5000);
    assert.equal(big.status, 202);
    assert.deepEqual(JSON.parse(big.body), { queued: 5000 });
    const gold = await post({ role: 'user' }, 'gold', 5000);
    assert.deepEqual(JSON.parse(gold.body), { amount: 5000, plan: 'gold' });
    assert.deepEqual(
      gold.trace.map((t) => t.name),
      ['plain'],
    );
  });

  it('skips a step whose `when` is false, and later steps see it as missing', async () => {
    const flow = compile(`
steps:
  - { name: extra, when: 'request.query.more = "yes"', call: { service: products, path: /extra } }
  - { name: reply, respond: { body: '{"extra": steps.extra.body, "had": $exists(steps.extra)}' } }
`);
    const io = memoryIO({ products: () => json({ n: 1 }) });
    const without = await runFlow(flow, get('/x', { query: { more: 'no' } }), io);
    assert.deepEqual(JSON.parse(without.body), { had: false });
    assert.equal(io.calls.length, 0);
    assert.equal(without.trace[0]!.outcome, 'skipped');
    const withIt = await runFlow(flow, get('/x', { query: { more: 'yes' } }), io);
    assert.deepEqual(JSON.parse(withIt.body), { extra: { n: 1 }, had: true });
  });

  it('builds custom responses: status from an expression, templated headers, XML by Accept', async () => {
    const flow = compile(`
steps:
  - name: reply
    respond:
      status: 'request.query.missing ? 404 : 200'
      headers: { x-caller: '{request.identity.partner}', cache-control: no-store }
      body: '{"greeting": "hello " & request.identity.partner}'
      format: accept
      xml: { root: greeting }
`);
    const json1 = await runFlow(flow, get('/x', { identity: { partner: 'team-a' } }), memoryIO({}));
    assert.equal(json1.status, 200);
    assert.equal(json1.headers['x-caller'], 'team-a');
    assert.equal(json1.headers['cache-control'], 'no-store');
    assert.deepEqual(JSON.parse(json1.body), { greeting: 'hello team-a' });
    const xml = await runFlow(flow, get('/x', { query: { missing: '1' }, headers: { accept: 'application/xml' }, identity: { partner: 'team-a' } }), memoryIO({}));
    assert.equal(xml.status, 404);
    assert.equal(xml.headers['content-type'], 'application/xml');
    assert.equal(xml.body, '<?xml version="1.0" encoding="UTF-8"?><greeting><greeting>hello team-a</greeting></greeting>');
  });

  it('onError: fail — a failing step ends the flow with an error naming it, and cancels its siblings', async () => {
    let cancelled = 0;
    const flow = compile(homeFlow());
    const r = await runFlow(
      flow,
      homeRequest(),
      memoryIO({ users: () => json({ error: 'boom' }, 500), orders: delayed(10_000, seedServices.orders!, () => cancelled++), products: delayed(10_000, seedServices.products!, () => cancelled++) }),
    );
    assert.equal(r.status, 502);
    assert.deepEqual(JSON.parse(r.body), { error: 'flow_step_failed', message: 'Step user failed: users answered 500.', step: 'user' });
    assert.equal(r.failedStep, 'user');
    assert.equal(cancelled, 2);
  });

  it('onError: continue — the step yields its fallback and the response says which steps are missing', async () => {
    const r = await runFlow(
      compile(homeFlow()),
      homeRequest(),
      memoryIO({ ...seedServices, orders: () => json({ error: 'down' }, 503), products: () => Promise.reject(new Error('connection refused')) }),
    );
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body);
    assert.deepEqual(body.user, SEED_HOME_BODY.user);
    assert.deepEqual(body.recent_orders, []);
    assert.deepEqual(body.recommendations, []);
    assert.equal(r.headers[INCOMPLETE_HEADER], 'orders,recommendations');
    const failed = r.trace.filter((t) => t.outcome === 'failed');
    assert.deepEqual(failed.map((t) => [t.name, t.error!.kind]).sort(), [
      ['orders', 'status'],
      ['recommendations', 'transport'],
    ]);
  });

  it('a failed step under continue exposes its error to later steps', async () => {
    const flow = compile(`
steps:
  - { name: a, call: { service: users, path: /a }, onError: continue, fallback: { empty: true } }
  - { name: reply, respond: { body: '{"body": steps.a.body, "status": steps.a.status, "why": steps.a.error.kind}' } }
`);
    const r = await runFlow(flow, get('/x'), memoryIO({ users: () => json({}, 404) }));
    assert.deepEqual(JSON.parse(r.body), { body: { empty: true }, status: 404, why: 'status' });
  });

  it('okStatus widens what counts as success', async () => {
    const flow = compile({
      steps: [
        { name: 'a', call: { service: 'users', path: '/a', okStatus: ['2xx', 404] } },
        { name: 'r', respond: { body: '{"s": steps.a.status}' } },
      ],
    });
    const r = await runFlow(flow, get('/x'), memoryIO({ users: () => json({}, 404) }));
    assert.deepEqual(JSON.parse(r.body), { s: 404 });
  });

  it('a step timeout fails the step (504 under fail, fallback under continue)', async () => {
    const flow = (onError: string) => compile({ steps: [{ name: 'slow', call: { service: 'users', path: '/a', timeoutMs: 30 }, onError }] });
    const failed = await runFlow(flow('fail'), get('/x'), memoryIO({ users: never }));
    assert.equal(failed.status, 504);
    assert.equal(JSON.parse(failed.body).error, 'flow_step_timeout');
    assert.match(JSON.parse(failed.body).message, /users did not answer within 30 ms/);
    const continued = await runFlow(flow('continue'), get('/x'), memoryIO({ users: never }));
    assert.equal(continued.headers[INCOMPLETE_HEADER], 'slow');
    assert.equal(continued.trace[0]!.error!.kind, 'timeout');
  });

  it('the flow deadline stops everything still running and answers 504 naming it', async () => {
    let cancelled = false;
    const flow = compile({ timeoutMs: 40, steps: [{ name: 'a', call: { service: 'users', path: '/a', timeoutMs: 60_000 } }] });
    const r = await runFlow(
      flow,
      get('/x'),
      memoryIO({
        users: delayed(
          60_000,
          () => json({}),
          () => (cancelled = true),
        ),
      }),
    );
    assert.equal(r.status, 504);
    assert.deepEqual(JSON.parse(r.body), { error: 'flow_timeout', message: 'The flow did not finish within 40 ms (still running: a).' });
    assert.equal(cancelled, true);
  });

  it('stops when the caller goes away', async () => {
    const caller = new AbortController();
    let cancelled = false;
    const flow = compile({ steps: [{ name: 'a', call: { service: 'users', path: '/a' } }] });
    const running = runFlow(
      flow,
      get('/x'),
      memoryIO(
        {
          users: delayed(
            60_000,
            () => json({}),
            () => (cancelled = true),
          ),
        },
        { signal: caller.signal },
      ),
    );
    setTimeout(() => caller.abort(), 10);
    const r = await running;
    assert.equal(r.status, 499);
    assert.equal(cancelled, true);
  });

  it('wait: referenced — the flow goes on at once; a reader waits for its branch; unread branches are cancelled at the end', async () => {
    const order: string[] = [];
    let cancelled = false;
    const flow = compile(`
steps:
  - name: fetch
    parallel:
      wait: referenced
      steps:
        - { name: fast, call: { service: users, path: /fast } }
        - { name: unread, call: { service: products, path: /slow } }
  - { name: reply, respond: { body: 'steps.fast.body' } }
`);
    const r = await runFlow(
      flow,
      get('/x'),
      memoryIO({
        users: delayed(20, () => {
          order.push('fast answered');
          return json({ ok: 1 });
        }),
        products: delayed(
          60_000,
          () => json({}),
          () => (cancelled = true),
        ),
      }),
    );
    assert.deepEqual(JSON.parse(r.body), { ok: 1 });
    assert.deepEqual(order, ['fast answered']);
    assert.equal(cancelled, true);
  });

  it('wait: referenced — a branch failing under onError: fail ends the flow even if nothing reads it', async () => {
    const flow = compile(`
steps:
  - name: fetch
    parallel:
      wait: referenced
      steps:
        - { name: audit, call: { service: products, path: /audit } }
  - { name: slow, call: { service: users, path: /slow } }
  - { name: reply, respond: { body: '"done"', format: text } }
`);
    const r = await runFlow(flow, get('/x'), memoryIO({ products: () => json({}, 500), users: delayed(60_000, () => json({})) }));
    assert.equal(r.status, 502);
    assert.equal(r.failedStep, 'audit');
  });

  it('a transform step picks, removes, renames and maps', async () => {
    const flow = compile(`
steps:
  - { name: user, call: { service: users, path: /u } }
  - name: shaped
    transform:
      from: steps.user.body
      remove: [internal_id, orders.cost]
      rename: { email_address: email }
      map: '$merge([$, {"via": $request.identity.partner}])'
  - { name: reply, respond: { body: steps.shaped.body } }
`);
    const io = memoryIO({
      users: () =>
        json({
          id: 1,
          internal_id: 9,
          email_address: 'a@b',
          orders: [
            { id: 'o1', cost: 3 },
            { id: 'o2', cost: 4 },
          ],
        }),
    });
    const r = await runFlow(flow, get('/x', { identity: { partner: 'p1' } }), io);
    assert.deepEqual(JSON.parse(r.body), { id: 1, email: 'a@b', orders: [{ id: 'o1' }, { id: 'o2' }], via: 'p1' });
  });

  it('without a respond step, answers with the last result (status, content type, body)', async () => {
    const flow = compile({ steps: [{ name: 'a', call: { service: 'users', path: '/a', okStatus: ['2xx', '4xx'] } }] });
    const r = await runFlow(flow, get('/x'), memoryIO({ users: () => json({ missing: true }, 404, { 'x-trace': 't1', connection: 'close' }) }));
    assert.equal(r.status, 404);
    assert.deepEqual(JSON.parse(r.body), { missing: true });
    assert.equal(r.headers['x-trace'], 't1');
    assert.equal(r.headers.connection, undefined);
  });

  it('forwards the request when asked, without the gateway-owned and hop-by-hop headers', async () => {
    const io = memoryIO({ users: () => json({}) });
    const flow = compile({ steps: [{ name: 'a', call: { service: 'users', forward: true, headers: { 'x-added': 'yes' } } }] });
    await runFlow(
      flow,
      {
        method: 'PUT',
        path: '/users/1',
        query: { a: ['1', '2'] },
        headers: { 'content-type': 'application/json', 'x-portico-partner': 'forged', connection: 'keep-alive', 'x-keep': 'k' },
        body: '{"n":1}',
      },
      io,
    );
    const c = io.calls[0]!;
    assert.equal(c.method, 'PUT');
    assert.equal(c.path, '/users/1?a=1&a=2');
    assert.deepEqual(c.headers, { 'content-type': 'application/json', 'x-keep': 'k', 'x-added': 'yes' });
    assert.equal(c.body, '{"n":1}');
  });

  it('refuses a request body over the limit (413) and a malformed JSON body (400) before any call', async () => {
    const io = memoryIO({ users: () => json({}) });
    const flow = compile({ maxRequestBytes: 10, steps: [{ name: 'a', call: { service: 'users', path: '/a' } }] });
    const big = await runFlow(flow, { method: 'POST', path: '/x', headers: { 'content-type': 'application/json' }, body: '{"a":"0123456789"}' }, io);
    assert.equal(big.status, 413);
    const bad = await runFlow(
      compile({ steps: [{ name: 'a', call: { service: 'users', path: '/a' } }] }),
      { method: 'POST', path: '/x', headers: { 'content-type': 'application/json' }, body: '{"a":' },
      io,
    );
    assert.equal(bad.status, 400);
    assert.equal(io.calls.length, 0);
  });

  it('fails a step whose response is larger than the limit, and a flow whose own response is', async () => {
    const flow = compile({
      maxResponseBytes: 64,
      steps: [
        { name: 'a', call: { service: 'users', path: '/a' } },
        { name: 'r', respond: { body: '$pad("", 100, "x")' } },
      ],
    });
    const huge = await runFlow(flow, get('/x'), memoryIO({ users: () => json({ pad: 'x'.repeat(100) }) }));
    assert.equal(huge.status, 502);
    assert.match(JSON.parse(huge.body).message, /more than 64 bytes/);
    const ownTooBig = await runFlow(flow, get('/x'), memoryIO({ users: () => json({}) }));
    assert.equal(ownTooBig.status, 502);
    assert.equal(JSON.parse(ownTooBig.body).error, 'response_too_large');
  });

  it('an expression that fails at run time is a 500 naming the step, never a crash', async () => {
    const flow = compile({ steps: [{ name: 'r', respond: { body: '$number(request.query.n) + 1' } }] });
    const r = await runFlow(flow, get('/x', { query: { n: 'abc' } }), memoryIO({}));
    assert.equal(r.status, 500);
    assert.equal(JSON.parse(r.body).step, 'r');
    const status = await runFlow(compile({ steps: [{ name: 'r', respond: { status: '"teapot"' } }] }), get('/x'), memoryIO({}));
    assert.equal(status.status, 500);
    assert.match(JSON.parse(status.body).message, /status evaluated to "teapot"/);
  });

  it('reads XML from a service and serves it as JSON (and the reverse)', async () => {
    const flow = compile(`
steps:
  - { name: legacy, call: { service: orders, path: /legacy, xml: { arrays: [item] } } }
  - { name: reply, respond: { body: steps.legacy.body.order } }
`);
    const io = memoryIO({ orders: () => ({ status: 200, headers: { 'content-type': 'text/xml; charset=utf-8' }, body: '<order id="7"><item><sku>a</sku></item><total>9.5</total></order>' }) });
    const r = await runFlow(flow, get('/x'), io);
    assert.deepEqual(JSON.parse(r.body), { '@id': '7', item: [{ sku: 'a' }], total: 9.5 });
    const back = compile(`
steps:
  - { name: reply, respond: { body: 'request.body', format: xml, xml: { root: order } } }
`);
    const x = await runFlow(back, { method: 'POST', path: '/x', headers: { 'content-type': 'application/json' }, body: '{"id":7,"items":[1,2]}' }, io);
    assert.equal(x.body, '<?xml version="1.0" encoding="UTF-8"?><order><id>7</id><items>1</items><items>2</items></order>');
  });

  it('runs a flow compiled for one model to the end even when a newer one replaces it', async () => {
    // Compiled flows are immutable values: a request holds the one it started with.
    let flow = compile({ steps: [{ name: 'a', call: { service: 'users', path: '/v1' } }] });
    const io = memoryIO({ users: delayed(20, (c) => json({ path: c.path })) });
    const running = runFlow(flow, get('/x'), io);
    flow = compile({ steps: [{ name: 'a', call: { service: 'users', path: '/v2' } }] });
    assert.deepEqual(JSON.parse((await running).body), { path: '/v1' });
    assert.deepEqual(JSON.parse((await runFlow(flow, get('/x'), io)).body), { path: '/v2' });
  });
});
