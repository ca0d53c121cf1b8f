// Starts a real Portico control plane in the test process (embedded PGlite in memory, or a given
// PostgreSQL) and offers a small client for its admin API.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { startPortico, type Portico, type StartOptions } from '../../src/main.ts';
import { loadSettings } from '../../src/settings.ts';
import { openEmbeddedDatabase } from '../../src/store/embedded.ts';
import { MIGRATIONS_DIR, readMigrations } from '../../src/store/migrate.ts';
import { migrateInWorker } from '../../src/store/migrate-worker.ts';
import { freePort } from './components.ts';
import { createLogger } from '../../src/telemetry/log.ts';

export const ADMIN_TOKEN = 'test-bootstrap-admin-token';

export interface TestPortico extends Portico {
  api: ApiClient;
}

export interface TestPorticoOptions {
  databaseUrl?: string;
  /** Settings on top of the test defaults (PORTICO_* variables). */
  env?: Record<string, string>;
  /** Where the control plane writes its JSON log lines (default stdout), for tests that read them. */
  logTo?: NodeJS.WritableStream;
  /** Start options on top of the test defaults (e.g. a document applied at start). */
  start?: Pick<StartOptions, 'applyFile' | 'translateOnFirstStream'>;
}

export async function startTestPortico(opts: TestPorticoOptions = {}): Promise<TestPortico> {
  const settings = loadSettings({
    PORTICO_DATA_DIR: 'memory://',
    PORTICO_ADMIN_ADDR: '127.0.0.1:0',
    PORTICO_GRPC_ADDR: '127.0.0.1:0',
    PORTICO_CALLOUT_LISTEN_ADDR: '127.0.0.1:0',
    PORTICO_FLOWS_LISTEN_ADDR: '127.0.0.1:0',
    // Each test's Envoys bind their own step listener (only groups with flow routes have one).
    PORTICO_FLOWS_STEP_ADDR: `127.0.0.1:${await freePort()}`,
    PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
    PORTICO_ADMIN_TOKEN: ADMIN_TOKEN,
    PORTICO_LOG_LEVEL: process.env.PORTICO_TEST_LOG_LEVEL ?? 'silent',
    ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
    ...opts.env,
  });
  const portico = await startPortico(settings, {
    logger: createLogger(settings.logLevel, opts.logTo),
    ...(!opts.databaseUrl && settings.dataDir.startsWith('memory://') ? { embeddedImage: await migratedImage() } : {}),
    ...opts.start,
  });
  return Object.assign(portico, { api: new ApiClient(portico.adminUrl, ADMIN_TOKEN) });
}

/**
 * A dump of an embedded database with every migration applied, made once per machine and set of
 * migrations (a file in the temporary directory, shared by test files) and loaded by each in-memory
 * control plane: creating and migrating a PGlite cluster costs seconds of CPU per start, loading
 * the dump about one. The control plane still runs its migration check on it.
 */
export function migratedImage(): Promise<Blob> {
  imageOnce ??= (async () => {
    const key = createHash('sha256');
    key.update(readFileSync(createRequire(import.meta.url).resolve('@electric-sql/pglite')));
    for (const m of readMigrations().migrationDirectories) key.update(`${m.path}\0${m.migrationFile.content.tag === 'ok' ? m.migrationFile.content.value : ''}\0`);
    const file = path.join(os.tmpdir(), `portico-test-pglite-${key.digest('hex').slice(0, 16)}.tar`);
    try {
      return new Blob([readFileSync(file)]);
    } catch {
      const db = await openEmbeddedDatabase('memory://');
      try {
        const status = await migrateInWorker(db.url(), true, false);
        assert.deepEqual(status.pending, [], `migrations in ${MIGRATIONS_DIR} applied`);
        const image = await db.dump();
        // Another test file may be writing the same image: write apart, then rename (atomic).
        const tmp = `${file}.${process.pid}`;
        writeFileSync(tmp, Buffer.from(await image.arrayBuffer()));
        renameSync(tmp, file);
        return image;
      } finally {
        await db.close();
      }
    }
  })();
  return imageOnce;
}
let imageOnce: Promise<Blob> | undefined;

/**
 * The secret part of a minted credential, `<kind>_<8-character prefix>_<secret>` (bearerSecret): the
 * secret is base64url and may itself hold `_`, so splitting on `_` can yield a fragment of one or
 * two characters (or none) that any answer contains.
 */
export function secretBody(credential: string): string {
  return credential.slice('ptk_'.length + 8 + 1);
}

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string | undefined,
  ) {}

  withToken(token: string | undefined): ApiClient {
    return new ApiClient(this.baseUrl, token);
  }

  async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const raw = typeof body === 'string' || body instanceof Uint8Array;
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        ...(body !== undefined && !raw ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: raw ? (body as string) : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }

  get<T = any>(path: string, headers?: Record<string, string>) {
    return this.request<T>('GET', path, undefined, headers);
  }
  post<T = any>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>('POST', path, body, headers);
  }
  put<T = any>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>('PUT', path, body, headers);
  }
  patch<T = any>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>('PATCH', path, body, headers);
  }
  delete<T = any>(path: string, headers?: Record<string, string>) {
    return this.request<T>('DELETE', path, undefined, headers);
  }
}

/** A 4xx problem+json whose errors name `field` (or, without one, name some field). */
export function assertProblem(r: ApiResponse, status: number, field?: string | RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/, r.text);
  assert.equal(r.body.status, status);
  assert.ok(Array.isArray(r.body.errors) && r.body.errors.length > 0, `errors name a field: ${r.text}`);
  for (const e of r.body.errors) assert.ok(typeof e.field === 'string' && e.field.length > 0, r.text);
  if (field !== undefined) {
    const fields = r.body.errors.map((e: { field: string }) => e.field);
    assert.ok(
      fields.some((f: string) => (typeof field === 'string' ? f === field : field.test(f))),
      `expected a field ${field}, got ${fields.join(', ')}`,
    );
  }
}
