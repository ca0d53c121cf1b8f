// The credential index (pure): everything ext_authz needs from one model snapshot, in lookup-ready
// form. Rebuilt from each snapshot and swapped whole, so a Check never sees half of a change.
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_JWT_ALGORITHMS,
  canonicalResource,
  sortedValues,
  normalizeFingerprint,
  apiKeyHeader,
  effectiveAccept,
  type ModelSnapshot,
  type CredentialType,
  type JwtAlgorithm,
  type JwtIssuer,
} from '../model/index.ts';
import type { SecretHasher } from '../store/index.ts';
// The translator decides which credential types Envoy sends here; using its rule keeps the two in step.
import { GATEWAY_HEADERS } from '../contract/index.ts';
import { canonicalSan, canonicalSubject, type MtlsIndex } from './mtls.ts';

// The defaults are the model's: the native translator applies the same ones.
export { DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_JWT_ALGORITHMS };

export interface ApiKeyEntry {
  partner: string;
  name: string;
  /** Keyed hash of the whole key (base64url HMAC-SHA256), as stored. */
  hash: string;
  /** Epoch milliseconds; Infinity when the key never expires. */
  expiresAt: number;
  revoked: boolean;
}

export interface PartnerEntry {
  name: string;
  suspended: boolean;
}

export interface SubscriptionEntry {
  partner: string;
  product: string;
  plan: string;
  active: boolean;
  /** Epoch milliseconds; Infinity when it never expires. */
  expiresAt: number;
  /** Allowed methods and routes (the access level); undefined means all. */
  methods: ReadonlySet<string> | undefined;
  routes: ReadonlySet<string> | undefined;
}

export interface RouteEntry {
  name: string;
  /** route.auth ?? product.auth ?? the default (see effectiveAccept in src/model/policy.ts). */
  accept: readonly CredentialType[];
}

export interface IssuerEntry {
  name: string;
  /** The `iss` claim value. */
  issuer: string;
  audiences: readonly string[];
  algorithms: readonly JwtAlgorithm[];
  partner: string | undefined;
  partnerClaim: string | undefined;
  /** [claim, lower-case header] pairs, sorted by header. */
  forwardClaims: ReadonlyArray<readonly [string, string]>;
  excludedPaths: readonly string[];
  /** The upstream gets the caller's Authorization header (forwardToken); otherwise it is removed on allow. */
  forwardToken: boolean;
  clockSkewSeconds: number;
  jwksUri: string | undefined;
  jwks: { keys: ReadonlyArray<Record<string, unknown>> } | undefined;
  /** Canonical JSON of the issuer resource: cached verifications are only reused while it is unchanged. */
  fingerprint: string;
}

export interface ProductEntry {
  name: string;
  routes: ReadonlyMap<string, RouteEntry>;
  /** What a route of this product accepts when the route is not (yet) in the index. */
  defaultAccept: readonly CredentialType[];
  /** Lower-case header name and query parameter name carrying API keys (either may be absent). */
  apiKeyHeader: string | undefined;
  apiKeyQuery: string | undefined;
  /** JWT issuers this product accepts (product.jwtIssuers, or every issuer). */
  issuers: readonly IssuerEntry[];
  /** Paths where the accepted issuers waive the token: exact paths, and prefixes (entries ending in '/'). */
  excludedExact: ReadonlySet<string>;
  excludedPrefixes: readonly string[];
  publicPlan: string | undefined;
}

export interface CredentialIndex {
  /** Model revision the index was built from. */
  revision: number;
  hasher: SecretHasher;
  products: ReadonlyMap<string, ProductEntry>;
  partners: ReadonlyMap<string, PartnerEntry>;
  /** Keyed by `partner/product`. */
  subscriptions: ReadonlyMap<string, SubscriptionEntry>;
  /** API keys by their public prefix (unique per model validation). */
  apiKeys: ReadonlyMap<string, ApiKeyEntry>;
  issuers: ReadonlyMap<string, IssuerEntry>;
  issuersByIss: ReadonlyMap<string, IssuerEntry>;
  mtls: MtlsIndex;
  /**
   * Every request header the gateway owns: the x-portico-* headers and every forwardClaims header of
   * every issuer (lower case, sorted). Client-sent copies are removed on every allowed request.
   */
  identityHeaders: readonly string[];
}

export interface CredentialIndexOptions {
  /** The keyed hasher API keys were stored with (ModelStore.apiKeyHasher()). */
  hasher: SecretHasher;
}

function epochMs(ts: string | undefined): number {
  if (ts === undefined) return Number.POSITIVE_INFINITY;
  const t = Date.parse(ts);
  // An unparseable timestamp cannot pass schema validation; treat it as already expired (fail closed).
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

function issuerEntry(j: JwtIssuer): IssuerEntry {
  return {
    name: j.name,
    issuer: j.issuer,
    audiences: [...j.audiences],
    algorithms: j.algorithms ? [...j.algorithms] : DEFAULT_JWT_ALGORITHMS,
    partner: j.partner,
    partnerClaim: j.partnerClaim,
    forwardClaims: Object.entries(j.forwardClaims ?? {})
      .map(([claim, header]) => [claim, header.toLowerCase()] as const)
      .sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)),
    excludedPaths: [...(j.excludedPaths ?? [])],
    forwardToken: j.forwardToken === true,
    clockSkewSeconds: j.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS,
    jwksUri: j.jwksUri,
    jwks: j.jwks,
    fingerprint: JSON.stringify(canonicalResource('jwtIssuers', j)),
  };
}

/** Builds the index from one snapshot. Pure: the same snapshot gives an equal index. */
export function buildCredentialIndex(model: ModelSnapshot, options: CredentialIndexOptions): CredentialIndex {
  const issuers = new Map<string, IssuerEntry>();
  const issuersByIss = new Map<string, IssuerEntry>();
  const identity = new Set<string>(Object.values(GATEWAY_HEADERS));
  for (const j of sortedValues(model, 'jwtIssuers')) {
    const e = issuerEntry(j);
    issuers.set(e.name, e);
    // Validation keeps `issuer` unique; if it ever is not, the first by name wins (deterministic).
    if (!issuersByIss.has(e.issuer)) issuersByIss.set(e.issuer, e);
    for (const [, h] of e.forwardClaims) identity.add(h);
  }

  const routesByProduct = new Map<string, Map<string, RouteEntry>>();
  for (const r of sortedValues(model, 'routes')) {
    const product = model.products.get(r.product);
    if (!product) continue;
    let m = routesByProduct.get(r.product);
    if (!m) routesByProduct.set(r.product, (m = new Map()));
    m.set(r.name, { name: r.name, accept: [...effectiveAccept(product, r)] });
  }

  const products = new Map<string, ProductEntry>();
  for (const p of sortedValues(model, 'products')) {
    const accepted = p.jwtIssuers ? p.jwtIssuers.map((n) => issuers.get(n)).filter((e): e is IssuerEntry => e !== undefined) : [...issuers.values()];
    const excludedExact = new Set<string>();
    const excludedPrefixes: string[] = [];
    for (const i of accepted) {
      for (const path of i.excludedPaths) {
        if (path.endsWith('/')) excludedPrefixes.push(path);
        else excludedExact.add(path);
      }
    }
    const queryParameter = p.apiKey?.queryParameter;
    const header = apiKeyHeader(p);
    products.set(p.name, {
      name: p.name,
      routes: routesByProduct.get(p.name) ?? new Map(),
      defaultAccept: [...effectiveAccept(p, {})],
      apiKeyHeader: header,
      apiKeyQuery: queryParameter,
      issuers: accepted,
      excludedExact,
      excludedPrefixes: [...new Set(excludedPrefixes)].sort(),
      publicPlan: p.publicPlan,
    });
  }

  const partners = new Map<string, PartnerEntry>();
  for (const p of sortedValues(model, 'partners')) partners.set(p.name, { name: p.name, suspended: p.suspended === true });

  const subscriptions = new Map<string, SubscriptionEntry>();
  for (const s of sortedValues(model, 'subscriptions')) {
    subscriptions.set(`${s.partner}/${s.product}`, {
      partner: s.partner,
      product: s.product,
      plan: s.plan,
      active: (s.status ?? 'active') === 'active',
      expiresAt: epochMs(s.expiresAt),
      methods: s.access?.methods ? new Set(s.access.methods) : undefined,
      routes: s.access?.routes ? new Set(s.access.routes) : undefined,
    });
  }

  const apiKeys = new Map<string, ApiKeyEntry>();
  for (const k of sortedValues(model, 'apiKeys')) {
    if (apiKeys.has(k.prefix)) continue; // unique per validation; first by key wins otherwise
    apiKeys.set(k.prefix, { partner: k.partner, name: k.name, hash: k.hash, expiresAt: epochMs(k.expiresAt), revoked: k.revoked === true });
  }

  const mtls = {
    subject: new Map<string, string>(),
    sanTyped: new Map<string, string>(),
    sanAny: new Map<string, string>(),
    spiffe: new Map<string, string>(),
    fingerprint: new Map<string, string>(),
  };
  const put = (m: Map<string, string>, k: string, partner: string) => {
    if (!m.has(k)) m.set(k, partner);
  };
  for (const i of sortedValues(model, 'mtlsIdentities')) {
    const v = i.match.value;
    switch (i.match.type) {
      case 'fingerprint':
        put(mtls.fingerprint, normalizeFingerprint(v), i.partner);
        break;
      case 'spiffe_id':
        put(mtls.spiffe, v, i.partner);
        break;
      case 'subject': {
        const c = canonicalSubject(v);
        if (c !== undefined) put(mtls.subject, c, i.partner);
        break;
      }
      case 'san': {
        const san = canonicalSan(v);
        if (san.type) put(mtls.sanTyped, `${san.type}:${san.value}`, i.partner);
        else put(mtls.sanAny, san.value, i.partner);
        break;
      }
    }
  }

  return {
    revision: model.revision,
    hasher: options.hasher,
    products,
    partners,
    subscriptions,
    apiKeys,
    issuers,
    issuersByIss,
    mtls,
    identityHeaders: [...identity].sort(),
  };
}
