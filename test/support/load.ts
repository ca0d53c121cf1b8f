// Constant HTTP load for e2e tests: a fixed number of workers on a keep-alive agent cycling through
// a list of URLs, recording every status and connection error, so a test can assert zero failures.
// A failure is a connection error, a timeout, or a status outside what that target may return now.
import http from 'node:http';

export interface LoadTarget {
  /** Unique name, used in stats and to change expectations. */
  name: string;
  url: string;
  method?: string;
  /** Request headers; a function is called for every request (e.g. to switch credentials mid-run). */
  headers?: Record<string, string> | (() => Record<string, string>);
  body?: string;
  /** Statuses this target may return; anything else is a failure. Change with LoadRun.expect(). */
  expect: readonly number[];
  /** Optional label per response (e.g. which upstream answered), counted per target. */
  label?: (status: number, body: string) => string | undefined;
}

export interface LoadFailure {
  target: string;
  /** ms since the load started. */
  at: number;
  status?: number;
  error?: string;
  body?: string;
}

export interface TargetStats {
  requests: number;
  failures: number;
  statuses: Record<string, number>;
  labels: Record<string, number>;
}

export interface LoadReport {
  requests: number;
  failures: LoadFailure[];
  /** Labels the test put on the timeline (LoadRun.mark), to tell which change a failure followed. */
  marks: Array<{ label: string; at: number }>;
  targets: Record<string, TargetStats>;
  durationMs: number;
}

export interface LoadRun {
  /** Replaces the statuses a target may return from now on. */
  expect(target: string, statuses: readonly number[]): void;
  /** Puts a label on the timeline (e.g. the change about to be made); failures are reported after it. */
  mark(label: string): void;
  /** Requests completed so far (all targets). */
  completed(): number;
  /** A copy of the counts so far. */
  report(): LoadReport;
  /** Resolves once `n` more requests have completed from now (proof that load ran across a change). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /**
   * Resolves once every request in flight now has completed: after changing what a headers function
   * returns, no request built before the change is still outstanding.
   */
  barrier(): Promise<void>;
  /** Stops the workers (in-flight requests finish) and returns the final report. */
  stop(): Promise<LoadReport>;
}

export interface LoadOptions {
  targets: readonly LoadTarget[];
  /** Concurrent requests (workers), each on its own kept-alive connection. Default 8. */
  concurrency?: number;
  /** Per-request timeout; a request taking longer is a failure. Default 10 s. */
  timeoutMs?: number;
  /** Bodies kept in failure records, truncated to this many characters. Default 300. */
  bodyLimit?: number;
}

/** One line per failure kind (and the mark it followed) with a count and the first example. */
export function describeFailures(failures: readonly LoadFailure[], marks: LoadReport['marks'] = []): string {
  const kinds = new Map<string, { count: number; first: LoadFailure }>();
  for (const f of failures) {
    const after = marks.filter((m) => m.at <= f.at).pop();
    const k = `${f.target} ${f.error ?? `status ${f.status}`}${after ? ` after '${after.label}'` : ''}`;
    const e = kinds.get(k);
    if (e) e.count++;
    else kinds.set(k, { count: 1, first: f });
  }
  return [...kinds].map(([k, { count, first }]) => `${count}× ${k} (first at ${first.at} ms${first.body ? `: ${first.body}` : ''})`).join('\n');
}

export function startLoad(o: LoadOptions): LoadRun {
  if (o.targets.length === 0) throw new Error('startLoad needs at least one target');
  const concurrency = o.concurrency ?? 8;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const bodyLimit = o.bodyLimit ?? 300;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const expected = new Map(o.targets.map((t) => [t.name, new Set(t.expect)]));
  if (expected.size !== o.targets.length) throw new Error('target names must be unique');
  const stats = new Map<string, TargetStats>(o.targets.map((t) => [t.name, { requests: 0, failures: 0, statuses: {}, labels: {} }]));
  const failures: LoadFailure[] = [];
  const marks: LoadReport['marks'] = [];
  const started = Date.now();
  let total = 0;
  let next = 0;
  let stopping = false;
  const waiters: Array<{ at: number; resolve: () => void }> = [];
  const inFlight = new Set<Promise<unknown>>();

  const once = (t: LoadTarget): Promise<{ status?: number; body: string; error?: string }> =>
    new Promise((resolve) => {
      const headers = typeof t.headers === 'function' ? t.headers() : t.headers;
      const req = http.request(t.url, { method: t.method ?? 'GET', headers, agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ body: '', error: `response ${e.code ?? e.message}` }));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ body: '', error: e.code ?? e.message }));
      req.end(t.body);
    });

  const record = (t: LoadTarget, r: { status?: number; body: string; error?: string }) => {
    const s = stats.get(t.name)!;
    s.requests++;
    total++;
    const key = r.error ? `error:${r.error}` : String(r.status);
    s.statuses[key] = (s.statuses[key] ?? 0) + 1;
    const label = !r.error && t.label ? t.label(r.status!, r.body) : undefined;
    if (label !== undefined) s.labels[label] = (s.labels[label] ?? 0) + 1;
    if (r.error || !expected.get(t.name)!.has(r.status!)) {
      s.failures++;
      failures.push({ target: t.name, at: Date.now() - started, ...(r.error ? { error: r.error } : { status: r.status, body: r.body.slice(0, bodyLimit) }) });
    }
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (total >= waiters[i]!.at) {
        waiters[i]!.resolve();
        waiters.splice(i, 1);
      }
    }
  };

  const worker = async () => {
    while (!stopping) {
      const t = o.targets[next++ % o.targets.length]!;
      const p = once(t);
      inFlight.add(p);
      const r = await p;
      inFlight.delete(p);
      record(t, r);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);

  const report = (): LoadReport => ({
    requests: total,
    failures: failures.map((f) => ({ ...f })),
    marks: [...marks],
    targets: Object.fromEntries([...stats].map(([k, s]) => [k, { ...s, statuses: { ...s.statuses }, labels: { ...s.labels } }])),
    durationMs: Date.now() - started,
  });

  return {
    expect(target, statuses) {
      if (!expected.has(target)) throw new Error(`unknown load target '${target}'`);
      expected.set(target, new Set(statuses));
    },
    mark: (label) => void marks.push({ label, at: Date.now() - started }),
    completed: () => total,
    report,
    waitForRequests(n, waitMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`load: ${n} more requests did not complete within ${waitMs} ms (${total} so far)`)), waitMs);
        waiters.push({
          at: total + n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    async barrier() {
      await Promise.all([...inFlight]);
    },
    async stop() {
      stopping = true;
      await Promise.all(workers);
      agent.destroy();
      for (const w of waiters.splice(0)) w.resolve();
      return report();
    },
  };
}
