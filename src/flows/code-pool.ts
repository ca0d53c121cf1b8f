// Code steps off the event loop: a small pool of worker threads, each with its own QuickJS sandbox
// (code-worker.ts). A run is synchronous inside its worker, so a step spinning to its CPU limit
// holds one worker, never the thread that answers requests. A watchdog terminates a worker that
// outlives a run's limit (QuickJS's interrupt should have stopped it) and starts a replacement.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CodeLimits, CodeOutcome } from './code.ts';
import { CODE_WORKER, type CodeJob, type WorkerReply } from './code-worker.ts';

export interface CodePoolOptions {
  /** Worker threads at most (started when code steps first run). */
  size: number;
  /** How long a run may hold its worker before the watchdog replaces it, from its CPU limit. */
  watchdogMs?: (timeMs: number) => number;
  /** How long a worker may take to start (load the runtime and QuickJS). */
  startMs?: number;
  /** Told when a worker is terminated or lost and replaced (the shell logs it). */
  onReplace?: (reason: string) => void;
}

/**
 * Past its CPU limit a run is stopped by QuickJS within one interrupt poll; the limit is wall-clock
 * time inside the worker, so this much more means the worker is stuck, not starved (a worker's first
 * runs on a host at load 20 measured over a second for `return 1`). The flow does not wait for it:
 * its deadline answers first; the watchdog frees the worker.
 */
const WATCHDOG_GRACE_MS = 5000;

interface Pending {
  job: CodeJob;
  resolve: (o: CodeOutcome) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  running: Pending | undefined;
  timer: NodeJS.Timeout | undefined;
}

export class CodePool {
  private readonly slots = new Set<Slot>();
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private replacedCount = 0;
  private readonly watchdogMs: (timeMs: number) => number;

  constructor(private readonly opts: CodePoolOptions) {
    this.watchdogMs = opts.watchdogMs ?? ((t) => t + WATCHDOG_GRACE_MS);
  }

  /** Runs a code step in a worker; resolves with its outcome, never rejects. */
  run(source: string, inputJson: string, limits: CodeLimits, signal?: AbortSignal): Promise<CodeOutcome> {
    if (this.closed) return Promise.resolve(failed('the code sandbox is shut down'));
    if (signal?.aborted) return Promise.resolve(failed('the flow no longer waits for this step'));
    return new Promise((resolve) => {
      const p: Pending = { job: { id: this.nextId++, source, input: inputJson, limits }, resolve, signal, onAbort: undefined };
      if (signal) {
        // Dropped while it waits for a worker; once running it ends at its own limit.
        p.onAbort = () => {
          const i = this.queue.indexOf(p);
          if (i >= 0) {
            this.queue.splice(i, 1);
            settle(p, failed('the flow no longer waits for this step'));
          }
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.pump();
    });
  }

  /** Starts workers up to `count` ahead of use (a worker takes a second or more to load QuickJS). */
  warm(count = 1): void {
    while (!this.closed && this.slots.size < Math.min(count, this.opts.size)) this.start();
  }

  /** Workers alive, runs in them and waiting, and workers replaced so far. */
  stats(): { workers: number; running: number; queued: number; replaced: number } {
    let running = 0;
    for (const s of this.slots) if (s.running) running++;
    return { workers: this.slots.size, running, queued: this.queue.length, replaced: this.replacedCount };
  }

  /** Terminates every worker; runs in progress or waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) settle(p, failed('the code sandbox is shut down'));
    const all = [...this.slots];
    this.slots.clear();
    for (const s of all) {
      clearTimeout(s.timer);
      if (s.running) settle(s.running, failed('the code sandbox is shut down'));
    }
    await Promise.all(all.map((s) => s.worker.terminate()));
  }

  /** Hands waiting runs to idle workers, and starts workers while runs wait and the pool has room. */
  private pump(): void {
    for (const s of this.slots) {
      if (this.queue.length === 0) break;
      if (s.ready && !s.running) this.dispatch(s, this.queue.shift()!);
    }
    let starting = 0;
    for (const s of this.slots) if (!s.ready) starting++;
    while (!this.closed && this.queue.length > starting && this.slots.size < this.opts.size) {
      this.start();
      starting++;
    }
  }

  private dispatch(s: Slot, p: Pending): void {
    s.running = p;
    s.worker.ref();
    s.timer = setTimeout(() => {
      settle(p, { ok: false, kind: 'timeout', message: `ran past its ${p.job.limits.timeMs} ms CPU limit (its worker was stopped)` });
      s.running = undefined;
      this.lose(s, `a code step held its worker past ${this.watchdogMs(p.job.limits.timeMs)} ms`);
    }, this.watchdogMs(p.job.limits.timeMs));
    s.worker.postMessage(p.job);
  }

  private start(): void {
    const data = { workerData: { portico: CODE_WORKER } };
    const entry = new URL('./code-worker.ts', import.meta.url).href;
    // The compiled build (dist/) starts the worker on its .js file; the sources need tsx inside
    // the worker too, because loader hooks are registered per thread.
    const worker = import.meta.url.endsWith('.js') ? new Worker(new URL('./code-worker.js', import.meta.url), data) : new Worker(tsxEntry(entry), { eval: true, ...data });
    const s: Slot = { worker, ready: false, running: undefined, timer: undefined };
    this.slots.add(s);
    s.timer = setTimeout(() => this.lose(s, `a code worker did not start within ${this.opts.startMs ?? 30_000} ms`, true), this.opts.startMs ?? 30_000);
    worker.on('message', (m: WorkerReply) => {
      if ('ready' in m) {
        clearTimeout(s.timer);
        s.ready = true;
        worker.unref();
        return this.pump();
      }
      const p = s.running;
      if (!p || p.job.id !== m.id) return;
      clearTimeout(s.timer);
      s.running = undefined;
      worker.unref();
      settle(p, m.outcome);
      this.pump();
    });
    worker.on('error', (e) => this.lose(s, `a code worker failed: ${e.message}`, !s.ready));
    worker.on('exit', (code) => this.lose(s, `a code worker exited with code ${code}`, !s.ready));
  }

  /**
   * Drops a worker that is stuck, failed or gone: its run fails, and a replacement starts. A worker
   * that never became ready is not replaced in a loop: the runs waiting fail when no worker is left.
   */
  private lose(s: Slot, reason: string, atStart = false): void {
    if (!this.slots.delete(s)) return;
    clearTimeout(s.timer);
    void s.worker.terminate();
    if (s.running) settle(s.running, failed(`its worker stopped: ${reason}`));
    if (this.closed) return;
    if (atStart) {
      if (![...this.slots].some((x) => x.ready || x.running)) for (const p of this.queue.splice(0)) settle(p, failed(`the code sandbox could not start: ${reason}`));
      return;
    }
    this.replacedCount++;
    this.opts.onReplace?.(reason);
    this.start();
    this.pump();
  }
}

function failed(message: string): CodeOutcome {
  return { ok: false, kind: 'error', message };
}

function settle(p: Pending, o: CodeOutcome): void {
  if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
  p.resolve(o);
}

/** Source that registers tsx in a worker, then imports `module` there (as the migration worker does). */
function tsxEntry(module: string): string {
  const tsxDir = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsx = pathToFileURL(path.join(tsxDir, 'dist/esm/api/index.mjs')).href;
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(module)}); })`;
}
