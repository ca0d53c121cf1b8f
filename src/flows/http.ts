// HTTP details of step calls and flow responses: encoding template values into paths and query
// strings, which headers a forwarded request keeps, and which a passed-through response keeps.

/**
 * A template value inside a path: percent-encoded as one segment, and `.` / `..` encoded too, so a
 * value from the request can never climb out of the path the flow author wrote.
 */
export function encodePathValue(v: string): string {
  const e = encodeURIComponent(v);
  return e === '.' ? '%2E' : e === '..' ? '%2E%2E' : e;
}

export function encodeQuery(query: ReadonlyMap<string, string | string[]>): string {
  if (query.size === 0) return '';
  const parts: string[] = [];
  for (const [k, v] of query) {
    for (const one of Array.isArray(v) ? v : [v]) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
  }
  return `?${parts.join('&')}`;
}

const decoder = new TextDecoder();
export function textOf(body: string | Uint8Array): string {
  return typeof body === 'string' ? body : decoder.decode(body);
}

/** Hop-by-hop headers, framing, and headers only the gateway may set: never copied between requests. */
const NOT_FORWARDED = /^(connection|keep-alive|proxy-.*|te|trailer|transfer-encoding|upgrade|host|content-length|x-portico-.*|x-envoy-.*|:.*)$/;

/**
 * The end-to-end headers of a message: what a forwarding call keeps of the incoming request (the
 * shell adds the identity headers itself) and what a flow passes on of a step's response (the
 * body is re-framed, so no length).
 */
export function endToEndHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in headers) if (!NOT_FORWARDED.test(k)) out[k] = headers[k]!;
  return out;
}

/** Why a rendered value cannot be a header value (RFC 9110 field content), or undefined. */
export function headerValueProblem(v: string): string | undefined {
  // RFC 9110 field content: no control characters but HTAB (the same rule as authz's claim headers).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  if (/[\0-\x08\x0a-\x1f\x7f]/.test(v)) return 'would hold a control character';
  if (v.length > 8192) return 'would be longer than 8192 characters';
  return undefined;
}
