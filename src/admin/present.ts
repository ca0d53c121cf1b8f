// How the admin API shows resources: canonical fields plus bookkeeping, never a secret, each
// serialised once per version; sorted keys and page caches for the list endpoints.
import { X509Certificate } from 'node:crypto';
import {
  authzModeOf,
  canonicalResource,
  jwtIssuerCalloutReason,
  keyOf,
  metaKey,
  rateLimitChoice,
  type AnyResource,
  type GatewayGroup,
  type JwtIssuer,
  type KindName,
  type ModelSnapshot,
} from '../model/index.ts';

/** A resource as the API shows it: canonical fields, bookkeeping, never a secret. */
export function present(kind: KindName, r: AnyResource, model: ModelSnapshot): Record<string, unknown> {
  const out = { ...(canonicalResource(kind, r) as Record<string, unknown>) };
  if (kind === 'certificates') {
    const hasKey = out.privateKey !== undefined;
    delete out.privateKey;
    out.hasPrivateKey = hasKey;
    try {
      const x = new X509Certificate(String(out.certificate));
      Object.assign(out, {
        subject: x.subject.replace(/\n/g, ', '),
        issuer: x.issuer.replace(/\n/g, ', '),
        notBefore: new Date(x.validFrom).toISOString(),
        notAfter: new Date(x.validTo).toISOString(),
        fingerprintSha256: x.fingerprint256.replace(/:/g, '').toLowerCase(),
      });
    } catch {
      // Stored certificates were validated on write; nothing to add if parsing fails here.
    }
  }
  if (kind === 'apiKeys') {
    delete out.hash;
    // Which keys Envoy can check itself (sealed) and which only the callout can (hash-only imports).
    out.storage = out.secret !== undefined ? 'sealed' : 'hash-only';
    delete out.secret;
  }
  if (kind === 'jwtIssuers') {
    // Where tokens of this issuer are verified in native mode: by Envoy itself, or by the callout (and why).
    const reason = jwtIssuerCalloutReason(r as JwtIssuer);
    out.nativeVerification = reason === undefined ? { envoy: true } : { envoy: false, reason };
  }
  if (kind === 'gatewayGroups' && (r as GatewayGroup).kind !== 'proxyless-grpc') {
    // The modes the group really runs (native unless stated), and why limits fall back to the callout.
    const g = r as GatewayGroup;
    const limits = rateLimitChoice(model, g);
    out.enforcement = {
      authz: { mode: authzModeOf(g), stated: g.authz?.mode !== undefined },
      rateLimit: {
        mode: limits.mode,
        stated: limits.stated,
        ...(limits.reason !== undefined ? { reason: limits.reason } : {}),
        ...(limits.calloutProducts ? { calloutProducts: Object.fromEntries([...limits.calloutProducts].sort(([a], [b]) => (a < b ? -1 : 1))) } : {}),
      },
    };
  }
  const meta = model.meta.get(metaKey(kind, keyOf(kind, r)));
  if (meta) Object.assign(out, meta);
  return out;
}

// Resources and their bookkeeping objects are immutable and replaced on change, so both can key
// caches: sorted keys per kind map, serialised JSON per (resource, meta) pair.
const sortedKeyCache = new WeakMap<ReadonlyMap<string, AnyResource>, string[]>();
const jsonCache = new WeakMap<AnyResource, { meta: unknown; scope: ModelSnapshot | undefined; json: string }>();
/**
 * Whole list pages by request URL, per model snapshot: dashboards and scripts poll the same pages,
 * and a page of 100 items costs ~0.1 ms to assemble. A write makes a new snapshot, so a page never
 * outlives the model it shows. Bounded per snapshot.
 */
export const pageCache = new WeakMap<ModelSnapshot, Map<string, string>>();
export const PAGE_CACHE_MAX = 512;

export function sortedKeys(m: ReadonlyMap<string, AnyResource>): string[] {
  let keys = sortedKeyCache.get(m);
  if (!keys) {
    keys = [...m.keys()].sort();
    sortedKeyCache.set(m, keys);
  }
  return keys;
}

/** First index whose key is greater than (or, with `inclusive`, equal to) `key`; keys are sorted. */
export function upperBound(keys: readonly string[], key: string, inclusive = false): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key || (!inclusive && keys[mid] === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The keys that start with `prefix`: a contiguous range of the sorted keys. */
export function keyRange(keys: string[], prefix: string): string[] {
  if (!prefix) return keys;
  const start = upperBound(keys, prefix, true);
  let end = start;
  while (end < keys.length && keys[end]!.startsWith(prefix)) end++;
  return keys.slice(start, end);
}

/** A resource as JSON through `serialize` (its answer schema's serialiser: the allow-list of what is sent). */
export function presentedJson(kind: KindName, r: AnyResource, model: ModelSnapshot, serialize: (o: Record<string, unknown>) => string): string {
  const meta = model.meta.get(metaKey(kind, keyOf(kind, r)));
  // A gateway group's enforcement reads its products, plans and subscriptions: valid for one snapshot only.
  const scope = kind === 'gatewayGroups' ? model : undefined;
  const hit = jsonCache.get(r);
  if (hit && hit.meta === meta && hit.scope === scope) return hit.json;
  const json = serialize(present(kind, r, model));
  jsonCache.set(r, { meta, scope, json });
  return json;
}
