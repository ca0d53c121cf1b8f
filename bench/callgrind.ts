// What the instruction benches share: a gateway Envoy under valgrind's callgrind, instrumented only
// while a batch of requests runs, and the instructions it counted (the newest dump's totals).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { heyBinary } from './harness.ts';

export function run(cmd: string, argv: string[]): string {
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** `hey` sending `n` requests, `c` at a time: the output, and whether every one got a 200. */
export function send(url: string, headers: readonly string[], n: number, c: number): { ok: boolean; out: string } {
  const out = run(heyBinary(), ['-n', String(n), '-c', String(c), ...headers.flatMap((h) => ['-H', h]), url]);
  return { ok: Number(/\[200\]\s+(\d+) responses/.exec(out)?.[1] ?? 0) === n, out };
}

/** The newest callgrind dump with this prefix and its instructions (Ir). */
export function lastDump(dir: string, prefix: string): { file: string; ir: number } {
  const files = readdirSync(dir).filter((f) => f.startsWith(prefix));
  const newest = files.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).at(-1);
  if (!newest) throw new Error('no callgrind dump');
  const file = path.join(dir, newest);
  const m = /^(?:summary|totals): (\d+)/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no totals in ${newest}`);
  return { file, ir: Number(m[1]) };
}

/**
 * Counts the instructions of `n` requests (`c` at a time) in the callgrind-run process `pid`, whose
 * dumps go to `dir` with names starting `prefix`; fails unless every request got a 200.
 */
export function countRequests(o: { pid: number; dir: string; prefix: string; url: string; headers: readonly string[]; n: number; c: number; what: string }): { file: string; ir: number } {
  const pid = String(o.pid);
  run('callgrind_control', ['--zero', pid]);
  run('callgrind_control', ['--instr=on', pid]);
  const measured = send(o.url, o.headers, o.n, o.c);
  if (!measured.ok) throw new Error(`not every measured request of ${o.what} answered 200:\n${measured.out.slice(-1500)}`);
  run('callgrind_control', ['--dump', pid]);
  run('callgrind_control', ['--instr=off', pid]);
  return lastDump(o.dir, o.prefix);
}
