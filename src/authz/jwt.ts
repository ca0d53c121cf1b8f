// JWT verification with jose: verifies bearer tokens against the accepted issuers' key sets
// (jwks.ts) and keeps a bounded cache of verified tokens.
import { createHash } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import type { JwtAlgorithm } from '../model/index.ts';
import type { IssuerEntry } from './credential-index.ts';
import type { JwtOutcome } from './decide.ts';
import { Lru } from './lru.ts';
import { DEFAULT_JWT_SETTINGS, JwksSource, noObserver, type JwtSettings, type JwtVerifierDeps } from './jwks.ts';

interface CachedToken {
  issuerName: string;
  fingerprint: string;
  source: JwksSource;
  kid: string | undefined;
  alg: JwtAlgorithm;
  key: CryptoKey;
  payload: JWTPayload;
}

const fail = (message: string): JwtOutcome => ({ ok: false, error: 'invalid_token', message });

/** jose's verdicts in words a caller can act on (never echoing the token). */
function outcomeOfError(e: unknown): JwtOutcome {
  const err = e as { code?: string; claim?: string };
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
      return fail('The token has expired.');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      switch (err.claim) {
        case 'nbf':
          return fail('The token is not valid yet.');
        case 'aud':
          return fail('The token audience is not accepted by this API.');
        case 'iss':
          return fail('The token issuer is not accepted by this API.');
        case 'exp':
          return fail('The token has no valid expiry (exp) claim.');
        default:
          return fail('The token claims are invalid.');
      }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return fail('The token signature is invalid.');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return fail('The token signing algorithm is not accepted.');
    default:
      return fail('The token is malformed.');
  }
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Verifies bearer tokens against the accepted issuers; the key sets are synced from each index. */
export class JwtVerifier {
  readonly settings: JwtSettings;
  private readonly sources = new Map<string, JwksSource>();
  private readonly cache: Lru<string, CachedToken>;
  private readonly deps: Required<Pick<JwtVerifierDeps, 'observer' | 'now' | 'fetch'>> & { logger: Logger | undefined };

  constructor(settings: Partial<JwtSettings> = {}, deps: JwtVerifierDeps = {}) {
    this.settings = { ...DEFAULT_JWT_SETTINGS, ...settings };
    this.cache = new Lru(this.settings.tokenCacheSize);
    this.deps = {
      observer: deps.observer ?? noObserver,
      now: deps.now ?? Date.now,
      fetch: deps.fetch ?? fetch,
      logger: deps.logger,
    };
  }

  /** Starts, keeps or replaces one key source per issuer (unchanged issuers keep their keys and timers). */
  sync(issuers: ReadonlyMap<string, IssuerEntry>): void {
    for (const [name, src] of this.sources) {
      const i = issuers.get(name);
      if (!i || identityOf(i) !== src.identity) {
        src.close();
        this.sources.delete(name);
      }
    }
    for (const [name, i] of issuers) {
      if (this.sources.has(name)) continue;
      const src = new JwksSource(i, identityOf(i), this.settings, this.deps);
      this.sources.set(name, src);
      src.start();
    }
  }

  source(issuerName: string): JwksSource | undefined {
    return this.sources.get(issuerName);
  }

  /** Every issuer's first key load has settled. */
  async ready(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.ready()));
  }

  close(): void {
    for (const s of this.sources.values()) s.close();
    this.sources.clear();
    this.cache.clear();
  }

  /**
   * Verifies a token from one of `accepted`. Synchronous for cached tokens and for anything refused
   * before the signature check; a Promise otherwise. Never throws and never rejects.
   */
  verify(token: string, accepted: readonly IssuerEntry[], now: number): JwtOutcome | Promise<JwtOutcome> {
    if (token.length > this.settings.maxTokenBytes) return fail('The token is too large.');
    if (!COMPACT_JWS.test(token)) return fail('The token is malformed.');
    const cacheKey = this.settings.tokenCacheSize > 0 ? createHash('sha256').update(token).digest('base64') : '';
    if (cacheKey !== '') {
      const hit = this.cache.get(cacheKey, now);
      if (hit) {
        const issuer = accepted.find((i) => i.name === hit.issuerName);
        // Reused only while the issuer's configuration, key source and key are all unchanged.
        if (issuer && issuer.fingerprint === hit.fingerprint && this.sources.get(issuer.name) === hit.source && hit.source.stillPublishes(hit.kid, hit.alg, hit.key)) {
          this.deps.observer.tokenCache('hit');
          return { ok: true, issuer, payload: hit.payload };
        }
      }
      this.deps.observer.tokenCache('miss');
    }

    let alg: unknown;
    let kidRaw: unknown;
    let iss: unknown;
    try {
      const header = decodeProtectedHeader(token);
      alg = header.alg;
      kidRaw = header.kid;
      iss = decodeJwt(token).iss;
    } catch {
      return fail('The token is malformed.');
    }
    if (typeof alg !== 'string') return fail('The token is malformed.');
    const issuer = typeof iss === 'string' ? accepted.find((i) => i.issuer === iss) : undefined;
    if (!issuer) return fail('The token issuer is not accepted by this API.');
    // The allow-list is asymmetric algorithms only, so `none` and HS* (key confusion) stop here.
    if (!(issuer.algorithms as readonly string[]).includes(alg)) return fail('The token signing algorithm is not accepted.');
    const algorithm = alg as JwtAlgorithm;
    const source = this.sources.get(issuer.name);
    if (!source) return fail('The token issuer has no keys loaded.');
    const kid = typeof kidRaw === 'string' ? kidRaw : undefined;

    const found = source.key(kid, algorithm);
    if (found === 'ambiguous') return fail('The token has no key id (kid) and the issuer publishes several keys.');
    if (found) return this.verifyWith(token, issuer, source, kid, algorithm, found, now, cacheKey);

    const pending = source.keyMayAppear();
    if (!pending || this.settings.unknownKidWaitMs <= 0) return fail('The token was signed by a key the issuer does not publish.');
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.settings.unknownKidWaitMs);
      timer.unref();
    });
    return Promise.race([pending, waited]).then(() => {
      clearTimeout(timer);
      const k = source.key(kid, algorithm);
      if (k === undefined || k === 'ambiguous') return fail('The token was signed by a key the issuer does not publish.');
      return this.verifyWith(token, issuer, source, kid, algorithm, k, this.deps.now(), cacheKey);
    });
  }

  private async verifyWith(token: string, issuer: IssuerEntry, source: JwksSource, kid: string | undefined, alg: JwtAlgorithm, key: CryptoKey, now: number, cacheKey: string): Promise<JwtOutcome> {
    try {
      const { payload } = await jwtVerify(token, key, {
        issuer: issuer.issuer,
        audience: [...issuer.audiences],
        algorithms: [alg],
        clockTolerance: issuer.clockSkewSeconds,
        currentDate: new Date(now),
        // A token without an expiry would be valid forever.
        requiredClaims: ['exp'],
      });
      if (cacheKey !== '' && typeof payload.exp === 'number') {
        this.cache.set(cacheKey, { issuerName: issuer.name, fingerprint: issuer.fingerprint, source, kid, alg, key, payload }, (payload.exp + issuer.clockSkewSeconds) * 1000);
      }
      return { ok: true, issuer, payload };
    } catch (e) {
      return outcomeOfError(e);
    }
  }
}

function identityOf(i: IssuerEntry): string {
  return JSON.stringify([i.jwksUri ?? null, i.jwks ?? null, i.algorithms]);
}
