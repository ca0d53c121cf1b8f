// The admin API against a real control plane on embedded PGlite and on real PostgreSQL: every
// kind's happy path, bad inputs, references, conflicts, concurrency, tokens and the audit log.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres, type PostgresServer } from '../support/components.ts';
import { secretBody, startTestPortico, type TestPortico, type ApiClient } from '../support/portico.ts';
import { selfSigned } from '../support/certs.ts';

const ca = await selfSigned('clients.example.test');
const server = await selfSigned('api.example.test');

/** One valid body per kind, in dependency order, with the URL it is written to. */
function fixtures() {
  return [
    { path: '/api/v1/certificates/edge-cert', body: { name: 'edge-cert', certificate: server.certificate, privateKey: server.privateKey } },
    { path: '/api/v1/certificates/client-ca', body: { name: 'client-ca', certificate: ca.certificate } },
    {
      path: '/api/v1/gateway-groups/edge',
      body: {
        name: 'edge',
        tags: ['team:platform'],
        listeners: [
          { name: 'http', port: 10080 },
          { name: 'https', port: 10443, protocol: 'https', tls: { certificate: 'edge-cert', clientCa: 'client-ca', requireClientCertificate: false } },
        ],
        authz: { failureMode: 'closed', timeoutMs: 200 },
      },
    },
    {
      path: '/api/v1/services/orders',
      body: {
        name: 'orders',
        endpoints: [
          { host: '10.0.0.1', port: 8080, weight: 2 },
          { host: '10.0.0.2', port: 8080 },
        ],
        lbPolicy: 'least_request',
      },
    },
    { path: '/api/v1/services/orders-canary', body: { name: 'orders-canary', endpoints: [{ host: 'orders-canary.internal', port: 8080 }], protocol: 'http2' } },
    {
      path: '/api/v1/jwt-issuers/auth',
      body: {
        name: 'auth',
        issuer: 'https://auth.example.test',
        audiences: ['api.example.test'],
        jwksUri: 'https://auth.example.test/jwks.json',
        partnerClaim: 'team',
        forwardClaims: { sub: 'X-User-Id' },
      },
    },
    { path: '/api/v1/products/orders', body: { name: 'orders', tags: ['team:orders'], gatewayGroups: ['edge'], basePath: '/api', auth: { accept: ['jwt', 'api_key', 'mtls'] } } },
    {
      path: '/api/v1/products/orders/routes/list',
      body: {
        name: 'list',
        match: { path: { type: 'prefix', value: '/orders' }, methods: ['GET'] },
        backends: [
          { service: 'orders', weight: 90 },
          { service: 'orders-canary', weight: 10 },
        ],
        rewrite: { stripPrefix: '/api' },
      },
    },
    {
      path: '/api/v1/plans/gold',
      body: {
        name: 'gold',
        limits: [{ requests: 100, per: 'second', burst: 20 }],
        quotas: [{ requests: 100000, per: 'day' }],
        overrides: [{ product: 'orders', route: 'list', limits: [{ requests: 10, per: 'second' }] }],
      },
    },
    { path: '/api/v1/partners/acme', body: { name: 'acme', displayName: 'ACME payments team', kind: 'team' } },
    { path: '/api/v1/partners/acme/subscriptions/orders', body: { product: 'orders', plan: 'gold', access: { methods: ['GET'] } } },
    { path: '/api/v1/partners/acme/mtls-identities/billing', body: { name: 'billing', match: { type: 'spiffe_id', value: 'spiffe://example.test/billing' } } },
  ];
}

for (const backend of ['pglite', 'postgresql'] as const) {
  describe(`admin API on ${backend}`, () => {
    let pg: PostgresServer | undefined;
    let portico: TestPortico;
    let api: ApiClient;

    before(async (t) => {
      if (backend === 'postgresql') {
        pg = await startPostgres(t as never);
        if (!pg) return;
      }
      portico = await startTestPortico(pg ? { databaseUrl: pg.url } : {});
      api = portico.api;
    });
    after(async () => {
      await portico?.close();
      await pg?.stop();
    });

    it('creates, reads, lists, replaces, patches and deletes every kind', async () => {
      for (const f of fixtures()) {
        const res = await api.put(f.path, f.body);
        assert.equal(res.status, 201, `${f.path}: ${res.text}`);
        assert.equal(res.headers.get('etag'), '"1"');
        assert.equal(res.body.revision, 1);
        const got = await api.get(f.path);
        assert.equal(got.status, 200);
        for (const [k, v] of Object.entries(f.body)) if (k !== 'privateKey') assert.deepEqual(got.body[k], v, `${f.path} field ${k}`);
      }
      // A certificate's private key is write-only; the API reports that one is held.
      const cert = await api.get('/api/v1/certificates/edge-cert');
      assert.equal(cert.body.privateKey, undefined);
      assert.equal(cert.body.hasPrivateKey, true);
      assert.match(cert.body.fingerprintSha256, /^[0-9a-f]{64}$/);
      assert.ok(!cert.text.includes('PRIVATE KEY'));

      // Replace: revision increments, ETag follows.
      const replaced = await api.put('/api/v1/services/orders', { name: 'orders', endpoints: [{ host: '10.0.0.9', port: 9090 }] });
      assert.equal(replaced.status, 200);
      assert.equal(replaced.body.revision, 2);
      assert.equal(replaced.headers.get('etag'), '"2"');
      assert.equal(replaced.body.lbPolicy, undefined, 'PUT replaces the whole resource');

      // Merge patch: a canary weight shift touches only the weights.
      const patched = await api.patch(
        '/api/v1/products/orders/routes/list',
        {
          backends: [
            { service: 'orders', weight: 50 },
            { service: 'orders-canary', weight: 50 },
          ],
        },
        { 'content-type': 'application/merge-patch+json' },
      );
      assert.equal(patched.status, 200, patched.text);
      assert.deepEqual(
        patched.body.backends.map((b: { weight: number }) => b.weight),
        [50, 50],
      );
      assert.deepEqual(patched.body.rewrite, { stripPrefix: '/api' });

      // Lists of nested kinds are scoped to their parent.
      const routes = await api.get('/api/v1/products/orders/routes');
      assert.equal(routes.body.total, 1);
      assert.equal(routes.body.items[0].product, 'orders');
      const subs = await api.get('/api/v1/partners/acme/subscriptions');
      assert.deepEqual(
        subs.body.items.map((s: { product: string }) => s.product),
        ['orders'],
      );

      // Deleting in reverse dependency order empties the model.
      for (const f of fixtures().reverse()) {
        const del = await api.delete(f.path);
        assert.equal(del.status, 204, `${f.path}: ${del.text}`);
        assert.equal((await api.get(f.path)).status, 404);
      }
      assert.equal(portico.store.current().routes.size, 0);
    });

    it('generates an API key, returns it once and stores only its hash', async () => {
      await api.put('/api/v1/partners/keyholder', { name: 'keyholder' });
      const created = await api.post('/api/v1/partners/keyholder/api-keys', { name: 'ci', expiresAt: '2099-01-01T00:00:00.000Z' });
      assert.equal(created.status, 201, created.text);
      assert.match(created.body.key, /^ptk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$/);
      assert.equal(created.body.key.split('_')[1], created.body.prefix);
      assert.equal(created.body.hash, undefined);
      const read = await api.get('/api/v1/partners/keyholder/api-keys/ci');
      assert.equal(read.body.key, undefined);
      assert.equal(read.body.hash, undefined);
      assert.ok(!read.text.includes(secretBody(created.body.key)));
      const stored = portico.store.current().apiKeys.get('keyholder/ci')!;
      assert.ok(portico.store.apiKeyHasher().verify(created.body.key, stored.hash), 'the stored hash verifies the returned key');
      // Updating metadata keeps the key; the server never accepts a hash from a client.
      const revoked = await api.patch('/api/v1/partners/keyholder/api-keys/ci', { revoked: true });
      assert.equal(revoked.status, 200);
      assert.equal(portico.store.current().apiKeys.get('keyholder/ci')!.hash, stored.hash);
      const forged = await api.put('/api/v1/partners/keyholder/api-keys/evil', { name: 'evil', hash: 'A'.repeat(43), prefix: 'abcdefgh' });
      assert.equal(forged.status, 422);
      assert.equal(forged.body.errors[0].field, 'hash');
      // Several active keys per partner (rotation without downtime).
      const second = await api.post('/api/v1/partners/keyholder/api-keys', { name: 'ci-next' });
      assert.equal(second.status, 201);
      assert.notEqual(second.body.prefix, created.body.prefix);
      assert.equal((await api.delete('/api/v1/partners/keyholder')).status, 204, 'deleting a partner removes its keys');
      assert.equal(portico.store.current().apiKeys.size, 0);
    });

    it('answers malformed and invalid bodies with problem+json naming the field', async () => {
      const malformed = await api.request('PUT', '/api/v1/services/bad', '{"name": "bad", ', { 'content-type': 'application/json' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      assert.match(malformed.body.detail, /not valid JSON/);

      const wrongType = await api.put('/api/v1/services/bad', { name: 'bad', endpoints: [{ host: '10.0.0.1', port: '80' }] });
      assert.equal(wrongType.status, 422);
      assert.deepEqual(wrongType.body.errors, [{ field: 'endpoints[0].port', message: 'must be an integer' }]);

      const unknown = await api.put('/api/v1/services/bad', { name: 'bad', endpoints: [{ host: '10.0.0.1', port: 80 }], endpoint: [] });
      assert.equal(unknown.status, 422);
      assert.deepEqual(unknown.body.errors, [{ field: 'endpoint', message: 'is not a known field' }]);

      const enumValue = await api.put('/api/v1/services/bad', { name: 'bad', endpoints: [{ host: '10.0.0.1', port: 80 }], lbPolicy: 'fastest' });
      assert.equal(enumValue.status, 422);
      assert.match(enumValue.body.errors[0].message, /must be one of round_robin, least_request/);

      const missing = await api.put('/api/v1/services/bad', { name: 'bad' });
      assert.equal(missing.status, 422);
      assert.deepEqual(missing.body.errors, [{ field: 'endpoints', message: 'is required' }]);

      const renamed = await api.put('/api/v1/services/bad', { name: 'other', endpoints: [{ host: '10.0.0.1', port: 80 }] });
      assert.equal(renamed.status, 422);
      assert.equal(renamed.body.errors[0].field, 'name');

      const notObject = await api.put('/api/v1/services/bad', [1, 2]);
      assert.equal(notObject.status, 422);

      const badMedia = await api.request('PUT', '/api/v1/services/bad', 'name=bad', { 'content-type': 'application/x-www-form-urlencoded' });
      assert.equal(badMedia.status, 415);

      const huge = await api.put('/api/v1/services/bad', { name: 'bad', endpoints: [{ host: '10.0.0.1', port: 80 }], description: 'x'.repeat(70 * 1024 * 1024) });
      assert.equal(huge.status, 413);

      const badQuery = await api.get('/api/v1/services?limit=0');
      assert.equal(badQuery.status, 422);
      assert.equal(badQuery.body.errors[0].field, 'query parameter limit');
      assert.equal(portico.store.current().services.has('bad'), false, 'nothing was written');
    });

    it('rejects unicode and injection edge cases in names, headers and paths', async () => {
      const cases: Array<[string, unknown, string]> = [
        ['/api/v1/services/caf%C3%A9', { name: 'café', endpoints: [{ host: '10.0.0.1', port: 80 }] }, 'name'],
        ['/api/v1/services/x', { name: 'x', endpoints: [{ host: '10.0.0.1\u0000', port: 80 }] }, 'endpoints[0].host'],
        ['/api/v1/partners/emoji', { name: 'emoji', displayName: '' }, 'displayName'],
      ];
      for (const [path, body, field] of cases) {
        const res = await api.put(path, body);
        assert.equal(res.status, 422, `${path}: ${res.text}`);
        assert.equal(res.body.errors[0].field, field);
      }
      // Valid unicode in free text round-trips exactly (combining marks, RTL, astral plane).
      const text = 'Équipe 支付 — שלום 𝄞 e\u0301';
      const ok = await api.put('/api/v1/partners/unicode', { name: 'unicode', displayName: text, description: text });
      assert.equal(ok.status, 201, ok.text);
      assert.equal((await api.get('/api/v1/partners/unicode')).body.displayName, text);
      // Header values must not smuggle CR/LF into Envoy config.
      await api.put('/api/v1/gateway-groups/g1', { name: 'g1', listeners: [{ name: 'h', port: 11000 }] });
      await api.put('/api/v1/services/s1', { name: 's1', endpoints: [{ host: '10.0.0.1', port: 80 }] });
      await api.put('/api/v1/products/p1', { name: 'p1', gatewayGroups: ['g1'] });
      const crlf = await api.put('/api/v1/products/p1/routes/r1', {
        name: 'r1',
        match: { path: { type: 'prefix', value: '/a' } },
        service: 's1',
        requestHeaders: { set: { 'X-A': 'v\r\nX-Injected: 1' } },
      });
      assert.equal(crlf.status, 422);
      assert.equal(crlf.body.errors[0].field, 'requestHeaders.set["X-A"]');
      const badRegex = await api.put('/api/v1/products/p1/routes/r2', { name: 'r2', match: { path: { type: 'regex', value: '^/(?=x)' } }, service: 's1' });
      assert.equal(badRegex.status, 422);
      assert.match(badRegex.body.errors[0].message, /RE2/);
      await api.delete('/api/v1/products/p1');
      await api.delete('/api/v1/services/s1');
      await api.delete('/api/v1/gateway-groups/g1');
      await api.delete('/api/v1/partners/unicode');
    });

    it('refuses dangling references, duplicates and conflicting routes with actionable messages', async () => {
      const dangling = await api.put('/api/v1/products/ghost', { name: 'ghost', gatewayGroups: ['nowhere'] });
      assert.equal(dangling.status, 422);
      assert.match(dangling.body.detail, /refers to gateway group 'nowhere', which does not exist/);
      assert.equal(dangling.body.errors[0].field, 'gatewayGroups[0]');

      await api.put('/api/v1/gateway-groups/g2', { name: 'g2', listeners: [{ name: 'h', port: 11001 }] });
      await api.put('/api/v1/services/s2', { name: 's2', endpoints: [{ host: '10.0.0.1', port: 80 }] });
      await api.put('/api/v1/products/a', { name: 'a', gatewayGroups: ['g2'], basePath: '/x' });
      await api.put('/api/v1/products/b', { name: 'b', gatewayGroups: ['g2'] });
      assert.equal((await api.put('/api/v1/products/a/routes/one', { name: 'one', match: { path: { type: 'prefix', value: '/items' } }, service: 's2' })).status, 201);
      const clash = await api.put('/api/v1/products/b/routes/two', { name: 'two', match: { path: { type: 'prefix', value: '/x/items' } }, service: 's2' });
      assert.equal(clash.status, 409);
      assert.match(clash.body.detail, /route 'a\/one' already matches prefix '\/x\/items' on host '\*' in gateway group 'g2'/);

      const duplicate = await api.post('/api/v1/services', { name: 's2', endpoints: [{ host: '10.0.0.2', port: 80 }] });
      assert.equal(duplicate.status, 409);
      assert.match(duplicate.body.detail, /already exists/);

      await api.put('/api/v1/jwt-issuers/i1', { name: 'i1', issuer: 'https://same', audiences: ['a'], jwksUri: 'https://same/jwks' });
      const sameIssuer = await api.put('/api/v1/jwt-issuers/i2', { name: 'i2', issuer: 'https://same', audiences: ['a'], jwksUri: 'https://same/jwks' });
      assert.equal(sameIssuer.status, 409);

      const inUse = await api.delete('/api/v1/services/s2');
      assert.equal(inUse.status, 409);
      assert.match(inUse.body.detail, /service 's2' is still used by route 'a\/one'/);

      const unknownParent = await api.put('/api/v1/products/nope/routes/r', { name: 'r', match: { path: { type: 'prefix', value: '/' } }, service: 's2' });
      assert.equal(unknownParent.status, 404);
      for (const p of ['/api/v1/products/a', '/api/v1/products/b', '/api/v1/services/s2', '/api/v1/gateway-groups/g2', '/api/v1/jwt-issuers/i1']) {
        assert.equal((await api.delete(p)).status, 204, p);
      }
    });

    it('uses ETags so a stale update fails with 412 and changes nothing', async () => {
      const created = await api.put('/api/v1/partners/etag', { name: 'etag', displayName: 'first' });
      const etag = created.headers.get('etag')!;
      const a = await api.put('/api/v1/partners/etag', { name: 'etag', displayName: 'second' }, { 'if-match': etag });
      assert.equal(a.status, 200);
      const b = await api.put('/api/v1/partners/etag', { name: 'etag', displayName: 'third' }, { 'if-match': etag });
      assert.equal(b.status, 412);
      assert.match(b.body.detail, /revision 2, not 1/);
      // The body's revision (as read by GET) works as a precondition too.
      const c = await api.put('/api/v1/partners/etag', { ...a.body, displayName: 'stale', revision: 1 });
      assert.equal(c.status, 412);
      assert.equal((await api.get('/api/v1/partners/etag')).body.displayName, 'second');
      const createOnly = await api.put('/api/v1/partners/etag', { name: 'etag' }, { 'if-none-match': '*' });
      assert.equal(createOnly.status, 409);
      // Concurrent writers with the same ETag: exactly one wins.
      const fresh = (await api.get('/api/v1/partners/etag')).headers.get('etag')!;
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => api.put('/api/v1/partners/etag', { name: 'etag', displayName: `racer ${i}` }, { 'if-match': fresh })));
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 412, 412, 412, 412, 412, 412, 412]);
      assert.equal((await api.delete('/api/v1/partners/etag', { 'if-match': '"1"' })).status, 412);
      assert.equal((await api.delete('/api/v1/partners/etag')).status, 204);
    });

    it('pages and filters lists, including by tag', async () => {
      for (let i = 0; i < 25; i++) {
        await api.put(`/api/v1/partners/p${String(i).padStart(2, '0')}`, { name: `p${String(i).padStart(2, '0')}`, tags: [i % 2 ? 'team:odd' : 'team:even'] });
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await api.get(`/api/v1/partners?limit=10${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(page.status, 200);
        assert.ok(page.body.items.length <= 10);
        seen.push(...page.body.items.map((p: { name: string }) => p.name));
        cursor = page.body.nextCursor;
      } while (cursor);
      assert.equal(seen.length, 25);
      assert.deepEqual(seen, [...seen].sort());
      const odd = await api.get('/api/v1/partners?tag=team:odd&limit=100');
      assert.equal(odd.body.total, 12);
      assert.ok(odd.body.items.every((p: { tags: string[] }) => p.tags.includes('team:odd')));
      const q = await api.get('/api/v1/partners?q=p1');
      assert.deepEqual(
        q.body.items.map((p: { name: string }) => p.name),
        ['p10', 'p11', 'p12', 'p13', 'p14', 'p15', 'p16', 'p17', 'p18', 'p19'],
      );
      // Pages are cached per model version: the same URL after a write shows the write.
      assert.equal((await api.patch('/api/v1/partners/p11', { tags: ['team:even'] })).status, 200);
      const after = await api.get('/api/v1/partners?tag=team:odd&limit=100');
      assert.equal(after.body.total, 11);
      assert.ok(!after.body.items.some((p: { name: string }) => p.name === 'p11'));
      assert.equal((await api.get('/api/v1/partners?q=p1')).body.items.find((p: { name: string }) => p.name === 'p11').tags[0], 'team:even');
      for (let i = 0; i < 25; i++) await api.delete(`/api/v1/partners/p${String(i).padStart(2, '0')}`);
      assert.equal((await api.get('/api/v1/partners?q=p1')).body.total, 0);
    });

    it('requires a valid token and the admin role for writes', async () => {
      const anonymous = api.withToken(undefined);
      const none = await anonymous.get('/api/v1/services');
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((await api.withToken(`pta_aaaaaaaa_${'A'.repeat(43)}`).get('/api/v1/services')).status, 401);
      assert.equal((await api.withToken('garbage').get('/api/v1/services')).status, 401);
      assert.equal((await anonymous.get('/healthz')).status, 200);

      const viewer = await api.post('/api/v1/admin-tokens', { name: 'dashboards', role: 'viewer' });
      assert.equal(viewer.status, 201, viewer.text);
      assert.match(viewer.body.token, /^pta_/);
      const asViewer = api.withToken(viewer.body.token);
      assert.equal((await asViewer.get('/api/v1/services')).status, 200);
      const denied = await asViewer.put('/api/v1/partners/viewer-made', { name: 'viewer-made' });
      assert.equal(denied.status, 403);
      assert.match(denied.body.detail, /viewer role/);
      assert.equal((await asViewer.get('/api/v1/admin-tokens')).status, 403);
      const listed = await api.get('/api/v1/admin-tokens');
      assert.ok(!listed.text.includes(viewer.body.token), 'token secrets are never listed');

      const admin2 = await api.post('/api/v1/admin-tokens', { name: 'ops', role: 'admin' });
      const asAdmin2 = api.withToken(admin2.body.token);
      assert.equal((await asAdmin2.put('/api/v1/partners/by-ops', { name: 'by-ops' })).status, 201);
      const audit = await api.get('/api/v1/audit?kind=partners&key=by-ops');
      assert.equal(audit.body.items[0].actor, 'ops');
      assert.equal(audit.body.items[0].action, 'create');
      assert.equal((await api.delete('/api/v1/admin-tokens/ops')).status, 204);
      assert.equal((await asAdmin2.get('/api/v1/services')).status, 401, 'a revoked token stops working at once');
      await api.delete('/api/v1/partners/by-ops');
      await api.delete('/api/v1/admin-tokens/dashboards');
    });

    it('records every write in the audit log with secrets removed', async () => {
      const cert = await selfSigned('audit.example.test');
      await api.put('/api/v1/certificates/audited', { name: 'audited', certificate: cert.certificate, privateKey: cert.privateKey });
      await api.patch('/api/v1/certificates/audited', { description: 'rotated soon' });
      await api.delete('/api/v1/certificates/audited');
      const audit = await api.get('/api/v1/audit?kind=certificates&key=audited');
      assert.deepEqual(
        audit.body.items.map((e: { action: string }) => e.action),
        ['delete', 'update', 'create'],
      );
      assert.equal(audit.body.items[1].before.description, undefined);
      assert.equal(audit.body.items[1].after.description, 'rotated soon');
      assert.ok(!audit.text.includes('PRIVATE KEY'));
      assert.equal(audit.body.items[2].after.privateKey, '[sealed]');
      assert.equal(audit.body.items[2].actor, 'bootstrap');
    });

    it('serves health, readiness and the OpenAPI document', async () => {
      const anonymous = api.withToken(undefined);
      const ready = await anonymous.get('/readyz');
      assert.equal(ready.status, 200);
      assert.equal(ready.body.status, 'ready');
      assert.equal(ready.body.migrations.pending, 0);
      const doc = await anonymous.get('/openapi.json');
      assert.equal(doc.status, 200);
      assert.equal(doc.body.openapi, '3.1.0');
      for (const p of ['/api/v1/services/{name}', '/api/v1/products/{parent}/routes/{name}', '/api/v1/partners/{parent}/api-keys', '/api/v1/config']) {
        assert.ok(doc.body.paths[p], `OpenAPI documents ${p}`);
      }
      const serviceRef = doc.body.paths['/api/v1/services/{name}'].put.requestBody.content['application/json'].schema.$ref;
      assert.equal(serviceRef, '#/components/schemas/ServiceInput');
      assert.ok(doc.body.components.schemas.ServiceInput.properties.endpoints, 'the request schema is the validation schema');
      assert.equal((await anonymous.get('/docs/')).status, 200);
    });
  });
}
