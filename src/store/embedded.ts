// Embedded PostgreSQL: PGlite (WASM) in a data directory, served on a loopback socket so the same
// Prisma pg adapter and the same migrations work for embedded and production databases.
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedDatabase {
  /** Connection string for a client; PGlite is one session, so clients must use a pool of one. */
  url(): string;
  /** Starts a fresh socket front (used once for migrations, once for the app's client). */
  restartSocket(): Promise<void>;
  close(): Promise<void>;
}

/** Opens (or creates) the PGlite database in `dir`; `memory://` keeps it in memory (tests). */
export async function openEmbeddedDatabase(dir: string): Promise<EmbeddedDatabase> {
  if (!dir.startsWith('memory://')) mkdirSync(dir, { recursive: true });
  const db = await PGlite.create(dir);
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
    close: async () => {
      await server?.stop();
      await db.close();
    },
  };
}
