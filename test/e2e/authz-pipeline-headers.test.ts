// Identity headers and hostile input through the whole pipeline (admin API → xDS → a real Envoy →
// ext_authz): client-sent copies of the gateway's identity headers, and any header under its reserved
// x-portico- prefix (any case, repeated, with underscores, over HTTP/1.1 and HTTP/2), never reach an
// upstream, on public and on protected routes;
// malformed Authorization headers, oversized tokens and wrongly shaped API keys are 401, never 5xx;
// Envoy's own limits answer with the gateway's JSON error.
import assert from 'node:assert/strict';
import { connect as http2Connect } from 'node:http2';
import { describe, it } from 'node:test';
import { assertGatewayError, assertUnauthorized, createApiKey, mirroredHeaders, rawRequest, startAuthzGateway, startMirror } from '../support/authz-gateway.ts';
import type { GatewayResponse } from '../support/seed003.ts';

const NODE = 'edge-authz-headers';
const IDENTITY = /^x[-_]portico[-_]|^x[-_]user[-_](id|role)$/i;

/** Every spoofing variant a client could try, as raw header lines. */
const SPOOFED_LINES = [
  'x-portico-partner: evil',
  'X-Portico-Partner: evil-2',
  'X-PORTICO-PRODUCT: orders',
  'x-portico-route: admin',
  'x-portico-plan: platinum',
  'x-portico-credential: mtls',
  // The whole x-portico- prefix is reserved, not only the names the gateway sets today.
  'x-portico-anything: forged',
  'X-Portico-Flow-Incomplete: forged',
  'x-portico-: forged-empty-suffix',
  'X-User-Id: root',
  'x-user-id: root-2',
  'X-User-Role: admin',
  'x_portico_partner: evil-underscore',
  'X_User_Id: root-underscore',
  'x_user_role: admin-underscore',
];

describe('authz pipeline: identity headers and malformed credentials through a real Envoy', () => {
  it('strips spoofed identity headers everywhere and answers hostile input with 401 or its JSON error', { timeout: 300_000 }, async (t) => {
    const mirror = await startMirror();
    t.after(() => mirror.close());
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      mutate: (doc) => {
        doc.plans.push({ name: 'unlimited' });
        doc.services.push({ name: 'mirror', endpoints: [{ host: '127.0.0.1', port: mirror.port }] });
        const route = { name: 'all', match: { path: { type: 'prefix', value: '/' } }, service: 'mirror' };
        doc.products.push(
          { name: 'mirror-public', gatewayGroups: ['edge'], basePath: '/mirror/public', auth: { accept: ['none'] }, routes: [route] },
          { name: 'mirror-private', gatewayGroups: ['edge'], basePath: '/mirror/private', auth: { accept: ['api_key', 'jwt'] }, routes: [route] },
        );
        doc.partners.push({
          name: 'spy',
          subscriptions: [
            { product: 'mirror-private', plan: 'unlimited' },
            { product: 'orders', plan: 'unlimited' },
          ],
        });
        doc.partners.find((p: { name: string }) => p.name === 'web-app').subscriptions.push({ product: 'mirror-private', plan: 'unlimited' });
      },
    });
    if (!g) return;
    const { api, issuer } = g;
    const port = g.seed.listenerPort;
    const key = await createApiKey(api, 'spy', 'primary');
    const token = await issuer.token({ sub: 'user-9', claims: { team: 'web-app', role: 'reader' } });
    const raw = (path: string, lines: string[], method = 'GET') =>
      rawRequest(port, `${method} ${path} HTTP/1.1\r\nHost: gateway.test\r\n${lines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n${method === 'POST' ? 'Content-Length: 0\r\n' : ''}\r\n`);
    const identityOf = (h: Map<string, string[]>) => Object.fromEntries([...h].filter(([k]) => IDENTITY.test(k)));
    try {
      await t.test('public routes: no client-sent identity header reaches the upstream, in any spelling', async () => {
        const h = mirroredHeaders(await raw('/mirror/public/x', [...SPOOFED_LINES, 'x-porticos: kept', 'x-portico: kept-too']));
        assert.deepEqual(identityOf(h), {});
        // Only the prefix with its dash is reserved.
        assert.deepEqual([h.get('x-porticos'), h.get('x-portico')], [['kept'], ['kept-too']]);
        // Seed 003's public login route (the users echo shows x-portico-* and x-user-* headers).
        const login = await raw('/api/auth/login', SPOOFED_LINES, 'POST');
        assert.equal(login.status, 200, login.text);
        assert.deepEqual(
          Object.keys(login.json.headers).filter((k) => IDENTITY.test(k)),
          [],
        );
      });

      await t.test('protected routes: the gateway sets each identity header exactly once, and nothing else survives', async () => {
        const byKey = mirroredHeaders(await raw('/mirror/private/x', [...SPOOFED_LINES, `x-api-key: ${key}`]));
        assert.deepEqual(identityOf(byKey), {
          'x-portico-credential': ['api_key'],
          'x-portico-partner': ['spy'],
          'x-portico-plan': ['unlimited'],
          'x-portico-product': ['mirror-private'],
          'x-portico-route': ['all'],
        });
        assert.equal(byKey.get('x-api-key'), undefined);
        const byToken = mirroredHeaders(await raw('/mirror/private/x', [...SPOOFED_LINES, `Authorization: Bearer ${token}`]));
        assert.deepEqual(identityOf(byToken), {
          'x-portico-credential': ['jwt'],
          'x-portico-partner': ['web-app'],
          'x-portico-plan': ['unlimited'],
          'x-portico-product': ['mirror-private'],
          'x-portico-route': ['all'],
          'x-user-id': ['user-9'],
          'x-user-role': ['reader'],
        });
        // Seed 003's orders route, through its echo service.
        const orders = await raw('/api/orders/o_1', [...SPOOFED_LINES, `x-api-key: ${key}`]);
        assert.equal(orders.status, 200, orders.text);
        assert.deepEqual(
          Object.entries(orders.json.headers as Record<string, string>)
            .filter(([k]) => IDENTITY.test(k))
            .sort(),
          [
            ['x-portico-credential', 'api_key'],
            ['x-portico-partner', 'spy'],
            ['x-portico-plan', 'unlimited'],
            ['x-portico-product', 'orders'],
            ['x-portico-route', 'orders'],
          ],
        );
      });

      await t.test("a claim header added later (a new issuer's forwardClaims) is stripped from then on, on every route", async () => {
        const before = mirroredHeaders(await raw('/mirror/public/x', ['X-User-Email: forged@example.com']));
        assert.deepEqual(before.get('x-user-email'), ['forged@example.com'], 'not an identity header yet');
        const created = await api.post('/api/v1/jwt-issuers', {
          name: 'partner-idp',
          issuer: 'https://partner-idp.example',
          audiences: ['partner-api'],
          jwksUri: issuer.jwksUri,
          partnerClaim: 'team',
          forwardClaims: { email: 'X-User-Email' },
        });
        assert.equal(created.status, 201, created.text);
        await g.inSync();
        assert.equal(mirroredHeaders(await raw('/mirror/public/x', ['X-User-Email: forged@example.com'])).get('x-user-email'), undefined, 'public route');
        const keyed = mirroredHeaders(await raw('/mirror/private/x', ['X-User-Email: forged@example.com', `x-api-key: ${key}`]));
        assert.equal(keyed.get('x-user-email'), undefined, 'protected route, API key');
        // A token of the new issuer sets it from its claim.
        const partnerToken = await issuer.token({ iss: 'https://partner-idp.example', aud: 'partner-api', sub: 'p-1', claims: { team: 'spy', email: 'real@partner.example' } });
        const byToken = mirroredHeaders(await raw('/mirror/private/x', ['X-User-Email: forged@example.com', `Authorization: Bearer ${partnerToken}`]));
        assert.deepEqual(byToken.get('x-user-email'), ['real@partner.example']);
        assert.deepEqual(byToken.get('x-portico-partner'), ['spy']);
      });

      await t.test('the same over HTTP/2 (h2c)', async () => {
        const session = http2Connect(`http://127.0.0.1:${port}`);
        t.after(() => session.close());
        const h2 = (path: string, headers: Record<string, string | string[]>) =>
          new Promise<GatewayResponse>((resolve, reject) => {
            const req = session.request({ ':path': path, ':method': 'GET', ...headers });
            let status = 0;
            let text = '';
            req.on('response', (h) => (status = Number(h[':status'])));
            req.on('data', (c: Buffer) => (text += c.toString()));
            req.on('end', () => resolve({ status, headers: new Headers(), text, json: text ? JSON.parse(text) : undefined }));
            req.on('error', reject);
            req.end();
          });
        const spoof = { 'x-portico-partner': ['evil', 'evil-2'], 'x-user-id': 'root', 'x-user-role': 'admin', 'x-portico-plan': 'platinum', 'x-portico-anything': 'forged' };
        assert.deepEqual(identityOf(mirroredHeaders(await h2('/mirror/public/x', spoof))), {});
        const h = mirroredHeaders(await h2('/mirror/private/x', { ...spoof, 'x-api-key': key }));
        assert.deepEqual(h.get('x-portico-partner'), ['spy']);
        assert.deepEqual(h.get('x-portico-plan'), ['unlimited']);
        assert.equal(h.get('x-user-id'), undefined);
        assert.equal(h.get('x-user-role'), undefined);
        assert.equal(h.get('x-portico-anything'), undefined);
      });

      await t.test('malformed Authorization headers are 401, never 5xx', async () => {
        const cases: Array<[string, string, string | undefined]> = [
          ['Bearer', 'Authorization: Bearer', 'missing_credentials'],
          ['Bearer and spaces', 'Authorization: Bearer    ', 'missing_credentials'],
          ['Basic', 'Authorization: Basic dXNlcjpwYXNz', 'missing_credentials'],
          ['Bearer a.b', 'Authorization: Bearer a.b', 'invalid_token'],
          ['Bearer a.b.c', 'Authorization: Bearer a.b.c', 'invalid_token'],
          ['Bearer ...', 'Authorization: Bearer ...', 'invalid_token'],
          ['Bearer with spaces inside', 'Authorization: Bearer aaa bbb.ccc', 'invalid_token'],
          ['JSON header', `Authorization: Bearer ${Buffer.from('{"alg":"RS256"').toString('base64url')}.e30.sig`, 'invalid_token'],
          ['10 KB of garbage', `Authorization: Bearer ${'A!b@C#'.repeat(1707)}`, 'invalid_token'],
          ['two tokens', `Authorization: Bearer ${token}, Bearer ${token}`, 'invalid_token'],
          ['repeated header', `Authorization: Bearer ${token}\r\nAuthorization: Bearer ${token}`, undefined],
        ];
        for (const [what, line, error] of cases) {
          const r = await raw('/mirror/private/x', [line]);
          assertUnauthorized(r, error, what);
          assert.ok(!r.text.includes(token.slice(20, 60)), `${what}: the token is never echoed`);
        }
      });

      await t.test('non-ASCII bytes in credentials are 401 from ext_authz; control bytes are 400 from Envoy; both in the JSON shape', async () => {
        const bytes = (line: string) =>
          Buffer.concat([Buffer.from('GET /mirror/private/x HTTP/1.1\r\nHost: gateway.test\r\n'), Buffer.from(line, 'latin1'), Buffer.from('\r\nConnection: close\r\n\r\n')]);
        for (const [what, line, error] of [
          ['latin-1 bytes in a token', 'Authorization: Bearer \xff\xfe\xfd.\xe9\xe8.\xc3\xa9', 'invalid_token'],
          ['UTF-8 in a token', `Authorization: Bearer ${Buffer.from('jöse.tökén.sïg', 'utf8').toString('latin1')}`, 'invalid_token'],
          ['latin-1 bytes in an API key', 'x-api-key: ptk_\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9_\xff', 'invalid_api_key'],
          ['UTF-8 API key', `x-api-key: ${Buffer.from(`ptk_ääääbbbb_${'ö'.repeat(43)}`, 'utf8').toString('latin1')}`, 'invalid_api_key'],
        ] as const) {
          assertUnauthorized(await rawRequest(port, bytes(line)), error, what);
        }
        // Envoy's HTTP/1 codec refuses these before any filter runs.
        for (const [what, line] of [
          ['NUL', 'Authorization: Bearer a\x00b.c.d'],
          ['DEL and controls', 'x-api-key: ptk_\x7f\x01\x02'],
        ] as const) {
          assertGatewayError(await rawRequest(port, bytes(line)), 400, 'bad_request', what);
        }
      });

      await t.test('oversized tokens (> 8 KiB) are refused unparsed with 401', async () => {
        const big = await issuer.token({ sub: 'user-9', claims: { team: 'web-app', padding: 'x'.repeat(9000) } });
        assert.ok(big.length > 8192);
        const r = await raw('/mirror/private/x', [`Authorization: Bearer ${big}`]);
        assertUnauthorized(r, 'invalid_token', 'oversized valid token');
        assert.equal(r.json.message, 'The token is too large.');
        const justUnder = `${'a'.repeat(4000)}.${'b'.repeat(4000)}.${'c'.repeat(190)}`;
        assert.ok(justUnder.length <= 8192);
        assertUnauthorized(await raw('/mirror/private/x', [`Authorization: Bearer ${justUnder}`]), 'invalid_token', 'just under the limit');
        assertUnauthorized(await raw('/mirror/private/x', [`Authorization: Bearer ${'a'.repeat(30_000)}.b.c`]), 'invalid_token', '30 KB');
      });

      await t.test('API keys of the wrong shape are 401 invalid_api_key; an empty one counts as none', async () => {
        for (const k of [
          'abc',
          'ptk_',
          'ptk__',
          'ptk_short_x',
          `ptk_ABCDEFGH_${'A'.repeat(43)}`,
          `${key}x`,
          key.slice(0, -1),
          `ptk_${key.split('_')[1]}`,
          `pta_${key.slice(4)}`,
          'K'.repeat(20_000),
          `${key},${key}`,
        ]) {
          assertUnauthorized(await raw('/mirror/private/x', [`x-api-key: ${k}`]), 'invalid_api_key', `key ${k.slice(0, 30)}`);
        }
        assertUnauthorized(await raw('/mirror/private/x', [`x-api-key: ${key}`, `x-api-key: ${key}`]), 'invalid_api_key', 'repeated x-api-key');
        assertUnauthorized(await raw('/mirror/private/x', ['x-api-key:']), 'missing_credentials', 'empty key');
        assertUnauthorized(await raw(`/mirror/private/x?x-api-key=${key}&api_key=${key}`, []), 'missing_credentials', 'key in a query the product does not read');
      });

      await t.test("Envoy's own limits answer with the gateway's JSON error", async () => {
        const huge = await raw('/mirror/private/x', [`x-filler: ${'f'.repeat(61 * 1024)}`, `x-api-key: ${key}`]);
        assertGatewayError(huge, 431, 'headers_too_large', '> 60 KB of headers');
        const many = await raw('/mirror/private/x', [...Array.from({ length: 101 }, (_, i) => `x-h${i}: ${i}`), `x-api-key: ${key}`]);
        assertGatewayError(many, 431, 'headers_too_large', '> 100 headers');
        assertGatewayError(await raw(`/mirror/private/${'p'.repeat(70 * 1024)}`, [`x-api-key: ${key}`]), 431, 'headers_too_large', '70 KB URL');
        const garbage = await rawRequest(port, 'GET /mirror/private/x HTTP/1.1\r\nHost: gateway.test\r\nBroken Header Line\r\n\r\n');
        assertGatewayError(garbage, 400, 'bad_request', 'a header line without a colon');
        // After all that, the gateway still answers normally.
        assert.deepEqual(mirroredHeaders(await raw('/mirror/private/x', [`x-api-key: ${key}`])).get('x-portico-partner'), ['spy']);
      });
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-4000));
      throw e;
    }
  });
});
