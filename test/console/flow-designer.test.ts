// The flow designer in a real headless Chromium against a real control plane and real upstreams:
// seed 003's /api/home flow built step by step in the graph and side panel, the text view in sync,
// an invalid expression shown inline at its field and node, "try it" showing the three calls with
// their outputs, save through the admin API, keyboard selection, a narrow screen, a viewer who
// cannot save or run, and axe. Screenshots go to test-results/console/ (flows-*.png).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { homeFlow, SEED_ORDERS, SEED_RECOMMENDATIONS, SEED_USER } from '../../src/flows/index.ts';
import { accessibilityViolations, newPage, openBrowser, screenshot, settledTexts, signIn } from '../support/browser.ts';
import { freePort } from '../support/components.ts';
import { startFlowUpstreams } from '../support/flows-gateway.ts';
import { ADMIN_TOKEN, startTestPortico } from '../support/portico.ts';

const REPLY = '{"user": steps.profile.body, "recent_orders": steps.orders.body, "recommendations": steps.recommendations.body}';

/** Seed 003's flow as the test builds it (the reply's body written on one line). */
function expectedFlow() {
  const flow = homeFlow();
  flow.steps[2]!.respond!.body = REPLY;
  return flow;
}

async function addStep(page: Page, to: string, kind: string): Promise<void> {
  await page.getByLabel(`Kind of step to add to ${to}`, { exact: true }).selectOption(kind);
  await page.getByRole('button', { name: `Add step to ${to}`, exact: true }).click();
}

const panel = (page: Page, step: string) => page.getByRole('form', { name: `Step ${step}`, exact: true });
const node = (page: Page, step: string) => page.locator(`.node[data-step="${step}"]`);
/** A node's own button (its name is its visible text: kind, step name, summary). */
const nodeButton = (page: Page, step: string) => node(page, step).locator('.node-main');

/** Renames the just-added step (selected in the side panel) and fills its fields. */
async function fill(page: Page, from: string, to: string, fields: Array<[string, string, 'select'?]>): Promise<void> {
  await panel(page, from).getByLabel('Name', { exact: true }).fill(to);
  const form = panel(page, to);
  for (const [label, value, how] of fields) {
    const field = form.getByLabel(label, { exact: true });
    if (how === 'select') await field.selectOption(value);
    else await field.fill(value);
  }
}

/** Waits until a control's value passes `ok` (views update after the render that follows an edit). */
async function valueIs(page: Page, selector: string, ok: (value: string) => boolean): Promise<void> {
  const control = page.locator(selector);
  const deadline = Date.now() + 30_000;
  while (!ok(await control.inputValue())) {
    if (Date.now() > deadline) assert.fail(`${selector} never got the expected value: ${await control.inputValue()}`);
    await page.waitForTimeout(50);
  }
}

async function checked(page: Page, text: RegExp): Promise<void> {
  await page.locator('.check-state').filter({ hasText: text }).waitFor();
}

test('flow designer in Chromium', async (t) => {
  const browser = await openBrowser(t);
  if (!browser) return;
  const upstreams = await startFlowUpstreams(0);
  t.after(() => upstreams.close());
  const portico = await startTestPortico();
  t.after(() => portico.close());
  const model = {
    portico: 'v1',
    gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: await freePort() }] }],
    services: Object.entries(upstreams.servers).map(([name, s]) => ({ name, endpoints: [{ host: '127.0.0.1', port: s.port }] })),
    products: [{ name: 'home', gatewayGroups: ['edge'], basePath: '/api', auth: { accept: ['none'] } }],
  };
  const applied = await portico.api.post('/api/v1/config', model);
  assert.equal(applied.status, 200, applied.text);
  const { page } = await newPage(browser);
  // A script error leaves the page half-updated: none may happen.
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  t.after(() => assert.deepEqual(pageErrors, [], 'no script errors in the page'));

  await t.test("builds seed 003's /api/home in the graph, the text view following", async () => {
    await signIn(page, portico.adminUrl, ADMIN_TOKEN);
    await page.getByRole('link', { name: 'Flow designer' }).click();
    await page.getByRole('heading', { name: 'Flow designer' }).waitFor();
    const route = page.getByRole('form', { name: 'Route' });
    await route.getByLabel('Product').selectOption('home');
    await route.getByLabel('New route name').fill('home');
    await route.getByLabel('New route path').fill('/home');
    await page.getByLabel('Flow deadline (ms)').fill('2000');

    await addStep(page, 'the flow', 'parallel');
    await fill(page, 'parallel1', 'fetch', []);
    await addStep(page, 'parallel fetch', 'call');
    await fill(page, 'call1', 'user', [
      ['Service', 'users', 'select'],
      ['Path', '/users/{request.identity.claims.sub}'],
      ['Timeout (ms)', '1000'],
    ]);
    for (const [name, service, path, limit] of [
      ['orders', 'orders', '/orders', '3'],
      ['recommendations', 'products', '/recommendations', '2'],
    ] as const) {
      await addStep(page, 'parallel fetch', 'call');
      await fill(page, 'call1', name, [
        ['Service', service, 'select'],
        ['Path', path],
        ['Query', `user={request.identity.claims.sub}\nlimit=${limit}`],
        ['Timeout (ms)', '1000'],
        ['On error', 'continue', 'select'],
        ['Fallback (JSON)', '[]'],
      ]);
    }
    await addStep(page, 'the flow', 'transform');
    await fill(page, 'transform1', 'profile', [
      ['From', 'steps.user.body'],
      ['Pick', 'id, name, avatar_url, membership'],
    ]);
    await addStep(page, 'the flow', 'respond');
    await fill(page, 'respond1', 'reply', [['Body', REPLY]]);
    await checked(page, /No problems found/);
    // The three calls sit side by side as branches of fetch.
    await settledTexts(page.getByRole('list', { name: 'Branches of parallel fetch' }).locator('.node-name'), ['user', 'orders', 'recommendations']);
    await screenshot(page, 'flows-01-built');

    await page.getByText('Flow as text (JSON or YAML)').click();
    const text = page.getByLabel('Flow (JSON)');
    assert.deepEqual(JSON.parse(await text.inputValue()), expectedFlow(), 'the text view shows the flow built in the graph');
    // As YAML: an edit there reaches the graph's fields (the deadline), and back to JSON.
    await page.getByLabel('Text format').selectOption('yaml');
    const yaml = page.getByLabel('Flow (YAML)');
    assert.match(await yaml.inputValue(), /^timeoutMs: 2000$/m);
    await yaml.fill((await yaml.inputValue()).replace('timeoutMs: 2000', 'timeoutMs: 2500'));
    await valueIs(page, 'input[name="timeoutMs"]', (v) => v === '2500');
    await page.getByLabel('Flow deadline (ms)').fill('2000');
    await valueIs(page, 'textarea[name="flowText"]', (v) => /^timeoutMs: 2000$/m.test(v));
    await page.getByLabel('Text format').selectOption('json');
  });

  await t.test('shows an invalid expression inline, from the text view and from the side panel', async () => {
    const text = page.getByLabel('Flow (JSON)');
    const broken = expectedFlow();
    broken.steps[2]!.respond!.body = '{"user": steps.profile.body';
    await text.fill(JSON.stringify(broken, null, 2));
    // The graph follows the text; the server's check names the field, shown at the node.
    const nodeError = node(page, 'reply').locator('.node-error');
    await nodeError.waitFor();
    assert.match((await nodeError.textContent()) ?? '', /respond\.body/);
    await checked(page, /1 problem found/);
    await nodeButton(page, 'reply').click();
    const body = panel(page, 'reply').locator('.field', { has: page.getByLabel('Body', { exact: true }) });
    await body.locator('.field-error').waitFor();
    assert.ok(((await body.locator('.field-error').textContent()) ?? '').length > 3, 'a message, not just a mark');
    assert.equal(await panel(page, 'reply').getByLabel('Body', { exact: true }).getAttribute('aria-invalid'), 'true');
    await screenshot(page, 'flows-02-invalid-expression');
    // Fixed in the panel: the error goes, and the text view follows.
    await panel(page, 'reply').getByLabel('Body', { exact: true }).fill(REPLY);
    await checked(page, /No problems found/);
    assert.equal(await nodeError.count(), 0);
    assert.deepEqual(JSON.parse(await text.inputValue()), expectedFlow());
  });

  await t.test('"try it" runs the three calls against the real upstreams and shows each output', async () => {
    const seen = upstreams.seen.users!.length;
    const form = page.getByRole('form', { name: 'Sample request' });
    await form.getByLabel('Partner').fill('mobile-app');
    await form.getByLabel('JWT claims (JSON)').fill(JSON.stringify({ sub: SEED_USER.id }));
    await form.getByRole('button', { name: 'Try it' }).click();
    const result = page.getByRole('status', { name: 'Try it result' });
    await result.waitFor();
    assert.match((await result.locator('p').first().textContent()) ?? '', /answered 200/);
    for (const [step, shows] of [
      ['user', SEED_USER.name],
      ['orders', SEED_ORDERS[0]!.order_id],
      ['recommendations', SEED_RECOMMENDATIONS[0]!.name],
    ] as const) {
      const badge = node(page, step).locator('.badge');
      assert.match((await badge.textContent()) ?? '', /ok · 200 · [\d.]+ ms/, `${step} ran and answered 200`);
      await node(page, step).getByText(`Output of ${step}`).click();
      assert.match((await node(page, step).locator('pre').textContent()) ?? '', new RegExp(shows), `${step}'s output`);
    }
    assert.match((await result.locator('pre').first().textContent()) ?? '', /"recent_orders"/);
    // The calls finish in any order (they run at once); then the transform, then the answer.
    const rows = await result.locator('table.trace tbody th').allTextContents();
    assert.deepEqual([...rows.slice(0, 3)].sort(), ['orders', 'recommendations', 'user']);
    assert.deepEqual(rows.slice(3), ['profile', 'reply']);
    assert.equal(upstreams.seen.users!.length, seen + 1, 'the users upstream was really called');
    await screenshot(page, 'flows-03-try-it');
  });

  await t.test('saves the route through the admin API, and the keyboard reaches every step', async () => {
    await page.getByRole('button', { name: 'Save flow' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved route home' }).waitFor();
    const stored = await portico.api.get('/api/v1/products/home/routes/home');
    assert.equal(stored.status, 200, stored.text);
    assert.deepEqual(stored.body.flow, expectedFlow());
    assert.deepEqual(stored.body.match, { path: { type: 'exact', value: '/home' } });
    // Reload: the saved flow comes back from the server.
    await page.reload();
    await node(page, 'recommendations').waitFor();
    assert.match((await nodeButton(page, 'profile').getAttribute('aria-pressed')) ?? '', /false/);
    assert.equal(await page.getByRole('button', { name: /^transform profile from steps\.user\.body/ }).count(), 1, 'a node is named by what it shows');
    await nodeButton(page, 'profile').focus();
    await page.keyboard.press('Enter');
    await panel(page, 'profile').waitFor();
    assert.equal(await panel(page, 'profile').getByLabel('From', { exact: true }).inputValue(), 'steps.user.body');
    // Reorder with the keyboard: move reply up, then back down.
    await page.getByRole('button', { name: 'Move reply up' }).focus();
    await page.keyboard.press('Enter');
    await checked(page, /\d+ problems? found/);
    await page.getByRole('button', { name: 'Move reply down' }).click();
    await settledTexts(page.getByRole('list', { name: 'Steps of the flow' }).locator(':scope > li > .node-wrap > .node .node-name'), ['fetch', 'profile', 'reply']);
  });

  await t.test('works at a narrow width', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await node(page, 'user').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `no sideways scrolling of the page (${overflow} px)`);
    await screenshot(page, 'flows-04-narrow');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await t.test('a viewer sees the flow but cannot save or run it', async () => {
    const token = await portico.api.post('/api/v1/admin-tokens', { name: 'flow-viewer', role: 'viewer' });
    assert.equal(token.status, 201, token.text);
    const { page: v } = await newPage(browser);
    await signIn(v, portico.adminUrl, token.body.token);
    await v.goto(`${portico.adminUrl}/console/#/flows/home%2Fhome`);
    await node(v, 'user').waitFor();
    assert.equal(await v.getByRole('button', { name: 'Save flow' }).count(), 0);
    assert.equal(await v.getByRole('button', { name: /Add step/ }).count(), 0);
    assert.ok(await v.getByRole('button', { name: 'Try it' }).isDisabled());
  });

  await t.test('has no WCAG 2.1 A/AA violations axe can find, with a trace shown', async () => {
    const { page: a11y } = await newPage(browser, { bypassCSP: true });
    await signIn(a11y, portico.adminUrl, ADMIN_TOKEN);
    await a11y.goto(`${portico.adminUrl}/console/#/flows/home%2Fhome`);
    await node(a11y, 'user').waitFor();
    await nodeButton(a11y, 'user').click();
    await a11y.getByLabel('JWT claims (JSON)').fill(JSON.stringify({ sub: SEED_USER.id }));
    await a11y.getByRole('button', { name: 'Try it' }).click();
    await a11y.getByRole('status', { name: 'Try it result' }).waitFor();
    await checked(a11y, /No problems found/);
    const found = (await accessibilityViolations(a11y)).map((v) => `${v.id} (${v.impact}) ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    assert.deepEqual(found, []);
  });
});
