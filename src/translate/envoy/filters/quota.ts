// Native mode's quota refusals: an RBAC filter after authentication (it reads the partner header),
// allowing everything by itself; a route whose callers used up a quota carries DENY policies for
// them in its per-route config (an RDS push, the listener and its token buckets untouched), each
// named after its quota so the local-reply mapper answers with that quota's 429.
import { GATEWAY_HEADERS, quotaReplyMapping } from '../../../contract/index.ts';
import type { QuotaPrincipalIR } from '../../ir.ts';
import { quotaPolicy } from '../../to-ir/native-limits.ts';
import { any, extension, FILTERS, sortedRecord, type Json } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

const partnerIs = (string_match: Json): Json => ({ header: { name: GATEWAY_HEADERS.partner, string_match } });

function principal(p: QuotaPrincipalIR): Json {
  switch (p.kind) {
    case 'any':
      return { any: true };
    case 'partners': {
      // Exact names, never one regex of many: Envoy refuses a regex over 100 RE2 instructions.
      const id = p.names.length === 1 ? partnerIs({ exact: p.names[0]! }) : { or_ids: { ids: p.names.map((n) => partnerIs({ exact: n })) } };
      // Without the header (anonymous) no name matches, so "not one of them" holds.
      return p.invert ? { not_id: id } : id;
    }
  }
}

export const quota: HttpFilterEmitter = {
  chain: (g) => (g.filters.quotas.length ? [extension(FILTERS.quotaRbac, RBAC_TYPE)] : []),
  perRoute: (r) =>
    r.quotaDeny
      ? [
          [
            FILTERS.quotaRbac,
            any(RBAC_PER_ROUTE_TYPE, {
              rbac: { rules: { action: 'DENY', policies: sortedRecord(r.quotaDeny.map((d) => [d.policy, { permissions: [{ any: true }], principals: d.principals.map(principal) }])) } },
            }),
          ],
        ]
      : [],
  localReplies: (f) => f.quotas.map((q) => quotaReplyMapping(quotaPolicy(q), q.requests, q.per)),
};
