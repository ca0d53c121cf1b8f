// The error bodies clients see, whoever writes them: the gateway's JSON shape
// {"error":"<code>","message":"<text>"} (catch-all 404s, 405 fallbacks, Envoy's own local replies,
// ext_authz denials) and the rate-limit contract's 429, written alike by the rate-limit service,
// ext_authz in combined mode and Envoy itself (local token buckets, fail-closed outages).

export type RateLimitErrorCode = 'rate_limit_exceeded' | 'quota_exceeded' | 'rate_limit_unavailable';

const RATE_LIMIT_MESSAGES: Record<RateLimitErrorCode, string> = {
  rate_limit_exceeded: 'Too many requests.',
  quota_exceeded: 'Quota exceeded.',
  rate_limit_unavailable: 'Rate limiting is temporarily unavailable.',
};

/** `{"error":…,"message":"… Retry after N seconds.","retry_after":N}` — the seed's 429 body, byte for byte ("1 second" when N is 1). */
export function errorBody(error: RateLimitErrorCode, retryAfter: number): string {
  // Written out rather than JSON.stringify'd (it runs for every refusal): every part is a known
  // JSON-safe constant or an integer.
  return `{"error":"${error}","message":"${RATE_LIMIT_MESSAGES[error]} Retry after ${retryAfter} ${retryAfter === 1 ? 'second' : 'seconds'}.","retry_after":${retryAfter}}`;
}

export function gatewayErrorBody(error: string, message: string): string {
  return JSON.stringify({ error, message });
}

export const NOT_FOUND_BODY = gatewayErrorBody('not_found', 'No route matches this request.');

export function methodNotAllowedBody(allowed: readonly string[]): string {
  return gatewayErrorBody('method_not_allowed', `This path accepts ${allowed.join(', ')} only.`);
}

export interface LocalReplyMapping {
  status: number;
  /** When set, the mapping only applies to local replies carrying one of these response flags. */
  flags?: readonly string[];
  error: string;
  message: string;
}

/**
 * status_on_error of combined mode's counting-only ext_authz instance (fail-closed outage), turned
 * into the contract's 429 `rate_limit_unavailable`. Authorization denials never use it.
 */
export const LIMITS_UNAVAILABLE_STATUS = 507;

/**
 * A local reply rewritten to a rate-limit refusal: exact body (Envoy format string), status and
 * headers. Matched by status and either a response flag Envoy sets before the reply is made, or the
 * reply's response code details (for the local token bucket, which flags its replies only after).
 */
export interface RateLimitReplyMapping {
  /** The status the reply has when Envoy makes it. */
  status: number;
  /** Response flags it carries (RLSE: rate-limit service error; UAEX: ext_authz). */
  flags?: readonly string[];
  /** Its response code details (e.g. local_rate_limited), matched with a CEL filter. */
  codeDetails?: string;
  /** …or the start of them (a filter that appends its reason, as jwt_authn does). */
  codeDetailsPrefix?: string;
  /** Only when the refusing filter's Retry-After header is 1 (for the singular "1 second"). */
  retryAfterOne?: boolean;
  /** The status the client gets. */
  rewriteStatus?: number;
  headers: ReadonlyArray<readonly [string, string]>;
  /** Formatted by Envoy: %RESP(…)% reads a response header the refusing filter set. */
  body: string;
}

// Window ends as Envoy computes them per request (CEL over the request time, UTC): the next midnight,
// the first of the next month (month lengths and leap years from the calendar).
const NOW = 'int(request.time)';
const DAY_END = `(${NOW} / 86400 + 1) * 86400`;
const LEAP = '(request.time.getFullYear() % 4 == 0 && (request.time.getFullYear() % 100 != 0 || request.time.getFullYear() % 400 == 0))';
const MONTH_END = `(${NOW} / 86400 - request.time.getDate() + 1 + [31, ${LEAP} ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][request.time.getMonth()]) * 86400`;

/**
 * A native quota refusal: the quota RBAC's DENY policy `policy` (403, response code details
 * `rbac_access_denied_matched_policy[<policy>]`) rewritten into the contract's 429 `quota_exceeded`,
 * Retry-After running to the end of the window and X-RateLimit-Reset at it.
 */
export function quotaReplyMapping(policy: string, requests: number, per: 'day' | 'month'): RateLimitReplyMapping {
  const end = per === 'day' ? DAY_END : MONTH_END;
  const wait = `%CEL(${end} - ${NOW})%`;
  // "1 second" in the last second of the window, as everywhere else in the contract.
  const unit = `%CEL(${end} - ${NOW} == 1 ? 'second' : 'seconds')%`;
  return {
    status: 403,
    codeDetails: `rbac_access_denied_matched_policy[${policy}]`,
    rewriteStatus: 429,
    headers: [
      ['retry-after', wait],
      ['x-ratelimit-limit', String(requests)],
      ['x-ratelimit-remaining', '0'],
      ['x-ratelimit-reset', `%CEL(${end})%`],
    ],
    body: `{"error":"quota_exceeded","message":"${RATE_LIMIT_MESSAGES.quota_exceeded} Retry after ${wait} ${unit}.","retry_after":${wait}}`,
  };
}

// Retry-After is set per bucket by the local_ratelimit filter (response_headers_to_add); the body repeats it.
const LOCAL_LIMIT_BODY = '{"error":"rate_limit_exceeded","message":"Too many requests. Retry after %RESP(RETRY-AFTER)% seconds.","retry_after":%RESP(RETRY-AFTER)%}';
// A bucket refilling within a second says so in the singular (its own mapping, matched first).
const LOCAL_LIMIT_BODY_ONE_SECOND = errorBody('rate_limit_exceeded', 1);
const UNAVAILABLE: Pick<RateLimitReplyMapping, 'headers' | 'body'> = { headers: [['retry-after', '1']], body: errorBody('rate_limit_unavailable', 1) };

export const RATE_LIMIT_REPLY_MAPPINGS = {
  /**
   * A local token bucket (group or route) refused the request. Its details tell it apart from the
   * rate-limit service's 429 and from a direct response's (their bodies must pass untouched).
   */
  localLimit: { status: 429, codeDetails: 'local_rate_limited', headers: [], body: LOCAL_LIMIT_BODY },
  /** The same, when the bucket's Retry-After is 1: "Retry after 1 second." */
  localLimitOneSecond: { status: 429, codeDetails: 'local_rate_limited', retryAfterOne: true, headers: [], body: LOCAL_LIMIT_BODY_ONE_SECOND },
  /** Service mode, fail closed: Envoy's rate-limit filter got no answer (its status_on_error is 429). */
  serviceUnavailable: { status: 429, flags: ['RLSE'], ...UNAVAILABLE },
  /** Combined mode, fail closed: the counting-only ext_authz instance got no answer. */
  limitsUnavailable: { status: LIMITS_UNAVAILABLE_STATUS, flags: ['UAEX'], rewriteStatus: 429, ...UNAVAILABLE },
} as const satisfies Record<string, RateLimitReplyMapping>;

/**
 * Envoy-generated errors rewritten to the gateway shape, checked in order. 401, 403 and 429 are
 * left alone: the authz and rate-limit callouts write those bodies themselves.
 */
export const LOCAL_REPLY_MAPPINGS: readonly LocalReplyMapping[] = [
  // ext_authz could not get an answer (failure mode closed): status_on_error is 503.
  { status: 503, flags: ['UAEX'], error: 'authorization_unavailable', message: 'The authorization service is unavailable.' },
  { status: 400, error: 'bad_request', message: 'The request is malformed.' },
  { status: 404, error: 'not_found', message: 'No route matches this request.' },
  { status: 408, error: 'request_timeout', message: 'The request was not received in time.' },
  { status: 413, error: 'payload_too_large', message: 'The request body is too large.' },
  { status: 431, error: 'headers_too_large', message: 'The request headers are too large.' },
  { status: 500, error: 'internal_error', message: 'The gateway failed to handle the request.' },
  { status: 502, error: 'bad_gateway', message: 'The upstream service sent an invalid response.' },
  { status: 503, error: 'unavailable', message: 'The upstream service is unavailable.' },
  { status: 504, error: 'gateway_timeout', message: 'The upstream service did not respond in time.' },
];

/**
 * The gRPC-JSON transcoder's own refusals (a URL no method maps to; a body that is not the method's
 * message). They carry neither a response flag nor a missing request id, so the generic mappings
 * above would pass Envoy's plain-text bodies through; their code details name the transcoder.
 * The messages are fixed: Envoy's text quotes the client's path, which a text body cannot escape.
 */
export const TRANSCODER_REPLY_MAPPINGS: readonly RateLimitReplyMapping[] = (['early_grpc_json_transcode_failure', 'grpc_json_transcode_failure'] as const).flatMap((codeDetailsPrefix) => [
  { status: 404, codeDetailsPrefix, headers: [], body: gatewayErrorBody('not_found', 'No method of this gRPC service matches the request’s method and path.') },
  { status: 400, codeDetailsPrefix, headers: [], body: gatewayErrorBody('bad_request', 'The request does not match the gRPC method’s message.') },
]);
