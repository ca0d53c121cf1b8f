// The gateway's one JSON error shape, {"error":"<code>","message":"<text>"}, for the responses
// the gateway itself writes: catch-all 404s, 405 fallbacks and Envoy's own local replies.

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
