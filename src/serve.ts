// `portico serve`: starts the control plane, optionally applies a document at start, and shuts
// down gracefully on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { parseDocumentText, parseModelDocument, planApply } from './model/declarative.ts';
import { startPortico } from './main.ts';
import type { Settings } from './settings.ts';
import { createLogger } from './telemetry/log.ts';

export async function serve(settings: Settings, applyFile?: string): Promise<void> {
  const log = createLogger(settings.logLevel);
  const portico = await startPortico(settings, { logger: log });
  if (applyFile) {
    const store = portico.store;
    const hasher = store.apiKeyHasher();
    const parsed = parseModelDocument(parseDocumentText(readFileSync(applyFile, 'utf8')), {
      existing: store.current(),
      hashApiKey: (key) => ({ prefix: key.split('_')[1]!, hash: hasher.hash(key) }),
    });
    const plan = parsed.errors.length ? { mutations: [], errors: parsed.errors } : planApply(store.current(), parsed.model);
    if (plan.errors.length) {
      await portico.close();
      throw new Error(`${applyFile}: ${plan.errors.map((e) => `${e.field} ${e.message}`).join('; ')}`);
    }
    const result = await store.commit({ mutations: plan.mutations, actor: 'portico serve --apply', summary: `apply ${applyFile} at start` });
    log.info({ file: applyFile, changes: result.changes.length, revision: result.snapshot.revision }, 'applied document at start');
  }
  // SIGTERM: /readyz turns 503, xDS streams end cleanly, in-flight callouts finish, then the admin
  // API and the database close. The exit is bounded: past the grace period (plus 5 s for the rest)
  // the process exits anyway, and a second signal exits at once.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    const started = Date.now();
    log.info({ signal, graceMs: settings.shutdownGraceMs }, 'signal received; draining');
    const timer = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, settings.shutdownGraceMs + 5_000);
    timer.unref();
    portico.close().then(
      () => {
        log.info({ ms: Date.now() - started }, 'stopped');
        process.exit(0);
      },
      (e: Error) => {
        log.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
