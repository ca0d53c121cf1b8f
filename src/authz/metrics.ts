// ext_authz metrics on a prom-client registry: decisions, Check latency, JWKS fetches, token cache.
// Label values are bounded: names not in the model fold into "unknown", partners beyond a cap into "other".
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { PartnerLabels } from '../contract/index.ts';
import type { CredentialType } from '../model/index.ts';
import type { JwtObserver } from './jwks.ts';
import { registeredMetric } from '../telemetry/index.ts';

export interface AuthzMetricsOptions {
  registry: Registry;
  /** Distinct partner label values kept; later partners are counted as "other". */
  maxPartnerLabels?: number;
}

type Outcome = 'allow' | 'deny';

export class AuthzMetrics implements JwtObserver {
  private readonly decisions: Counter<'product' | 'partner' | 'outcome' | 'credential' | 'reason'>;
  private readonly latency: Histogram<'outcome'>;
  private readonly fetches: Counter<'issuer' | 'result'>;
  private readonly keys: Gauge<'issuer'>;
  private readonly cache: Counter<'result'>;
  private readonly partners: PartnerLabels;
  private knownProducts: ReadonlySet<string> = new Set();
  // prom-client hashes label objects on every inc(); children are cached per label tuple instead.
  private readonly children = new Map<string, { inc(): void }>();
  private readonly latencyChildren = new Map<Outcome, { observe(v: number): void }>();

  constructor(opts: AuthzMetricsOptions) {
    const registers = [opts.registry];
    this.partners = new PartnerLabels(opts.maxPartnerLabels);
    const r = opts.registry;
    this.decisions = registeredMetric(
      r,
      'portico_authz_decisions_total',
      () =>
        new Counter({
          name: 'portico_authz_decisions_total',
          help: 'ext_authz decisions by product, partner, outcome, credential type and reason',
          labelNames: ['product', 'partner', 'outcome', 'credential', 'reason'],
          registers,
        }),
    );
    this.latency = registeredMetric(
      r,
      'portico_authz_check_duration_seconds',
      () =>
        new Histogram({
          name: 'portico_authz_check_duration_seconds',
          help: 'Time to answer one ext_authz Check, from received bytes to the encoded response',
          labelNames: ['outcome'],
          buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
          registers,
        }),
    );
    this.fetches = registeredMetric(
      r,
      'portico_authz_jwks_fetches_total',
      () =>
        new Counter({
          name: 'portico_authz_jwks_fetches_total',
          help: 'JWKS fetches by issuer and result',
          labelNames: ['issuer', 'result'],
          registers,
        }),
    );
    this.keys = registeredMetric(
      r,
      'portico_authz_jwks_keys',
      () =>
        new Gauge({
          name: 'portico_authz_jwks_keys',
          help: 'Verification keys loaded per issuer',
          labelNames: ['issuer'],
          registers,
        }),
    );
    this.cache = registeredMetric(
      r,
      'portico_authz_token_cache_total',
      () =>
        new Counter({
          name: 'portico_authz_token_cache_total',
          help: 'Verified-token cache lookups by result',
          labelNames: ['result'],
          registers,
        }),
    );
  }

  /** Products and partners of the current index: only these become label values (a token may name anything). */
  setKnown(products: Iterable<string>, partners: Iterable<string>): void {
    this.knownProducts = new Set(products);
    this.partners.setKnown(partners);
  }

  decision(product: string | undefined, partner: string | undefined, outcome: Outcome, credential: CredentialType | undefined, reason: string): void {
    const prod = product === undefined ? 'none' : this.knownProducts.has(product) ? product : 'unknown';
    const part = this.partners.label(partner);
    const cred = credential ?? 'none';
    const key = `${prod}\0${part}\0${outcome}\0${cred}\0${reason}`;
    let child = this.children.get(key);
    if (!child) {
      child = this.decisions.labels(prod, part, outcome, cred, reason);
      this.children.set(key, child);
    }
    child.inc();
  }

  checkDuration(seconds: number, outcome: Outcome): void {
    let child = this.latencyChildren.get(outcome);
    if (!child) {
      child = this.latency.labels(outcome);
      this.latencyChildren.set(outcome, child);
    }
    child.observe(seconds);
  }

  private readonly cacheChildren = new Map<string, { inc(): void }>();

  tokenCache(result: 'hit' | 'miss'): void {
    let child = this.cacheChildren.get(result);
    if (!child) {
      child = this.cache.labels(result);
      this.cacheChildren.set(result, child);
    }
    child.inc();
  }

  jwksFetch(issuer: string, result: 'ok' | 'error'): void {
    this.fetches.labels(issuer, result).inc();
  }

  jwksKeys(issuer: string, keys: number): void {
    this.keys.labels(issuer).set(keys);
  }
}
