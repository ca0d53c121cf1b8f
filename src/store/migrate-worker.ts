// Runs migrations on a worker thread: the schema engine's WebAssembly memory (tens of MB) is
// released when the worker exits instead of staying in the server for its whole life.
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
    // Loader hooks are per thread: register tsx in the worker before importing this module there.
    const tsxDir = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
    const tsx = pathToFileURL(path.join(tsxDir, 'dist/esm/api/index.mjs')).href;
    const source = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(source, { eval: true, workerData: { portico: 'migrate', job: { databaseUrl, apply, serialize } satisfies Job } });
    worker.once('message', (r: Reply) => {
      void worker.terminate();
      if (r.ok) resolve(r.status);
      else reject(new Error(r.message));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && code !== 1 && reject(new Error(`migration worker exited with code ${code}`)));
  });
}
