// The refusals Envoy's own authentication filters write in native mode (authz.mode native), rewritten
// to the gateway's 401/403 shape by local-reply mappers keyed on their response code details.
import { gatewayErrorBody, type RateLimitReplyMapping } from './errors.ts';

/** The realm of every WWW-Authenticate challenge the gateway sends (the callout uses it too). */
export const AUTH_REALM = 'portico';

const API_KEY_CHALLENGE: readonly [string, string] = ['www-authenticate', `ApiKey realm="${AUTH_REALM}"`];

/**
 * api_key_auth's refusals. The filter cannot tell a revoked key from one never issued (revoked keys
 * are not pushed) nor say why a partner may not call (no subscription, suspended, route outside the
 * access level): one code each, as precise as Envoy knows.
 */
export const API_KEY_REPLY_MAPPINGS = {
  missing: { status: 401, codeDetails: 'missing_api_key', headers: [API_KEY_CHALLENGE], body: gatewayErrorBody('missing_credentials', 'This API requires an API key.') },
  unknown: { status: 401, codeDetails: 'unknown_api_key', headers: [API_KEY_CHALLENGE], body: gatewayErrorBody('invalid_api_key', 'The API key is not recognised.') },
  forbidden: { status: 403, codeDetails: 'client_not_allowed', headers: [], body: gatewayErrorBody('access_denied', 'The partner may not call this operation.') },
} as const satisfies Record<string, RateLimitReplyMapping>;
