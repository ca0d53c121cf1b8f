// The small interface every HTTP filter feature implements: what it adds to a group's filter chain,
// to a route's per-filter config and action, and to the listener's local replies. listeners.ts and
// routes.ts iterate over HTTP_FILTERS (index.ts), so a new filter feature is one new module there.
import type { RateLimitReplyMapping } from '../../../contract/index.ts';
import type { GroupIR, HttpFiltersIR, RouteIR } from '../../ir.ts';
import type { Json, JsonObject } from '../common.ts';

/** The ext_authz instances a group's chain holds, by the name RouteAuthzIR.filter uses. */
export interface AuthzFilters {
  authz: boolean;
  limits: boolean;
}

export interface HttpFilterEmitter {
  /** The feature's entries in the group's HTTP filter chain, in chain order (none when the group does not use it). */
  chain(g: GroupIR): JsonObject[];
  /** The route's typed_per_filter_config entries ([filter name, config]). */
  perRoute?(r: RouteIR, authz: AuthzFilters): Array<[string, Json]>;
  /** Fields added to the route's RouteAction (forwarding routes only). */
  routeAction?(r: RouteIR): JsonObject;
  /** Refusals Envoy writes itself for this feature, rewritten to the rate-limit contract by the local-reply mapper. */
  localReplies?(f: HttpFiltersIR): RateLimitReplyMapping[];
}

/** A filter that is not in a request's chain unless its route configures it (typed_per_filter_config). */
export function disabledByDefault(filter: JsonObject): JsonObject {
  return { ...filter, disabled: true };
}
