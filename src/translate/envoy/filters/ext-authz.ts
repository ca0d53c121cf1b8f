// ext_authz: the main instance checks every route that takes credentials (secure by default: it runs
// unless a route disables it); combined mode's counting-only instance is off in the chain and runs on
// the anonymous routes a plan limits. A fail-closed outage of the latter answers the 429 contract.
import { RATE_LIMIT_REPLY_MAPPINGS } from '../../../contract/index.ts';
import type { ExtAuthzIR, RouteAuthzIR } from '../../ir.ts';
import { any, duration, extension, FILTERS, sortedRecord, statusName, type Json, type JsonObject } from '../common.ts';
import { calloutRetryPolicy } from './callout.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const PER_ROUTE_TYPE = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';

function extAuthzFilter(a: ExtAuthzIR): JsonObject {
  return extension(a.name, 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz', {
    grpc_service: { envoy_grpc: { cluster_name: a.cluster }, timeout: duration(a.timeoutMs), retry_policy: calloutRetryPolicy(a.timeoutMs) },
    transport_api_version: 'V3',
    failure_mode_allow: a.failureModeAllow,
    // When the callout cannot answer (and failure mode is closed), say so rather than 403.
    status_on_error: { code: statusName(a.statusOnError) },
    include_peer_certificate: true,
    ...(a.statPrefix !== undefined ? { stat_prefix: a.statPrefix } : {}),
  });
}

function mainPerRoute(a: RouteAuthzIR): JsonObject {
  if (a.disabled || a.filter !== 'authz') return any(PER_ROUTE_TYPE, { disabled: true });
  return any(PER_ROUTE_TYPE, { check_settings: { context_extensions: sortedRecord(Object.entries(a.contextExtensions)) } });
}

export const extAuthz: HttpFilterEmitter = {
  chain: (g) => [...(g.filters.extAuthz ? [extAuthzFilter(g.filters.extAuthz)] : []), ...(g.filters.extAuthzLimits ? [disabledByDefault(extAuthzFilter(g.filters.extAuthzLimits))] : [])],
  perRoute: (r, authz) => {
    const out: Array<[string, Json]> = [];
    if (r.authz && authz.authz) out.push([FILTERS.extAuthz, mainPerRoute(r.authz)]);
    if (r.authz && authz.limits && !r.authz.disabled && r.authz.filter === 'limits') {
      out.push([FILTERS.extAuthzLimits, any(PER_ROUTE_TYPE, { check_settings: { context_extensions: sortedRecord(Object.entries(r.authz.contextExtensions)) } })]);
    }
    return out;
  },
  localReplies: (f) => (f.extAuthzLimits && !f.extAuthzLimits.failureModeAllow ? [RATE_LIMIT_REPLY_MAPPINGS.limitsUnavailable] : []),
};
