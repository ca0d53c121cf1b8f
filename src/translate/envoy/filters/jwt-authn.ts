// jwt_authn (native mode): off in the chain, on per route with the requirement naming the route's
// issuers. Each issuer is a provider with its public keys inline (pushed by the control plane, which
// fetches them once for the fleet), its token cache, the partner claim forwarded as x-portico-partner
// and the issuer's forwarded claims as headers. Refusals get the callout's 401 bodies.
import { JWT_REPLY_MAPPINGS } from '../../../contract/index.ts';
import type { JwtAuthnIR, JwtProviderIR } from '../../ir.ts';
import { any, extension, FILTERS, sortedRecord, type Json, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const API = 'envoy.extensions.filters.http.jwt_authn.v3';

function provider(p: JwtProviderIR, a: JwtAuthnIR): Json {
  return {
    issuer: p.issuer,
    audiences: [...p.audiences],
    // The callout reads bearer tokens from Authorization only (Envoy would also try ?access_token=).
    from_headers: [{ name: 'authorization', value_prefix: 'Bearer ' }],
    local_jwks: { inline_string: p.jwks },
    // The token stays at the gateway unless the issuer forwards it.
    forward: p.forwardToken,
    require_expiration: true,
    clock_skew_seconds: p.clockSkewSeconds,
    claim_to_headers: p.claimHeaders.map(([header_name, claim_name]) => ({ header_name, claim_name })),
    // The access RBAC reads the partner from the payload (a fixed partner, a dotted claim name).
    // and the route the top-level dotted claims it forwards (payloadClaimHeader).
    ...(p.partner || p.payloadClaims ? { payload_in_metadata: p.name } : {}),
    jwt_cache_config: { jwt_cache_size: a.cacheSize, jwt_max_token_size: a.maxTokenBytes },
  };
}

function requirement(providers: readonly string[]): Json {
  return providers.length === 1 ? { provider_name: providers[0]! } : { requires_any: { requirements: providers.map((p) => ({ provider_name: p })) } };
}

function jwtAuthnFilter(a: JwtAuthnIR): JsonObject {
  return extension(FILTERS.jwtAuthn, `${API}.JwtAuthentication`, {
    providers: sortedRecord(a.providers.map((p) => [p.name, provider(p, a)])),
    requirement_map: sortedRecord(a.requirements.map(([name, providers]) => [name, requirement(providers)])),
  });
}

export const jwtAuthn: HttpFilterEmitter = {
  chain: (g) => (g.filters.jwtAuthn ? [disabledByDefault(jwtAuthnFilter(g.filters.jwtAuthn))] : []),
  perRoute: (r) => (r.jwtAuth ? [[FILTERS.jwtAuthn, any(`${API}.PerRouteConfig`, { requirement_name: r.jwtAuth.requirement })]] : []),
  localReplies: (f) => (f.jwtAuthn ? [...JWT_REPLY_MAPPINGS] : []),
};
