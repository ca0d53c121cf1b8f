// The HTTP filter features of an Envoy group's chain, in chain order. listeners.ts builds the chain
// and the local replies from this list, routes.ts the per-route configs and route-action fields; a
// new filter feature is a module implementing HttpFilterEmitter, added here at its place in the chain.
import { access } from './access.ts';
import { apiKeyAuth } from './api-key-auth.ts';
import { cache } from './cache.ts';
import { compression } from './compression.ts';
import { cors } from './cors.ts';
import { extAuthz } from './ext-authz.ts';
import { grpcErrors } from './grpc-errors.ts';
import { grpcJsonTranscoder } from './grpc-json-transcoder.ts';
import { grpcWeb } from './grpc-web.ts';
import { headerRename } from './header-rename.ts';
import { jwtAuthn } from './jwt-authn.ts';
import { claimCheck } from './claim-check.ts';
import type { HttpFilterEmitter } from './filter.ts';
import { idempotency } from './idempotency.ts';
import { localRateLimit } from './local-ratelimit.ts';
import { nativeFlows } from './native-flows.ts';
import { partnerFromAccess } from './partner-from-access.ts';
import { planFromAccess } from './plan-from-access.ts';
import { planLimits } from './plan-limits.ts';
import { quota } from './quota.ts';
import { rateLimit } from './ratelimit.ts';
import { router } from './router.ts';
import { stripIdentity } from './strip-identity.ts';

export const HTTP_FILTERS: readonly HttpFilterEmitter[] = [
  stripIdentity,
  cors,
  apiKeyAuth,
  jwtAuthn,
  claimCheck,
  access,
  planFromAccess,
  partnerFromAccess,
  localRateLimit,
  extAuthz,
  quota,
  planLimits,
  rateLimit,
  compression,
  // After compression: it sees (and stores) the upstream's own bytes, and compression encodes a replay like any response.
  idempotency,
  grpcWeb,
  grpcErrors,
  grpcJsonTranscoder,
  headerRename,
  cache,
  // Last before the router: a flow that runs in Envoy answers after authentication, limits and the rest.
  nativeFlows,
  router,
];

export type { AuthzFilters, HttpFilterEmitter } from './filter.ts';
export { routerFilter } from './router.ts';
export { cacheDefaultTtlFilter, cacheKeyRestoreFilter } from './cache.ts';
