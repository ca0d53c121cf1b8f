// The partner portal in a real headless Chromium against a real control plane and a real Envoy:
// a partner signs in with its partner token and sees only its own subscriptions, usage and keys;
// it creates, rotates, revokes and deletes a key, and Envoy serves the new keys and refuses the revoked one;
// nothing of the admin console is reachable; axe-core's WCAG checks; a narrow screen by keyboard.
// Screenshots go to test-results/console/portal-*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessibilityViolations, newPage, openBrowser, screenshot, settledTexts, signIn } from '../support/browser.ts';
import { freePort, waitFor } from '../support/components.ts';
import { startEnvoy } from '../support/envoy.ts';
import { startTestPortico, type TestPortico } from '../support/portico.ts';
import { listenHttp, type LoopbackServer } from '../support/servers.ts';

const GROUP = 'edge';

async function through(port: number, path: string, key?: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: key ? { 'x-api-key': key } : {} });
  await res.arrayBuffer();
  return res.status;
}

test('partner portal in Chromium', async (t) => {
  const browser = await openBrowser(t);
  if (!browser) return;
  const portico: TestPortico = await startTestPortico();
  t.after(() => portico.close());
  const upstream: LoopbackServer = await listenHttp((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"upstream":"orders"}');
  });
  t.after(() => upstream.close());
  const gatewayPort = await freePort();
  const model = `portico: v1
gatewayGroups:
  - { name: ${GROUP}, listeners: [{ name: http, port: ${gatewayPort} }] }
services:
  - { name: orders, endpoints: [{ host: 127.0.0.1, port: ${upstream.port} }] }
plans:
  - name: gold
    limits: [{ requests: 600, per: minute }]
    quotas: [{ requests: 1000, per: day }]
  - { name: silver, quotas: [{ requests: 50, per: day }] }
products:
  - name: shop
    displayName: The shop
    gatewayGroups: [${GROUP}]
    basePath: /shop
    routes: [{ name: all, match: { path: { type: prefix, value: / } }, service: orders }]
  - name: search
    gatewayGroups: [${GROUP}]
    basePath: /search
    routes: [{ name: all, match: { path: { type: prefix, value: / } }, service: orders }]
partners:
  - { name: acme, displayName: ACME, subscriptions: [{ product: shop, plan: gold }] }
  - { name: globex, subscriptions: [{ product: search, plan: silver }] }
`;
  const applied = await portico.api.post('/api/v1/config', model, { 'content-type': 'application/yaml' });
  assert.equal(applied.status, 200, applied.text);
  const globexKey = (await portico.api.post('/api/v1/partners/globex/api-keys', { name: 'globex-prod' })).body.key as string;
  assert.equal((await portico.api.post('/api/v1/partners/acme/api-keys', { name: 'acme-batch' })).status, 201);
  const partnerToken = (await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 'acme-portal' })).body.token as string;
  assert.match(partnerToken, /^pta_/);
  const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: 'portal-envoy' });
  assert.ok(envoy, 'Envoy is installed');
  await envoy.waitForListener('http');
  await waitFor('Envoy to serve globex’s key', async () => ((await through(gatewayPort, '/search/x', globexKey)) === 200 ? true : undefined));

  const { page } = await newPage(browser);

  await t.test('a partner token opens the portal: its own subscriptions and keys, nothing else', async () => {
    await signIn(page, portico.adminUrl, partnerToken);
    await page.getByRole('heading', { name: 'Subscriptions' }).waitFor();
    const nav = page.getByRole('navigation', { name: 'Partner portal' });
    await settledTexts(nav.getByRole('link'), ['Subscriptions', 'Usage', 'API keys']);
    assert.equal(await page.getByRole('navigation', { name: 'Console' }).count(), 0);
    await page.getByText('acme (token acme-portal)').waitFor();
    const rows = page.getByRole('table', { name: 'Subscriptions' }).getByRole('row');
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2, 'a header and one subscription');
    assert.match((await rows.nth(1).textContent()) ?? '', /The shop.*\/shop.*gold.*active.*600 per minute.*1000 per day \(quota\)/);
    const text = (await page.content()).toLowerCase();
    assert.ok(!text.includes('globex') && !text.includes('silver') && !text.includes('search'), 'nothing of another partner');
    await screenshot(page, 'portal-01-subscriptions');

    // An admin page's address shows the portal, and the server refuses the admin API to this session.
    await page.goto(`${portico.adminUrl}/console/#/services`);
    await page.getByRole('heading', { name: 'Subscriptions' }).waitFor();
    const statuses = await page.evaluate(async () => Promise.all(['/api/v1/services', '/api/v1/partners/globex/api-keys', '/console/api/traffic'].map(async (p) => (await fetch(p)).status)));
    assert.deepEqual(statuses, [403, 403, 403]);

    await nav.getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('heading', { name: 'API keys' }).waitFor();
    const keyRows = page.getByRole('table', { name: 'API keys' }).getByRole('row');
    await settledTexts(keyRows.locator('th[scope=row]'), ['acme-batch']);
  });

  let webKey = '';
  let rotatedKey = '';
  await t.test('creates a key (an invalid name is shown at its field); Envoy serves it', async () => {
    await page.getByRole('button', { name: 'New API key' }).click();
    const form = page.getByRole('form', { name: 'New API key' });
    await form.getByLabel('Name', { exact: true }).fill('Web Shop');
    await form.getByRole('button', { name: 'Create' }).click();
    const nameField = form.locator('.field', { has: page.getByLabel('Name', { exact: true }) });
    await nameField.locator('.field-error').waitFor();
    assert.equal(await form.getByLabel('Name', { exact: true }).getAttribute('aria-invalid'), 'true');
    await screenshot(page, 'portal-02-key-invalid-name');
    await form.getByLabel('Name', { exact: true }).fill('web');
    await form.getByLabel('Description').fill('the web shop');
    await form.getByRole('button', { name: 'Create' }).click();
    webKey = ((await page.locator('output[aria-label="new API key"]').textContent()) ?? '').trim();
    assert.match(webKey, /^ptk_[a-z0-9]{8}_/);
    await screenshot(page, 'portal-03-key-created');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await page.locator('output[aria-label="new API key"]').waitFor({ state: 'detached' });
    assert.ok(!(await page.content()).includes(webKey), 'shown once');
    await waitFor('Envoy to accept the key made in the portal', async () => ((await through(gatewayPort, '/shop/items', webKey)) === 200 ? true : undefined));
    assert.equal(await through(gatewayPort, '/search/items', webKey), 403, 'acme has no subscription to search');
  });

  await t.test('rotates the key (both work) and revokes the old one (Envoy refuses it)', async () => {
    await page.getByRole('button', { name: 'Rotate web' }).click();
    rotatedKey = ((await page.locator('output[aria-label="new API key"]').textContent()) ?? '').trim();
    assert.match(rotatedKey, /^ptk_/);
    assert.notEqual(rotatedKey, webKey);
    await page.getByText('replaces web').waitFor();
    await screenshot(page, 'portal-04-key-rotated');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await waitFor('Envoy to accept the rotated key', async () => ((await through(gatewayPort, '/shop/items', rotatedKey)) === 200 ? true : undefined));
    assert.equal(await through(gatewayPort, '/shop/items', webKey), 200, 'the old key works until revoked');

    await page.getByRole('button', { name: 'Revoke web', exact: true }).click();
    await page.getByRole('button', { name: 'Confirm revoking web', exact: true }).click();
    await page.getByRole('row', { name: /^web .*revoked/ }).waitFor();
    await screenshot(page, 'portal-05-key-revoked');
    await waitFor('Envoy to refuse the revoked key and serve the rotated one', async () => {
      const [old, fresh] = await Promise.all([through(gatewayPort, '/shop/items', webKey), through(gatewayPort, '/shop/items', rotatedKey)]);
      return old === 401 && fresh === 200 ? true : undefined;
    });
    await page.getByRole('button', { name: 'Delete web', exact: true }).click();
    await page.getByRole('row', { name: /^web / }).waitFor({ state: 'detached' });
    assert.equal((await portico.api.get('/api/v1/partners/acme/api-keys/web')).status, 404);
    const audit = await portico.api.get('/api/v1/audit?kind=apiKeys&key=acme/web&limit=5');
    assert.deepEqual(
      audit.body.items.map((e: { action: string; actor: string }) => `${e.action} by ${e.actor}`),
      ['delete', 'update', 'create'].map((a) => `${a} by partner:acme (token acme-portal)`),
    );
  });

  await t.test('usage shows the requests counted against the plan’s limit and quota', async () => {
    const acme = portico.api.withToken(partnerToken);
    const used = async () => (await acme.get('/api/v1/portal/usage')).body.budgets.find((b: { budget: string }) => b.budget === 'gold:shop:*:day').used as number;
    // Native limits (the default) count quotas from the access-log stream, a moment after each
    // request: wait until the earlier tests' requests are all counted (the figure holds for a second).
    let before = await used();
    for (let last = -1; before !== last; ) {
      last = before;
      await new Promise((r) => setTimeout(r, 1000));
      before = await used();
    }
    for (let i = 0; i < 5; i++) assert.equal(await through(gatewayPort, '/shop/items', rotatedKey), 200);
    await waitFor('the five requests to be counted', async () => ((await used()) >= before + 5 ? true : undefined));
    await page.getByRole('navigation', { name: 'Partner portal' }).getByRole('link', { name: 'Usage' }).click();
    const quota = page.locator('tr[data-budget="gold:shop:*:day"]');
    await quota.waitFor();
    assert.match((await quota.textContent()) ?? '', new RegExp(`1000 per day \\(quota\\).*${before + 5}.*${1000 - before - 5}`));
    assert.equal(await quota.getByRole('meter').getAttribute('value'), String(before + 5));
    await page.locator('tr[data-budget="gold:shop:*:minute"]').waitFor();
    await screenshot(page, 'portal-06-usage');
  });

  await t.test('signing out, and a revoked partner token ends the session', async () => {
    const { context, page: second } = await newPage(browser);
    await signIn(second, portico.adminUrl, partnerToken);
    await second.getByRole('heading', { name: 'Subscriptions' }).waitFor();
    assert.equal((await portico.api.delete('/api/v1/partners/acme/portal-tokens/acme-portal')).status, 204);
    await second.getByRole('navigation', { name: 'Partner portal' }).getByRole('link', { name: 'API keys' }).click();
    await second.getByText('Your session ended. Sign in again.').waitFor();
    await context.close();
  });

  await t.test('the portal passes axe-core’s WCAG 2.1 A/AA checks and works at a narrow width by keyboard', async () => {
    const token = (await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 'acme-portal-2' })).body.token as string;
    const { context, page: a11y } = await newPage(browser, { bypassCSP: true });
    await signIn(a11y, portico.adminUrl, token);
    const found: string[] = [];
    const check = async (where: string) => {
      for (const v of await accessibilityViolations(a11y)) found.push(`${where}: ${v.id} (${v.impact}) ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    };
    await a11y.getByRole('table', { name: 'Subscriptions' }).waitFor();
    await check('subscriptions');
    await a11y.getByRole('link', { name: 'Usage' }).click();
    await a11y.getByRole('table', { name: 'Limits and quotas' }).waitFor();
    await check('usage');
    await a11y.getByRole('link', { name: 'API keys' }).click();
    await a11y.getByRole('button', { name: 'New API key' }).click();
    await a11y.getByRole('form', { name: 'New API key' }).getByRole('button', { name: 'Create' }).click();
    await a11y.locator('.field-error').first().waitFor();
    await check('keys with a form error');
    await context.close();
    assert.deepEqual(found, []);

    const { context: small, page: phone } = await newPage(browser, { width: 390, height: 844 });
    await signIn(phone, portico.adminUrl, token);
    const nav = phone.getByRole('navigation', { name: 'Partner portal' });
    await nav.waitFor({ state: 'hidden' });
    const menu = phone.getByRole('button', { name: 'Menu' });
    await menu.focus();
    await phone.keyboard.press('Enter');
    await nav.waitFor();
    await screenshot(phone, 'portal-07-narrow-menu');
    await nav.getByRole('link', { name: 'Usage' }).focus();
    await phone.keyboard.press('Enter');
    await phone.getByRole('table', { name: 'Limits and quotas' }).waitFor();
    await nav.waitFor({ state: 'hidden' });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
    await screenshot(phone, 'portal-08-narrow-usage');
    await small.close();
  });
});
