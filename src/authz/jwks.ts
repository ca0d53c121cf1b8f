import { importJWK, type JWK } from 'jose';
import type { Logger } from 'pino';
import { jwkAlgorithms, jwksKeys, publicJwkMembers, type JwtAlgorithm } from '../model/index.ts';
import { bucketStep, type BucketSpec, type BucketState } from '../ratelimit/index.ts';
import type { IssuerEntry } from './credential-index.ts';

export interface JwtSettings {
  /** Periodic JWKS refresh. */
  refreshIntervalMs: number;
  /**
   * Tokens with an unknown kid may trigger a JWKS refetch: a token bucket per issuer holding
   * unknownKidRefetchBurst refetches, one regained every unknownKidRefetchIntervalMs (and never two
   * fetches in flight), so a key rotation is picked up within seconds while random kids cannot make
   * more than burst + elapsed / interval fetches. A burst of 0 disables refetching on unknown kids.
   */
  unknownKidRefetchIntervalMs: number;
  unknownKidRefetchBurst: number;
  /** How long a Check whose kid is unknown waits for that refetch (or the first load) before answering 401. */
  unknownKidWaitMs: number;
  fetchTimeoutMs: number;
  /** First retry after a failed fetch; doubles up to refreshIntervalMs. The last good keys stay in use. */
  failureRetryMs: number;
  maxJwksBytes: number;
  /** Verified tokens kept (LRU; entries also expire with the token); 0 disables the cache. */
  tokenCacheSize: number;
  /** Longer bearer tokens are refused before any parsing. */
  maxTokenBytes: number;
}

export const DEFAULT_JWT_SETTINGS: JwtSettings = {
  refreshIntervalMs: 5 * 60_000,
  unknownKidRefetchIntervalMs: 5_000,
  unknownKidRefetchBurst: 3,
  unknownKidWaitMs: 100,
  fetchTimeoutMs: 5_000,
  failureRetryMs: 5_000,
  maxJwksBytes: 1024 * 1024,
  tokenCacheSize: 10_000,
  maxTokenBytes: 8 * 1024,
};

/** Observations the verifier reports (the service wires them to prom-client). */
export interface JwtObserver {
  tokenCache(result: 'hit' | 'miss'): void;
  jwksFetch(issuer: string, result: 'ok' | 'error'): void;
  jwksKeys(issuer: string, keys: number): void;
}

export const noObserver: JwtObserver = { tokenCache() {}, jwksFetch() {}, jwksKeys() {} };

export interface JwtVerifierDeps {
  logger?: Logger;
  observer?: JwtObserver;
  /** Epoch milliseconds (tests move it). */
  now?: () => number;
  fetch?: typeof fetch;
}

type KeySet = Map<string, Map<JwtAlgorithm, CryptoKey>>;

async function importKeySet(doc: unknown, allowed: readonly JwtAlgorithm[]): Promise<{ keys: KeySet; skipped: number }> {
  const list = doc !== null && typeof doc === 'object' ? (doc as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(list)) throw new Error('the document has no "keys" array');
  const usable = jwksKeys(doc);
  const keys: KeySet = new Map();
  let skipped = Math.min(list.length, 256) - usable.length;
  for (const jwk of usable) {
    const kid = typeof jwk.kid === 'string' ? jwk.kid : '';
    const algs = jwkAlgorithms(jwk, allowed);
    if (algs.length === 0) skipped++;
    for (const alg of algs) {
      try {
        // Only public members go to the importer: no usage hints that could make it refuse a verify key.
        const key = await importJWK(publicJwkMembers(jwk) as JWK, alg);
        if (!(key instanceof Uint8Array)) {
          let m = keys.get(kid);
          if (!m) keys.set(kid, (m = new Map()));
          m.set(alg, key);
        }
      } catch {
        skipped++;
      }
    }
  }
  return { keys, skipped };
}

/** Origin and path only: a JWKS URI may carry credentials in its user info or query. */
export function redactUri(uri: string): string {
  try {
    const u = new URL(uri);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '[invalid uri]';
  }
}

/** An error text with the URI (and any URL's user info and query) taken out: fetch errors quote the URL. */
export function scrubUris(text: string, uri: string): string {
  return text
    .split(uri)
    .join(redactUri(uri))
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1')
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s?#"]*)[?#][^\s"]*/gi, '$1');
}

async function readLimited(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) throw new Error(`the key set is larger than ${max} bytes`);
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw new Error(`the key set is larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One issuer's keys: inline, or fetched from jwksUri and kept fresh in the background. */
export class JwksSource {
  private keys: KeySet = new Map();
  /** The last key set fetched and accepted (native mode pushes it to Envoy); undefined until then. */
  private fetchedDocument: unknown;
  private loading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private abort: AbortController | undefined;
  /** Refetches an unknown kid may still trigger (undefined: the bucket is full). */
  private unknownKidBucket: BucketState | undefined;
  private readonly unknownKidSpec: BucketSpec;
  private failures = 0;
  private closed = false;
  private fetches = 0;

  constructor(
    readonly issuer: IssuerEntry,
    /** Changes to the key material or algorithms replace the source (cached verifications go with it). */
    readonly identity: string,
    private readonly settings: JwtSettings,
    private readonly deps: Required<Pick<JwtVerifierDeps, 'observer' | 'now' | 'fetch'>> & { logger: Logger | undefined },
  ) {
    this.unknownKidSpec = {
      kind: 'bucket',
      key: issuer.name,
      requests: 1,
      periodMs: Math.max(1, settings.unknownKidRefetchIntervalMs),
      capacity: Math.max(0, settings.unknownKidRefetchBurst),
    };
  }

  start(): void {
    if (this.issuer.jwks) this.loading = this.loadInline().finally(() => (this.loading = undefined));
    else this.refresh();
  }

  /** Fetches attempted so far (diagnostics, tests). */
  get fetchCount(): number {
    return this.fetches;
  }

  /** The fetched key set as published (public keys only count: the translator keeps those), for jwksUri issuers. */
  get document(): unknown {
    return this.fetchedDocument;
  }

  get keyCount(): number {
    let n = 0;
    for (const m of this.keys.values()) n += m.size;
    return n;
  }

  /** The first load has settled (keys or not). */
  async ready(): Promise<void> {
    await this.loading;
  }

  /** The key for a kid and algorithm; without a kid, the issuer's only key for that algorithm. */
  key(kid: string | undefined, alg: JwtAlgorithm): CryptoKey | 'ambiguous' | undefined {
    if (kid !== undefined) return this.keys.get(kid)?.get(alg);
    let found: CryptoKey | undefined;
    for (const m of this.keys.values()) {
      const k = m.get(alg);
      if (k === undefined) continue;
      if (found !== undefined) return 'ambiguous';
      found = k;
    }
    return found;
  }

  /** True while this exact key is still published (a cached verification is only as good as its key). */
  stillPublishes(kid: string | undefined, alg: JwtAlgorithm, key: CryptoKey): boolean {
    return this.key(kid, alg) === key;
  }

  /**
   * A token named a key we do not have: the load in progress (joined, costing nothing), or a new
   * fetch if the issuer's unknown-kid bucket holds one (so a stream of forged kids cannot hammer the IdP).
   */
  keyMayAppear(): Promise<void> | undefined {
    if (this.loading) return this.loading;
    if (!this.issuer.jwksUri || this.closed) return undefined;
    const step = bucketStep(this.unknownKidSpec, this.unknownKidBucket, 1, this.deps.now());
    if (!step.result.ok) return undefined;
    this.unknownKidBucket = step.next;
    return this.refresh();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.abort?.abort();
  }

  private async loadInline(): Promise<void> {
    try {
      const { keys, skipped } = await importKeySet(this.issuer.jwks, this.issuer.algorithms);
      this.keys = keys;
      this.deps.observer.jwksKeys(this.issuer.name, this.keyCount);
      if (skipped) this.deps.logger?.warn({ issuer: this.issuer.name, skipped }, 'authz: some inline JWKS keys are unusable for the allowed algorithms');
    } catch (e) {
      this.deps.logger?.error({ issuer: this.issuer.name, reason: (e as Error).message }, 'authz: inline JWKS could not be loaded');
    }
  }

  /** Starts a fetch unless one is running; the returned promise never rejects. */
  private refresh(): Promise<void> {
    if (this.loading) return this.loading;
    if (this.closed) return Promise.resolve();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.loading = this.fetchKeys().finally(() => {
      this.loading = undefined;
      this.schedule();
    });
    return this.loading;
  }

  private schedule(): void {
    if (this.closed || !this.issuer.jwksUri) return;
    const delay = this.failures === 0 ? this.settings.refreshIntervalMs : Math.min(this.settings.refreshIntervalMs, this.settings.failureRetryMs * 2 ** Math.min(this.failures - 1, 20));
    this.timer = setTimeout(() => void this.refresh(), delay);
    this.timer.unref();
  }

  private async fetchKeys(): Promise<void> {
    const uri = this.issuer.jwksUri!;
    const abort = new AbortController();
    this.abort = abort;
    const timeout = setTimeout(() => abort.abort(), this.settings.fetchTimeoutMs);
    this.fetches++;
    try {
      const res = await this.deps.fetch(uri, { signal: abort.signal, headers: { accept: 'application/jwk-set+json, application/json' } });
      if (!res.ok) throw new Error(`HTTP status ${res.status}`);
      const text = await readLimited(res, this.settings.maxJwksBytes);
      const doc: unknown = JSON.parse(text);
      const { keys, skipped } = await importKeySet(doc, this.issuer.algorithms);
      // An empty set is more likely a broken IdP than a deliberate revocation of every key: keep the last good set.
      if (keys.size === 0) throw new Error('the key set has no key usable with the allowed algorithms');
      if (this.closed) return;
      this.keys = keys;
      this.fetchedDocument = doc;
      if (this.failures > 0) this.deps.logger?.info({ issuer: this.issuer.name, keys: this.keyCount }, 'authz: JWKS fetch works again');
      this.failures = 0;
      this.deps.observer.jwksFetch(this.issuer.name, 'ok');
      this.deps.observer.jwksKeys(this.issuer.name, this.keyCount);
      this.deps.logger?.debug({ issuer: this.issuer.name, keys: this.keyCount, skipped }, 'authz: JWKS refreshed');
    } catch (e) {
      if (this.closed) return;
      this.failures++;
      this.deps.observer.jwksFetch(this.issuer.name, 'error');
      const reason = abort.signal.aborted ? `no answer within ${this.settings.fetchTimeoutMs} ms` : scrubUris(String((e as Error)?.message), uri);
      // Once per incident at warn level; the retries (with backoff) only at debug.
      this.deps.logger?.[this.failures === 1 ? 'warn' : 'debug'](
        { issuer: this.issuer.name, uri: redactUri(uri), reason, keptKeys: this.keyCount },
        'authz: JWKS fetch failed; keeping the last good keys',
      );
    } finally {
      clearTimeout(timeout);
      if (this.abort === abort) this.abort = undefined;
    }
  }
}
