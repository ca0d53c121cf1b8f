// The limit table: a pure index over one model snapshot that answers "which limits and quotas apply
// to this (product, route, partner)". Built once per snapshot and swapped whole by the limiter.
//
// Plan choice: the partner's active, unexpired subscription to the product (partner not suspended);
// otherwise — anonymous callers, and partners without such a subscription — the product's publicPlan;
// otherwise no limits. (A partner without a subscription is never better off than an anonymous
// caller: ext_authz refuses it on non-public routes, and on public routes it gets the public plan.)
//
// Override precedence: the plan's override for the route replaces, independently, the limits, the
// quotas and the countBy of the plan defaults. countBy defaults to partner; partner counting for a
// caller without a partner counts by client IP instead (see countKey).
//
// Counter keys (what shares a budget):
//   plan-level rule:   <plan>:<product>:*:<per>:<count>      one budget across all routes of the product
//   route-level rule:  <plan>:<product>:<route>:<per>:<count> the route's own budget
// A rule is route-level when it comes from the override, or when the override changes countBy (a
// budget counted by a different key on one route cannot be the same budget as on the others).
// <count> is p:<partner> | i:<client ip> | h.<header>:<value> | r:<route> | u: (nothing to count by).
import { createHash } from 'node:crypto';
import { overrideRules, planDefaults, type ModelSnapshot, type CompiledLimit, type CountBy, type Plan, type RuleSet } from '../model/index.ts';
import { PERIOD_MS, type CounterSpec, type QuotaPer, type RatePer } from './algorithms.ts';

export type CountKind = CountBy['kind'];

export type { CompiledLimit, RuleSet };

export type Resolution = { kind: 'rules'; via: 'subscription' | 'public'; rules: RuleSet } | { kind: 'none'; reason: 'unknown_product' | 'no_plan' };

/** Who is asking, as far as counting is concerned. */
export interface Caller {
  partner?: string | undefined;
  clientIp?: string | undefined;
  /** Value of the header the rules count by, when the caller sent it. */
  headerValue?: string | undefined;
}

interface ProductPlan {
  defaults: RuleSet;
  routes: ReadonlyMap<string, RuleSet>;
  /** The answers of resolve(), built once (resolve runs for every request). */
  answers: Record<'subscription' | 'public', { defaults: Resolution; routes: ReadonlyMap<string, Resolution> }>;
}

interface SubscriptionEntry {
  plan: string;
  active: boolean;
  /** ms since the epoch, or Infinity. */
  expiresAt: number;
}

interface ProductEntry {
  publicPlan: ProductPlan | undefined;
  subscriptions: ReadonlyMap<string, SubscriptionEntry & { rules: ProductPlan | undefined }>;
}

const NO_PLAN: Resolution = { kind: 'none', reason: 'no_plan' };
const UNKNOWN_PRODUCT: Resolution = { kind: 'none', reason: 'unknown_product' };

/** Header values are caller-controlled: long ones are hashed so keys stay short and bounded. */
const MAX_KEY_VALUE = 128;

export class LimitTable {
  constructor(
    readonly revision: number,
    private readonly products: ReadonlyMap<string, ProductEntry>,
  ) {}

  hasProduct(product: string): boolean {
    return this.products.has(product);
  }

  /** The plan rules for this caller on this route at time `now` (ms; subscription expiry). */
  resolve(product: string, route: string, partner: string | undefined, now: number): Resolution {
    const p = this.products.get(product);
    if (!p) return UNKNOWN_PRODUCT;
    let plan: ProductPlan | undefined;
    let via: 'subscription' | 'public' = 'public';
    if (partner !== undefined) {
      const s = p.subscriptions.get(partner);
      if (s?.active && now < s.expiresAt && s.rules) {
        plan = s.rules;
        via = 'subscription';
      }
    }
    plan ??= p.publicPlan;
    if (!plan) return NO_PLAN;
    const a = plan.answers[via];
    return a.routes.get(route) ?? a.defaults;
  }
}

/** The count part of a counter key for this caller (see the module comment). */
export function countKey(countBy: CountBy, route: string, caller: Caller): string {
  switch (countBy.kind) {
    case 'route':
      return `r:${route}`;
    case 'header':
      if (caller.headerValue !== undefined && caller.headerValue !== '') {
        return `h.${countBy.header!.toLowerCase()}:${boundedValue(caller.headerValue)}`;
      }
      break;
    case 'partner':
      if (caller.partner !== undefined) return `p:${caller.partner}`;
      break;
    case 'client_ip':
      break;
  }
  // No partner (or no header) to count by: fall back to the client address, so an anonymous caller
  // or one omitting the header is still limited on its own; with no address either, all such
  // callers share one budget.
  return caller.clientIp ? `i:${caller.clientIp}` : 'u:';
}

function boundedValue(v: string): string {
  return v.length <= MAX_KEY_VALUE ? v : `#${createHash('sha256').update(v).digest('base64url')}`;
}

/** The counters one decision touches (key prefix + count key). */
export function counterSpecs(rules: RuleSet, count: string): CounterSpec[] {
  return rules.limits.map((l) =>
    l.kind === 'rate'
      ? { kind: 'bucket', key: `${l.id}:${count}`, requests: l.requests, periodMs: PERIOD_MS[l.per as RatePer], capacity: l.requests + l.burst }
      : { kind: 'window', key: `${l.id}:${count}`, limit: l.requests, per: l.per as QuotaPer },
  );
}

// ── building ─────────────────────────────────────────────────────────────────

function compilePlan(plan: Plan, product: string): ProductPlan {
  const defaults = planDefaults(plan, product);
  const routes = new Map<string, RuleSet>();
  for (const o of plan.overrides ?? []) if (o.product === product) routes.set(o.route, overrideRules(plan, product, o));
  const answers = (via: 'subscription' | 'public') => ({
    defaults: { kind: 'rules', via, rules: defaults } as const,
    routes: new Map([...routes].map(([r, rules]) => [r, { kind: 'rules', via, rules } as const])),
  });
  return { defaults, routes, answers: { subscription: answers('subscription'), public: answers('public') } };
}

function expiry(at: string | undefined): number {
  if (!at) return Infinity;
  const t = Date.parse(at);
  // An unreadable date cannot pass validation; if one did, treat the subscription as expired.
  return Number.isNaN(t) ? -Infinity : t;
}

/** Indexes a model snapshot for rate limiting (pure: the same model gives the same table). */
export function buildLimitTable(model: ModelSnapshot): LimitTable {
  const compiled = new Map<string, ProductPlan>();
  const planFor = (planName: string | undefined, product: string): ProductPlan | undefined => {
    if (!planName) return undefined;
    const plan = model.plans.get(planName);
    if (!plan) return undefined;
    const k = `${planName}\n${product}`;
    let c = compiled.get(k);
    if (!c) compiled.set(k, (c = compilePlan(plan, product)));
    return c;
  };
  const subs = new Map<string, Map<string, SubscriptionEntry & { rules: ProductPlan | undefined }>>();
  for (const s of model.subscriptions.values()) {
    if (!model.products.has(s.product)) continue;
    let m = subs.get(s.product);
    if (!m) subs.set(s.product, (m = new Map()));
    const partner = model.partners.get(s.partner);
    m.set(s.partner, {
      plan: s.plan,
      active: (s.status ?? 'active') === 'active' && partner !== undefined && partner.suspended !== true,
      expiresAt: expiry(s.expiresAt),
      rules: planFor(s.plan, s.product),
    });
  }
  const products = new Map<string, ProductEntry>();
  for (const p of model.products.values()) {
    products.set(p.name, { publicPlan: planFor(p.publicPlan, p.name), subscriptions: subs.get(p.name) ?? new Map() });
  }
  return new LimitTable(model.revision, products);
}
