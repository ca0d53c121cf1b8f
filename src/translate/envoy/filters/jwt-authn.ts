// jwt_authn (native mode): off in the chain, on per route with the requirement naming the route's
// issuers. Each issuer is a provider with its public keys inline (pushed by the control plane, which
// fetches them once for the fleet), its token cache, the partner claim forwarded as x-portico-partner
// and the issuer's forwarded claims as headers. Refusals get the callout's 401 bodies.
import { JWT_REPLY_MAPPINGS, RESERVED_HEADER_PREFIX } from '../../../contract/index.ts';
import type { JwtAuthnIR, JwtProviderIR } from '../../ir.ts';
import { any, extension, FILTERS, sortedRecord, type Json, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const API = 'envoy.extensions.filters.http.jwt_authn.v3';

/** The header jwt_authn writes (the token's issuer) when this provider verified the token: under the reserved prefix, so clients' copies are stripped first. */
export const verifiedTokenHeader = (provider: string): string => `${RESERVED_HEADER_PREFIX}issuer-${provider}`;

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
    claim_to_headers: [
      ...p.claimHeaders.map(([header_name, claim_name]) => ({ header_name, claim_name })),
      // Which issuer verified the token, for the access RBAC where the partner is not a claim header
      // (a fixed partner, none, a dotted claim); the route removes it before the upstream.
      ...(p.partner ? [{ header_name: verifiedTokenHeader(p.name), claim_name: 'iss' }] : []),
    ],
    // The access RBAC reads a dotted partner claim from the payload, and the route the top-level
    // dotted claims it forwards (payloadClaimHeader). Only then: the payload in dynamic metadata costs
    // ~24k Envoy instructions per request (~11k of it the gRPC access log copying it into every entry),
    // the issuer header ~2.6k (bench/gateway-variants.ts on jwt-native).
    ...(p.partner?.claim !== undefined || p.payloadClaims ? { payload_in_metadata: p.name } : {}),
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
