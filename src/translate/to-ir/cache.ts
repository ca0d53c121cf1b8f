// Model → IR for response caching: a route's cache settings with defaults resolved, and the group's
// cache profiles — one per distinct maximum object size, which Envoy's cache filter cannot change per
// route, so each profile is a filter instance routes switch on.
import type { Route } from '../../model/index.ts';
import type { CacheIR, CacheProfileIR, RouteIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';

export const CACHE_DEFAULTS = { ttlSeconds: 60, maxObjectBytes: 1_048_576 } as const;

/** A route's cache; `authenticated`: the route needs a credential, so entries are private per partner unless it says shared. */
export function cacheIr(route: Route, authenticated: boolean): CacheIR | undefined {
  const c = route.cache;
  if (!c || c.enabled === false || (!route.service && !route.backends)) return undefined;
  return {
    scope: c.scope ?? (authenticated ? 'partner' : 'shared'),
    generation: c.generation ?? 0,
    defaultTtlSeconds: c.defaultTtlSeconds ?? CACHE_DEFAULTS.ttlSeconds,
    varyHeaders: [...new Set((c.varyHeaders ?? []).map((h) => h.toLowerCase()))].sort(compareStrings),
    varyQuery: [...(c.varyQuery ?? [])].sort(compareStrings),
    maxObjectBytes: c.maxObjectBytes ?? CACHE_DEFAULTS.maxObjectBytes,
  };
}

/** What makes two routes' cache filters the same instance. */
export function cacheProfileKey(c: CacheProfileIR): string {
  return String(c.maxObjectBytes);
}

/** The group's cache profiles, sorted by key. */
export function cacheProfiles(routes: Iterable<RouteIR>): CacheProfileIR[] {
  const profiles = new Map<string, CacheProfileIR>();
  for (const r of routes) if (r.cache) profiles.set(cacheProfileKey(r.cache), { maxObjectBytes: r.cache.maxObjectBytes });
  return [...profiles].sort((a, b) => a[1].maxObjectBytes - b[1].maxObjectBytes).map(([, p]) => p);
}

/** Services a cached route sends misses to (their clusters restore the key's Host). */
export function cachedServices(routes: Iterable<RouteIR>): Set<string> {
  const out = new Set<string>();
  for (const r of routes) if (r.cache && r.action.kind === 'forward') for (const c of r.action.clusters) out.add(c.name);
  return out;
}
