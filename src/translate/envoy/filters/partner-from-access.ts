// Native mTLS routes that plan limits or quotas count: no authentication filter sets the partner
// header there, so this one (off in the chain, on per route, right after the access RBAC) writes it
// from the RBAC's shadow match, which names the partner on such routes; the buckets key on it.
import { GATEWAY_HEADERS } from '../../../contract/index.ts';
import type { RouteIR } from '../../ir.ts';
import { PLAN_FROM_ACCESS } from '../../to-ir/native-auth.ts';
import { any, extension, FILTERS } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const TYPE = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';
const PER_ROUTE_TYPE = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute';

/** Whether the route needs the partner header before the router: an mTLS route whose caller is counted natively. */
export function needsPartnerFromAccess(r: RouteIR): boolean {
  return r.access?.identities !== undefined && r.access.allowed.length > 0 && (r.planLimits !== undefined || r.quotaDeny !== undefined);
}

export const partnerFromAccess: HttpFilterEmitter = {
  chain: (g) => (g.filters.partnerFromAccess ? [disabledByDefault(extension(FILTERS.partnerFromAccess, TYPE, {}))] : []),
  perRoute: (r) => {
    if (!needsPartnerFromAccess(r)) return [];
    const append = { header: { key: GATEWAY_HEADERS.partner, value: PLAN_FROM_ACCESS }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
    return [[FILTERS.partnerFromAccess, any(PER_ROUTE_TYPE, { mutations: { request_mutations: [{ append }] } })]];
  },
};
