// How each gateway group enforces authorization and plan limits: the mode it states, else native
// (Envoy's own filters), falling back to the callouts, product by product, where native cannot count a product's plans.
// The one reading the translator, the quota ledger, usage and the admin API share. Pure.
import { sortedValues, type ModelSnapshot } from './model.ts';
import { planRouteRules } from './plan-rules.ts';
import { effectiveAccept } from './policy.ts';
import type { GatewayGroup, Plan, Route } from './schemas.ts';

export type AuthzMode = 'exact' | 'native';
export type RateLimitMode = 'native' | 'combined' | 'service';

/** local_ratelimit stages Envoy has for plan limits (1–10): one filter instance per distinct limit. */
export const MAX_NATIVE_LIMIT_SHAPES = 10;

/** Authorization: as stated, else native (routes Envoy cannot decide alone stay on the callout, route by route). */
export function authzModeOf(group: Pick<GatewayGroup, 'authz'>): AuthzMode {
  return group.authz?.mode ?? 'native';
}

export interface RateLimitChoice {
  mode: RateLimitMode;
  /** The group states its mode (otherwise it was chosen: native, or combined for `reason`). */
  stated: boolean;
  /** Why an unstated group counts with the callout (combined), in the operator's words. */
  reason?: string;
  /**
   * An unstated native group's products whose plans native limits cannot count (an exact plan, a
   * quota by client address or header), with why: the callout counts (and authorizes) their routes,
   * the group's other products stay native. Per product, because a budget is per plan and product.
   */
  calloutProducts?: ReadonlyMap<string, string>;
}

// Snapshots are immutable: each group's choice is made once per snapshot.
const choices = new WeakMap<ModelSnapshot, Map<string, RateLimitChoice>>();

/** Rate limits and quotas of a group: as stated, else native, with the products whose plans need the callout counted there. */
export function rateLimitChoice(model: ModelSnapshot, group: GatewayGroup): RateLimitChoice {
  if (group.rateLimit?.mode !== undefined) return { mode: group.rateLimit.mode, stated: true };
  let byGroup = choices.get(model);
  if (!byGroup) choices.set(model, (byGroup = new Map()));
  let choice = byGroup.get(group.name);
  if (!choice) {
    const { shapes, products } = limitProblems(model, group.name);
    if (shapes > MAX_NATIVE_LIMIT_SHAPES) choice = { mode: 'combined', stated: false, reason: `its plans have ${shapes} distinct limits; native mode enforces at most ${MAX_NATIVE_LIMIT_SHAPES}` };
    else choice = { mode: 'native', stated: false, ...(products.size ? { calloutProducts: products } : {}) };
    byGroup.set(group.name, choice);
  }
  return choice;
}

export function rateLimitModeOf(model: ModelSnapshot, group: GatewayGroup): RateLimitMode {
  return rateLimitChoice(model, group).mode;
}

/** How a product's plan limits are counted in a group: the group's mode, or combined for a product of a native group that needs the callout. */
export function productRateLimitMode(model: ModelSnapshot, group: GatewayGroup, product: string): RateLimitMode {
  const c = rateLimitChoice(model, group);
  return c.calloutProducts?.has(product) ? 'combined' : c.mode;
}

/** Names of the gateway groups whose plan limits Envoy counts itself (some of their products may still count with the callout). */
export function nativeLimitGroups(model: ModelSnapshot): Set<string> {
  const out = new Set<string>();
  for (const g of model.gatewayGroups.values()) if (g.kind !== 'proxyless-grpc' && rateLimitModeOf(model, g) === 'native') out.add(g.name);
  return out;
}

/**
 * What native limits cannot count in a group: per product, why (a plan asks for exact counting, a
 * quota counted by client address or header: the access log that native quotas are counted from
 * names only partner and route), and how many distinct limits the other products need (Envoy has
 * MAX_NATIVE_LIMIT_SHAPES stages). Every subscription counts, whatever its status, so suspending one
 * never switches a mode.
 */
function limitProblems(model: ModelSnapshot, group: string): { shapes: number; products: Map<string, string> } {
  const plansOf = new Map<string, Set<string>>();
  for (const s of model.subscriptions.values()) {
    let set = plansOf.get(s.product);
    if (!set) plansOf.set(s.product, (set = new Set()));
    set.add(s.plan);
  }
  // Routes grouped by product in one pass: scanning every route per product was quadratic
  // (2,000 products × 10,000 routes took ~1.6 s at each start and each write).
  const routesOf = new Map<string, Route[]>();
  for (const r of model.routes.values()) {
    let list = routesOf.get(r.product);
    if (!list) routesOf.set(r.product, (list = []));
    list.push(r);
  }
  const shapes = new Set<string>();
  const products = new Map<string, string>();
  const list = (s: Set<string>) => [...s].sort().join(', ');
  for (const p of sortedValues(model, 'products')) {
    if (!p.gatewayGroups.includes(group)) continue;
    const own = new Set<string>();
    const exact = new Set<string>();
    const uncountable = new Set<string>();
    const visit = (plan: Plan | undefined, route: Route, subscriber: boolean) => {
      if (!plan) return;
      if (plan.exact === true) exact.add(plan.name);
      const rules = planRouteRules(plan, p.name, route.name);
      if (rules.shadow) return;
      const c = rules.countBy.kind;
      for (const l of rules.limits) {
        if (l.kind === 'rate') own.add(`${l.requests}/${l.per}+${l.burst}`);
        else if (!(c === 'route' || (c === 'partner' && subscriber))) uncountable.add(plan.name);
      }
    };
    for (const r of routesOf.get(p.name) ?? []) {
      const publicOnly = effectiveAccept(p, r).every((a) => a === 'none');
      if (!publicOnly) for (const plan of plansOf.get(p.name) ?? []) visit(model.plans.get(plan), r, true);
      if (p.publicPlan !== undefined) visit(model.plans.get(p.publicPlan), r, false);
    }
    if (exact.size) products.set(p.name, `plan ${list(exact)} asks for exact counting (exact: true)`);
    else if (uncountable.size) products.set(p.name, `plan ${list(uncountable)} counts quotas by client address or header, which native quotas (counted from access logs) cannot`);
    // Only natively counted products need Envoy's stages.
    else for (const sh of own) shapes.add(sh);
  }
  return { shapes: shapes.size, products };
}
