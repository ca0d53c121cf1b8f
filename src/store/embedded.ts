// Embedded PostgreSQL: PGlite (WASM) in a data directory, served on a loopback socket so the same
// Prisma pg adapter and the same migrations work for embedded and production databases.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedDatabase {
  /** Connection string for a client; PGlite is one session, so clients must use a pool of one. */
  url(): string;
  /** Starts a fresh socket front (used once for migrations, once for the app's client). */
  restartSocket(): Promise<void>;
  /** The data directory as an uncompressed tar (PGlite's dump), which `image` below starts from. */
  dump(): Promise<Blob>;
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  /** memory:// only: start from this dump instead of an empty cluster (skips initdb: tests start many). */
  image?: Blob;
}

/**
 * PostgreSQL's defaults size buffers for a server (shared_buffers 128 MB); PGlite holds them in its
 * WebAssembly memory, which never shrinks, and the model's tables fit in far less.
 */
const EMBEDDED_POSTGRESQL_CONF = ['shared_buffers = 16MB', 'maintenance_work_mem = 16MB'];

/** Opens (or creates) the PGlite database in `dir`; `memory://` keeps it in memory (tests). */
export async function openEmbeddedDatabase(dir: string, opts: EmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  if (opts.image && !dir.startsWith('memory://')) throw new Error('an embedded database image is for memory:// only');
  let unlock = () => {};
  if (!dir.startsWith('memory://')) {
    mkdirSync(dir, { recursive: true });
    unlock = lockDataDir(dir);
  }
  // Loaded here, not with the module: a PostgreSQL-mode process never evaluates PGlite (~1 MB of
  // JavaScript, ~5 MB of RSS at start).
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-socket')]);
  const db = await PGlite.create(dir, { ...(opts.image ? { loadDataDir: opts.image } : {}), postgresqlconf: EMBEDDED_POSTGRESQL_CONF }).catch((e: Error) => {
    unlock();
    throw e;
  });
  let server: PGLiteSocketServer | undefined;
  let port = 0;
  const start = async () => {
    // Two slots so a just-closed client (migrations) cannot block the next one; every client we
    // open uses a pool of one and they never overlap, so PGlite's single session is never shared.
    server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 2 });
    await server.start();
    // The server does not expose its bound port publicly; read it from the node server it wraps.
    const inner = (server as unknown as { server?: { address(): AddressInfo | string | null } }).server;
    const addr = inner?.address();
    if (!addr || typeof addr === 'string') throw new Error('embedded database socket did not bind a TCP port');
    port = addr.port;
  };
  await start();
  return {
    url: () => `postgresql://postgres:postgres@127.0.0.1:${port}/postgres?sslmode=disable`,
    restartSocket: async () => {
      await server?.stop();
      await start();
    },
    dump: () => db.dumpDataDir('none') as Promise<Blob>,
    close: async () => {
      await server?.stop();
      await db.close();
      unlock();
    },
  };
}

/**
 * PGlite files are one process's: a second process opening them (`portico serve` beside a running
 * demo) would corrupt them. A lock file holding the owner's pid refuses that; a dead owner's is taken over.
 */
function lockDataDir(dir: string): () => void {
  const file = path.join(dir, 'portico.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = dataDirOwner(dir);
      if (pid !== undefined) throw new Error(`the data directory ${dir} is in use by another Portico (pid ${pid}): stop it, or set PORTICO_DATA_DIR to another directory`);
      rmSync(file, { force: true });
    }
  }
  throw new Error(`cannot lock the data directory ${dir}`);
}

/** The pid of the live process holding `dir`'s lock, if any. */
export function dataDirOwner(dir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(dir, 'portico.pid'), 'utf8').trim());
  } catch {
    return undefined;
  }
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
