// A partner's usage against its plans' limits and quotas, for the partner portal: which budgets its
// subscriptions give it (pure, from the model), then what each budget has left, read from where it
// is counted — the rate limiter's counters in the callout modes, the quota ledger in native mode.
import { planDefaults, overrideRules, productRateLimitMode, sortedValues, type CompiledLimit, type ModelSnapshot, type RuleSet } from '../model/index.ts';
import { windowBounds, type CounterSpec, type QuotaPer } from './algorithms.ts';
import type { RateLimiter } from './limiter.ts';
import type { QuotaLedger } from './quota-ledger.ts';
import { counterSpecs, countKey } from './table.ts';

/** Where a budget is counted, and so where its usage can be read. */
export type UsageSource = 'rate-limiter' | 'quota-ledger' | 'envoy';

/** One budget a subscription gives the partner, and (when readable) what is left of it. */
export interface BudgetUsage {
  product: string;
  plan: string;
  /** The limit's id (`<plan>:<product>:<route|*>:<per>`). */
  budget: string;
  /** Set when the budget belongs to one route (a plan override); otherwise it spans the product. */
  route?: string;
  kind: 'rate' | 'quota';
  per: string;
  /** Requests per period (rates) or per window (quotas). */
  limit: number;
  countBy: string;
  /** Native mode counts per gateway group: the group this row is about. */
  group?: string;
  source: UsageSource;
  /** Requests used in the current window (quotas), or taken from the bucket (rates); absent when not readable. */
  used?: number;
  remaining?: number;
  /** When the window ends (quotas) or the bucket is full again (rates). */
  resetAt?: string;
  shadow: boolean;
  /** Why there is no figure, when there is none. */
  note?: string;
}

/** A budget before reading: the rule, its count key for this partner, where it is counted. */
export interface PartnerBudget {
  product: string;
  plan: string;
  limit: CompiledLimit;
  route?: string;
  rules: RuleSet;
  /** `p:<partner>` when the rule counts by partner; other count keys are not the partner's alone. */
  count?: string;
  /** Gateway groups of the product counting natively, and whether any group uses the callouts. */
  nativeGroups: string[];
  exact: boolean;
}

/** The budgets a partner's active subscriptions give it, sorted by product, then as the plan lists them (pure). */
export function partnerBudgets(model: ModelSnapshot, partner: string): PartnerBudget[] {
  const out: PartnerBudget[] = [];
  for (const s of sortedValues(model, 'subscriptions')) {
    if (s.partner !== partner) continue;
    const plan = model.plans.get(s.plan);
    const product = model.products.get(s.product);
    if (!plan || !product) continue;
    const groups = product.gatewayGroups.map((g) => model.gatewayGroups.get(g)).filter((g) => g !== undefined);
    const nativeGroups = groups.filter((g) => productRateLimitMode(model, g, s.product) === 'native').map((g) => g.name);
    const exact = groups.some((g) => productRateLimitMode(model, g, s.product) !== 'native');
    const seen = new Set<string>();
    const add = (rules: RuleSet, route: string | undefined) => {
      for (const limit of rules.limits) {
        if (seen.has(limit.id)) continue;
        seen.add(limit.id);
        const count = rules.countBy.kind === 'partner' ? countKey(rules.countBy, route ?? '', { partner }) : undefined;
        out.push({ product: s.product, plan: s.plan, limit, rules, nativeGroups, exact, ...(limit.scope === 'route' && route ? { route } : {}), ...(count ? { count } : {}) });
      }
    };
    add(planDefaults(plan, s.product), undefined);
    for (const o of plan.overrides ?? []) if (o.product === s.product) add(overrideRules(plan, s.product, o), o.route);
  }
  return out;
}

const NOT_PARTNER = (countBy: string) => `counted by ${countBy.replace('_', ' ')}, not by partner: no figure is the partner's own`;

/** The row for a budget with no readable figure. */
function row(b: PartnerBudget, source: UsageSource, extra: Partial<BudgetUsage>): BudgetUsage {
  return {
    product: b.product,
    plan: b.plan,
    budget: b.limit.id,
    ...(b.route ? { route: b.route } : {}),
    kind: b.limit.kind,
    per: b.limit.per,
    limit: b.limit.requests,
    countBy: b.rules.countBy.kind,
    source,
    shadow: b.rules.shadow,
    ...extra,
  };
}

export interface UsageSources {
  /** The callout modes' limiter (its counters: memory or Redis). */
  limiter?: RateLimiter;
  /** Native mode's quota ledger (fed by the access-log stream). */
  ledger?: QuotaLedger;
}

/**
 * Reads each budget where it is counted. The limiter's counters are read with a decision that
 * consumes nothing (cost 0), so reading never uses up a partner's budget; a counter backend that
 * cannot answer leaves the figure out with a note instead of failing the page.
 */
export async function readPartnerUsage(model: ModelSnapshot, partner: string, sources: UsageSources, now: number): Promise<BudgetUsage[]> {
  const out: BudgetUsage[] = [];
  for (const b of partnerBudgets(model, partner)) {
    if (b.exact) out.push(await readExact(b, sources.limiter));
    for (const group of b.nativeGroups) out.push(readNative(b, group, sources.ledger, now));
  }
  return out;
}

async function readExact(b: PartnerBudget, limiter: RateLimiter | undefined): Promise<BudgetUsage> {
  if (!b.count) return row(b, 'rate-limiter', { note: NOT_PARTNER(b.rules.countBy.kind) });
  if (!limiter) return row(b, 'rate-limiter', { note: 'this replica has no rate limiter' });
  const spec: CounterSpec = counterSpecs({ ...b.rules, limits: [b.limit] }, b.count)[0]!;
  try {
    const r = (await limiter.backend.evaluate([spec], 0)).results[0]!;
    // A bucket's burst is extra the gateway grants, not advertised: remaining never exceeds the limit.
    const remaining = Math.min(b.limit.requests, r.remaining);
    return row(b, 'rate-limiter', { used: b.limit.requests - remaining, remaining, resetAt: new Date(r.resetMs).toISOString() });
  } catch {
    return row(b, 'rate-limiter', { note: 'the rate limiter’s counters are unavailable right now' });
  }
}

function readNative(b: PartnerBudget, group: string, ledger: QuotaLedger | undefined, now: number): BudgetUsage {
  if (b.limit.kind === 'rate') return row(b, 'envoy', { group, note: 'counted by each Envoy’s local token bucket; not reported back' });
  if (!b.count) return row(b, 'quota-ledger', { group, note: NOT_PARTNER(b.rules.countBy.kind) });
  const w = windowBounds(b.limit.per as QuotaPer, now);
  const used = ledger?.used(group, b.limit.id, { partner: b.count.slice(2) }, now) ?? 0;
  return row(b, 'quota-ledger', { group, used, remaining: Math.max(0, b.limit.requests - used), resetAt: new Date(w.end).toISOString() });
}
