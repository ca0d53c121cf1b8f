// The OpenAPI document is the contract: every operation names a response schema for every status it
// documents, real answers validate against those schemas (Ajv, JSON Schema 2020-12 as OpenAPI 3.1
// uses), the answer schema is the allow-list fastify serialises through, and secrets never appear.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { buildAdminServer } from '../../src/admin/index.ts';
import { loadSettings } from '../../src/settings.ts';
import { loadKeyRing, openDatabase } from '../../src/store/index.ts';
import { startTestPortico, type ApiResponse, type TestPortico } from '../support/portico.ts';
import { selfSigned } from '../support/certs.ts';

type Json = any;
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** A validator for `#/components/schemas/…` references and inline schemas of the document. */
function validatorFor(doc: Json) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addFormat('re2', true).addFormat('ipv4-or-ipv6', true);
  ajv.addSchema({ $id: 'urn:portico:openapi', components: doc.components });
  return (schema: Json, value: unknown): string[] => {
    const fixed = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"urn:portico:openapi#/components/'));
    const validate = ajv.compile(fixed);
    return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}`);
  };
}

function operations(doc: Json): Array<{ method: string; path: string; op: Json }> {
  return Object.entries<Json>(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method] })));
}

describe('the OpenAPI document names a schema for every answer', () => {
  let doc: Json;
  before(async () => {
    doc = await documentOf();
  });

  it('every documented status of every operation has a named schema (204 has no body)', () => {
    const missing: string[] = [];
    for (const { method, path, op } of operations(doc)) {
      for (const [status, response] of Object.entries<Json>(op.responses)) {
        if (status === '204') {
          if (response.content) missing.push(`${method} ${path} ${status} has a body`);
          continue;
        }
        const media = Object.entries<Json>(response.content ?? {});
        if (media.length === 0) missing.push(`${method} ${path} ${status} has no schema`);
        for (const [type, m] of media) {
          const named = typeof m.schema?.$ref === 'string' && m.schema.$ref.startsWith('#/components/schemas/');
          // A YAML export is a string; everything JSON is a named component.
          if (!named && !(type === 'application/yaml' && m.schema?.type === 'string')) missing.push(`${method} ${path} ${status} ${type}: ${JSON.stringify(m.schema).slice(0, 80)}`);
        }
      }
    }
    assert.deepEqual(missing, []);
    // What the linter (npm run lint:openapi) also insists on: ids, declared tags, stated authentication.
    const ids = operations(doc).map(({ op }) => op.operationId);
    assert.ok(
      ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id)),
      ids.join(' '),
    );
    assert.equal(new Set(ids).size, ids.length, 'operation ids are unique');
    const tags = new Set(doc.tags.map((t: Json) => t.name));
    for (const { method, path, op } of operations(doc)) {
      assert.ok(op.tags?.length && op.tags.every((t: string) => tags.has(t)), `${method} ${path} has declared tags: ${op.tags}`);
      const expected = ['/healthz', '/readyz'].includes(path) || (path === '/console/api/session' && method === 'post') ? [] : [{ bearer: [] }, { session: [] }];
      assert.deepEqual(op.security, expected, `${method} ${path} states how it is authenticated`);
    }
    assert.equal(doc.paths['/api/v1/services'].get.operationId, 'listServices');
    assert.equal(doc.paths['/api/v1/partners/{parent}/mtls-identities/{name}'].patch.operationId, 'updateMtlsIdentity');
    for (const name of ['Service', 'Product', 'Route', 'Partner', 'Subscription', 'ApiKey', 'Plan', 'JwtIssuer', 'Certificate', 'GatewayGroup', 'Problem', 'ServicePage', 'ServiceInput']) {
      assert.ok(doc.components.schemas[name], `#/components/schemas/${name}`);
    }
    // Secrets are not in the answer schemas at all.
    assert.equal(doc.components.schemas.ApiKey.properties.hash, undefined);
    assert.equal(doc.components.schemas.ApiKey.properties.key, undefined);
    assert.equal(doc.components.schemas.Certificate.properties.privateKey, undefined);
    assert.ok(doc.components.schemas.CertificateInput.properties.privateKey, 'a certificate body may carry its key');
  });

  it('the answer schema is the allow-list: a field it does not name is not sent', async () => {
    const { app, close } = await adminApp({
      fleet: () => ({ generatedAt: new Date().toISOString(), groups: [], nodes: [], recentNacks: [], channelSecurity: 'plaintext', refused: [], internal: 'not for clients' }),
      details: () => ({ database: 'embedded', masterKey: 'must-not-be-sent' }),
    });
    try {
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 200);
      assert.equal(ready.json().database, 'embedded');
      assert.doesNotMatch(ready.body, /masterKey|must-not-be-sent/);
      const fleet = await app.inject({ method: 'GET', url: '/api/v1/fleet', headers: { authorization: 'Bearer boot-token-for-test' } });
      assert.equal(fleet.statusCode, 200, fleet.body);
      assert.equal(fleet.json().channelSecurity, 'plaintext');
      assert.doesNotMatch(fleet.body, /internal|not for clients/);
    } finally {
      await close();
    }
  });
});

describe('real answers validate against the documented schemas', () => {
  let p: TestPortico;
  let doc: Json;
  let check: ReturnType<typeof validatorFor>;
  const secrets: string[] = [];
  const seen: Array<{ what: string; r: ApiResponse }> = [];

  before(async () => {
    p = await startTestPortico();
    const seeded = await p.api.request('POST', '/api/v1/config', readFileSync(new URL('../../examples/gateway.yaml', import.meta.url), 'utf8'), { 'content-type': 'application/yaml' });
    assert.equal(seeded.status, 200, seeded.text);
    const cert = await selfSigned('openapi.example.test');
    assert.equal((await p.api.put('/api/v1/certificates/edge', { name: 'edge', certificate: cert.certificate, privateKey: cert.privateKey })).status, 201);
    assert.equal((await p.api.put('/api/v1/partners/oa', { name: 'oa' })).status, 201);
    assert.equal((await p.api.put('/api/v1/partners/oa/subscriptions/orders', { product: 'orders', plan: 'standard' })).status, 201);
    const key = await p.api.put('/api/v1/partners/oa/api-keys/ci', { name: 'ci' });
    assert.equal(key.status, 201, key.text);
    assert.match(key.body.key, /^ptk_/, 'the minted key is in the answer to the write that minted it');
    assert.equal((await p.api.put('/api/v1/partners/oa/mtls-identities/billing', { name: 'billing', match: { type: 'spiffe_id', value: 'spiffe://example.test/billing' } })).status, 201);
    const token = await p.api.post('/api/v1/admin-tokens', { name: 'oa-viewer', role: 'viewer' });
    assert.equal(token.status, 201, token.text);
    secrets.push(key.body.key, cert.privateKey.split('\n')[1]!, token.body.token);
    doc = (await p.api.get('/openapi.json')).body;
    check = validatorFor(doc);
  });
  after(() => p?.close());

  it('samples every operation: each answer is documented and matches its schema, and no secret appears', async () => {
    const problems: string[] = [];
    const answered = new Set<string>();
    const send = async (method: string, template: string, url: string, body?: unknown, headers?: Record<string, string>, client = p.api) => {
      const r = await client.request(method.toUpperCase(), url, body, headers);
      seen.push({ what: `${method} ${url}`, r });
      const documented = doc.paths[template][method].responses[String(r.status)];
      if (!documented) {
        problems.push(`${method} ${url} → ${r.status}, not documented`);
        return r;
      }
      answered.add(`${method} ${template} ${r.status}`);
      const type = (r.headers.get('content-type') ?? '').split(';')[0]!;
      if (r.status === 204) return r;
      const media = documented.content?.[type];
      if (!media) problems.push(`${method} ${url} → ${r.status} ${type}, a media type not documented`);
      else for (const e of check(media.schema, r.body)) problems.push(`${method} ${url} → ${r.status}: ${e}`);
      return r;
    };
    const outputOnly = ['revision', 'createdAt', 'updatedAt', 'prefix', 'storage', 'hasPrivateKey', 'subject', 'issuer', 'notBefore', 'notAfter', 'fingerprintSha256'];
    const strip = (x: Json) => Object.fromEntries(Object.entries<Json>(x).filter(([k]) => !outputOnly.includes(k)));

    for (const { method, path } of operations(doc)) {
      const kinds = /^\/api\/v1\/([a-z-]+)(?:\/\{parent\}\/([a-z-]+))?(\/\{name\})?$/.exec(path);
      if (!kinds || ['admin-tokens', 'audit', 'cache', 'config', 'fleet', 'flows', 'portal'].includes(kinds[1]!) || kinds[2] === 'portal-tokens') continue;
      const [, top, child, item] = kinds;
      const parent = child ? (top === 'products' ? 'orders' : 'oa') : undefined;
      const base = child ? `/api/v1/${top}/${parent}/${child}` : `/api/v1/${top}`;
      const list = (await p.api.get(base)).body.items as Json[];
      assert.ok(list.length > 0, `${base} has something to sample`);
      const first = list[0];
      const keyField = child === 'subscriptions' ? 'product' : 'name';
      const name = first[keyField];
      if (!item) {
        if (method === 'get') await send(method, path, `${base}?limit=1`);
        if (method === 'post') {
          await send(method, path, base, { ...strip(first), [keyField]: name }); // exists already: 409
          await send(method, path, base, { [keyField]: 42 }); // 422 naming the field
        }
        continue;
      }
      if (method === 'get') await send(method, path, `${base}/${name}`);
      if (method === 'put') await send(method, path, `${base}/${name}`, strip(first));
      if (method === 'patch') await send(method, path, `${base}/${name}`, { description: 'sampled by the OpenAPI test' });
      if (method === 'delete') await send(method, path, `${base}/no-such-thing`);
      await send(method, path, `${base}/no-such-thing`, method === 'put' || method === 'patch' ? { nope: true } : undefined);
    }
    // Creates and deletes that succeed, for the kinds a copy can be made of.
    const copy = (await p.api.get('/api/v1/services/orders')).body;
    await send('post', '/api/v1/services', '/api/v1/services', { ...strip(copy), name: 'oa-copy' });
    await send('delete', '/api/v1/services/{name}', '/api/v1/services/oa-copy');
    // A DELETE with a body fastify cannot parse: 415, documented like a write's.
    await send('delete', '/api/v1/services/{name}', '/api/v1/services/orders', '<service/>', { 'content-type': 'application/xml' });
    await send('post', '/api/v1/partners/{parent}/api-keys', '/api/v1/partners/oa/api-keys', { name: 'second' });
    await send('delete', '/api/v1/partners/{parent}/api-keys/{name}', '/api/v1/partners/oa/api-keys/second');
    await send('post', '/api/v1/partners', '/api/v1/partners', { name: 'oa-nested', subscriptions: [{ product: 'orders', plan: 'standard' }] });
    // The operational endpoints.
    await send('get', '/healthz', '/healthz');
    await send('get', '/readyz', '/readyz');
    await send('get', '/api/v1/fleet', '/api/v1/fleet');
    await send('get', '/api/v1/audit', '/api/v1/audit?limit=5');
    await send('get', '/api/v1/audit', '/api/v1/audit?before=99999999999999999999');
    await send('get', '/api/v1/config', '/api/v1/config?format=json');
    await send('get', '/api/v1/config', '/api/v1/config');
    const exported = (await p.api.get('/api/v1/config?format=json')).body;
    await send('post', '/api/v1/config', '/api/v1/config?dryRun=true', exported);
    await send('get', '/api/v1/admin-tokens', '/api/v1/admin-tokens');
    await send('post', '/api/v1/admin-tokens', '/api/v1/admin-tokens', { name: 'oa-second', role: 'nobody' });
    await send('delete', '/api/v1/admin-tokens/{name}', '/api/v1/admin-tokens/oa-viewer');
    await send('delete', '/api/v1/admin-tokens/{name}', '/api/v1/admin-tokens/oa-viewer');
    // Cache purges (nothing caches in the example: 404 and 422 naming the field) and the flow designer.
    await send('post', '/api/v1/products/{product}/routes/{route}/cache/purge', '/api/v1/products/orders/routes/no-such-route/cache/purge');
    await send('post', '/api/v1/cache/purge', '/api/v1/cache/purge', { prefix: 'orders/' });
    const flow = { steps: [{ name: 'hello', respond: { status: 200, body: '"hi"' } }] };
    await send('post', '/api/v1/flows/check', '/api/v1/flows/check', { flow });
    await send('post', '/api/v1/flows/try', '/api/v1/flows/try', { flow });
    await send('post', '/api/v1/flows/try', '/api/v1/flows/try', { flow: { steps: [] } });
    // The partner portal, with a partner token.
    const portalToken = await send('post', '/api/v1/partners/{parent}/portal-tokens', '/api/v1/partners/oa/portal-tokens', { name: 'oa-portal' });
    await send('get', '/api/v1/partners/{parent}/portal-tokens', '/api/v1/partners/oa/portal-tokens');
    const partner = p.api.withToken(portalToken.body.token);
    secrets.push(portalToken.body.token);
    for (const path of ['/api/v1/portal/me', '/api/v1/portal/subscriptions', '/api/v1/portal/usage', '/api/v1/portal/keys']) await send('get', path, path, undefined, undefined, partner);
    await send('post', '/api/v1/portal/keys', '/api/v1/portal/keys', { name: 'portal-key' }, undefined, partner);
    await send('post', '/api/v1/portal/keys/{name}/rotate', '/api/v1/portal/keys/portal-key/rotate', {}, undefined, partner);
    await send('post', '/api/v1/portal/keys/{name}/revoke', '/api/v1/portal/keys/portal-key/revoke', undefined, undefined, partner);
    await send('patch', '/api/v1/portal/keys/{name}', '/api/v1/portal/keys/portal-key', { description: 'sampled' }, undefined, partner);
    await send('delete', '/api/v1/portal/keys/{name}', '/api/v1/portal/keys/portal-key', undefined, undefined, partner);
    await send('delete', '/api/v1/partners/{parent}/portal-tokens/{name}', '/api/v1/partners/oa/portal-tokens/oa-portal');
    await send('post', '/console/api/session', '/console/api/session', { token: p.api.token });
    await send('get', '/console/api/session', '/console/api/session');
    await send('delete', '/console/api/session', '/console/api/session');
    await send('get', '/console/api/traffic', '/console/api/traffic');

    assert.deepEqual(problems, []);
    // Every operation answered at least once, and every kind's answers (item, page, written) were checked.
    const ops = operations(doc).map(({ method, path }) => `${method} ${path}`);
    const unanswered = ops.filter((o) => ![...answered].some((a) => a.startsWith(`${o} `)));
    assert.deepEqual(unanswered, []);
    for (const must of [
      'get /api/v1/services/{name} 200',
      'get /api/v1/services 200',
      'post /api/v1/services 201',
      'delete /api/v1/services/{name} 204',
      'delete /api/v1/services/{name} 415',
      'post /api/v1/partners 201',
      'post /api/v1/partners/{parent}/api-keys 201',
      'put /api/v1/products/{parent}/routes/{name} 200',
      'post /api/v1/config 200',
      'get /api/v1/fleet 200',
    ]) {
      assert.ok(answered.has(must), `sampled ${must}`);
    }
    const leaks = seen.filter(({ r }) => r !== portalToken && secrets.some((s) => r.text.includes(s))).map(({ what }) => what);
    assert.deepEqual(leaks, [], 'no answer but the minting one carries a secret');
    // A key's hash is exported to admins (so a document re-applies); no other answer shows it.
    const hash = (exported.partners as Json[]).find((x) => x.name === 'oa').apiKeys[0].hash as string;
    assert.match(hash, /^[A-Za-z0-9_-]{43}$/);
    const hashLeaks = seen.filter(({ what, r }) => !what.startsWith('get /api/v1/config') && r.text.includes(hash)).map(({ what }) => what);
    assert.deepEqual(hashLeaks, [], 'only the admin export carries key hashes');
  });
});

async function adminApp(opts: { fleet?: () => unknown; details?: () => Record<string, unknown> } = {}) {
  const settings = loadSettings({ PORTICO_DATA_DIR: 'memory://', PORTICO_MASTER_KEY: randomBytes(32).toString('base64'), PORTICO_LOG_LEVEL: 'silent' });
  const database = await openDatabase({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, migrate: settings.migrate, keys: loadKeyRing(settings) });
  const app = await buildAdminServer({
    store: database.store,
    bootstrapToken: 'boot-token-for-test',
    readiness: { ready: () => true, draining: () => false, details: opts.details ?? (() => ({})) },
    fleet: opts.fleet ?? (() => ({})),
  });
  await app.ready();
  return {
    app,
    close: async () => {
      await app.close();
      await database.close();
    },
  };
}

async function documentOf(): Promise<Json> {
  const { app, close } = await adminApp();
  try {
    return app.swagger();
  } finally {
    await close();
  }
}
