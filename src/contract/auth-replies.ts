// The refusals Envoy's own authentication and access filters write in native mode (authz.mode native),
// rewritten to the gateway's 401/403 shape by local-reply mappers keyed on their response code details;
// the access refusals' texts are shared with the ext_authz callout, so both modes say the same.
import { createHash } from 'node:crypto';
import { gatewayErrorBody, type RateLimitReplyMapping } from './errors.ts';
import { ROUTE_METADATA_NAMESPACE } from './names.ts';

/** The realm of every WWW-Authenticate challenge the gateway sends (the callout uses it too). */
export const AUTH_REALM = 'portico';

const API_KEY_CHALLENGE: readonly [string, string] = ['www-authenticate', `ApiKey realm="${AUTH_REALM}"`];

/**
 * api_key_auth's refusals. The filter cannot tell a revoked or expired key from one never issued
 * (neither is pushed): one code each, as precise as Envoy knows. Who may call is the access RBAC's.
 */
export const API_KEY_REPLY_MAPPINGS = {
  missing: { status: 401, codeDetails: 'missing_api_key', headers: [API_KEY_CHALLENGE], body: gatewayErrorBody('missing_credentials', 'This API requires an API key.') },
  unknown: { status: 401, codeDetails: 'unknown_api_key', headers: [API_KEY_CHALLENGE], body: gatewayErrorBody('invalid_api_key', 'The API key is not recognised.') },
} as const satisfies Record<string, RateLimitReplyMapping>;

/** Why an authenticated partner may not call an operation: the 403 codes of both modes. */
export type AccessRefusal =
  | 'partner_suspended'
  | 'unknown_partner'
  | 'no_subscription'
  | 'subscription_suspended'
  | 'subscription_expired'
  | 'route_not_in_subscription'
  | 'method_not_in_subscription';

/** The message of each access refusal, given the product's name and the request's method (as text to show). */
export function accessRefusalMessage(reason: AccessRefusal, product: string, method: string): string {
  switch (reason) {
    case 'partner_suspended':
      return 'The partner account is suspended.';
    case 'unknown_partner':
      return 'Tokens from this issuer are not mapped to a partner.';
    case 'no_subscription':
      return `The partner has no subscription to the ${product} API.`;
    case 'subscription_suspended':
      return `The subscription to the ${product} API is suspended.`;
    case 'subscription_expired':
      return `The subscription to the ${product} API has expired.`;
    case 'route_not_in_subscription':
      return 'The subscription does not include this operation.';
    case 'method_not_in_subscription':
      return `The subscription does not allow ${method} requests.`;
  }
}

/**
 * The access RBAC's refusal for `reason` (its DENY policy is named after the reason). Envoy fills in
 * the product from the route's metadata and the method from the request (a token: no quote or
 * backslash can occur in it, so the JSON stays whole).
 */
export function accessReplyMapping(reason: AccessRefusal): RateLimitReplyMapping {
  const product = `%METADATA(ROUTE:${ROUTE_METADATA_NAMESPACE}:product)%`;
  return { status: 403, codeDetails: `rbac_access_denied_matched_policy[${reason}]`, headers: [], body: gatewayErrorBody(reason, accessRefusalMessage(reason, product, '%REQ(:METHOD):16%')) };
}

/** Why a verified token names no partner: its issuer's partner claim is absent, empty or no string (both modes' words). */
export function noPartnerClaimMessage(claim: string): string {
  return `The token has no ${claim} claim naming a partner.`;
}

/**
 * The access RBAC's policy for tokens without the partner claim `claim`: one per claim name (the
 * message names it), named by a digest since response code details allow only [A-Za-z0-9_[]{}].
 */
export function noPartnerClaimPolicy(claim: string): string {
  return `unknown_partner_claim_${createHash('sha256').update(claim).digest('hex').slice(0, 12)}`;
}

/**
 * The refusal of a token without the partner claim: the callout's 403 unknown_partner. A '%' of the
 * claim name is written as the JSON escape \u0025 (the same text once parsed), since Envoy reads '%'
 * in a body format as the start of a command.
 */
export function noPartnerClaimReplyMapping(claim: string): RateLimitReplyMapping {
  const body = gatewayErrorBody('unknown_partner', noPartnerClaimMessage(claim)).replaceAll('%', '\\u0025');
  return { status: 403, codeDetails: `rbac_access_denied_matched_policy[${noPartnerClaimPolicy(claim)}]`, headers: [], body };
}

const CERTIFICATE_CHALLENGE: readonly [string, string] = ['www-authenticate', `ClientCertificate realm="${AUTH_REALM}"`];

/**
 * The access RBAC's refusals on routes taking only client certificates, as the callout answers them:
 * no certificate (a plain connection), or one that names no partner of the model. The RBAC refuses
 * with 403; the mapping rewrites it to the callout's 401 with its challenge.
 */
export const MTLS_ACCESS_POLICIES = { missing: 'mtls_no_certificate', unknown: 'unknown_certificate' } as const;
export const MTLS_REPLY_MAPPINGS: readonly RateLimitReplyMapping[] = [
  {
    status: 403,
    rewriteStatus: 401,
    codeDetails: `rbac_access_denied_matched_policy[${MTLS_ACCESS_POLICIES.missing}]`,
    headers: [CERTIFICATE_CHALLENGE],
    body: gatewayErrorBody('missing_credentials', 'This API requires a client certificate.'),
  },
  {
    status: 403,
    rewriteStatus: 401,
    codeDetails: `rbac_access_denied_matched_policy[${MTLS_ACCESS_POLICIES.unknown}]`,
    headers: [CERTIFICATE_CHALLENGE],
    body: gatewayErrorBody('unknown_certificate', 'The client certificate is not registered to any partner.'),
  },
];

const BEARER_CHALLENGE: readonly [string, string] = ['www-authenticate', `Bearer realm="${AUTH_REALM}"`];

/** A refused token: 401 invalid_token with the reason in the body and in the challenge, as the callout words it. */
function invalidToken(details: { codeDetails?: string; codeDetailsPrefix?: string }, message: string, status = 401): RateLimitReplyMapping {
  return {
    status,
    ...details,
    ...(status !== 401 ? { rewriteStatus: 401 } : {}),
    headers: [['www-authenticate', `Bearer realm="${AUTH_REALM}", error="invalid_token", error_description="${message}"`]],
    body: gatewayErrorBody('invalid_token', message),
  };
}

const JWT_DENIED = 'jwt_authn_access_denied';

/**
 * jwt_authn's refusals, keyed on its response code details (`jwt_authn_access_denied{<reason with
 * spaces as _>}`), in the callout's words; anything else it refuses falls to the last mapping.
 * Envoy answers a wrong audience with 403; the callout (and RFC 6750) say 401 invalid_token.
 */
export const JWT_REPLY_MAPPINGS: readonly RateLimitReplyMapping[] = [
  {
    status: 401,
    codeDetails: `${JWT_DENIED}{Jwt_is_missing}`,
    headers: [BEARER_CHALLENGE],
    body: gatewayErrorBody('missing_credentials', 'This API requires a bearer token in the Authorization header.'),
  },
  invalidToken({ codeDetails: `${JWT_DENIED}{Jwt_is_expired}` }, 'The token has expired.'),
  invalidToken({ codeDetails: `${JWT_DENIED}{Jwt_not_yet_valid}` }, 'The token is not valid yet.'),
  invalidToken({ codeDetails: `${JWT_DENIED}{Audiences_in_Jwt_are_not_allowed}` }, 'The token audience is not accepted by this API.', 403),
  invalidToken({ codeDetails: `${JWT_DENIED}{Jwt_issuer_is_not_configured}` }, 'The token issuer is not accepted by this API.'),
  invalidToken({ codeDetails: `${JWT_DENIED}{Jwt_verification_fails}` }, 'The token signature is invalid.'),
  invalidToken({ codeDetailsPrefix: `${JWT_DENIED}{Jwks_doesn` }, 'The token was not signed with a key and algorithm the issuer publishes.'),
  invalidToken({ codeDetailsPrefix: JWT_DENIED }, 'The token is malformed or could not be verified.'),
];

/** The claim check's DENY policy (native JWT routes): a forwarded claim that is no valid header value. */
export const CLAIM_CHECK_POLICY = 'portico_claim_not_header_value';

/**
 * The claim check's refusal: the callout leaves a claim that is no valid header value (control
 * characters) out; Envoy would pass it on and the upstream connection would fail, so it is refused.
 */
export const CLAIM_CHECK_REPLY_MAPPING: RateLimitReplyMapping = invalidToken(
  { codeDetails: `rbac_access_denied_matched_policy[${CLAIM_CHECK_POLICY}]` },
  'The token has a claim that is not a valid header value.',
  403,
);
