// Each malformed input a fuzz run of the admin API found answered 5xx (or not as problem+json) is
// now a 4xx problem+json naming what is wrong; viewers never see API key hashes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { assertProblem, startTestPortico, type TestPortico } from '../support/portico.ts';

const yamlBomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefgh'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n');

describe('admin API: malformed input', () => {
  let p: TestPortico;
  before(async () => {
    p = await startTestPortico();
    const s = await p.api.put('/api/v1/services/orders', { name: 'orders', endpoints: [{ host: 'orders.internal', port: 80 }] });
    assert.equal(s.status, 201, s.text);
  });
  after(() => p.close());

  it('refuses POST with no body or a null body on every collection with 422 naming (body)', async () => {
    const collections = ['/api/v1/gateway-groups', '/api/v1/certificates', '/api/v1/services', '/api/v1/jwt-issuers', '/api/v1/products', '/api/v1/plans', '/api/v1/partners'];
    for (const c of collections) {
      assertProblem(await p.api.request('POST', c), 422, '(body)');
      assertProblem(await p.api.request('POST', c, 'null', { 'content-type': 'application/json' }), 422, '(body)');
      assertProblem(await p.api.request('PUT', `${c}/x`, 'null', { 'content-type': 'application/json' }), 422, '(body)');
    }
    assertProblem(await p.api.request('POST', '/api/v1/admin-tokens', 'null', { 'content-type': 'application/json' }), 422, '(body)');
    assertProblem(await p.api.request('POST', '/api/v1/config', 'null', { 'content-type': 'application/json' }), 422, '(document)');
  });

  it('refuses a merge patch nested 5,000 deep with 422 instead of overflowing the stack', async () => {
    let deep = '1';
    for (let i = 0; i < 5000; i++) deep = `{"a":${deep}}`;
    const r = await p.api.request('PATCH', '/api/v1/services/orders', deep, { 'content-type': 'application/merge-patch+json' });
    assertProblem(r, 422, /^a(\.a)+$/);
    assert.match(r.body.errors[0].message, /nests deeper than 64 levels/);
    assertProblem(await p.api.request('POST', '/api/v1/config', `${'['.repeat(20000)}${']'.repeat(20000)}`, { 'content-type': 'application/yaml' }), 400, '(body)');
    const unchanged = await p.api.get('/api/v1/services/orders');
    assert.equal(unchanged.body.a, undefined);
  });

  it('answers a YAML alias bomb with 400 problem+json', async () => {
    for (const path of ['/api/v1/config', '/api/v1/services']) {
      const r = await p.api.request('POST', path, yamlBomb, { 'content-type': 'application/yaml' });
      assertProblem(r, 400, '(body)');
      assert.match(r.body.detail, /expands too much/);
    }
  });

  it('refuses a NUL character in any string field with 422 naming the field, never 503 or a driver message', async () => {
    const nul = 'a\u0000b';
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/api/v1/services', { name: 'svc', description: nul, endpoints: [{ host: 'a.internal', port: 80 }] }, 'description'],
      ['PUT', '/api/v1/services/orders', { name: 'orders', endpoints: [{ host: nul, port: 80 }] }, 'endpoints[0].host'],
      ['PATCH', '/api/v1/services/orders', { tags: ['ok', nul] }, 'tags[1]'],
      ['POST', '/api/v1/partners', { name: 'acme', displayName: nul }, 'displayName'],
      ['POST', '/api/v1/admin-tokens', { name: 'dash', role: 'viewer', description: nul }, 'description'],
      ['POST', '/api/v1/services', { name: 'svc', endpoints: [{ host: 'a.internal', port: 80 }], [`x${nul}`]: 1 }, 'x\u0000'],
    ];
    for (const [method, path, body, field] of cases) {
      const r = await p.api.request(method, path, JSON.stringify(body), { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' });
      assertProblem(r, 422, field.includes('\u0000') ? /\\u0000/ : field);
      assert.equal(r.headers.get('retry-after'), null);
      assert.doesNotMatch(r.text, /prisma|invocation|\/src\//i);
    }
    const doc = `portico: v1\nservices:\n  - name: svc\n    description: "a\\0b"\n    endpoints: [{host: a.internal, port: 80}]\n`;
    assertProblem(await p.api.request('POST', '/api/v1/config', doc, { 'content-type': 'application/yaml' }), 422, 'services[0].description');
    assertProblem(await p.api.delete('/api/v1/admin-tokens/a%00b'), 422, 'path parameter name');
    assertProblem(await p.api.get('/api/v1/audit?key=a%00b'), 422, 'query parameter key');
    assertProblem(await p.api.get('/api/v1/services/a%00b'), 422, 'path parameter name');
    assertProblem(await p.api.get('/api/v1/audit?before=99999999999999999999'), 422, 'query parameter before');
    assertProblem(await p.api.get('/api/v1/audit?before=9999999999999999999'), 422, 'query parameter before');
    assert.equal((await p.api.get('/api/v1/services/svc')).status, 404, 'nothing was written');
  });

  it('answers router and HTTP parser errors with problem+json: 414, 431, bad percent-encoding, broken HTTP', async () => {
    assertProblem(await p.api.get(`/api/v1/services/${'a'.repeat(300)}`), 414, '(url)');
    assertProblem(await p.api.get(`/api/v1/services?q=${'a'.repeat(20_000)}`), 431, '(headers)');
    assertProblem(await p.api.get('/api/v1/services', { 'x-big': 'a'.repeat(20_000) }), 431, '(headers)');
    assertProblem(await p.api.get('/api/v1/services/%E0%A4%A'), 400, '(url)');
    assertProblem(await p.api.request('POST', '/api/v1/services', '{', { 'content-type': 'application/json' }), 400, '(body)');
    assertProblem(await p.api.request('POST', '/api/v1/services', '<x/>', { 'content-type': 'application/xml' }), 415, 'header Content-Type');
    assertProblem(await p.api.withToken(undefined).get('/api/v1/services'), 401, 'header Authorization');
    assertProblem(await p.api.get('/api/v1/nothing-here'), 404, '(url)');
    assertProblem(await p.api.get('/api/v1/services/nope'), 404, 'path parameter name');

    // Not HTTP at all: Node's parser refuses it before fastify sees a request.
    const raw = await new Promise<string>((resolve, reject) => {
      const url = new URL(p.adminUrl);
      const socket = connect(Number(url.port), url.hostname, () => socket.write('GARBAGE / HTTP/9.9\r\n\r\n'));
      let data = '';
      socket.on('data', (d) => (data += d.toString()));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.match(raw, /content-type: application\/problem\+json/i);
    assert.match(raw, /"field":"\(request\)"/);
  });

  it('shows API key hashes in exports to the admin role only', async () => {
    assert.equal((await p.api.put('/api/v1/partners/acme', { name: 'acme' })).status, 201);
    const key = await p.api.post('/api/v1/partners/acme/api-keys', { name: 'ci' });
    assert.equal(key.status, 201, key.text);
    const viewer = await p.api.post('/api/v1/admin-tokens', { name: 'viewer', role: 'viewer' });
    const asViewer = p.api.withToken(viewer.body.token);

    const adminYaml = await p.api.get('/api/v1/config');
    assert.match(adminYaml.text, /hash: /, 'the admin export can restore keys');
    for (const r of [await asViewer.get('/api/v1/config'), await asViewer.get('/api/v1/config?format=json'), await asViewer.get('/api/v1/config', { accept: 'application/json' })]) {
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /prefix/, 'the viewer still sees which keys exist');
      assert.doesNotMatch(r.text, /hash/);
    }
    for (const r of [await asViewer.get('/api/v1/partners/acme/api-keys'), await asViewer.get('/api/v1/partners/acme/api-keys/ci'), await asViewer.get('/api/v1/audit?kind=apiKeys')]) {
      assert.equal(r.status, 200, r.text);
      assert.doesNotMatch(r.text, /hash/);
    }
    // The viewer's export applies back unchanged: the stored hash is kept.
    const doc = (await asViewer.get('/api/v1/config')).text;
    const applied = await p.api.request('POST', '/api/v1/config?dryRun=true', doc, { 'content-type': 'application/yaml' });
    assert.equal(applied.status, 200, applied.text);
    assert.equal(applied.body.changed, false, applied.text);
  });
});
