// Which limits a plan sets on one route, and which of them share a budget with the plan's other
// routes: the one reading of plans, overrides and countBy that the rate limiter (src/ratelimit) and
// the native translation (Envoy token buckets, src/translate) both count by. Pure.
import type { CountBy, Plan, PlanOverride, Quota, RateLimit } from './schemas.ts';

export interface CompiledLimit {
  /** Stable name, also the counter key prefix: `<plan>:<product>:<route|*>:<per>`. */
  id: string;
  kind: 'rate' | 'quota';
  per: RateLimit['per'] | Quota['per'];
  /** Requests per period (rates) or per window (quotas): what X-RateLimit-Limit shows. */
  requests: number;
  /** Extra requests a full bucket holds above the steady rate (0 for quotas). */
  burst: number;
  /** plan: one budget across all routes of the product; route: the route's own budget. */
  scope: 'plan' | 'route';
}

export interface RuleSet {
  plan: string;
  shadow: boolean;
  countBy: CountBy;
  /** Rates first, then quotas. */
  limits: readonly CompiledLimit[];
}

export const DEFAULT_COUNT_BY: CountBy = Object.freeze({ kind: 'partner' }) as CountBy;
const NO_LIMITS: readonly CompiledLimit[] = Object.freeze([]) as readonly CompiledLimit[];

function sameCountBy(a: CountBy, b: CountBy): boolean {
  return a.kind === b.kind && (a.header ?? '').toLowerCase() === (b.header ?? '').toLowerCase();
}

function rates(plan: string, product: string, scope: string, limits: readonly RateLimit[] | undefined): CompiledLimit[] {
  return (limits ?? []).map((l) => ({ id: `${plan}:${product}:${scope}:${l.per}`, kind: 'rate', per: l.per, requests: l.requests, burst: l.burst ?? 0, scope: scope === '*' ? 'plan' : 'route' }));
}

function quotas(plan: string, product: string, scope: string, qs: readonly Quota[] | undefined): CompiledLimit[] {
  return (qs ?? []).map((q) => ({ id: `${plan}:${product}:${scope}:${q.per}`, kind: 'quota', per: q.per, requests: q.requests, burst: 0, scope: scope === '*' ? 'plan' : 'route' }));
}

/** The plan's own rules on a product (routes without an override). */
export function planDefaults(plan: Plan, product: string): RuleSet {
  const all = [...rates(plan.name, product, '*', plan.limits), ...quotas(plan.name, product, '*', plan.quotas)];
  return { plan: plan.name, shadow: plan.shadow === true, countBy: plan.countBy ?? DEFAULT_COUNT_BY, limits: all.length ? all : NO_LIMITS };
}

/**
 * The rules of a plan's override for one route: its limits, quotas and countBy each replace the
 * plan's. Inherited rules stay in the plan-wide budget unless the override counts by something else
 * (a budget counted by another key on one route cannot be the same budget as on the others).
 */
export function overrideRules(plan: Plan, product: string, o: PlanOverride): RuleSet {
  const planCountBy = plan.countBy ?? DEFAULT_COUNT_BY;
  const countBy = o.countBy ?? planCountBy;
  const inheritedScope = sameCountBy(countBy, planCountBy) ? '*' : o.route;
  const limits = o.limits ? rates(plan.name, product, o.route, o.limits) : rates(plan.name, product, inheritedScope, plan.limits);
  const qs = o.quotas ? quotas(plan.name, product, o.route, o.quotas) : quotas(plan.name, product, inheritedScope, plan.quotas);
  const all = [...limits, ...qs];
  return { plan: plan.name, shadow: plan.shadow === true, countBy, limits: all.length ? all : NO_LIMITS };
}

// Plans are immutable: their rules per product and route are computed once.
const ruleCache = new WeakMap<Plan, Map<string, RuleSet>>();

/** The rules a plan sets on one route of a product: its override's, else its own. */
export function planRouteRules(plan: Plan, product: string, route: string): RuleSet {
  let cache = ruleCache.get(plan);
  if (!cache) ruleCache.set(plan, (cache = new Map()));
  const key = `${product}/${route}`;
  let rules = cache.get(key);
  if (!rules) {
    const o = plan.overrides?.find((x) => x.product === product && x.route === route);
    rules = o ? overrideRules(plan, product, o) : planDefaults(plan, product);
    cache.set(key, rules);
  }
  return rules;
}
