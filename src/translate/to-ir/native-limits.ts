// Native mode (rateLimit.mode: native): plan rate limits as Envoy local token buckets, no callout.
// Pure: for one gateway group, the buckets (local_ratelimit descriptors) and, per route, the rate
// limit actions that pick the caller's buckets — with the budgets and fallbacks the rate limiter
// counts by (src/ratelimit/README.md), each limit's rate divided among the group's Envoys.
import { GATEWAY_HEADERS } from '../../contract/index.ts';
import { MAX_NATIVE_LIMIT_SHAPES, effectiveAccept, planRouteRules, type CompiledLimit, type ModelSnapshot, type Product, type RateLimit, type Route, type RuleSet } from '../../model/index.ts';
import type { DescriptorEntryIR, LimitActionIR, PlanLimitFilterIR, QuotaDenyIR, QuotaExhaustedIR, QuotaPrincipalIR, QuotaShapeIR, RouteLimitEntryIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { productRoutes } from './common.ts';
import { localBucket } from './limits.ts';

/** Descriptor entry keys of native budgets (`remote_address` is Envoy's own key for that action). */
const KEY = {
  plan: 'portico_plan',
  budget: 'portico_budget',
  partner: 'portico_partner',
  header: 'portico_header',
  route: 'portico_route',
  anonymous: 'portico_anonymous',
  noHeader: 'portico_no_header',
  remote: 'remote_address',
} as const;

const PARTNER = GATEWAY_HEADERS.partner;

export interface NativeLimits {
  filters: PlanLimitFilterIR[];
  /** Rate limit entries per route IR name (`<product>/<route>`). */
  routes: Map<string, RouteLimitEntryIR[]>;
  /** The quotas of the group's plans, sorted. */
  quotas: QuotaShapeIR[];
  /** Quota refusals per route IR name, for the exhausted budgets given. */
  quotaDeny: Map<string, QuotaDenyIR[]>;
  /** Plans whose quotas native mode cannot count (by client address or header: the access log carries neither). */
  uncountableQuotas: string[];
  /** Distinct limits (requests, per, burst) past the stages there are, when there are too many. */
  tooManyShapes?: number;
}

type RateLimitLike = Pick<CompiledLimit, 'requests' | 'per' | 'burst'>;
const shapeKey = (l: RateLimitLike) => `${l.requests}/${l.per}+${l.burst}`;

/** Who the rules are for on a route: the partners of one subscription plan, or everybody else (the public plan). */
type Callers = { kind: 'subscribers'; plan: string; partners: string[] } | { kind: 'public'; plan: string; subscribers: string[] };

/** Partners with an active subscription to each product (partner not suspended), by plan. Expiry is left to authorization (translation has no clock). */
function subscribersByPlan(model: ModelSnapshot): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  for (const s of model.subscriptions.values()) {
    const partner = model.partners.get(s.partner);
    if ((s.status ?? 'active') !== 'active' || !partner || partner.suspended === true || !model.plans.has(s.plan)) continue;
    let byPlan = out.get(s.product);
    if (!byPlan) out.set(s.product, (byPlan = new Map()));
    const list = byPlan.get(s.plan);
    if (list) list.push(s.partner);
    else byPlan.set(s.plan, [s.partner]);
  }
  for (const byPlan of out.values()) for (const list of byPlan.values()) list.sort(compareStrings);
  return out;
}

/** An RE2 pattern matching exactly these names. */
function exactNames(names: readonly string[]): string {
  return `^(?:${names.map((n) => n.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('|')})$`;
}

/**
 * Envoy refuses a regex whose RE2 program exceeds 100 instructions (runtime
 * re2.max_program_size.error_level), and with it the whole route configuration: a plan with a few
 * dozen subscribers would stop every change to the group. Names are ASCII slugs; a name costs at
 * most its length plus one alternation, the anchors and group a few more (an upper bound: RE2
 * shares common prefixes).
 */
const RE2_PROGRAM_LIMIT = 100;
const PATTERN_OVERHEAD = 6;

/** RE2 patterns that together match exactly these names, each within Envoy's RE2 limit: as few as fit. */
export function exactNamePatterns(names: readonly string[]): string[] {
  const out: string[] = [];
  let chunk: string[] = [];
  let size = PATTERN_OVERHEAD;
  for (const n of names) {
    if (chunk.length && size + n.length + 1 > RE2_PROGRAM_LIMIT) {
      out.push(exactNames(chunk));
      chunk = [];
      size = PATTERN_OVERHEAD;
    }
    chunk.push(n);
    size += n.length + 1;
  }
  if (chunk.length) out.push(exactNames(chunk));
  return out;
}

/** What starts a guarded entry: its actions and their descriptor entries, one variant per entry emitted. */
interface Guard {
  actions: LimitActionIR[];
  entries: DescriptorEntryIR[];
}

/**
 * Which plan applies is the partner's (known at translate time); callers of other plans must not
 * reach wildcard buckets, so such entries start with a guard on the partner header. Subscribers of
 * many names get one entry per pattern (a partner matches exactly one, so one descriptor results);
 * the public plan's callers are those matching none: every pattern, expect_match false, in one entry.
 */
function guardsOf(callers: Callers): Guard[] {
  const entry: DescriptorEntryIR = { key: KEY.plan, value: callers.plan };
  const match = (regex: string, expect: boolean): LimitActionIR => ({ kind: 'header_match', header: PARTNER, key: KEY.plan, value: callers.plan, expect, regex });
  if (callers.kind === 'subscribers') return exactNamePatterns(callers.partners).map((p) => ({ actions: [match(p, true)], entries: [entry] }));
  if (!callers.subscribers.length) return [{ actions: [{ kind: 'generic', key: KEY.plan, value: callers.plan }], entries: [entry] }];
  const patterns = exactNamePatterns(callers.subscribers);
  return [{ actions: patterns.map((p) => match(p, false)), entries: patterns.map(() => entry) }];
}

class Builder {
  readonly stages = new Map<string, number>();
  readonly filters = new Map<number, PlanLimitFilterIR>();
  private readonly seen = new Set<string>();
  readonly overflow = new Set<string>();
  readonly quotas = new Map<string, QuotaShapeIR>();
  readonly uncountable = new Set<string>();

  constructor(private readonly envoys: number) {}

  /** The stage (filter instance) of a limit's shape; 0 when every stage is taken. */
  stage(l: RateLimitLike): number {
    const key = shapeKey(l);
    let s = this.stages.get(key);
    if (s === undefined) {
      if (this.stages.size >= MAX_NATIVE_LIMIT_SHAPES) {
        this.overflow.add(key);
        return 0;
      }
      s = this.stages.size + 1;
      this.stages.set(key, s);
      const bucket = localBucket({ requests: l.requests, per: l.per as RateLimit['per'], burst: l.burst }, this.envoys);
      this.filters.set(s, { stage: s, requests: l.requests, retryAfterSeconds: bucket.retryAfterSeconds, bucket, descriptors: [] });
    }
    return s;
  }

  descriptor(stage: number, entries: DescriptorEntryIR[]): void {
    const key = `${stage}\n${entries.map((e) => `${e.key}=${e.value ?? '*'}`).join('\n')}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.filters.get(stage)!.descriptors.push(entries);
  }
}

/** The actions and descriptors of one limit for one kind of caller on one route. */
function limitEntries(b: Builder, route: Route, rules: RuleSet, l: CompiledLimit, index: number, callers: Callers): RouteLimitEntryIR[] {
  const stage = b.stage(l);
  if (stage === 0) return [];
  const budget = `${l.id}:${index}`;
  const out: RouteLimitEntryIR[] = [];
  const guards = guardsOf(callers);
  const budgetAction: LimitActionIR = { kind: 'generic', key: KEY.budget, value: budget };
  const budgetEntry: DescriptorEntryIR = { key: KEY.budget, value: budget };
  /** An entry behind the plan's guard: the budget, then these actions. */
  const entry = (actions: LimitActionIR[], entries: DescriptorEntryIR[]) => {
    for (const g of guards) {
      out.push({ stage, actions: [...g.actions, budgetAction, ...actions] });
      b.descriptor(stage, [...g.entries, budgetEntry, ...entries]);
    }
  };
  const byAddress = (extra: LimitActionIR, extraEntry: DescriptorEntryIR) => entry([extra, { kind: 'remote_address' }], [extraEntry, { key: KEY.remote }]);
  const c = rules.countBy;
  switch (c.kind) {
    case 'partner':
      // Subscribers by name (explicit buckets, no guard needed: only their own names match). The
      // public plan's callers have no partner (authentication refuses partners without a
      // subscription), so they count by client address.
      if (callers.kind === 'subscribers') {
        out.push({ stage, actions: [budgetAction, { kind: 'header', header: PARTNER, key: KEY.partner }] });
        for (const p of callers.partners) b.descriptor(stage, [budgetEntry, { key: KEY.partner, value: p }]);
      } else {
        byAddress({ kind: 'header_match', header: PARTNER, key: KEY.anonymous, value: '1', expect: false }, { key: KEY.anonymous, value: '1' });
      }
      break;
    case 'client_ip':
      entry([{ kind: 'remote_address' }], [{ key: KEY.remote }]);
      break;
    case 'header': {
      const h = c.header!.toLowerCase();
      entry([{ kind: 'header', header: h, key: KEY.header }], [{ key: KEY.header }]);
      byAddress({ kind: 'header_match', header: h, key: KEY.noHeader, value: '1', expect: false }, { key: KEY.noHeader, value: '1' });
      break;
    }
    case 'route':
      entry([{ kind: 'generic', key: KEY.route, value: route.name }], [{ key: KEY.route, value: route.name }]);
      break;
  }
  return out;
}

function routeEntries(
  b: Builder,
  model: ModelSnapshot,
  product: Product,
  route: Route,
  subscribed: Map<string, string[]> | undefined,
  exhausted: ReadonlySet<string>,
): { entries: RouteLimitEntryIR[]; deny: QuotaDenyIR[] } {
  const out: RouteLimitEntryIR[] = [];
  const deny: QuotaDenyIR[] = [];
  const add = (planName: string, callers: Callers) => {
    const plan = model.plans.get(planName);
    if (!plan) return;
    const rules = planRouteRules(plan, product.name, route.name);
    // Shadow plans never refuse: natively they count nothing (the callout modes report them).
    if (rules.shadow) return;
    rules.limits.forEach((l, i) => {
      if (l.kind === 'rate') out.push(...limitEntries(b, route, rules, l, i, callers));
      else quota(l, rules, callers);
    });
  };
  const quota = (l: CompiledLimit, rules: RuleSet, callers: Callers) => {
    const shape: QuotaShapeIR = { requests: l.requests, per: l.per as QuotaShapeIR['per'] };
    b.quotas.set(quotaPolicy(shape), shape);
    // Counted from access logs: by partner (subscribers) or by route; anything else cannot be.
    const c = rules.countBy.kind;
    if (!(c === 'route' || (c === 'partner' && callers.kind === 'subscribers'))) {
      b.uncountable.add(rules.plan);
      return;
    }
    let principal: QuotaPrincipalIR | undefined;
    if (c === 'partner') {
      const names = callers.kind === 'subscribers' ? callers.partners.filter((p) => exhausted.has(`${l.id}\np:${p}`)) : [];
      if (names.length) principal = { kind: 'partners', names };
    } else if (exhausted.has(`${l.id}\nr:${route.name}`)) {
      principal =
        callers.kind === 'subscribers' ? { kind: 'partners', names: callers.partners } : callers.subscribers.length ? { kind: 'partners', names: callers.subscribers, invert: true } : { kind: 'any' };
    }
    if (!principal) return;
    const policy = quotaPolicy(shape);
    const existing = deny.find((d) => d.policy === policy);
    if (existing) existing.principals.push(principal);
    else deny.push({ policy, principals: [principal] });
  };
  // Routes open to anonymous callers run no authentication: every caller there is on the public plan.
  const publicOnly = effectiveAccept(product, route).every((a) => a === 'none');
  const subscribers: string[] = [];
  if (!publicOnly && subscribed) {
    for (const plan of [...subscribed.keys()].sort(compareStrings)) {
      const partners = subscribed.get(plan)!;
      subscribers.push(...partners);
      add(plan, { kind: 'subscribers', plan, partners });
    }
  }
  if (product.publicPlan) add(product.publicPlan, { kind: 'public', plan: product.publicPlan, subscribers: subscribers.sort(compareStrings) });
  return { entries: out, deny };
}

/** The RBAC policy (and local-reply mapping) name of a quota: its refusal says these numbers. */
export function quotaPolicy(q: QuotaShapeIR): string {
  return `quota_${q.requests}_${q.per}`;
}

/**
 * The native limits of a group's products. `envoys` is how many Envoys of the group are connected
 * (at least 1): each gets an equal share of every limit's rate (see localBucket).
 */
export function nativeLimits(model: ModelSnapshot, products: readonly Product[], envoys: number, exhaustedBudgets: readonly QuotaExhaustedIR[] = []): NativeLimits {
  const b = new Builder(Math.max(1, Math.floor(envoys)));
  const subs = subscribersByPlan(model);
  const exhausted = new Set(exhaustedBudgets.map((e) => `${e.budget}\n${e.partner !== undefined ? `p:${e.partner}` : `r:${e.route}`}`));
  const routes = new Map<string, RouteLimitEntryIR[]>();
  const quotaDeny = new Map<string, QuotaDenyIR[]>();
  for (const product of products) {
    const subscribed = subs.get(product.name);
    // No plan applies to a product without subscriptions or a public plan: its routes have no limits
    // (skipping them spares a pass over every such route on each translation).
    if (!subscribed && !product.publicPlan) continue;
    for (const route of productRoutes(model, product.name)) {
      const r = routeEntries(b, model, product, route, subscribed, exhausted);
      if (r.entries.length) routes.set(`${product.name}/${route.name}`, r.entries);
      if (r.deny.length) quotaDeny.set(`${product.name}/${route.name}`, r.deny);
    }
  }
  const filters = [...b.filters.values()].filter((f) => f.descriptors.length > 0);
  const quotas = [...b.quotas.entries()].sort((x, y) => compareStrings(x[0], y[0])).map(([, q]) => q);
  return {
    filters,
    routes,
    quotas,
    quotaDeny,
    uncountableQuotas: [...b.uncountable].sort(compareStrings),
    ...(b.overflow.size ? { tooManyShapes: b.stages.size + b.overflow.size } : {}),
  };
}
