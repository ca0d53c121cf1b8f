// Identity routes whose callers are on several plans (mTLS, JWT issuers naming the partner in the
// payload): the access RBAC's shadow match names the partner there, so this second RBAC (off in the
// chain, on per route, shadow rules only: it never refuses) names the plan, one policy per plan on
// the same identities. The route forwards it as x-portico-plan (PLAN_FROM_PLAN_ACCESS), as the callout does.
import type { RouteIR } from '../../ir.ts';
import { needsPlanFromAccess, PLAN_STAT_PREFIX } from '../../to-ir/native-auth.ts';
import { compareStrings } from '../../paths.ts';
import { any, extension, FILTERS, sortedRecord, type Json } from '../common.ts';
import { oneOf, principalOf } from './access.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

function planRules(r: RouteIR): Json {
  const a = r.access!;
  const partnerIs = principalOf(a);
  const byPlan = new Map<string, string[]>();
  for (const x of a.allowed) byPlan.set(x.plan, [...(byPlan.get(x.plan) ?? []), x.partner]);
  const policies = [...byPlan]
    .sort((x, y) => compareStrings(x[0], y[0]))
    .map(([plan, partners]): [string, Json] => [plan, { permissions: [{ any: true }], principals: [oneOf(partners.map(partnerIs))] }]);
  // The stat prefix also prefixes the metadata key, so it does not overwrite the access RBAC's match.
  return any(RBAC_PER_ROUTE_TYPE, { rbac: { shadow_rules: { action: 'ALLOW', policies: sortedRecord(policies) }, shadow_rules_stat_prefix: PLAN_STAT_PREFIX } });
}

export const planFromAccess: HttpFilterEmitter = {
  chain: (g) => (g.filters.planFromAccess ? [disabledByDefault(extension(FILTERS.planFromAccess, RBAC_TYPE))] : []),
  perRoute: (r) => (needsPlanFromAccess(r) ? [[FILTERS.planFromAccess, planRules(r)]] : []),
};
