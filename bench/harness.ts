// What the benchmarks share: command-line flags, the JSON result, CPU accounting from /proc, wrk,
// hey and vegeta. Node built-ins only: in-process benchmarks import it, and it must not weigh on them.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

// ── command line ──────────────────────────────────────────────────────────────

type FlagDefaults = Record<string, number | string | boolean | undefined>;
type Flags<D extends FlagDefaults> = {
  [K in keyof D]: D[K] extends number ? number : D[K] extends boolean ? boolean : D[K] extends string ? string : string | undefined;
};

/**
 * Flags by their defaults: a number or a string default makes `--name value` (read as a number or
 * kept as text), `false` a switch, `undefined` a value with no default. Unknown flags are refused.
 */
export function flags<const D extends FlagDefaults>(defaults: D): Flags<D> {
  const options = Object.fromEntries(Object.entries(defaults).map(([k, d]) => [k, { type: typeof d === 'boolean' ? ('boolean' as const) : ('string' as const) }]));
  // --help lists the flags with their defaults instead of failing as an unknown option.
  if (process.argv.includes('--help')) {
    const rows = Object.entries(defaults).map(([k, d]) => `  --${k}${typeof d === 'boolean' ? '' : ` <${d === undefined ? 'value' : typeof d}>`}  (default: ${JSON.stringify(d)})`);
    process.stdout.write(`options:\n${rows.join('\n')}\n`);
    process.exit(0);
  }
  const { values } = parseArgs({ options });
  const given = values as Record<string, string | boolean | undefined>;
  return Object.fromEntries(
    Object.entries(defaults).map(([k, d]) => {
      const v = given[k];
      return [k, typeof d === 'boolean' ? v === true : v === undefined ? d : typeof d === 'number' ? Number(v) : v];
    }),
  ) as Flags<D>;
}

/** The result document on stdout (progress goes to stderr). */
export function printJson(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

// ── arithmetic ────────────────────────────────────────────────────────────────

export const round2 = (x: number): number => Math.round(x * 100) / 100;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

let ticks: number | undefined;

/** CPU seconds (user + system) a process has used, from /proc; 0 once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  ticks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim() || 100);
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (in parentheses) may hold spaces: count fields after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return 0;
  }
}

/** Resident set size of a process in MB (VmRSS, from /proc); 0 once it is gone. */
export function rssMB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const kB = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kB ? Math.round(Number(kB) / 1024) : 0;
  } catch {
    return 0;
  }
}

/** Starts counting the named processes' CPU; the returned function gives seconds used since (0.01 s). */
export function cpuMeter(pids: Record<string, number | undefined>): () => Record<string, number> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  return () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, round2(cpuSeconds(pid) - before[k]!)]));
}

// ── Prometheus histograms ─────────────────────────────────────────────────────

/** Cumulative bucket counts by upper bound (`le`, +Inf as Infinity), summed over the series whose labels include `match`. */
export type Buckets = Map<number, number>;

/** A histogram's buckets from a Prometheus text scrape (labels in `match` must all be equal). */
export function histogramBuckets(scrape: string, name: string, match: Record<string, string> = {}): Buckets {
  const out: Buckets = new Map();
  const line = new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\S+)$`, 'gm');
  for (const m of scrape.matchAll(line)) {
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (!Object.entries(match).every(([k, v]) => labels[k] === v) || labels.le === undefined) continue;
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}

/** What was observed between two scrapes of the same histogram (bucket by bucket). */
export function bucketsDelta(before: Buckets, after: Buckets): Buckets {
  return new Map([...after].map(([le, n]) => [le, n - (before.get(le) ?? 0)]));
}

/**
 * The q-quantile of cumulative buckets, interpolated linearly within its bucket as Prometheus's
 * histogram_quantile does (from 0 in the first); in the +Inf bucket, the highest finite bound.
 * NaN without observations.
 */
export function bucketQuantile(q: number, buckets: Buckets): number {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, n] of sorted) {
    if (n >= rank) {
      if (le === Infinity) return lower;
      return n === below ? le : lower + ((le - lower) * (rank - below)) / (n - below);
    }
    lower = le;
    below = n;
  }
  return lower;
}

// ── load generators ───────────────────────────────────────────────────────────

/** `name: value` header lines (as wrk and hey take them) as a fetch/http headers object. */
export function headerObject(headers: readonly string[]): Record<string, string> {
  return Object.fromEntries(headers.map((h) => h.split(': ') as [string, string]));
}

/**
 * Runs a load generator to the end without blocking this process (it may be serving), keeping
 * its output and the most CPU it was seen to use (sampled: /proc forgets it once reaped).
 */
function loadGenerator(cmd: string, args: string[]): Promise<{ out: string; cpu: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let cpu = 0;
    const sample = setInterval(() => (cpu = Math.max(cpu, cpuSeconds(child.pid))), 200);
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('error', (e) => {
      clearInterval(sample);
      reject(e);
    });
    // 'close', not 'exit': 'exit' may come before the last of stdout has been read, and a wrk report
    // then had no figures (2 of 60 rounds of bench/gateway-pair.ts, where three run at once).
    child.once('close', (code) => {
      clearInterval(sample);
      if (code !== 0) reject(new Error(`${cmd} failed (${code}): ${out.slice(-2000)}`));
      else resolve({ out, cpu });
    });
  });
}

/** A wrk duration (`812.00us`, `1.20ms`, `2.00s`, `1.00m`) in milliseconds. */
function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export interface WrkResult {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  socketErrors: number;
  loadGeneratorCpu: number;
}

/** wrk at full speed (closed loop: `connections` requests in flight); `script` is a Lua request script. */
export async function wrk(o: { url: string; headers?: readonly string[]; durationS: number; threads: number; connections: number; script?: string }): Promise<WrkResult> {
  const args = [
    '-t',
    String(o.threads),
    '-c',
    String(o.connections),
    '-d',
    `${o.durationS}s`,
    '--latency',
    ...(o.script ? ['-s', o.script] : []),
    ...(o.headers ?? []).flatMap((h) => ['-H', h]),
    o.url,
  ];
  const { out, cpu } = await loadGenerator('wrk', args);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    p50Ms: toMs(/^\s+50%\s+(\S+)$/m.exec(out)?.[1] ?? ''),
    p99Ms: toMs(/^\s+99%\s+(\S+)$/m.exec(out)?.[1] ?? ''),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
    socketErrors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    loadGeneratorCpu: cpu,
  };
}

/** A wrk run's figures as the Envoy benchmarks report them, with the CPU seconds each process used and per request (ms). */
export function wrkFigures(w: WrkResult, cpu: Record<string, number>) {
  const cpuMsPerRequest = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round((v * 1_000_000) / Math.max(1, w.requests)) / 1000]));
  return { p50Ms: w.p50Ms, p99Ms: w.p99Ms, requests: w.requests, non2xx: w.non2xx, socketErrors: w.socketErrors, cpuSeconds: cpu, cpuMsPerRequest };
}

export interface HeyResult {
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  statuses: Record<string, number>;
  loadGeneratorCpu: number;
}

/**
 * hey's text report as figures. Percentile lines read `50% in 0.0012 secs` in older builds and
 * `50%% in 0.0012 secs` in recent ones (a doubled format verb): both are accepted. A percentile hey
 * did not print (too few samples) is NaN.
 */
export function parseHey(out: string): Omit<HeyResult, 'loadGeneratorCpu'> {
  const sec = (p: string) => Number(new RegExp(`^\\s*${p}%%? in ([\\d.]+) secs`, 'm').exec(out)?.[1] ?? NaN) * 1000;
  const statuses: Record<string, number> = {};
  for (const m of out.matchAll(/\[(\d+)\]\s+(\d+) responses/g)) statuses[m[1]!] = Number(m[2]);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN), p50Ms: sec('50'), p90Ms: sec('90'), p99Ms: sec('99'), statuses };
}

/** A Go-built load generator: on PATH, else in GOPATH/bin where `go install <module>` puts it. */
function goTool(name: string, module: string): string {
  const onPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout?.trim();
  if (onPath) return onPath;
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).stdout?.trim();
  const bin = gopath ? `${gopath}/bin/${name}` : '';
  if (bin && existsSync(bin)) return bin;
  throw new Error(`${name} is not installed (go install ${module})`);
}

/** The hey binary. */
export const heyBinary = (): string => goTool('hey', 'github.com/rakyll/hey@latest');

/** The vegeta binary (the version whose JSON report parseVegeta reads). */
export const vegetaBinary = (): string => goTool('vegeta', 'github.com/tsenart/vegeta/v12@v12.13.0');

/**
 * hey with `workers` workers, each limited to rate/workers requests per second. Not a constant rate:
 * each worker waits on its own ticker, all started together, so the workers' requests leave in bursts
 * of up to `workers` once per 1/(rate/workers) s, and a worker whose response is late skips ticks
 * (closed loop). Its percentiles are how long such bursts take to drain.
 */
export async function hey(o: { url: string; headers?: readonly string[]; rate: number; durationS: number; workers: number }): Promise<HeyResult> {
  const perWorker = Math.max(1, Math.round(o.rate / o.workers));
  const { out, cpu } = await loadGenerator(heyBinary(), ['-z', `${o.durationS}s`, '-c', String(o.workers), '-q', String(perWorker), ...(o.headers ?? []).flatMap((h) => ['-H', h]), o.url]);
  return { ...parseHey(out), loadGeneratorCpu: cpu };
}

export interface PacedResult {
  /** Requests sent per second (vegeta's `rate`): the asked rate unless the generator fell behind. */
  sentRps: number;
  /** Successful responses per second (vegeta's `throughput`). */
  rps: number;
  requests: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Status code → responses; `0` counts requests that got no response (vegeta's errors). */
  statuses: Record<string, number>;
  errors: string[];
}

/**
 * vegeta's `report -type json` as figures (latencies there are nanoseconds). A report without a
 * field the figures need is refused: a renamed field must not turn into a silent NaN.
 */
export function parseVegeta(json: string): PacedResult {
  const r = JSON.parse(json) as {
    latencies?: Record<string, number>;
    requests?: number;
    rate?: number;
    throughput?: number;
    status_codes?: Record<string, number>;
    errors?: string[] | null;
  };
  const ms = (k: string) => {
    const v = r.latencies?.[k];
    if (typeof v !== 'number') throw new Error(`vegeta report: latencies.${k} missing`);
    return v / 1e6;
  };
  for (const k of ['requests', 'rate', 'throughput'] as const) if (typeof r[k] !== 'number') throw new Error(`vegeta report: ${k} missing`);
  return {
    sentRps: r.rate!,
    rps: r.throughput!,
    requests: r.requests!,
    p50Ms: ms('50th'),
    p90Ms: ms('90th'),
    p99Ms: ms('99th'),
    maxMs: ms('max'),
    statuses: { ...(r.status_codes ?? {}) },
    errors: r.errors ?? [],
  };
}

/**
 * vegeta at a uniformly paced constant rate, open loop: one request every 1/rate s whatever the
 * responses do, up to `maxWorkers` requests in flight (a worker uses one connection at a time). Latency is
 * from each request's send to its response. Without the cap, a stall of the machine makes vegeta
 * start a worker and a connection for every late request: thousands of connections, and the gateway
 * then served a fifth of the asked rate with p50s of seconds. With it, a stall longer than the cap
 * delays sending (closed loop until the backlog drains; sentRps shows it).
 */
export async function vegeta(o: { url: string; headers?: readonly string[]; rate: number; durationS: number; maxWorkers: number }): Promise<PacedResult & { loadGeneratorCpu: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-vegeta-'));
  try {
    const targets = join(dir, 'targets');
    const results = join(dir, 'results.bin');
    writeFileSync(targets, `GET ${o.url}\n${(o.headers ?? []).map((h) => `${h}\n`).join('')}`);
    const bin = vegetaBinary();
    const rate = `${Math.max(1, Math.round(o.rate))}/1s`;
    const workers = ['-workers', String(Math.min(8, o.maxWorkers)), '-max-workers', String(o.maxWorkers)];
    const { cpu } = await loadGenerator(bin, ['attack', '-rate', rate, '-duration', `${o.durationS}s`, ...workers, '-targets', targets, '-output', results]);
    const report = spawnSync(bin, ['report', '-type', 'json', results], { encoding: 'utf8' });
    if (report.status !== 0) throw new Error(`vegeta report failed (${report.status}): ${report.stderr}`);
    return { ...parseVegeta(report.stdout), loadGeneratorCpu: cpu };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
