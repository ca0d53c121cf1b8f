// Native JWT routes' claim check: an RBAC filter after jwt_authn, off in the chain; on a route whose
// issuers forward claims as headers, one DENY policy refuses a request whose forwarded claim value is
// no valid header value (the callout leaves such a claim out; Envoy would pass it on and the upstream
// connection would fail with a 503). Its refusal is the callout's 401 invalid_token body.
import { CLAIM_CHECK_POLICY, CLAIM_CHECK_REPLY_MAPPING } from '../../../contract/index.ts';
import { any, extension, FILTERS, type Json } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

// RFC 9110 field values: no control characters but HTAB (the callout's rule for claim headers).
const NOT_A_HEADER_VALUE = '(?s).*[\\x00-\\x08\\x0a-\\x1f\\x7f].*';

function denyBadValues(headers: readonly string[], payloadClaims: ReadonlyArray<readonly [string, string, string]>): Json {
  const bad = [
    ...headers.map((name): Json => ({ header: { name, string_match: { safe_regex: { regex: NOT_A_HEADER_VALUE } } } })),
    // Dotted claims the route copies from the payload (after this filter): checked there.
    ...payloadClaims.map(
      ([, provider, claim]): Json => ({
        metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: provider }, { key: claim }], value: { string_match: { safe_regex: { regex: NOT_A_HEADER_VALUE } } } },
      }),
    ),
  ];
  const principal = bad.length === 1 ? bad[0]! : { or_ids: { ids: bad } };
  return any(RBAC_PER_ROUTE_TYPE, { rbac: { rules: { action: 'DENY', policies: { [CLAIM_CHECK_POLICY]: { permissions: [{ any: true }], principals: [principal] } } } } });
}

export const claimCheck: HttpFilterEmitter = {
  chain: (g) => (g.filters.claimCheck ? [disabledByDefault(extension(FILTERS.claimCheck, RBAC_TYPE))] : []),
  perRoute: (r) => (r.jwtAuth?.claimHeaders.length ? [[FILTERS.claimCheck, denyBadValues(r.jwtAuth.claimHeaders, r.jwtAuth.payloadClaims ?? [])]] : []),
  localReplies: (f) => (f.claimCheck ? [CLAIM_CHECK_REPLY_MAPPING] : []),
};
