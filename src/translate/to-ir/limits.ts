// Rate limiting as the translator sees it (pure): which routes plan limits can apply to (and what
// they count by), how a gateway group enforces them (one combined callout, or Envoy's rate-limit
// filter), and Envoy's local token buckets (the safety net that needs no callout).
import { sortedValues, DEFAULT_ACCEPT, apiKeyHeader, effectiveAccept, type ModelSnapshot, type CountBy, type LocalRateLimit, type Plan, type Product, type Route } from '../../model/index.ts';
import type { LocalBucketIR } from '../ir.ts';

/** What plan limits mean for one route. */
export interface RouteLimits {
  /** Some plan that can apply on the route holds a rate limit or quota for it. */
  limited: boolean;
  /** Lower-case names of the headers those plans count by on this route, sorted. */
  countHeaders: string[];
}

const NOT_LIMITED: RouteLimits = Object.freeze({ limited: false, countHeaders: [] as string[] }) as RouteLimits;

// Snapshots are immutable: the plans subscribed per product are indexed once per subscriptions map.
const subscribedPlans = new WeakMap<ModelSnapshot['subscriptions'], Map<string, string[]>>();

function plansSubscribedTo(model: ModelSnapshot, product: string): readonly string[] {
  let index = subscribedPlans.get(model.subscriptions);
  if (!index) {
    const sets = new Map<string, Set<string>>();
    for (const s of model.subscriptions.values()) {
      let set = sets.get(s.product);
      if (!set) sets.set(s.product, (set = new Set()));
      set.add(s.plan);
    }
    index = new Map([...sets].map(([p, set]) => [p, [...set].sort()]));
    subscribedPlans.set(model.subscriptions, index);
  }
  return index.get(product) ?? [];
}

// Plans are immutable too: their overrides are indexed by product/route once.
const overrideIndex = new WeakMap<Plan, Map<string, NonNullable<Plan['overrides']>[number]>>();

/** The rules a plan has for one route: the override's limits, quotas and countBy, each replacing the plan's own. */
function planRules(plan: Plan, product: string, route: string): { limited: boolean; countBy: CountBy } {
  let index = overrideIndex.get(plan);
  if (!index) overrideIndex.set(plan, (index = new Map((plan.overrides ?? []).map((x) => [`${x.product}/${x.route}`, x]))));
  const o = index.get(`${product}/${route}`);
  const limits = o?.limits ?? plan.limits ?? [];
  const quotas = o?.quotas ?? plan.quotas ?? [];
  return { limited: limits.length > 0 || quotas.length > 0, countBy: o?.countBy ?? plan.countBy ?? { kind: 'partner' } };
}

/**
 * Which plan limits can apply on a route (the same choice the limiter makes, over every caller):
 * on routes open to anonymous callers (accepting `none`) only the product's publicPlan; elsewhere
 * the plans of the product's subscriptions, and the publicPlan (anonymous calls on JWT-excluded
 * paths, partners without a subscription). A route no such plan limits needs no counting at all.
 */
export function routeLimits(model: ModelSnapshot, product: Product, route: Route): RouteLimits {
  const names = new Set<string>();
  if (product.publicPlan) names.add(product.publicPlan);
  const accept = effectiveAccept(product, route);
  if (!accept.includes('none')) for (const p of plansSubscribedTo(model, product.name)) names.add(p);
  if (names.size === 0) return NOT_LIMITED;
  let limited = false;
  const headers = new Set<string>();
  for (const name of [...names].sort()) {
    const plan = model.plans.get(name);
    if (!plan) continue;
    const r = planRules(plan, product.name, route.name);
    if (!r.limited) continue;
    limited = true;
    if (r.countBy.kind === 'header' && r.countBy.header) headers.add(r.countBy.header.toLowerCase());
  }
  return limited ? { limited, countHeaders: [...headers].sort() } : NOT_LIMITED;
}

/** Whether some route of the group's products can be limited by a plan. */
export function groupHasPlanLimits(model: ModelSnapshot, products: readonly Product[], routesOf: (p: string) => readonly Route[]): boolean {
  return products.some((p) => routesOf(p.name).some((r) => routeLimits(model, p, r).limited));
}

// ── local token buckets ───────────────────────────────────────────────────────

const PERIOD_MS: Record<LocalRateLimit['per'], number> = { second: 1_000, minute: 60_000, hour: 3_600_000 };
/** Envoy refuses a local rate limit fill interval under 50 ms. */
export const MIN_FILL_INTERVAL_MS = 50;

/**
 * A LocalRateLimit as Envoy's token bucket: capacity requests + burst, starting full, refilled at
 * requests per period — `tokensPerFill` every `fillIntervalNs`, the fewest tokens whose interval is
 * at least 50 ms (exact when it divides evenly, else within a nanosecond per fill).
 * `retryAfterSeconds` is the longest a refused caller waits for the next fill (at least 1): what
 * the 429's Retry-After says.
 *
 * Divided among `envoys` Envoys (a limit global to a gateway group, native mode), each gets the
 * rate exactly divided — requests per `envoys` periods, so the fleet's steady rate is the limit
 * with no rounding — and the capacity rounded up, ceil((requests + burst) / envoys), at least 1:
 * a fleet starting full admits at most envoys − 1 requests more than the limit's capacity, and
 * never fewer.
 */
export function localBucket(l: LocalRateLimit, envoys = 1): LocalBucketIR {
  const periodMs = PERIOD_MS[l.per] * envoys;
  const tokensPerFill = Math.max(1, Math.ceil((MIN_FILL_INTERVAL_MS * l.requests) / periodMs));
  const fillIntervalNs = Math.round((periodMs * 1_000_000 * tokensPerFill) / l.requests);
  return {
    requests: l.requests,
    per: l.per,
    maxTokens: Math.max(1, Math.ceil((l.requests + (l.burst ?? 0)) / envoys)),
    tokensPerFill,
    fillIntervalNs,
    retryAfterSeconds: Math.max(1, Math.ceil(fillIntervalNs / 1e9)),
  };
}

/**
 * Plans counting by a product's API key header, on a product that takes API keys: the gateway
 * removes that header before anything counts (keys never reach counters or upstreams), so such a
 * plan could never count by it.
 */
export function apiKeyCountProblems(model: ModelSnapshot): Array<{ plan: string; field: string; header: string; product: string }> {
  const takesKeys = new Set<string>();
  for (const p of model.products.values()) if ((p.auth?.accept ?? DEFAULT_ACCEPT).includes('api_key')) takesKeys.add(p.name);
  for (const r of model.routes.values()) if (r.auth?.accept.includes('api_key')) takesKeys.add(r.product);
  // The API key header of every product that takes keys, and the products each plan applies to.
  const keyHeader = new Map<string, string>();
  for (const name of takesKeys) {
    const product = model.products.get(name);
    const h = product && apiKeyHeader(product);
    if (h) keyHeader.set(name, h);
  }
  const applies = new Map<string, Set<string>>();
  const pair = (plan: string, product: string) => {
    if (!keyHeader.has(product)) return;
    let set = applies.get(plan);
    if (!set) applies.set(plan, (set = new Set()));
    set.add(product);
  };
  for (const s of model.subscriptions.values()) pair(s.plan, s.product);
  for (const p of model.products.values()) if (p.publicPlan) pair(p.publicPlan, p.name);
  const out: Array<{ plan: string; field: string; header: string; product: string }> = [];
  for (const plan of sortedValues(model, 'plans')) {
    const products = [...(applies.get(plan.name) ?? [])].sort();
    if (products.length === 0) continue;
    const check = (c: CountBy | undefined, field: string) => {
      if (c?.kind !== 'header' || !c.header) return;
      const h = c.header.toLowerCase();
      const product = products.find((p) => keyHeader.get(p) === h);
      if (product) out.push({ plan: plan.name, field, header: h, product });
    };
    check(plan.countBy, 'countBy.header');
    plan.overrides?.forEach((o, i) => check(o.countBy, `overrides[${i}].countBy.header`));
  }
  return out;
}
