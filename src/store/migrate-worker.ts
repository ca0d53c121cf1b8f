// Runs migrations on a worker thread: the schema engine's WebAssembly memory (tens of MB) is
// released when the worker exits instead of staying in the server for its whole life. The compiled
// build (dist/, plain JavaScript) starts the worker on this file directly; the sources through tsx.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { migrate, type MigrationStatus } from './migrate.ts';

interface Job {
  databaseUrl: string;
  apply: boolean;
  serialize: boolean;
}

type Reply = { ok: true; status: MigrationStatus } | { ok: false; message: string };

if (!isMainThread && (workerData as { portico?: string } | undefined)?.portico === 'migrate') {
  const job = (workerData as { job: Job }).job;
  migrate(job.databaseUrl, job.apply, job.serialize).then(
    (status) => parentPort!.postMessage({ ok: true, status } satisfies Reply),
    (e: Error) => parentPort!.postMessage({ ok: false, message: e.message } satisfies Reply),
  );
}

export function migrateInWorker(databaseUrl: string, apply: boolean, serialize: boolean): Promise<MigrationStatus> {
  return new Promise((resolve, reject) => {
    const data = { workerData: { portico: 'migrate', job: { databaseUrl, apply, serialize } satisfies Job } };
    const worker = import.meta.url.endsWith('.js') ? new Worker(new URL(import.meta.url), data) : new Worker(tsxEntry(import.meta.url), { eval: true, ...data });
    worker.once('message', (r: Reply) => {
      void worker.terminate();
      if (r.ok) resolve(r.status);
      else reject(new Error(r.message));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && code !== 1 && reject(new Error(`migration worker exited with code ${code}`)));
  });
}

/** Source that registers tsx in a worker, then imports `module` there (loader hooks are per thread). */
function tsxEntry(module: string): string {
  const tsxDir = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsx = pathToFileURL(path.join(tsxDir, 'dist/esm/api/index.mjs')).href;
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(module)}); })`;
}
