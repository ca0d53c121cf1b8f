// Where idempotency records live: in Redis when REDIS_URL is set (every processor, behind every
// Envoy, sees the same keys), else in this process's memory. A claim is one round trip: it either
// records the first request as pending or returns what is already there.
import { Redis } from 'ioredis';
import { decodeRecord, encodeRecord, type IdempotencyRecord } from './decide.ts';

export interface IdempotencyStore {
  readonly kind: 'memory' | 'redis';
  /** Records `pending` for `pendingMs` unless the key has a record; returns that record (undefined: claimed). */
  claim(key: string, record: IdempotencyRecord, pendingMs: number): Promise<IdempotencyRecord | undefined>;
  /** Replaces the key's record with the finished response, kept for `ttlMs` from now. */
  complete(key: string, record: IdempotencyRecord, ttlMs: number): Promise<void>;
  /** Frees a key this request claimed (only while its record is still that pending one). */
  release(key: string, pending: IdempotencyRecord): Promise<void>;
  close(): Promise<void>;
}

/**
 * One process's records, expired lazily and by a sweep every few seconds. Kept as the objects the
 * processor made (it never changes them after handing them over): no encoding per claim and store.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly kind = 'memory';
  private readonly records = new Map<string, { record: IdempotencyRecord; expiresAt: number }>();
  private readonly sweep = setInterval(() => this.expire(Date.now()), 5_000);
  constructor(private readonly now: () => number = Date.now) {
    this.sweep.unref();
  }

  private expire(now: number): void {
    for (const [k, v] of this.records) if (v.expiresAt <= now) this.records.delete(k);
  }

  private live(key: string): IdempotencyRecord | undefined {
    const r = this.records.get(key);
    if (!r) return undefined;
    if (r.expiresAt > this.now()) return r.record;
    this.records.delete(key);
    return undefined;
  }

  async claim(key: string, record: IdempotencyRecord, pendingMs: number): Promise<IdempotencyRecord | undefined> {
    const existing = this.live(key);
    if (existing !== undefined) return existing;
    this.records.set(key, { record, expiresAt: this.now() + pendingMs });
    return undefined;
  }

  async complete(key: string, record: IdempotencyRecord, ttlMs: number): Promise<void> {
    this.records.set(key, { record, expiresAt: this.now() + ttlMs });
  }

  /** Only the claim that `pending` is (the same object): a claim made after it lapsed belongs to another request. */
  async release(key: string, pending: IdempotencyRecord): Promise<void> {
    if (this.live(key) === pending) this.records.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    this.records.clear();
  }
}

// Compare-and-delete: a pending record that expired and was claimed again belongs to someone else.
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

export class RedisIdempotencyStore implements IdempotencyStore {
  readonly kind = 'redis';
  private readonly client: Redis;
  constructor(url: string, opts: { commandTimeoutMs?: number; keyPrefix?: string } = {}) {
    this.client = new Redis(url, {
      // Fail fast while Redis is away (the request is refused with 503, never let through unprotected).
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 1_000,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(50 * times, 1_000),
      keyPrefix: opts.keyPrefix ?? 'portico:idem:',
    });
    // Failures surface as refused requests (counted); ioredis would otherwise print every reconnect.
    this.client.on('error', () => {});
  }

  /** Resolves once connected (or rejects after timeoutMs). */
  ready(timeoutMs = 5_000): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Redis not ready after ${timeoutMs} ms`)), timeoutMs);
      this.client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async claim(key: string, record: IdempotencyRecord, pendingMs: number): Promise<IdempotencyRecord | undefined> {
    // SET … NX GET (Redis ≥ 7): sets only when absent and returns the previous value either way.
    const previous = (await this.client.call('SET', key, encodeRecord(record), 'PX', String(pendingMs), 'NX', 'GET')) as string | null;
    if (previous === null) return undefined;
    return decodeRecord(previous) ?? record;
  }

  async complete(key: string, record: IdempotencyRecord, ttlMs: number): Promise<void> {
    await this.client.set(key, encodeRecord(record), 'PX', ttlMs);
  }

  async release(key: string, pending: IdempotencyRecord): Promise<void> {
    await this.client.eval(RELEASE, 1, key, encodeRecord(pending));
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}
