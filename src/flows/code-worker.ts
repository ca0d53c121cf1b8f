// A worker thread of the code step pool (code-pool.ts): one QuickJS sandbox of its own, running one
// code step at a time, so a step that spins until its CPU limit stalls this thread, not the server's.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CodeSandbox, type CodeLimits, type CodeOutcome } from './code.ts';

export interface CodeJob {
  id: number;
  source: string;
  input: string;
  limits: CodeLimits;
}

export type WorkerReply = { ready: true } | { id: number; outcome: CodeOutcome };

/** Marks the worker's workerData, so importing this module anywhere else does nothing. */
export const CODE_WORKER = 'flows-code';

if (!isMainThread && parentPort && (workerData as { portico?: string } | undefined)?.portico === CODE_WORKER) {
  const port = parentPort;
  const sandbox = await CodeSandbox.create();
  // Ready only once the spare is loaded too: loading it holds this thread (a second or more on a
  // busy host), which would otherwise land inside the first run's time limit.
  await sandbox.loaded();
  port.on('message', (job: CodeJob) => {
    port.postMessage({ id: job.id, outcome: sandbox.run(job.source, job.input, job.limits) } satisfies WorkerReply);
  });
  port.postMessage({ ready: true } satisfies WorkerReply);
}
