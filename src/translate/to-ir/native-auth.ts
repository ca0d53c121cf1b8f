// Native authorization (GatewayGroup.authz.mode native): which routes Envoy decides alone, with which
// keys (api_key_auth) and which access policies (the access RBAC), and which stay on the ext_authz callout.
import { apiKeyHeader, authzModeOf, sortedValues, type CredentialType, type ModelSnapshot, type Product, type Route } from '../../model/index.ts';
import type { AccessRefusal } from '../../contract/index.ts';
import type { ApiKeyCredentialIR, RouteAccessIR, RouteApiKeyAuthIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { productSubscriptions } from './common.ts';

/** What native routes of one group share: the keys Envoy may check, and whether any key forces the callout. */
export interface NativeAuthContext {
  /** Sealed keys of the partners subscribed to some product of the group, neither revoked nor expired at `now` (sorted by key). */
  credentials: ApiKeyCredentialIR[];
  /** Partners with a key Envoy cannot check (hash-only import): their products stay on the callout. */
  calloutPartners: ReadonlySet<string>;
  /** Epoch ms the translation judges expiries at (a push is scheduled for the next one: nextExpiry). */
  now: number;
}

const expired = (at: string | undefined, now: number): boolean => at !== undefined && Date.parse(at) <= now;

/**
 * The keys a native group's Envoys receive: only those of partners subscribed to a product the group
 * serves (a node receives only its group's resources, over the authenticated xDS channel). Revoked and
 * expired keys are left out, so a revocation or an expiry is a route-table push.
 */
export function nativeAuthContext(model: ModelSnapshot, products: readonly Product[], now: number): NativeAuthContext {
  const served = new Set(products.map((p) => p.name));
  const partners = new Set<string>();
  for (const s of model.subscriptions.values()) if (served.has(s.product)) partners.add(s.partner);
  const credentials: ApiKeyCredentialIR[] = [];
  const calloutPartners = new Set<string>();
  for (const k of sortedValues(model, 'apiKeys')) {
    if (!partners.has(k.partner) || k.revoked === true || expired(k.expiresAt, now)) continue;
    if (k.secret !== undefined) credentials.push({ key: k.secret, client: k.partner });
    else calloutPartners.add(k.partner);
  }
  credentials.sort((a, b) => compareStrings(a.key, b.key));
  return { credentials, calloutPartners, now };
}

type DenyReason = RouteAccessIR['deny'][number]['reason'];
const DENY_ORDER: readonly DenyReason[] = ['partner_suspended', 'subscription_suspended', 'subscription_expired', 'route_not_in_subscription'];

/**
 * Who may call a route, decided as the callout decides (partner suspended → subscription → its
 * status, expiry, access level), for every partner subscribed to the product or holding a key Envoy
 * may see (`anyPartner`: every suspended partner, where a token or certificate may name any partner).
 * Partners in no list have no subscription; method restrictions travel with the allowed.
 */
export function routeAccess(model: ModelSnapshot, product: Product, route: Route, ctx: NativeAuthContext, anyPartner = false): RouteAccessIR {
  const denied = new Map<DenyReason, string[]>();
  const allowed: RouteAccessIR['allowed'] = [];
  const suspendedPartners = new Set<string>();
  for (const c of ctx.credentials) if (model.partners.get(c.client)?.suspended === true) suspendedPartners.add(c.client);
  if (anyPartner) for (const p of model.partners.values()) if (p.suspended === true) suspendedPartners.add(p.name);
  const refuse = (reason: DenyReason, partner: string) => {
    const list = denied.get(reason) ?? [];
    if (!list.includes(partner)) list.push(partner);
    denied.set(reason, list);
  };
  for (const p of suspendedPartners) refuse('partner_suspended', p);
  for (const s of productSubscriptions(model, product.name)) {
    const partner = model.partners.get(s.partner);
    if (!partner) continue;
    const reason: DenyReason | undefined =
      partner.suspended === true
        ? 'partner_suspended'
        : s.status === 'suspended'
          ? 'subscription_suspended'
          : expired(s.expiresAt, ctx.now)
            ? 'subscription_expired'
            : s.access?.routes !== undefined && !s.access.routes.includes(route.name)
              ? 'route_not_in_subscription'
              : undefined;
    if (reason) refuse(reason, s.partner);
    else allowed.push({ partner: s.partner, plan: s.plan, ...(s.access?.methods !== undefined ? { methods: [...s.access.methods].sort(compareStrings) } : {}) });
  }
  allowed.sort((a, b) => compareStrings(a.partner, b.partner));
  return {
    deny: DENY_ORDER.filter((r) => denied.has(r)).map((reason) => ({ reason, partners: denied.get(reason)!.sort(compareStrings) })),
    allowed,
  };
}

/**
 * The plan a native route's caller calls under, as a request header value: the access RBAC's shadow
 * rules hold one ALLOW policy per plan, and Envoy records the one that matched in the filter's dynamic
 * metadata (its namespace is the filter's name, envoy.filters.http.rbac). No match, no header.
 */
export const PLAN_FROM_ACCESS = '%DYNAMIC_METADATA(envoy.filters.http.rbac:shadow_effective_policy_id)%';

/**
 * Identity routes (mTLS, JWT issuers naming the partner in the payload) whose callers are on several
 * plans: the access RBAC's shadow match names the partner there, so a second RBAC (portico.access.plan,
 * shadow rules only, one per plan) names the plan, its metadata key prefixed by its stat prefix.
 */
export const PLAN_STAT_PREFIX = 'plan_';
export const PLAN_FROM_PLAN_ACCESS = `%DYNAMIC_METADATA(envoy.filters.http.rbac:${PLAN_STAT_PREFIX}shadow_effective_policy_id)%`;

/** Whether the route needs that second RBAC: an identity route whose allowed callers are not all on one plan. */
export function needsPlanFromAccess(r: { access?: RouteAccessIR | undefined }): boolean {
  return r.access?.identities !== undefined && r.access.allowed.length > 0 && onePlan(r.access) === undefined;
}

/**
 * The plan of every caller the access RBAC lets through on a route, when they all share one. Then the
 * plan header is a literal, and (when the partner header names the caller: not on identity routes,
 * whose shadow rules name the partner) the RBAC needs no shadow rules: evaluating them and writing
 * their dynamic metadata on every request, and formatting the header from it, cost Envoy CPU that a
 * constant does not.
 */
export function onePlan(a: RouteAccessIR): string | undefined {
  if (a.allowed.length === 0) return undefined;
  const plan = a.allowed[0]!.plan;
  return a.allowed.every((x) => x.plan === plan) ? plan : undefined;
}

/**
 * Whether the access RBAC has nothing to decide on an API-key route: every key Envoy checks there is
 * a partner it lets through (no refusal, no method restriction), all on one plan (no shadow rules).
 * The route then goes without it: an RBAC that allows writes its result into the request's dynamic
 * metadata, which costs Envoy about as many instructions per request as api_key_auth itself.
 */
export function admitsEveryKey(a: RouteAccessIR, credentials: readonly ApiKeyCredentialIR[]): boolean {
  if (a.identities || a.deny.length > 0 || onePlan(a) === undefined || a.allowed.some((x) => x.methods !== undefined)) return false;
  const allowed = new Set(a.allowed.map((x) => x.partner));
  return credentials.every((c) => allowed.has(c.client));
}

/** The refusal codes the access RBAC can answer with (each one a policy name and a local-reply mapping). */
export const ACCESS_REFUSALS: readonly AccessRefusal[] = [
  'partner_suspended',
  'no_subscription',
  'subscription_suspended',
  'subscription_expired',
  'route_not_in_subscription',
  'method_not_in_subscription',
];

/**
 * api_key_auth and the access policies for a route, or undefined when the route stays on the callout:
 * it accepts other credentials than API keys, a plan limits it and the callout counts it, or one of
 * the product's subscribers has keys Envoy cannot check (hash-only imports).
 */
export function nativeApiKeyAuth(
  model: ModelSnapshot,
  product: Product,
  route: Route,
  accept: readonly CredentialType[],
  limited: boolean,
  ctx: NativeAuthContext,
): { apiKeyAuth: RouteApiKeyAuthIR; access: RouteAccessIR } | undefined {
  if (accept.length !== 1 || accept[0] !== 'api_key' || limited) return undefined;
  for (const s of productSubscriptions(model, product.name)) if (ctx.calloutPartners.has(s.partner)) return undefined;
  const header = apiKeyHeader(product);
  const query = product.apiKey?.queryParameter;
  return {
    apiKeyAuth: { keySources: [...(header !== undefined ? [{ header }] : []), ...(query !== undefined ? [{ query }] : [])], credentials: ctx.credentials },
    access: routeAccess(model, product, route, ctx),
  };
}

/**
 * The next instant after `now` at which a native group's translation changes by itself: the earliest
 * subscription or API key expiry still ahead. The pipeline schedules a push for it.
 */
export function nextExpiry(model: ModelSnapshot, now: number): number | undefined {
  if (![...model.gatewayGroups.values()].some((g) => authzModeOf(g) === 'native')) return undefined;
  let next: number | undefined;
  const consider = (at: string | undefined) => {
    if (at === undefined) return;
    const t = Date.parse(at);
    if (t > now && (next === undefined || t < next)) next = t;
  };
  for (const s of model.subscriptions.values()) consider(s.expiresAt);
  for (const k of model.apiKeys.values()) consider(k.expiresAt);
  return next;
}
