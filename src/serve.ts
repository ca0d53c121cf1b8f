// `portico serve`: starts the control plane, optionally applies a document at start, and shuts
// down gracefully on SIGTERM/SIGINT.
import { startIdempotencyRole } from './idempotency-role.ts';
import { startPortico } from './main.ts';
import type { Settings } from './settings.ts';
import { createLogger } from './telemetry/index.ts';

export async function serve(settings: Settings, applyFile?: string, prune = false): Promise<void> {
  const log = createLogger(settings.logLevel);
  // The document is applied before the servers start, so /readyz never reports a model without it.
  // The idempotency role needs no database or model: it is only the processor (src/idempotency-role.ts).
  const portico =
    settings.role === 'idempotency'
      ? await startIdempotencyRole(settings, log)
      : await startPortico(settings, { logger: log, compileSchemas: true, translateOnFirstStream: settings.translateOn === 'first-stream', ...(applyFile ? { applyFile, prune } : {}) });
  // SIGTERM: /readyz turns 503, the replica keeps serving for the shutdown delay, then xDS streams
  // end cleanly, in-flight callouts finish, and the admin API and the database close. The exit is
  // bounded: past the delay and the grace period (plus 5 s for the rest) the process exits anyway,
  // and a second signal exits at once.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    const started = Date.now();
    log.info({ signal, delayMs: settings.shutdownDelayMs, graceMs: settings.shutdownGraceMs }, 'signal received; draining');
    const timer = setTimeout(
      () => {
        log.error('shutdown took too long; exiting');
        process.exit(1);
      },
      settings.shutdownDelayMs + settings.shutdownGraceMs + 5_000,
    );
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
