// Dynamic header values: the `${variable}` syntax of route and product header rules, parsed and
// checked here (pure), so the admin API refuses an unknown variable with 422 and the translator
// only maps known ones to Envoy's substitution formatters.
import { sortedValues, type ModelSnapshot } from './model.ts';
import type { HeaderMutation, Product } from './schemas.ts';

/** Variables without an argument, and what each is (for docs and error messages). */
export const HEADER_VARIABLES = {
  uuid: 'a fresh random UUID for every request (a correlation id)',
  request_id: "the request's x-request-id (Envoy's, unless a trusted caller sent one)",
  partner: "the caller's partner (empty, so the header is left out, for anonymous callers)",
  plan: "the caller's plan",
  credential_type: 'how the caller authenticated: api_key, jwt, mtls or none',
  client_address: "the client's IP address, without port",
  route: 'the route name',
  product: 'the product name',
  time: 'when the request started, ISO 8601 in UTC with milliseconds',
} as const;
export type SimpleVariable = keyof typeof HEADER_VARIABLES;

/** Variables taking a name after a dot prefix: `${jwt.claim.sub}`, `${request.header.x-trace}`. */
export const PREFIXED_VARIABLES = {
  'jwt.claim.': "a claim of the caller's JWT (the product's issuers must forward it: JwtIssuer.forwardClaims)",
  'request.header.': 'a request header, as the upstream receives it',
  'response.header.': 'a response header (response header rules only)',
} as const;
export type VariablePrefix = keyof typeof PREFIXED_VARIABLES;

export type HeaderValuePart = { kind: 'text'; text: string } | { kind: 'var'; name: SimpleVariable } | { kind: 'var'; name: VariablePrefix; arg: string };

/** Where a header rule applies: response rules may also read response headers. */
export type HeaderDirection = 'request' | 'response';

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
const CLAIM_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

function variable(body: string, direction: HeaderDirection): HeaderValuePart | string {
  if (Object.hasOwn(HEADER_VARIABLES, body)) return { kind: 'var', name: body as SimpleVariable };
  for (const prefix of Object.keys(PREFIXED_VARIABLES) as VariablePrefix[]) {
    if (!body.startsWith(prefix)) continue;
    const arg = body.slice(prefix.length);
    if (prefix === 'response.header.' && direction === 'request') return `\${${body}} is not known in request headers (the response does not exist yet)`;
    const ok = prefix === 'jwt.claim.' ? CLAIM_NAME.test(arg) : HEADER_NAME.test(arg);
    if (!ok) return `\${${body}} names no valid ${prefix === 'jwt.claim.' ? 'claim' : 'header'}`;
    return { kind: 'var', name: prefix, arg: prefix === 'jwt.claim.' ? arg : arg.toLowerCase() };
  }
  const known = [...Object.keys(HEADER_VARIABLES), ...Object.keys(PREFIXED_VARIABLES).map((p) => `${p}<name>`)].join(', ');
  return `unknown variable \${${body}} (known: ${known}; write $\${ for a literal \${)`;
}

/**
 * Splits a header value into literal text and variables. `${name}` is a variable, `$${` a literal
 * `${`; every other character (a lone `$`, `%`) is literal. Returns the parts, or why it is refused.
 */
export function parseHeaderValue(value: string, direction: HeaderDirection): HeaderValuePart[] | string {
  const parts: HeaderValuePart[] = [];
  let text = '';
  let i = 0;
  while (i < value.length) {
    if (value.startsWith('$${', i)) {
      text += '${';
      i += 3;
    } else if (value.startsWith('${', i)) {
      const end = value.indexOf('}', i + 2);
      if (end < 0) return `unterminated \${ at character ${i + 1} (write $\${ for a literal \${)`;
      const v = variable(value.slice(i + 2, end), direction);
      if (typeof v === 'string') return v;
      if (text) parts.push({ kind: 'text', text });
      text = '';
      parts.push(v);
      i = end + 1;
    } else {
      text += value[i];
      i++;
    }
  }
  if (text) parts.push({ kind: 'text', text });
  return parts;
}

/** The JWT issuers a product accepts tokens from (its list, or every issuer). */
function productIssuers(model: ModelSnapshot, product: Pick<Product, 'jwtIssuers'>) {
  const all = sortedValues(model, 'jwtIssuers');
  return product.jwtIssuers ? all.filter((j) => product.jwtIssuers!.includes(j.name)) : all;
}

/**
 * The (lower-case) request header carrying a JWT claim on a product's routes: every issuer the
 * product accepts forwards the claim to it (JwtIssuer.forwardClaims). Undefined when some issuer
 * does not, or they disagree: then `${jwt.claim.<claim>}` is refused.
 */
export function claimHeader(model: ModelSnapshot, product: Pick<Product, 'jwtIssuers'>, claim: string): string | undefined {
  const headers = new Set(productIssuers(model, product).map((j) => j.forwardClaims?.[claim]?.toLowerCase()));
  const [only] = headers;
  return headers.size === 1 && only !== undefined ? only : undefined;
}

/** A header rule's problem: the field under the resource, and why. */
export interface HeaderValueProblem {
  field: string;
  message: string;
}

/** Every problem of one resource's request and response header rules (values, renames). */
export function headerRuleProblems(model: ModelSnapshot, product: Product, rules: { requestHeaders?: HeaderMutation; responseHeaders?: HeaderMutation }): HeaderValueProblem[] {
  const out: HeaderValueProblem[] = [];
  for (const [field, direction] of [
    ['requestHeaders', 'request'],
    ['responseHeaders', 'response'],
  ] as const) {
    const m = rules[field];
    for (const op of ['set', 'add'] as const) {
      for (const [name, value] of Object.entries(m?.[op] ?? {})) {
        const parts = parseHeaderValue(value, direction);
        const f = `${field}.${op}.${name}`;
        if (typeof parts === 'string') {
          out.push({ field: f, message: parts });
          continue;
        }
        for (const p of parts) {
          if (p.kind === 'var' && p.name === 'jwt.claim.' && claimHeader(model, product, p.arg) === undefined) {
            out.push({ field: f, message: `\${jwt.claim.${p.arg}}: every JWT issuer of product '${product.name}' must forward claim '${p.arg}' to one header (JwtIssuer.forwardClaims)` });
          }
        }
      }
    }
    const targets = new Map<string, string>();
    for (const [from, to] of Object.entries(m?.rename ?? {})) {
      const f = `${field}.rename.${from}`;
      if (from.toLowerCase() === to.toLowerCase()) out.push({ field: f, message: `renames '${from}' to itself` });
      const other = targets.get(to.toLowerCase());
      if (other !== undefined) out.push({ field: f, message: `'${to}' is already the new name of '${other}'` });
      targets.set(to.toLowerCase(), from);
    }
  }
  return out;
}
