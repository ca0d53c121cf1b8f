// The web console in a real headless Chromium against a real control plane and a real Envoy:
// sign in, build an API through the forms (service, product, route, plan, partner, subscription,
// key) and call it through Envoy with the key shown once; inline validation errors; the "new API"
// guide; declarative export and preview; the audit log; a NACK on the overview; a viewer who cannot
// change anything; narrow screens. Each page's screenshot goes to test-results/console/.
import { test } from 'node:test';
import type { Locator, Page } from 'playwright-core';
import assert from 'node:assert/strict';
import { translate } from '../../src/translate/index.ts';
import { accessibilityViolations, newPage, openBrowser, screenshot, signIn } from '../support/browser.ts';
import { selfSigned } from '../support/certs.ts';
import { freePort, waitFor } from '../support/components.ts';
import { startEnvoy, type TestEnvoy, waitInSync } from '../support/envoy.ts';
import { ADMIN_TOKEN, startTestPortico, type TestPortico } from '../support/portico.ts';
import { listenHttp, type LoopbackServer } from '../support/servers.ts';

const GROUP = 'edge';
const NODE = 'console-envoy';

/** Opens the "New <singular>" form, fills it, creates, and waits for the saved resource's form. */
async function create(page: Page, singular: string, saved: string, fill: (form: Locator) => Promise<void>): Promise<void> {
  await page.getByRole('button', { name: `New ${singular}` }).click();
  const form = page.getByRole('form', { name: `New ${singular}` });
  await fill(form);
  await form.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('form', { name: `${singular} ${saved}` }).waitFor();
}

/** A GET through Envoy: status and body. */
async function through(port: number, path: string, key?: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: key ? { 'x-api-key': key } : {} });
  return { status: res.status, body: await res.text() };
}

test('web console in Chromium', async (t) => {
  const browser = await openBrowser(t);
  if (!browser) return;
  const portico: TestPortico = await startTestPortico();
  t.after(() => portico.close());
  const upstream: LoopbackServer = await listenHttp((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ upstream: 'orders', path: req.url }));
  });
  t.after(() => upstream.close());
  const gatewayPort = await freePort();
  let envoy: TestEnvoy | undefined;
  const { page } = await newPage(browser);

  await t.test('signs in, creates a service, product, route, plan, partner and key, and Envoy serves the key', async () => {
    // A wrong token: the message sits next to the field.
    await page.goto(`${portico.adminUrl}/console/`);
    await screenshot(page, '01-sign-in');
    await page.getByLabel('Admin or viewer token').fill('wrong-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.field-error').filter({ hasText: 'invalid' }).waitFor();
    await signIn(page, portico.adminUrl, ADMIN_TOKEN);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();

    // Gateway group with the listener Envoy will open.
    await page.getByRole('link', { name: 'Gateway groups' }).click();
    await page.getByRole('button', { name: 'New gateway group' }).click();
    let form = page.getByRole('form', { name: 'New gateway group' });
    await form.getByLabel('Name', { exact: true }).fill(GROUP);
    await form.getByLabel('Listener port').fill(String(gatewayPort));
    await form.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('link', { name: GROUP, exact: true }).waitFor();
    envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: NODE });
    assert.ok(envoy, 'Envoy is installed');

    // A service: first with a port out of range, whose message appears next to the port field.
    await page.getByRole('link', { name: 'Services' }).click();
    await page.getByRole('button', { name: 'New service' }).click();
    form = page.getByRole('form', { name: 'New service' });
    await form.getByLabel('Name', { exact: true }).fill('orders');
    await form.getByLabel('Upstream host').fill('127.0.0.1');
    await form.getByLabel('Upstream port').fill('70000');
    await form.getByRole('button', { name: 'Create' }).click();
    const portField = form.locator('.field', { has: page.getByLabel('Upstream port') });
    await portField.locator('.field-error').waitFor();
    assert.match((await portField.locator('.field-error').textContent()) ?? '', /65535|maximum|<=/);
    assert.equal(await form.getByLabel('Upstream port').getAttribute('aria-invalid'), 'true');
    assert.equal(
      await form
        .locator('.field', { has: page.getByLabel('Upstream host') })
        .locator('.field-error')
        .count(),
      0,
      'only the field named is marked',
    );
    await screenshot(page, '02-service-invalid-field');
    assert.equal((await portico.api.get('/api/v1/services/orders')).status, 404);
    await form.getByLabel('Upstream port').fill(String(upstream.port));
    await form.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('form', { name: 'service orders' }).waitFor();
    await screenshot(page, '03-services');
    assert.deepEqual((await portico.api.get('/api/v1/services/orders')).body.endpoints, [{ host: '127.0.0.1', port: upstream.port }]);

    // A product that takes API keys, and its route to the service.
    await page.getByRole('link', { name: 'Products' }).click();
    await create(page, 'product', 'shop', async (f) => {
      await f.getByLabel('Name', { exact: true }).fill('shop');
      await f.getByLabel('Gateway groups').fill(GROUP);
      await f.getByLabel('Base path').fill('/shop');
    });
    await create(page, 'route', 'all', async (f) => {
      await f.getByLabel('Name', { exact: true }).fill('all');
      await f.getByLabel('Path').fill('/');
      await f.getByLabel('Service').selectOption('orders');
    });
    await screenshot(page, '04-products-routes');

    // A plan, a partner subscribed to the product on it, and a key shown once.
    await page.getByRole('link', { name: 'Plans' }).click();
    await create(page, 'plan', 'gold', async (f) => {
      await f.getByLabel('Name', { exact: true }).fill('gold');
    });
    await screenshot(page, '05-plans');

    await page.getByRole('link', { name: 'Partners' }).click();
    await create(page, 'partner', 'acme', async (f) => {
      await f.getByLabel('Name', { exact: true }).fill('acme');
      await f.getByLabel('Display name').fill('ACME');
    });
    await create(page, 'subscription', 'shop', async (f) => {
      await f.getByLabel('Product').selectOption('shop');
      await f.getByLabel('Plan').selectOption('gold');
    });
    await page.getByRole('button', { name: 'New API key' }).click();
    form = page.getByRole('form', { name: 'New API key' });
    await form.getByLabel('Name', { exact: true }).fill('k1');
    await form.getByRole('button', { name: 'Create' }).click();
    const shown = page.getByRole('status').locator('output[aria-label="new API key"]');
    const key = ((await shown.textContent()) ?? '').trim();
    assert.match(key, /^ptk_[a-z0-9]{8}_/);
    await screenshot(page, '06-partner-subscription-key');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await page.locator('output[aria-label="new API key"]').waitFor({ state: 'detached' }); // shown once
    assert.ok(!(await portico.api.get('/api/v1/partners/acme/api-keys/k1')).text.includes(key), 'the API never returns it again');
    assert.ok(!(await page.content()).includes(key));

    // Through the real Envoy: the key works, no key is refused.
    await envoy.waitForListener('http');
    const ok = await waitFor('Envoy to accept the key made in the console', async () => {
      const r = await through(gatewayPort, '/shop/items/1', key);
      return r.status === 200 ? r : undefined;
    });
    assert.equal(JSON.parse(ok.body).upstream, 'orders');
    assert.equal((await through(gatewayPort, '/shop/items/1')).status, 401);

    // Rotate mints a second key beside the first; revoke ends the first.
    await page.getByRole('link', { name: 'k1', exact: true }).click();
    form = page.getByRole('form', { name: 'API key k1' });
    await form.getByRole('button', { name: 'Rotate' }).click();
    const rotated = ((await page.locator('output[aria-label="new API key"]').textContent()) ?? '').trim();
    assert.match(rotated, /^ptk_/);
    assert.notEqual(rotated, key);
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await form.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('row', { name: /k1 .*revoked/ }).waitFor();
    await waitFor('Envoy to serve the rotated key and refuse the revoked one', async () => {
      const [a, b] = await Promise.all([through(gatewayPort, '/shop/x', rotated), through(gatewayPort, '/shop/x', key)]);
      return a.status === 200 && b.status !== 200 ? true : undefined;
    });
  });

  await t.test('the "new API" guide goes from an upstream URL to a protected route in one screen', async () => {
    assert.ok(envoy, 'Envoy runs');
    await page.getByRole('link', { name: 'New API' }).click();
    const form = page.getByRole('form', { name: 'New API' });
    await form.getByLabel('API name').fill('billing');
    await form.getByLabel('Upstream URL').fill('not a url');
    await form.getByRole('button', { name: 'Create API' }).click();
    await form
      .locator('.field', { has: page.getByLabel('Upstream URL') })
      .locator('.field-error')
      .waitFor();
    await form.getByLabel('Upstream URL').fill(`http://127.0.0.1:${upstream.port}`);
    // A base path the product refuses: the error sits at that field, and the service made in the
    // step before is taken back.
    await form.getByLabel('Base path').fill('billing');
    await form.getByRole('button', { name: 'Create API' }).click();
    await form
      .locator('.field', { has: page.getByLabel('Base path') })
      .locator('.field-error')
      .waitFor();
    await page.locator('.problem').getByText('Nothing was kept.').waitFor();
    await screenshot(page, '07-new-api-refused');
    assert.equal((await portico.api.get('/api/v1/services/billing')).status, 404, 'the service was taken back');
    assert.equal((await portico.api.get('/api/v1/products/billing')).status, 404);
    await form.getByLabel('Base path').fill('/billing');
    await form.getByLabel('Partner (optional)').fill('globex');
    await form.getByRole('button', { name: 'Create API' }).click();
    const key = ((await page.locator('.done output[aria-label="new API key"]').textContent()) ?? '').trim();
    await screenshot(page, '08-new-api');
    const r = await waitFor('the guide’s API to serve its key', async () => {
      const res = await through(gatewayPort, '/billing/invoices', key);
      return res.status === 200 ? res : undefined;
    });
    assert.equal(JSON.parse(r.body).path, '/billing/invoices');
    assert.equal((await through(gatewayPort, '/billing/invoices')).status, 401);
  });

  await t.test('overview shows the Envoy, its ACKed versions, traffic per product and partner, and a NACK with its error', async () => {
    assert.ok(envoy, 'Envoy runs');
    await waitInSync(portico, GROUP, NODE);
    await page.getByRole('link', { name: 'Overview' }).click();
    const node = page.getByRole('article', { name: `Envoy ${NODE}` });
    await node.getByRole('row', { name: /clusters .* in sync/ }).waitFor();
    await page.getByRole('row', { name: /shop acme/ }).waitFor({ timeout: 60_000 });
    await screenshot(page, '09-overview');

    // A config Envoy refuses (valid protobuf; Envoy rejects ORIGINAL_DST with ROUND_ROBIN).
    const current = translate(portico.store.current(), { calloutAddress: `127.0.0.1:${portico.calloutPort}` }).get(GROUP)!;
    portico.xds.cache.setGroupResources(GROUP, { ...current, clusters: [...current.clusters, { name: 'forced-bad', type: 'ORIGINAL_DST', lb_policy: 'ROUND_ROBIN', connect_timeout: '1s' }] });
    portico.xds.cache.flush();
    const nack = node.locator('.nack');
    await nack.waitFor({ timeout: 60_000 });
    assert.match((await nack.textContent()) ?? '', /clusters/);
    assert.match((await nack.locator('.nack-message').textContent()) ?? '', /ORIGINAL_DST/);
    await node.getByRole('row', { name: /clusters .* NACKed/ }).waitFor();
    await screenshot(page, '10-overview-nack');
  });

  await t.test('declarative: export, preview the diff of a change, apply it; the audit log shows who changed what', async () => {
    await page.getByRole('link', { name: 'Declarative' }).click();
    await page.getByRole('button', { name: 'Export current model' }).click();
    const text = page.getByLabel('Document (YAML or JSON)');
    await waitFor('the exported document', async () => ((await text.inputValue()).includes('name: shop') ? true : undefined));
    const exported = await text.inputValue();
    assert.ok(!exported.includes('ptk_'), 'no key in the export');
    await text.fill(exported.replace('displayName: ACME', 'displayName: ACME Corporation'));
    await page.getByRole('button', { name: 'Preview changes' }).click();
    const status = page.locator('.apply-result');
    await status.getByText('Would change').waitFor();
    assert.match((await status.textContent()) ?? '', /0 created, 1 updated, 0 deleted/);
    assert.match((await status.textContent()) ?? '', /displayName: "ACME" → "ACME Corporation"/);
    await screenshot(page, '11-declarative-preview');
    assert.equal((await portico.api.get('/api/v1/partners/acme')).body.displayName, 'ACME');
    await page.getByRole('button', { name: 'Apply' }).click();
    await status.getByText(/Applied \(revision \d+\)/).waitFor();
    assert.equal((await portico.api.get('/api/v1/partners/acme')).body.displayName, 'ACME Corporation');
    // Upload a file: it replaces the text, and its preview shows what it would create.
    await page.getByLabel('Upload a file').setInputFiles({
      name: 'extra.yaml',
      mimeType: 'application/yaml',
      buffer: Buffer.from((await text.inputValue()).replace('services:\n', `services:\n  - name: uploaded\n    endpoints:\n      - host: 127.0.0.1\n        port: ${upstream.port}\n`)),
    });
    await waitFor('the uploaded file in the editor', async () => ((await text.inputValue()).includes('name: uploaded') ? true : undefined));
    await page.getByRole('button', { name: 'Preview changes' }).click();
    await status.getByText('+ services uploaded').waitFor();
    assert.match((await status.textContent()) ?? '', /1 created, 0 updated, 0 deleted/);
    assert.equal((await portico.api.get('/api/v1/services/uploaded')).status, 404, 'a preview changes nothing');
    // A broken document: the problem is shown, nothing changes.
    await text.fill('services:\n  - name: Bad Name\n    endpoints: []\n');
    await page.getByRole('button', { name: 'Preview changes' }).click();
    await page.locator('.problem').waitFor();
    assert.match((await page.locator('.problem').textContent()) ?? '', /422/);

    await page.getByRole('link', { name: 'Audit log' }).click();
    const entry = page.locator('ol.audit li', { hasText: 'partners' }).first();
    await entry.waitFor();
    assert.match((await entry.textContent()) ?? '', /bootstrap update partners acme/);
    await entry.locator('summary').click();
    const row = entry.getByRole('row', { name: /displayName/ });
    assert.match((await row.textContent()) ?? '', /"ACME"\s*"ACME Corporation"/);
    await screenshot(page, '12-audit');
  });

  await t.test('JWT issuers and certificates pages list and validate', async () => {
    await page.getByRole('link', { name: 'JWT issuers' }).click();
    await page.getByRole('button', { name: 'New JWT issuer' }).click();
    const form = page.getByRole('form', { name: 'New JWT issuer' });
    await form.getByLabel('Name', { exact: true }).fill('auth');
    await form.getByLabel('Issuer (iss)').fill('https://auth.example.test');
    await form.getByLabel('Audiences').fill('api');
    await form.getByLabel('JWKS URI').fill('not-a-uri');
    await form.getByRole('button', { name: 'Create' }).click();
    await form
      .locator('.field', { has: page.getByLabel('JWKS URI') })
      .locator('.field-error')
      .waitFor();
    await form.getByLabel('JWKS URI').fill('https://auth.example.test/jwks.json');
    await form.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('form', { name: 'JWT issuer auth' }).waitFor();
    await screenshot(page, '13-jwt-issuers');
    // A certificate with its key: the key is stored, never shown again.
    const cert = await selfSigned('api.example.test');
    await page.getByRole('link', { name: 'Certificates' }).click();
    await page.getByRole('button', { name: 'New certificate' }).click();
    const certForm = page.getByRole('form', { name: 'New certificate' });
    await certForm.getByLabel('Name', { exact: true }).fill('edge-cert');
    await certForm.getByLabel('Certificate (PEM)').fill('-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
    await certForm.getByRole('button', { name: 'Create' }).click();
    await certForm
      .locator('.field', { has: page.getByLabel('Certificate (PEM)') })
      .locator('.field-error')
      .waitFor();
    await certForm.getByLabel('Certificate (PEM)').fill(cert.certificate);
    await certForm.getByLabel(/Private key/).fill(cert.privateKey);
    await certForm.getByRole('button', { name: 'Create' }).click();
    const saved = page.getByRole('form', { name: 'certificate edge-cert' });
    await saved.waitFor();
    assert.equal(await saved.getByLabel(/Private key/).inputValue(), '', 'the private key is never shown again');
    await page.getByRole('row', { name: /edge-cert .*api\.example\.test.* yes/ }).waitFor();
    assert.ok(!(await page.content()).includes(cert.privateKey.split('\n')[1]!));
    await screenshot(page, '14-certificates');
  });

  await t.test('a viewer sees everything and can change nothing, and the server refuses anyway', async () => {
    // The viewer's token is made on the admin tokens page (shown once).
    await page.getByRole('link', { name: 'Admin tokens' }).click();
    await page.getByRole('button', { name: 'New admin token' }).click();
    const tokenForm = page.getByRole('form', { name: 'New admin token' });
    await tokenForm.getByLabel('Name', { exact: true }).fill('console-viewer');
    await tokenForm.getByLabel('Role').selectOption('viewer');
    await tokenForm.getByRole('button', { name: 'Create' }).click();
    const token = ((await page.locator('output[aria-label="new admin token"]').textContent()) ?? '').trim();
    assert.match(token, /^pta_/);
    await screenshot(page, '15-admin-tokens');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    const { context, page: viewer } = await newPage(browser);
    await signIn(viewer, portico.adminUrl, token);
    assert.match((await viewer.locator('.who').textContent()) ?? '', /viewer, read only/);
    await viewer.getByRole('link', { name: 'Services' }).click();
    await viewer.getByRole('link', { name: 'orders', exact: true }).click();
    const form = viewer.getByRole('form', { name: 'service orders' });
    await form.waitFor();
    assert.equal(await viewer.getByRole('button', { name: 'New service' }).count(), 0);
    assert.equal(await form.getByRole('button', { name: 'Save' }).count(), 0);
    assert.equal(await form.getByRole('button', { name: 'Delete' }).count(), 0);
    assert.ok(await form.getByLabel('Upstream host').isDisabled());
    await form.getByText('Read only').waitFor();
    await screenshot(viewer, '16-viewer-services');
    assert.equal(await viewer.getByRole('link', { name: 'Admin tokens' }).count(), 0, 'viewers cannot list tokens');
    await viewer.getByRole('link', { name: 'Partners' }).click();
    await viewer.getByRole('link', { name: 'acme', exact: true }).click();
    await viewer.getByRole('heading', { name: 'API keys of acme' }).waitFor();
    assert.equal(await viewer.getByRole('button', { name: /New|Rotate|Revoke/ }).count(), 0);
    await viewer.getByRole('link', { name: 'New API' }).click();
    await viewer.getByRole('heading', { name: 'New API' }).waitFor();
    assert.equal(await viewer.getByRole('button', { name: 'Create API' }).count(), 0);
    await viewer.getByRole('link', { name: 'Declarative' }).click();
    await viewer.getByRole('button', { name: 'Export current model' }).waitFor();
    assert.equal(await viewer.getByRole('button', { name: 'Apply' }).count(), 0);
    // The same session, calling the API itself with its CSRF token: refused.
    const status = await viewer.evaluate(async () => {
      const s = await (await fetch('/console/api/session')).json();
      const r = await fetch('/api/v1/services/orders', { method: 'DELETE', headers: { 'x-portico-csrf': s.csrf } });
      return r.status;
    });
    assert.equal(status, 403);
    assert.equal((await portico.api.get('/api/v1/services/orders')).status, 200);
    // Revoking the token (from the admin's page) ends the viewer's session at its next request.
    await page.getByRole('link', { name: 'console-viewer', exact: true }).click();
    page.once('dialog', (d) => d.accept());
    await page.getByRole('form', { name: 'admin token console-viewer' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('link', { name: 'console-viewer', exact: true }).waitFor({ state: 'detached' });
    await viewer.getByRole('link', { name: 'Services' }).click();
    await viewer.getByText('Your session ended. Sign in again.').waitFor();
    await viewer.getByLabel('Admin or viewer token').waitFor();
    await context.close();
  });

  await t.test('every page passes axe-core’s WCAG 2.1 A/AA checks, forms and errors included', async () => {
    const { context, page: a11y } = await newPage(browser, { bypassCSP: true });
    await signIn(a11y, portico.adminUrl, ADMIN_TOKEN);
    const found: string[] = [];
    const check = async (where: string) => {
      for (const v of await accessibilityViolations(a11y)) found.push(`${where}: ${v.id} (${v.impact}) ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    };
    await a11y.getByRole('article', { name: `Envoy ${NODE}` }).waitFor();
    await check('overview');
    for (const [link, ready] of [
      ['New API', 'API name'],
      ['Declarative', 'Document (YAML or JSON)'],
    ] as const) {
      await a11y.getByRole('link', { name: link }).click();
      await a11y.getByLabel(ready).waitFor();
      await check(link);
    }
    await a11y.getByRole('link', { name: 'Audit log' }).click();
    await a11y.locator('ol.audit li').first().locator('summary').click();
    await check('audit log');
    await a11y.getByRole('link', { name: 'Partners' }).click();
    await a11y.getByRole('link', { name: 'acme', exact: true }).click();
    await a11y.getByRole('heading', { name: 'API keys of acme' }).waitFor();
    await check('partner with subscriptions and keys');
    await a11y.getByRole('link', { name: 'Services' }).click();
    await a11y.getByRole('button', { name: 'New service' }).click();
    const form = a11y.getByRole('form', { name: 'New service' });
    await form.getByRole('button', { name: 'Create' }).click();
    await form.locator('.field-error').first().waitFor();
    await check('service form with errors');
    await context.close();
    assert.deepEqual(found, []);
  });

  await t.test('works at a narrow width: the menu folds, every page is reachable by keyboard', async () => {
    const { context, page: phone } = await newPage(browser, { width: 390, height: 844 });
    await signIn(phone, portico.adminUrl, ADMIN_TOKEN);
    const nav = phone.getByRole('navigation', { name: 'Console' });
    await nav.waitFor({ state: 'hidden' });
    const menu = phone.getByRole('button', { name: 'Menu' });
    await menu.focus();
    await phone.keyboard.press('Enter');
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await nav.waitFor();
    await screenshot(phone, '17-narrow-menu');
    await nav.getByRole('link', { name: 'Partners' }).focus();
    await phone.keyboard.press('Enter');
    await phone.getByRole('heading', { name: 'Partners' }).waitFor();
    await nav.waitFor({ state: 'hidden' }); // the menu closes after navigating
    // Nothing wider than the screen: tables scroll inside their own box.
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
    await screenshot(phone, '18-narrow-partners');
    await context.close();
  });
});
