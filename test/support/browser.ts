// A real headless Chromium (Debian's; playwright-core drives it, never downloads one) for the web
// console's tests, with sign-in and screenshot helpers. Screenshots go to test-results/console/.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { requireComponent } from './components.ts';

export const SCREENSHOT_DIR = path.resolve('test-results/console');

/** Launches Chromium, closed when the test ends; under CI=true a missing Chromium fails the test. */
export async function openBrowser(t: TestContext): Promise<Browser | undefined> {
  const executablePath = requireComponent(t, 'chromium');
  if (!executablePath) return undefined;
  const browser = await chromium.launch({ executablePath, headless: true });
  t.after(() => browser.close());
  return browser;
}

export async function newPage(browser: Browser, opts: { width?: number; height?: number; bypassCSP?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: opts.width ?? 1280, height: opts.height ?? 860 }, bypassCSP: opts.bypassCSP ?? false });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  return { context, page };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/**
 * Asserts the texts of what `locator` matches once the page has settled on them: the console renders
 * after its fetches and after a state update, so a single read right after a heading or a click can
 * see the table before its rows (CI failed that way once on a busy machine).
 */
export async function settledTexts(locator: Locator, expected: string[], timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let seen = await locator.allTextContents();
  while (JSON.stringify(seen) !== JSON.stringify(expected) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    seen = await locator.allTextContents();
  }
  assert.deepEqual(seen, expected);
}

/** Signs in through the form, typing the token and pressing Enter (the keyboard path). */
export async function signIn(page: Page, adminUrl: string, token: string): Promise<void> {
  await page.goto(`${adminUrl}/console/`);
  const field = page.getByLabel('Admin or viewer token');
  await field.focus();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/**
 * WCAG 2 A/AA problems axe-core finds on the page as rendered now (labels, names, contrast, landmarks,
 * ARIA). Injecting axe needs a context made with bypassCSP: the console's CSP forbids inline scripts.
 */
export async function accessibilityViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ path: createRequire(import.meta.url).resolve('axe-core/axe.min.js') });
  return page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: Document, o: unknown) => Promise<{ violations: AxeViolation[] }> } }).axe;
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
  });
}
