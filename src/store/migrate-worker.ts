// Runs migrations on a worker thread, and an embedded database's first start (initdb and migrations)
// in a child process: the schema engine's and initdb's memory is released when they end instead of
// staying in the server for its whole life. The compiled build (dist/, plain JavaScript) starts the
// worker and the child on this file directly; the sources through tsx.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { openEmbeddedDatabase } from './embedded.ts';
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

/** Set in the environment of the child that creates an embedded database (createEmbeddedInChild). */
const CREATE_CHILD = 'PORTICO_EMBEDDED_CREATE';

if (isMainThread && process.env[CREATE_CHILD] && process.send) {
  const { dir, apply } = JSON.parse(process.env[CREATE_CHILD]) as { dir: string; apply: boolean };
  const reply = (r: Reply) => process.send!(r, () => process.exit(0));
  // Replies only once the database is closed: the exit that follows must not cut PGlite's shutdown short.
  openEmbeddedDatabase(dir)
    .then(async (db) => {
      let r: Reply;
      try {
        r = { ok: true, status: await migrate(db.url(), apply, false) };
      } catch (e) {
        r = { ok: false, message: (e as Error).message };
      }
      await db.close();
      reply(r);
    })
    .catch((e: Error) => reply({ ok: false, message: e.message }));
}

/**
 * Creates the embedded database in `dir` (initdb) and migrates it (or only reports, without
 * `apply`) in a child process. Done in the server, PostgreSQL's initdb in PGlite and the schema
 * engine left ~145 MB of freed but resident memory behind (glibc keeps it; measured with smaps: a
 * first start idled at 396 MB, the same server restarted on that directory at 250 MB).
 */
export function createEmbeddedInChild(dir: string, apply: boolean): Promise<MigrationStatus> {
  const file = fileURLToPath(import.meta.url);
  const execArgv = file.endsWith('.ts') ? ['--import', pathToFileURL(path.join(tsxDir(), 'dist/loader.mjs')).href] : [];
  return new Promise((resolve, reject) => {
    const child = fork(file, [], { execArgv, env: { ...process.env, [CREATE_CHILD]: JSON.stringify({ dir, apply }) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let reply: Reply | undefined;
    child.once('message', (r: Reply) => (reply = r));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (reply?.ok) resolve(reply.status);
      else reject(new Error(reply ? reply.message : `the embedded database's creation exited with code ${code}`));
    });
  });
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
  const tsx = pathToFileURL(path.join(tsxDir(), 'dist/esm/api/index.mjs')).href;
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(module)}); })`;
}

function tsxDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
}
