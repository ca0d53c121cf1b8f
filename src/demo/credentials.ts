// The demo's credentials on disk: one shell-sourceable file in the data directory (mode 0600), so
// the admin token and API key survive a restart and can be shown again, and `--reset` can start over.
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dataDirOwner } from '../store/index.ts';

export const CREDENTIALS_FILE = 'demo-credentials.env';
export const ACCESS_LOG_FILE = 'envoy-access.log';
export const ENVOY_LOG_FILE = 'envoy.log';

export interface DemoCredentials {
  /** The admin API's base URL. */
  PORTICO_URL: string;
  /** The demo's admin token (the control plane's bootstrap token). */
  PORTICO_TOKEN: string;
  /** The web-app team's API key. */
  DEMO_API_KEY: string;
  /** A JWT from the demo's token issuer (its key changes on every start, so this one does too). */
  DEMO_JWT: string;
}

const NAMES = ['PORTICO_URL', 'PORTICO_TOKEN', 'DEMO_API_KEY', 'DEMO_JWT'] as const;

/** What an earlier run left, or nothing (a missing or unreadable file is a first start). */
export function readCredentials(dataDir: string): Partial<DemoCredentials> {
  const file = path.join(dataDir, CREDENTIALS_FILE);
  if (!existsSync(file)) return {};
  const out: Partial<DemoCredentials> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^export ([A-Z_]+)='([^']*)'$/.exec(line.trim());
    if (m && (NAMES as readonly string[]).includes(m[1]!)) out[m[1] as keyof DemoCredentials] = m[2]!;
  }
  return out;
}

/** Writes the file readable by its owner only (it holds an admin token). Returns its path. */
export function writeCredentials(dataDir: string, c: DemoCredentials): string {
  const file = path.join(dataDir, CREDENTIALS_FILE);
  const lines = ['# Portico demo credentials: kept across restarts; `npm run demo -- --reset` starts over.', `# Use them in a shell: source ${file}`, ...NAMES.map((n) => `export ${n}='${c[n]}'`)];
  // Values are generated (base64url, JWTs, URLs): never a quote, so single quotes are safe.
  writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // an existing file keeps its old mode through writeFileSync
  return file;
}

/**
 * `--reset`: removes the data directory, but only one that is Portico's (the demo's files or
 * PGlite's) and only while no Portico holds it.
 */
export function resetDataDir(dataDir: string): void {
  if (dataDir.startsWith('memory://') || !existsSync(dataDir)) return;
  const owner = dataDirOwner(path.join(dataDir, 'pglite')) ?? dataDirOwner(dataDir);
  if (owner !== undefined) throw new Error(`Portico (pid ${owner}) is still running on ${dataDir}: stop it before --reset`);
  const entries = readdirSync(dataDir);
  const ours = entries.length === 0 || entries.some((e) => e === CREDENTIALS_FILE || e === 'pglite' || e === 'master.key');
  if (!ours) throw new Error(`${dataDir} does not look like Portico's data directory; not deleting it (set PORTICO_DATA_DIR, or remove it yourself)`);
  rmSync(dataDir, { recursive: true, force: true });
}
