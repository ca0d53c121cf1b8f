// How each gateway group enforces authorization and plan limits: the mode it states, else native
// (Envoy's own filters), falling back to the callouts where native cannot express the group's plans.
// The one reading the translator, the quota ledger, usage and the admin API share. Pure.
import { sortedValues, type ModelSnapshot } from './model.ts';
import { planRouteRules } from './plan-rules.ts';
import { effectiveAccept } from './policy.ts';
import type { GatewayGroup, Plan, Product, Route } from './schemas.ts';

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
}

// Snapshots are immutable: each group's choice is made once per snapshot.
const choices = new WeakMap<ModelSnapshot, Map<string, RateLimitChoice>>();

/** Rate limits and quotas of a group: as stated, else native unless its plans need the callout. */
export function rateLimitChoice(model: ModelSnapshot, group: GatewayGroup): RateLimitChoice {
  if (group.rateLimit?.mode !== undefined) return { mode: group.rateLimit.mode, stated: true };
  let byGroup = choices.get(model);
  if (!byGroup) choices.set(model, (byGroup = new Map()));
  let choice = byGroup.get(group.name);
  if (!choice) {
    const reason = nativeLimitProblem(model, group.name);
    choice = reason === undefined ? { mode: 'native', stated: false } : { mode: 'combined', stated: false, reason };
    byGroup.set(group.name, choice);
  }
  return choice;
}

export function rateLimitModeOf(model: ModelSnapshot, group: GatewayGroup): RateLimitMode {
  return rateLimitChoice(model, group).mode;
}

/** Names of the gateway groups whose plan limits Envoy counts itself. */
export function nativeLimitGroups(model: ModelSnapshot): Set<string> {
  const out = new Set<string>();
  for (const g of model.gatewayGroups.values()) if (g.kind !== 'proxyless-grpc' && rateLimitModeOf(model, g) === 'native') out.add(g.name);
  return out;
}

/**
 * Why native limits cannot serve a group's plans, or undefined when they can: a plan asks for exact
 * counting, a quota counted by client address or header (the access log that native quotas are
 * counted from names only partner and route), or more distinct limits than Envoy has stages. Every
 * subscription counts, whatever its status, so suspending one never switches the group's mode.
 */
export function nativeLimitProblem(model: ModelSnapshot, group: string): string | undefined {
  const plansOf = new Map<string, Set<string>>();
  for (const s of model.subscriptions.values()) {
    let set = plansOf.get(s.product);
    if (!set) plansOf.set(s.product, (set = new Set()));
    set.add(s.plan);
  }
  const shapes = new Set<string>();
  const exact = new Set<string>();
  const uncountable = new Set<string>();
  const visit = (plan: Plan | undefined, product: Product, route: Route, subscriber: boolean) => {
    if (!plan) return;
    if (plan.exact === true) exact.add(plan.name);
    const rules = planRouteRules(plan, product.name, route.name);
    if (rules.shadow) return;
    const c = rules.countBy.kind;
    for (const l of rules.limits) {
      if (l.kind === 'rate') shapes.add(`${l.requests}/${l.per}+${l.burst}`);
      else if (!(c === 'route' || (c === 'partner' && subscriber))) uncountable.add(plan.name);
    }
  };
  // Routes grouped by product in one pass: scanning every route per product was quadratic
  // (2,000 products × 10,000 routes took ~1.6 s at each start and each write).
  const routesOf = new Map<string, Route[]>();
  for (const r of model.routes.values()) {
    let list = routesOf.get(r.product);
    if (!list) routesOf.set(r.product, (list = []));
    list.push(r);
  }
  for (const p of sortedValues(model, 'products')) {
    if (!p.gatewayGroups.includes(group)) continue;
    for (const r of routesOf.get(p.name) ?? []) {
      const publicOnly = effectiveAccept(p, r).every((a) => a === 'none');
      if (!publicOnly) for (const plan of plansOf.get(p.name) ?? []) visit(model.plans.get(plan), p, r, true);
      if (p.publicPlan !== undefined) visit(model.plans.get(p.publicPlan), p, r, false);
    }
  }
  const list = (s: Set<string>) => [...s].sort().join(', ');
  if (exact.size) return `plan ${list(exact)} asks for exact counting (exact: true)`;
  if (uncountable.size) return `plan ${list(uncountable)} counts quotas by client address or header, which native quotas (counted from access logs) cannot`;
  if (shapes.size > MAX_NATIVE_LIMIT_SHAPES) return `its plans have ${shapes.size} distinct limits; native mode enforces at most ${MAX_NATIVE_LIMIT_SHAPES}`;
  return undefined;
}
