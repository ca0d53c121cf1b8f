// The partner portal at the HTTP level against a real control plane (embedded PostgreSQL): partner
// tokens minted by an admin, shown once and revocable; a partner token sees and changes only its own
// partner's things, every other admin route answers 403; another partner's key is 404; bad input is
// 4xx naming the field; usage is read from the rate limiter's counters; audit names the partner.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { ADMIN_TOKEN, type ApiClient, assertProblem, secretBody, startTestPortico, type TestPortico } from '../support/portico.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/portico');

const MODEL = `portico: v1
gatewayGroups:
  - name: edge
    listeners: [{ name: http, port: 18080 }]
    rateLimit: { mode: combined }
services:
  - name: orders
    endpoints: [{ host: 127.0.0.1, port: 3002 }]
plans:
  - name: gold
    limits: [{ requests: 10, per: minute }]
    quotas: [{ requests: 1000, per: day }]
    overrides:
      - product: shop
        route: bulk
        quotas: [{ requests: 5, per: day }]
  - name: free
    quotas: [{ requests: 100, per: month }]
products:
  - name: shop
    displayName: The shop
    gatewayGroups: [edge]
    basePath: /shop
    routes:
      - { name: all, match: { path: { type: prefix, value: / } }, service: orders }
      - { name: bulk, match: { path: { type: prefix, value: /bulk } }, service: orders }
  - name: search
    gatewayGroups: [edge]
    basePath: /search
    routes:
      - { name: all, match: { path: { type: prefix, value: / } }, service: orders }
partners:
  - name: acme
    displayName: ACME
    subscriptions: [{ product: shop, plan: gold }]
  - name: globex
    subscriptions: [{ product: search, plan: free }]
`;

describe('partner portal API', () => {
  let portico: TestPortico;
  let acme: ApiClient;
  let acmeToken: string;
  before(async () => {
    portico = await startTestPortico();
    const applied = await portico.api.post('/api/v1/config', MODEL, { 'content-type': 'application/yaml' });
    assert.equal(applied.status, 200, applied.text);
    for (const [partner, name] of [
      ['acme', 'acme-ci'],
      ['globex', 'globex-prod'],
    ])
      assert.equal((await portico.api.post(`/api/v1/partners/${partner}/api-keys`, { name })).status, 201);
    const minted = await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 'acme-portal', description: 'for ACME' });
    assert.equal(minted.status, 201, minted.text);
    acmeToken = minted.body.token;
    acme = portico.api.withToken(acmeToken);
  });
  after(() => portico?.close());

  it('an admin mints a partner token shown once, listed without its secret', async () => {
    assert.match(acmeToken, /^pta_[a-z0-9]{8}_/);
    const list = await portico.api.get('/api/v1/partners/acme/portal-tokens');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.items.map((t: { name: string; role: string; partner: string }) => [t.name, t.role, t.partner]),
      [['acme-portal', 'partner', 'acme']],
    );
    assert.ok(!list.text.includes(secretBody(acmeToken)), 'the secret is never listed');
    assert.equal((await portico.api.get('/api/v1/partners/globex/portal-tokens')).body.items.length, 0);
    assertProblem(await portico.api.post('/api/v1/partners/nobody/portal-tokens', { name: 'x' }), 404, 'path parameter parent');
    assertProblem(await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 'Bad Name' }), 422, 'name');
    assertProblem(await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 'acme-portal' }), 409, 'name');
    assertProblem(await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 'old', expiresAt: '2001-01-01T00:00:00Z' }), 422, 'expiresAt');
  });

  it('a partner token sees its own partner, subscriptions and keys only', async () => {
    const me = await acme.get('/api/v1/portal/me');
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.partner.name, 'acme');
    assert.equal(me.body.token.name, 'acme-portal');
    const subs = await acme.get('/api/v1/portal/subscriptions');
    assert.deepEqual(
      subs.body.items.map((s: { product: string; plan: string }) => `${s.product}:${s.plan}`),
      ['shop:gold'],
    );
    const shop = subs.body.items[0];
    assert.deepEqual(shop.planRules.limits, [{ requests: 10, per: 'minute' }]);
    assert.deepEqual(shop.planRules.overrides, [{ route: 'bulk', quotas: [{ requests: 5, per: 'day' }] }]);
    assert.equal(shop.productInfo.basePath, '/shop');
    const keys = await acme.get('/api/v1/portal/keys');
    assert.deepEqual(
      keys.body.items.map((k: { name: string }) => k.name),
      ['acme-ci'],
    );
    assert.ok(!keys.text.includes('globex'), keys.text);
    assert.equal(keys.body.items[0].hash, undefined);
  });

  it('every other admin route answers 403 problem+json to a partner token; portal routes refuse admin tokens', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/partners'],
      ['GET', '/api/v1/partners/globex'],
      ['GET', '/api/v1/partners/acme/api-keys'],
      ['POST', '/api/v1/partners/acme/api-keys'],
      ['GET', '/api/v1/services'],
      ['GET', '/api/v1/config'],
      ['GET', '/api/v1/audit'],
      ['GET', '/api/v1/admin-tokens'],
      ['POST', '/api/v1/partners/acme/portal-tokens'],
      ['GET', '/api/v1/fleet'],
      ['GET', '/console/api/traffic'],
    ] as const) {
      const r = await acme.request(method, path, method === 'POST' ? { name: 'x' } : undefined);
      assertProblem(r, 403, 'header Authorization');
      assert.match(r.body.detail, /partner token/);
    }
    assertProblem(await portico.api.get('/api/v1/portal/me'), 403, 'header Authorization');
    assertProblem(await portico.api.post('/api/v1/portal/keys', { name: 'k' }), 403, 'header Authorization');
  });

  it("another partner's key is 404, never touched", async () => {
    assertProblem(await acme.post('/api/v1/portal/keys/globex-prod/revoke'), 404, 'path parameter name');
    assertProblem(await acme.post('/api/v1/portal/keys/globex-prod/rotate', {}), 404, 'path parameter name');
    assert.equal((await portico.api.get('/api/v1/partners/globex/api-keys/globex-prod')).body.revoked, undefined);
  });

  it('bad input is 4xx naming the field, and changes nothing', async () => {
    assertProblem(await acme.post('/api/v1/portal/keys', { name: 'Not A Name' }), 422, 'name');
    assertProblem(await acme.post('/api/v1/portal/keys', {}), 422, 'name');
    assertProblem(await acme.post('/api/v1/portal/keys', { name: 'k2', partner: 'globex' }), 422, /partner/);
    assertProblem(await acme.post('/api/v1/portal/keys', { name: 'k2', key: `ptk_abcdefgh_${'a'.repeat(43)}` }), 422, /key/);
    assertProblem(await acme.post('/api/v1/portal/keys', { name: 'k2', expiresAt: 'tomorrow' }), 422, 'expiresAt');
    assertProblem(await acme.post('/api/v1/portal/keys', { name: 'k2', expiresAt: '2001-01-01T00:00:00Z' }), 422, 'expiresAt');
    assertProblem(await acme.post('/api/v1/portal/keys', [1]), 422, '(body)');
    assertProblem(await acme.post('/api/v1/portal/keys', { name: 'acme-ci' }), 409, 'name');
    assertProblem(await acme.post('/api/v1/portal/keys/acme-ci/rotate', { revokeOld: 'yes' }), 422, 'revokeOld');
    assertProblem(await acme.post(`/api/v1/portal/keys/${'a'.repeat(64)}/revoke`), 422, 'path parameter name');
    const keys = await acme.get('/api/v1/portal/keys');
    assert.deepEqual(
      keys.body.items.map((k: { name: string }) => k.name),
      ['acme-ci'],
    );
  });

  it('creates, rotates and revokes its keys; the audit log names the partner', async () => {
    const created = await acme.post('/api/v1/portal/keys', { name: 'acme-web', description: 'web shop' });
    assert.equal(created.status, 201, created.text);
    assert.match(created.body.key, /^ptk_[a-z0-9]{8}_/);
    assert.equal(created.body.partner, 'acme');
    const stored = await portico.api.get('/api/v1/partners/acme/api-keys/acme-web');
    assert.equal(stored.status, 200);
    assert.ok(!stored.text.includes(created.body.key), 'shown once');

    const rotated = await acme.post('/api/v1/portal/keys/acme-web/rotate', {});
    assert.equal(rotated.status, 201, rotated.text);
    assert.equal(rotated.body.name, 'acme-web-2');
    assert.equal(rotated.body.replaces, 'acme-web');
    assert.equal(rotated.body.description, 'web shop');
    assert.notEqual(rotated.body.key, created.body.key);
    assert.equal((await portico.api.get('/api/v1/partners/acme/api-keys/acme-web')).body.revoked, undefined, 'the old key works until revoked');

    const swapped = await acme.post('/api/v1/portal/keys/acme-web-2/rotate', { name: 'acme-web-next', revokeOld: true });
    assert.equal(swapped.status, 201, swapped.text);
    assert.equal((await portico.api.get('/api/v1/partners/acme/api-keys/acme-web-2')).body.revoked, true);
    assertProblem(await acme.post('/api/v1/portal/keys/acme-web-2/rotate', {}), 409, 'path parameter name');

    const revoked = await acme.post('/api/v1/portal/keys/acme-web/revoke');
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.body.revoked, true);

    const audit = await portico.api.get('/api/v1/audit?kind=apiKeys&limit=10');
    const actors = new Set(audit.body.items.filter((e: { key: string }) => e.key.startsWith('acme/acme-web')).map((e: { actor: string }) => e.actor));
    assert.deepEqual([...actors], ['partner:acme (token acme-portal)']);
  });

  it('changes a key’s description and expiry, deletes keys, and is capped at 100 keys', async () => {
    const patched = await acme.patch('/api/v1/portal/keys/acme-ci', { description: 'CI', expiresAt: '2099-01-01T00:00:00Z' });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual([patched.body.description, patched.body.expiresAt], ['CI', '2099-01-01T00:00:00Z']);
    const cleared = await acme.patch('/api/v1/portal/keys/acme-ci', { expiresAt: null });
    assert.equal(cleared.body.expiresAt, undefined);
    assert.equal(cleared.body.description, 'CI');
    assertProblem(await acme.patch('/api/v1/portal/keys/acme-ci', { name: 'renamed' }), 422, 'name');
    assertProblem(await acme.patch('/api/v1/portal/keys/acme-ci', { expiresAt: 5 }), 422, 'expiresAt');
    assertProblem(await acme.patch('/api/v1/portal/keys/globex-prod', { description: 'x' }), 404, 'path parameter name');
    assertProblem(await acme.delete('/api/v1/portal/keys/globex-prod'), 404, 'path parameter name');
    assert.equal((await acme.post('/api/v1/portal/keys', { name: 'short-lived' })).status, 201);
    assert.equal((await acme.delete('/api/v1/portal/keys/short-lived')).status, 204);
    assert.equal((await portico.api.get('/api/v1/partners/acme/api-keys/short-lived')).status, 404);

    // A partner holding 100 keys (imported by an admin here) may not make more through the portal.
    const keys = Array.from({ length: 100 }, (_, i) => ({ name: `k${i}`, key: `ptk_${randomBytes(4).toString('hex')}_${randomBytes(32).toString('base64url').slice(0, 43)}` }));
    const imported = await portico.api.put('/api/v1/partners/initech', { name: 'initech', apiKeys: keys });
    assert.equal(imported.status, 201, imported.text.slice(0, 500));
    const initech = portico.api.withToken((await portico.api.post('/api/v1/partners/initech/portal-tokens', { name: 'initech-portal' })).body.token);
    assertProblem(await initech.post('/api/v1/portal/keys', { name: 'one-more' }), 409, 'name');
    assertProblem(await initech.post('/api/v1/portal/keys/k1/rotate', {}), 409, 'name');
    assert.equal((await initech.delete('/api/v1/portal/keys/k1')).status, 204);
    assert.equal((await initech.post('/api/v1/portal/keys', { name: 'one-more' })).status, 201);
  });

  it('a suspended partner reads but changes no key', async () => {
    assert.equal((await portico.api.patch('/api/v1/partners/initech', { suspended: true }, { 'content-type': 'application/merge-patch+json' })).status, 200);
    const initech = portico.api.withToken((await portico.api.post('/api/v1/partners/initech/portal-tokens', { name: 'initech-portal-2' })).body.token);
    assert.equal((await initech.get('/api/v1/portal/me')).body.partner.suspended, true);
    assertProblem(await initech.post('/api/v1/portal/keys/k2/revoke'), 403, 'header Authorization');
    assertProblem(await initech.delete('/api/v1/portal/keys/k2'), 403, 'header Authorization');
    assertProblem(await initech.post('/api/v1/portal/keys', { name: 'Not A Name' }), 403, 'header Authorization');
  });

  it('a body is checked after what answers first: a path parameter, an unknown partner or key, a suspension', async () => {
    // fastify validates these bodies against their schemas but leaves the 422 to the handler (attachValidation).
    assertProblem(await portico.api.post('/api/v1/partners/nobody/portal-tokens', { name: 42 }), 404, 'path parameter parent');
    assertProblem(await portico.api.post('/api/v1/partners/acme/portal-tokens', [1]), 422, '(body)');
    assertProblem(await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 42 }), 422, 'name');
    assertProblem(await acme.post('/api/v1/portal/keys/globex-prod/rotate', { revokeOld: 'yes' }), 404, 'path parameter name');
    assertProblem(await acme.patch('/api/v1/portal/keys/globex-prod', { expiresAt: 'tomorrow' }), 404, 'path parameter name');
    assertProblem(await acme.patch(`/api/v1/portal/keys/${'a'.repeat(64)}`, { expiresAt: 'tomorrow' }), 422, 'path parameter name');
    // No body is an empty one: a new key still needs its name.
    assertProblem(await acme.post('/api/v1/portal/keys'), 422, 'name');
  });

  it('documents every portal operation under the tag portal', async () => {
    const doc = (await portico.api.get('/openapi.json')).body as { paths: Record<string, Record<string, { tags?: string[] }>> };
    const ops = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/api/v1/portal/'))
      .flatMap(([p, methods]) => Object.entries(methods).map(([m, op]) => [`${m.toUpperCase()} ${p}`, op.tags]));
    assert.deepEqual(ops.map(([op]) => op).sort(), [
      'DELETE /api/v1/portal/keys/{name}',
      'GET /api/v1/portal/keys',
      'GET /api/v1/portal/me',
      'GET /api/v1/portal/subscriptions',
      'GET /api/v1/portal/usage',
      'PATCH /api/v1/portal/keys/{name}',
      'POST /api/v1/portal/keys',
      'POST /api/v1/portal/keys/{name}/revoke',
      'POST /api/v1/portal/keys/{name}/rotate',
    ]);
    for (const [op, t] of ops) assert.deepEqual(t, ['portal'], String(op));
  });

  it('usage against limits and quotas comes from the rate limiter’s counters', async () => {
    for (let i = 0; i < 3; i++) await portico.ratelimit.decide({ product: 'shop', route: 'all', partner: 'acme' });
    await portico.ratelimit.decide({ product: 'shop', route: 'bulk', partner: 'acme' });
    const usage = await acme.get('/api/v1/portal/usage');
    assert.equal(usage.status, 200, usage.text);
    const by = new Map(usage.body.budgets.map((b: { budget: string }) => [b.budget, b]));
    assert.deepEqual([...by.keys()].sort(), ['gold:shop:*:day', 'gold:shop:*:minute', 'gold:shop:bulk:day']);
    const daily = by.get('gold:shop:*:day') as Record<string, unknown>;
    // The bulk route's override replaces the daily quota there; its rate stays plan-wide.
    assert.deepEqual([daily.limit, daily.used, daily.remaining, daily.source], [1000, 3, 997, 'rate-limiter']);
    const minute = by.get('gold:shop:*:minute') as Record<string, unknown>;
    assert.deepEqual([minute.limit, minute.used], [10, 4]);
    const bulk = by.get('gold:shop:bulk:day') as Record<string, unknown>;
    assert.deepEqual([bulk.route, bulk.limit, bulk.used, bulk.remaining], ['bulk', 5, 1, 4]);
    // Reading consumes nothing.
    const again = await acme.get('/api/v1/portal/usage');
    assert.equal(again.body.budgets.find((b: { budget: string }) => b.budget === 'gold:shop:*:day').used, 3);
    assert.ok(!usage.text.includes('globex') && !usage.text.includes('free'), usage.text);
  });

  it('the CLI mints (shown once), lists and revokes partner tokens', async () => {
    // Asynchronously: the server answering the CLI runs in this process.
    const cli = (...args: string[]) => promisify(execFile)(BIN, ['partner-token', ...args], { env: { ...process.env, PORTICO_URL: portico.adminUrl, PORTICO_TOKEN: ADMIN_TOKEN } });
    const created = await cli('create', 'acme', 'acme-cli', '--description', 'from the CLI');
    const token = created.stdout.trim();
    assert.match(token, /^pta_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$/);
    assert.match(created.stderr, /shown only now/);
    assert.equal((await portico.api.withToken(token).get('/api/v1/portal/me')).body.partner.name, 'acme');
    assert.match((await cli('list', 'acme')).stdout, /^acme-cli\tno expiry\tcreated by bootstrap$/m);
    assert.ok(!(await cli('list', 'acme')).stdout.includes(secretBody(token)));
    await cli('revoke', 'acme', 'acme-cli');
    assert.equal((await portico.api.withToken(token).get('/api/v1/portal/me')).status, 401);
    await assert.rejects(cli('create', 'nobody', 'x'), (e: { stderr: string }) => /404/.test(e.stderr));
  });

  it('revoking the partner token (or deleting the partner) makes it 401', async () => {
    const second = await portico.api.post('/api/v1/partners/globex/portal-tokens', { name: 'globex-portal' });
    const globex = portico.api.withToken(second.body.token);
    assert.equal((await globex.get('/api/v1/portal/me')).status, 200);
    assertProblem(await portico.api.delete('/api/v1/partners/acme/portal-tokens/globex-portal'), 404, 'path parameter name');
    assert.equal((await portico.api.delete('/api/v1/partners/acme/portal-tokens/acme-portal')).status, 204);
    assertProblem(await acme.get('/api/v1/portal/me'), 401, 'header Authorization');
    assert.equal((await portico.api.delete('/api/v1/partners/globex')).status, 204);
    assertProblem(await globex.get('/api/v1/portal/keys'), 401, 'header Authorization');
  });
});
