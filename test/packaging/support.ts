// Helpers for the packaging tests: the repository root, docker-compose interpolation, and running
// a control plane from a given environment as a real process.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, type RunningProcess } from '../support/components.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const repoPath = (...p: string[]) => path.join(ROOT, ...p);
export const exists = (p: string) => existsSync(repoPath(p));

/**
 * Compose's variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, $$) with the given
 * environment; an unset variable without a default is an error (compose would substitute '').
 */
export function interpolate(value: string, env: Record<string, string | undefined> = {}): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, name?: string, op?: string, def?: string, bare?: string) => {
    if (all === '$$') return '$';
    const v = env[(name ?? bare)!];
    if (op === ':-') return v ? v : def!;
    if (op === '-') return v !== undefined ? v : def!;
    if (v === undefined) throw new Error(`${all} has no default and is not set`);
    return v;
  });
}

/** A compose `environment:` (map or list form) as a plain map, interpolated. */
export function composeEnvironment(raw: unknown, env: Record<string, string | undefined> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(raw)) {
    for (const item of raw as string[]) {
      const i = item.indexOf('=');
      out[i < 0 ? item : item.slice(0, i)] = i < 0 ? '' : interpolate(item.slice(i + 1), env);
    }
  } else if (raw && typeof raw === 'object') {
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) out[k] = v === null ? '' : interpolate(String(v), env);
  }
  return out;
}

/** The environment of a child process: the test's own, minus Portico's settings, plus `env`. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PORTICO_|DATABASE_URL$|REDIS_URL$|DEMO_)/.test(k)));
  return { ...inherited, ...env };
}

/** Starts `bin/portico <args>` (from `cwd`, default the repository) and waits for /readyz 200 on adminUrl. */
export async function startPorticoProcess(args: string[], env: Record<string, string>, adminUrl: string, cwd = ROOT): Promise<RunningProcess> {
  const proc = startProcess(path.join(cwd, 'bin/portico'), args, { env: childEnv(env), cwd });
  // Not waitFor: an exit ends the wait at once instead of counting as one more failed attempt.
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`portico exited (${proc.child.exitCode ?? proc.child.signalCode}): ${proc.output().slice(-3000)}`);
    }
    const r = await fetch(`${adminUrl}/readyz`).catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > deadline) {
      await proc.stop('SIGKILL');
      throw new Error(`portico not ready after 120 s: ${proc.output().slice(-3000)}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  return proc;
}

/** Exit code of a process after a signal (waits for the exit). */
export async function stopWithCode(proc: RunningProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.child.exitCode;
  const exited = new Promise<number | null>((r) => proc.child.once('exit', (code) => r(code)));
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}
