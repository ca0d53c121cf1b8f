// The console's sessions at the HTTP level against a real control plane: cookie flags, CSRF and
// origin refusals, viewers refused writes, revoked tokens and sign-out ending sessions, the pages'
// security headers, and the page shown when the console is not built.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_TOKEN, type ApiClient, startTestPortico, type TestPortico } from '../support/portico.ts';

const CSRF = 'x-portico-csrf';

async function signIn(api: ApiClient, token: string) {
  const res = await api.withToken(undefined).post('/console/api/session', { token });
  assert.equal(res.status, 200, res.text);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0]!;
  return { res, setCookie, cookie, csrf: res.body.csrf as string };
}

describe('console sessions', () => {
  let portico: TestPortico;
  let anon: ApiClient;
  before(async () => {
    portico = await startTestPortico();
    anon = portico.api.withToken(undefined);
  });
  after(() => portico?.close());

  it('sign-in sets an HttpOnly, SameSite=Strict cookie and never echoes the token', async () => {
    const { res, setCookie, csrf } = await signIn(portico.api, ADMIN_TOKEN);
    assert.match(setCookie, /^portico_session=[A-Za-z0-9_-]{43};/);
    assert.match(setCookie, /; HttpOnly/i);
    assert.match(setCookie, /; SameSite=Strict/i);
    assert.match(setCookie, /; Path=\//);
    assert.match(setCookie, /; Max-Age=\d+/);
    // Plain http on loopback: a Secure cookie would never come back.
    assert.doesNotMatch(setCookie, /; Secure/i);
    assert.equal(res.body.role, 'admin');
    assert.equal(res.body.name, 'bootstrap');
    assert.ok(csrf.length >= 32);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.ok(!res.text.includes(ADMIN_TOKEN));
  });

  it('marks the cookie Secure when a TLS-terminating proxy says the browser used https', async () => {
    const res = await anon.post('/console/api/session', { token: ADMIN_TOKEN }, { 'x-forwarded-proto': 'https' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('set-cookie') ?? '', /; Secure/i);
  });

  it('refuses bad sign-ins with problem+json and sets no cookie', async () => {
    const wrong = await anon.post('/console/api/session', { token: 'not-a-token' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('content-type') ?? '', /problem\+json/);
    assert.equal(wrong.headers.get('set-cookie'), null);
    const missing = await anon.post('/console/api/session', {});
    assert.equal(missing.status, 422);
    assert.equal(missing.body.errors[0].field, 'token');
    const notString = await anon.post('/console/api/session', { token: 42 });
    assert.equal(notString.status, 422);
    // A cross-site HTML form can only send form encodings: sign-in takes JSON only.
    const form = await anon.post('/console/api/session', `token=${ADMIN_TOKEN}`, { 'content-type': 'application/x-www-form-urlencoded' });
    assert.ok(form.status >= 400 && form.status < 500, `form sign-in answered ${form.status}`);
    assert.equal(form.headers.get('set-cookie'), null);
  });

  it('a session reads with its cookie; writes need the CSRF header and the same origin', async () => {
    const { cookie, csrf } = await signIn(portico.api, ADMIN_TOKEN);
    const list = await anon.get('/api/v1/services', { cookie });
    assert.equal(list.status, 200);
    const who = await anon.get('/console/api/session', { cookie });
    assert.equal(who.status, 200);
    assert.equal(who.body.csrf, csrf);

    const body = { name: 'orders', endpoints: [{ host: '127.0.0.1', port: 8080 }] };
    const noCsrf = await anon.post('/api/v1/services', body, { cookie });
    assert.equal(noCsrf.status, 403);
    assert.match(noCsrf.body.detail, /CSRF/);
    const wrongCsrf = await anon.post('/api/v1/services', body, { cookie, [CSRF]: `${csrf.slice(0, -1)}x` });
    assert.equal(wrongCsrf.status, 403);
    const otherOrigin = await anon.post('/api/v1/services', body, { cookie, [CSRF]: csrf, origin: 'https://evil.example' });
    assert.equal(otherOrigin.status, 403);
    const deleteNoCsrf = await anon.delete('/api/v1/services/none', { cookie });
    assert.equal(deleteNoCsrf.status, 403);
    assert.equal((await portico.api.get('/api/v1/services/orders')).status, 404, 'refused writes changed nothing');

    const origin = new URL(portico.adminUrl).origin;
    const ok = await anon.post('/api/v1/services', body, { cookie, [CSRF]: csrf, origin });
    assert.equal(ok.status, 201, ok.text);
    const audit = await portico.api.get('/api/v1/audit?kind=services&key=orders');
    assert.equal(audit.body.items[0].actor, 'bootstrap', 'the audit log names the session’s principal');
  });

  it('an unknown session cookie is 401, not a fallback to anonymous', async () => {
    const res = await anon.get('/api/v1/services', { cookie: 'portico_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    assert.equal(res.status, 401);
    assert.equal((await anon.get('/api/v1/services')).status, 401);
  });

  it('a viewer session reads everything and writes nothing', async () => {
    const created = await portico.api.post('/api/v1/admin-tokens', { name: 'console-viewer', role: 'viewer' });
    assert.equal(created.status, 201, created.text);
    const { cookie, csrf, res } = await signIn(portico.api, created.body.token);
    assert.equal(res.body.role, 'viewer');
    assert.equal((await anon.get('/api/v1/services', { cookie })).status, 200);
    assert.equal((await anon.get('/api/v1/fleet', { cookie })).status, 200);
    const write = await anon.put('/api/v1/services/viewer-made', { endpoints: [{ host: '127.0.0.1', port: 1 }] }, { cookie, [CSRF]: csrf });
    assert.equal(write.status, 403);
    assert.match(write.body.detail, /viewer/);
    assert.equal((await anon.post('/api/v1/admin-tokens', { name: 'escalate', role: 'admin' }, { cookie, [CSRF]: csrf })).status, 403);
    assert.equal((await anon.get('/api/v1/admin-tokens', { cookie })).status, 403);
    assert.equal((await portico.api.get('/api/v1/services/viewer-made')).status, 404);
  });

  it('revoking the token ends its sessions; signing out ends the session', async () => {
    const created = await portico.api.post('/api/v1/admin-tokens', { name: 'console-temp', role: 'admin' });
    const a = await signIn(portico.api, created.body.token);
    assert.equal((await anon.get('/api/v1/services', { cookie: a.cookie })).status, 200);
    assert.equal((await portico.api.delete('/api/v1/admin-tokens/console-temp')).status, 204);
    assert.equal((await anon.get('/api/v1/services', { cookie: a.cookie })).status, 401);

    const b = await signIn(portico.api, ADMIN_TOKEN);
    assert.equal((await anon.delete('/console/api/session', { cookie: b.cookie })).status, 403, 'sign-out needs the CSRF token too');
    const out = await anon.delete('/console/api/session', { cookie: b.cookie, [CSRF]: b.csrf });
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie') ?? '', /^portico_session=; Max-Age=0/);
    assert.equal((await anon.get('/api/v1/services', { cookie: b.cookie })).status, 401);
  });

  it('a bearer token still works beside sessions, and wins over a cookie', async () => {
    const res = await portico.api.get('/api/v1/services', { cookie: 'portico_session=stale' });
    assert.equal(res.status, 200);
  });

  it('serves the console with security headers', async (t) => {
    const redirect = await fetch(`${portico.adminUrl}/console`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/console/');
    const page = await fetch(`${portico.adminUrl}/console/`);
    if (page.status === 503 && process.env.CI !== 'true') return t.skip('console not built (npm run console:build)');
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<div id="app">/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    const js = await fetch(`${portico.adminUrl}/console/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    const traversal = await fetch(`${portico.adminUrl}/console/..%2f..%2fpackage.json`);
    assert.notEqual(traversal.status, 200);
    assert.doesNotMatch(await traversal.text(), /"devDependencies"/);
  });
});

describe('console not built', () => {
  let portico: TestPortico;
  before(async () => {
    portico = await startTestPortico({ env: { PORTICO_CONSOLE_DIR: '/nonexistent/console-dist' } });
  });
  after(() => portico?.close());

  it('answers a page saying how to build it, and the API keeps working', async () => {
    const page = await fetch(`${portico.adminUrl}/console/`);
    assert.equal(page.status, 503);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /npm run console:build/);
    assert.equal((await fetch(`${portico.adminUrl}/console/pages/x`)).status, 503);
    assert.equal((await portico.api.get('/api/v1/services')).status, 200);
  });
});
