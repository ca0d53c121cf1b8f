// Body transforms: pick / remove / rename / map on JSON, JSON ↔ XML both ways, and route-level
// transforms on an ordinary proxied route (seed 003's response transformation).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileReshape, reshape } from '../../src/flows/transforms.ts';
import { acceptsXmlFirst, jsonToXml, xmlToJson } from '../../src/flows/xml.ts';
import { runFlow, type CompiledFlow } from '../../src/flows/index.ts';
import { checkRouteTransform } from '../support/flows.ts';
import { json, memoryIO, SEED_USER } from '../../src/flows/fixtures.ts';

const apply = async (spec: Parameters<typeof compileReshape>[0], value: unknown) => reshape(compileReshape(spec), value, { request: {}, steps: {} });

describe('reshaping JSON', () => {
  const user = {
    id: 1,
    name: 'A',
    secret: 's',
    address: { city: 'Lyon', zip: '69001', geo: { lat: 1 } },
    orders: [
      { id: 'o1', cost: 1 },
      { id: 'o2', cost: 2 },
    ],
  };

  it('picks fields by path, into every element of arrays', async () => {
    assert.deepEqual(await apply({ pick: ['id', 'address.city', 'orders.id', 'absent'] }, user), { id: 1, address: { city: 'Lyon' }, orders: [{ id: 'o1' }, { id: 'o2' }] });
  });

  it('removes fields by path and leaves the input untouched', async () => {
    const before = structuredClone(user);
    assert.deepEqual(await apply({ remove: ['secret', 'address.geo', 'orders.cost'] }, user), { id: 1, name: 'A', address: { city: 'Lyon', zip: '69001' }, orders: [{ id: 'o1' }, { id: 'o2' }] });
    assert.deepEqual(user, before);
  });

  it('renames fields in place (the renamed one wins over an existing field of that name)', async () => {
    assert.deepEqual(await apply({ rename: { name: 'full_name', 'address.zip': 'postcode' } }, { name: 'A', address: { zip: '1' } }), { full_name: 'A', address: { postcode: '1' } });
    assert.deepEqual(await apply({ rename: { a: 'b' } }, { b: 'old', a: 'new' }), { b: 'new' });
    assert.deepEqual(await apply({ rename: { a: 'b' } }, { a: 'new', b: 'old' }), { b: 'new' });
  });

  it('applies pick, remove, rename, then map, to arrays of records too', async () => {
    const out = await apply({ remove: ['cost'], rename: { id: 'order_id' }, map: '$.{"order_id": order_id, "n": $count($$)}' }, [
      { id: 'o1', cost: 1 },
      { id: 'o2', cost: 2 },
    ]);
    assert.deepEqual(JSON.parse(JSON.stringify(out)), [
      { order_id: 'o1', n: 2 },
      { order_id: 'o2', n: 2 },
    ]);
  });

  it('keeps a field named __proto__ as data, never as a prototype', async () => {
    const input = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    const out = (await apply({ rename: { a: 'b' } }, input)) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal(JSON.stringify(out), '{"__proto__":{"polluted":true},"b":1}');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('JSON ↔ XML', () => {
  it('maps attributes, text beside attributes, repeated elements, numbers and booleans, both ways', () => {
    const doc = {
      order: {
        '@id': 'ord_1',
        status: 'shipped',
        total: 49.98,
        code: '007',
        paid: true,
        items: {
          item: [
            { sku: 'a', qty: 1 },
            { sku: 'b', qty: 2 },
          ],
        },
        name: { '@lang': 'en', '#text': 'Keyboard' },
      },
    };
    const xml = jsonToXml(doc);
    assert.equal(
      xml,
      '<?xml version="1.0" encoding="UTF-8"?><order id="ord_1"><status>shipped</status><total>49.98</total><code>007</code><paid>true</paid><items><item><sku>a</sku><qty>1</qty></item><item><sku>b</sku><qty>2</qty></item></items><name lang="en">Keyboard</name></order>',
    );
    assert.deepEqual(xmlToJson(xml), doc);
  });

  it('wraps several top-level fields or an array in a root element, and escapes text', () => {
    assert.equal(jsonToXml({ a: 1, b: 'x<y&z' }), '<?xml version="1.0" encoding="UTF-8"?><root><a>1</a><b>x&lt;y&amp;z</b></root>');
    assert.equal(jsonToXml([1, 2], { root: 'list' }), '<?xml version="1.0" encoding="UTF-8"?><list><item>1</item><item>2</item></list>');
    assert.deepEqual(xmlToJson(jsonToXml({ user: { id: 1 }, orders: [{ n: 1 }, { n: 2 }] })), { root: { user: { id: 1 }, orders: [{ n: 1 }, { n: 2 }] } });
  });

  it('turns field names that are not XML names into ones that are', () => {
    assert.equal(jsonToXml({ r: { 'bad key': 1, '1st': 2 } }), '<?xml version="1.0" encoding="UTF-8"?><r><bad_key>1</bad_key><_1st>2</_1st></r>');
  });

  it('reads a single element as an array when asked to', () => {
    assert.deepEqual(xmlToJson('<orders><order><id>1</id></order></orders>'), { orders: { order: { id: 1 } } });
    assert.deepEqual(xmlToJson('<orders><order><id>1</id></order></orders>', { arrays: ['order'] }), { orders: { order: [{ id: 1 }] } });
  });

  it('refuses XML that is not well-formed, external entities, and bounds entity expansion', () => {
    assert.throws(() => xmlToJson('<a><b></a>'), /not well-formed XML/);
    assert.throws(() => xmlToJson('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'), /External entities are not supported/);
    const lol = `<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">${[1, 2, 3, 4, 5, 6].map((i) => `<!ENTITY a${i} "${`&a${i === 1 ? '' : i - 1};`.repeat(10)}">`).join('')}]><l>&a6;</l>`;
    let size = 0;
    try {
      size = JSON.stringify(xmlToJson(lol)).length;
    } catch (e) {
      assert.match((e as Error).message, /entit|expan/i);
    }
    assert.ok(size < 100_000, `a million-fold entity expansion must not happen (got ${size} characters)`);
  });

  it('chooses XML by Accept only when the caller prefers it', () => {
    assert.equal(acceptsXmlFirst('application/xml'), true);
    assert.equal(acceptsXmlFirst('application/json, application/xml;q=0.9'), false);
    assert.equal(acceptsXmlFirst('text/xml;q=1, */*;q=0.1'), true);
    assert.equal(acceptsXmlFirst('application/atom+xml'), true);
    assert.equal(acceptsXmlFirst('*/*'), false);
    assert.equal(acceptsXmlFirst(undefined), false);
  });
});

describe('route-level transforms', () => {
  function compile(spec: unknown): CompiledFlow {
    const r = checkRouteTransform('users', spec);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.flow;
  }

  it("apply seed 003's response transformation: internal fields removed, email_address renamed", async () => {
    const flow = compile({ response: { remove: ['internal_id', 'db_shard', 'feature_flags', 'created_by_admin'], rename: { email_address: 'email' } } });
    const io = memoryIO({ users: () => json(SEED_USER, 200, { 'x-served-by': 'users-1', 'content-length': '999' }) });
    const r = await runFlow(flow, { method: 'GET', path: '/users/usr_8a3f', headers: { accept: 'application/json' } }, io);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { id: 'usr_8a3f', name: 'Alice Chen', avatar_url: SEED_USER.avatar_url, membership: 'premium', email: 'alice@example.com' });
    assert.equal(r.headers['x-served-by'], 'users-1');
    assert.equal(r.headers['content-length'], undefined, 'the body changed length: the shell frames it anew');
    assert.equal(io.calls[0]!.path, '/users/usr_8a3f');
  });

  it('apply to lists too, and pass error statuses through unchanged', async () => {
    const flow = compile({ response: { remove: ['internal_id'] } });
    const list = await runFlow(flow, { method: 'GET', path: '/users', headers: {} }, memoryIO({ users: () => json([SEED_USER, { ...SEED_USER, id: 'u2' }]) }));
    assert.deepEqual(
      (JSON.parse(list.body) as Array<Record<string, unknown>>).map((u) => [u.id, 'internal_id' in u]),
      [
        ['usr_8a3f', false],
        ['u2', false],
      ],
    );
    const missing = await runFlow(flow, { method: 'GET', path: '/users/x', headers: {} }, memoryIO({ users: () => json({ error: 'not_found', internal_id: 3 }, 404) }));
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { error: 'not_found' });
  });

  it('serve JSON as XML by Accept, and leave non-JSON bodies alone', async () => {
    const flow = compile({ response: { format: 'accept', xml: { root: 'user' }, pick: ['id', 'name'] } });
    const io = memoryIO({ users: () => json(SEED_USER) });
    const xml = await runFlow(flow, { method: 'GET', path: '/users/1', headers: { accept: 'application/xml' } }, io);
    assert.equal(xml.headers['content-type'], 'application/xml');
    assert.equal(xml.body, '<?xml version="1.0" encoding="UTF-8"?><user><id>usr_8a3f</id><name>Alice Chen</name></user>');
    const asJson = await runFlow(flow, { method: 'GET', path: '/users/1', headers: { accept: 'application/json' } }, io);
    assert.deepEqual(JSON.parse(asJson.body), { id: 'usr_8a3f', name: 'Alice Chen' });
    const text = await runFlow(flow, { method: 'GET', path: '/users/1', headers: {} }, memoryIO({ users: () => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'plain' }) }));
    assert.equal(text.body, 'plain');
  });

  it('convert an XML request to the JSON the service reads, and its XML answer back to JSON', async () => {
    const flow = compile({ request: { format: 'json', rename: { 'user.@id': 'id' } }, response: { format: 'json' } });
    const io = memoryIO({ users: (c) => ({ status: 201, headers: { 'content-type': 'application/xml' }, body: `<created><echo>${c.body}</echo></created>` }) });
    const r = await runFlow(flow, { method: 'POST', path: '/users', headers: { 'content-type': 'application/xml' }, body: '<user id="7"><name>Bo</name></user>' }, io);
    assert.equal(io.calls[0]!.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(io.calls[0]!.body as string), { user: { name: 'Bo', id: '7' } });
    assert.equal(r.status, 201);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body), { created: { echo: '{"user":{"name":"Bo","id":"7"}}' } });
  });

  it('convert a JSON request to XML for a service that reads XML', async () => {
    const flow = compile({ request: { format: 'xml', xml: { root: 'order' } } });
    const io = memoryIO({ users: () => json({ ok: true }) });
    await runFlow(flow, { method: 'POST', path: '/orders', headers: { 'content-type': 'application/json' }, body: '{"id":1,"lines":[{"sku":"a"},{"sku":"b"}]}' }, io);
    assert.equal(io.calls[0]!.headers['content-type'], 'application/xml');
    assert.equal(io.calls[0]!.body, '<?xml version="1.0" encoding="UTF-8"?><order><id>1</id><lines><sku>a</sku></lines><lines><sku>b</sku></lines></order>');
  });
});
