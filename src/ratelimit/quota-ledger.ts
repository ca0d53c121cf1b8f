// Quotas of native-mode gateway groups, counted from the access-log stream: every request an Envoy
// forwarded is counted against the quotas of its caller's plan (by partner, or by route), per UTC
// day or month; a budget that reaches its quota is reported exhausted until its window ends, and the
// pipeline turns that into a refusal every Envoy of the group holds after one push. Nothing here
// does I/O: the clock is passed in, the caller feeds records and reads the exhausted budgets.
import { nativeLimitGroups, planRouteRules, rateLimitChoice, type CompiledLimit, type ModelSnapshot } from '../model/index.ts';
import { ACCESS_LOG_TAGS } from '../contract/index.ts';
import { forwarded, type AccessLogRecord } from '../telemetry/index.ts';
import { type QuotaPer, windowBounds } from './algorithms.ts';

/** One request as the ledger needs it (from an access-log entry). */
export interface QuotaRecord {
  group: string;
  product: string;
  route: string;
  /** The authenticated partner, when there was one. */
  partner: string | undefined;
}

/** A budget that has used its quota in the current window: its callers are refused until `resetAt`. */
export interface QuotaExhaustion {
  group: string;
  /** The limit's id (`<plan>:<product>:<route|*>:<per>`), as the translator names budgets. */
  budget: string;
  /** partner: that partner's budget; route: the route's budget, every caller of the plan shares it. */
  partner?: string;
  route?: string;
  requests: number;
  per: QuotaPer;
  /** ms since the epoch: the end of the window. */
  resetAt: number;
}

interface Counter {
  count: number;
  end: number;
  exhaustion: QuotaExhaustion;
}

export class QuotaLedger {
  private groups = new Set<string>();
  /** `<group>\n<product>` of native groups whose products the callout counts (modes.ts: calloutProducts): not counted here. */
  private calloutProducts = new Set<string>();
  private model: ModelSnapshot | undefined;
  /** Active subscription plans, `<product>\n<partner>` → plan. */
  private plans = new Map<string, string>();
  private readonly counters = new Map<string, Counter>();

  /** The model decides which groups are native, and each partner's plan. Counts are kept across models. */
  setModel(model: ModelSnapshot): void {
    this.model = model;
    this.groups = nativeLimitGroups(model);
    this.calloutProducts = new Set();
    for (const g of this.groups) for (const p of rateLimitChoice(model, model.gatewayGroups.get(g)!).calloutProducts?.keys() ?? []) this.calloutProducts.add(`${g}\n${p}`);
    this.plans = new Map();
    for (const s of model.subscriptions.values()) {
      const partner = model.partners.get(s.partner);
      if ((s.status ?? 'active') === 'active' && partner && partner.suspended !== true) this.plans.set(`${s.product}\n${s.partner}`, s.plan);
    }
  }

  /** Counts the forwarded requests of an access-log batch from `group`; true when a budget became exhausted. */
  recordEntries(group: string, entries: readonly AccessLogRecord[], now: number): boolean {
    if (!this.groups.has(group)) return false;
    let exhausted = false;
    for (const e of entries) {
      const product = e.tags.get(ACCESS_LOG_TAGS.product);
      const route = e.tags.get(ACCESS_LOG_TAGS.route);
      if (!product || !route || !forwarded(e)) continue;
      const partner = e.tags.get(ACCESS_LOG_TAGS.partner) || e.authz.get('partner') || undefined;
      if (this.record({ group, product, route, partner }, now)) exhausted = true;
    }
    return exhausted;
  }

  /** Counts one forwarded request; true when it made a budget exhausted (the caller should push). */
  record(r: QuotaRecord, now: number): boolean {
    const model = this.model;
    if (!model || !this.groups.has(r.group) || this.calloutProducts.has(`${r.group}\n${r.product}`)) return false;
    const product = model.products.get(r.product);
    if (!product) return false;
    const planName = (r.partner !== undefined ? this.plans.get(`${r.product}\n${r.partner}`) : undefined) ?? product.publicPlan;
    const plan = planName !== undefined ? model.plans.get(planName) : undefined;
    if (!plan) return false;
    const rules = planRouteRules(plan, r.product, r.route);
    if (rules.shadow) return false;
    let exhausted = false;
    for (const l of rules.limits) {
      if (l.kind !== 'quota') continue;
      // Only partner and route counting can be read from the log (validation keeps the others out of native groups).
      const by = rules.countBy.kind === 'route' ? { route: r.route } : rules.countBy.kind === 'partner' && r.partner !== undefined ? { partner: r.partner } : undefined;
      if (!by) continue;
      if (this.count(r.group, l, by, now)) exhausted = true;
    }
    return exhausted;
  }

  private count(group: string, l: CompiledLimit, by: { partner: string } | { route: string }, now: number): boolean {
    const per = l.per as QuotaPer;
    const w = windowBounds(per, now);
    const key = `${group}\n${l.id}\n${'partner' in by ? `p:${by.partner}` : `r:${by.route}`}`;
    let c = this.counters.get(key);
    if (!c || c.end <= now) {
      c = { count: 0, end: w.end, exhaustion: { group, budget: l.id, ...by, requests: l.requests, per, resetAt: w.end } };
      this.counters.set(key, c);
    }
    c.count++;
    return c.count === l.requests;
  }

  /** Requests counted so far in the current window of one budget (0 when none were). */
  used(group: string, budget: string, by: { partner: string } | { route: string }, now: number): number {
    const c = this.counters.get(`${group}\n${budget}\n${'partner' in by ? `p:${by.partner}` : `r:${by.route}`}`);
    return c && c.end > now ? c.count : 0;
  }

  /** Budgets at or over their quota now, in a stable order; forgets windows that have ended. */
  exhausted(now: number): QuotaExhaustion[] {
    const out: QuotaExhaustion[] = [];
    for (const [key, c] of this.counters) {
      if (c.end <= now) this.counters.delete(key);
      else if (c.count >= c.exhaustion.requests) out.push(c.exhaustion);
    }
    const id = (e: QuotaExhaustion) => `${e.group}\n${e.budget}\n${e.partner ?? ''}\n${e.route ?? ''}`;
    return out.sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
  }

  /** When the earliest exhausted budget's window ends (ms), if any is exhausted. */
  nextReset(now: number): number | undefined {
    let next: number | undefined;
    for (const e of this.exhausted(now)) if (next === undefined || e.resetAt < next) next = e.resetAt;
    return next;
  }
}
