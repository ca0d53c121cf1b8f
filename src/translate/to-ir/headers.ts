// Model → IR for header rules: a product's and a route's rules merged (the route's win for the same
// header), names lower-cased, and each value's `${variable}`s (src/model/header-values.ts) written
// as Envoy's substitution formatters, with literal text escaped so `%` stays a `%`.
import { GATEWAY_HEADERS } from '../../contract/index.ts';
import { claimHeader, effectiveAccept, parseHeaderValue, type HeaderDirection, type HeaderMutation, type HeaderValuePart, type ModelSnapshot, type Product, type Route } from '../../model/index.ts';
import type { HeaderMutationIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';

/** Header values pass through Envoy's formatter, where % starts a command: keep them literal. */
export function literalHeaderValue(v: string): string {
  return v.replace(/%/g, '%%');
}

/** What a header value's variables resolve against. */
interface HeaderContext {
  model: ModelSnapshot;
  product: Product;
  /** Rules a product sets for all its routes are translated per route too, so the route is always known. */
  route: Route;
}

/** One variable as Envoy's formatter command (or as literal text, when the translator knows it). */
function formatter(p: Extract<HeaderValuePart, { kind: 'var' }>, c: HeaderContext): string {
  switch (p.name) {
    case 'uuid':
      return '%UNIQUE_ID%';
    case 'request_id':
      return '%REQ(x-request-id)%';
    case 'partner':
      return `%REQ(${GATEWAY_HEADERS.partner})%`;
    case 'plan':
      return `%REQ(${GATEWAY_HEADERS.plan})%`;
    case 'credential_type':
      // A public route calls no one to learn it: every caller there is anonymous.
      return effectiveAccept(c.product, c.route).every((a) => a === 'none') ? 'none' : `%REQ(${GATEWAY_HEADERS.credential})%`;
    case 'client_address':
      return '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%';
    case 'route':
      return literalHeaderValue(c.route.name);
    case 'product':
      return literalHeaderValue(c.product.name);
    case 'time':
      return '%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%';
    case 'jwt.claim.': {
      const header = claimHeader(c.model, c.product, p.arg);
      // validateModel refuses a claim no header carries; translation never guesses one.
      if (header === undefined) throw new Error(`claim ${p.arg} has no forwarded header in product ${c.product.name}`);
      return `%REQ(${header})%`;
    }
    case 'request.header.':
      return `%REQ(${p.arg})%`;
    case 'response.header.':
      return `%RESP(${p.arg})%`;
  }
}

/** A model header value as Envoy's header value format. */
export function headerValueFormat(value: string, direction: HeaderDirection, c: HeaderContext): string {
  const parts = parseHeaderValue(value, direction);
  if (typeof parts === 'string') throw new Error(`header value refused by validation reached the translator: ${parts}`);
  return parts.map((p) => (p.kind === 'text' ? literalHeaderValue(p.text) : formatter(p, c))).join('');
}

/** Whether a model header value holds `${uuid}` (a correlation id: the access log records it). */
export function holdsUuid(value: string, direction: HeaderDirection): boolean {
  const parts = parseHeaderValue(value, direction);
  return typeof parts !== 'string' && parts.some((p) => p.kind === 'var' && p.name === 'uuid');
}

const byName = (a: [string, string], b: [string, string]) => compareStrings(a[0], b[0]) || compareStrings(a[1], b[1]);

/** Lower-cased entries of a record. */
function lower(r: Record<string, string> | undefined): Array<[string, string]> {
  return Object.entries(r ?? {}).map(([k, v]): [string, string] => [k.toLowerCase(), v]);
}

/** The header names a route's rules mention: for these, none of the product's rules apply. */
function mentioned(m: HeaderMutation | undefined): Set<string> {
  return new Set([...Object.keys(m?.set ?? {}), ...Object.keys(m?.add ?? {}), ...(m?.remove ?? []), ...Object.keys(m?.rename ?? {})].map((h) => h.toLowerCase()));
}

/** A product's rules with the route's own: the route's replace the product's for every header they mention. */
function mergedRules(p: HeaderMutation | undefined, r: HeaderMutation | undefined) {
  const own = mentioned(r);
  const pick = (op: 'set' | 'add' | 'rename') => [...lower(p?.[op]).filter(([k]) => !own.has(k)), ...lower(r?.[op])];
  const remove = [...(p?.remove ?? []).filter((h) => !own.has(h.toLowerCase())), ...(r?.remove ?? [])].map((h) => h.toLowerCase());
  return { set: pick('set'), add: pick('add'), rename: pick('rename'), remove };
}

/** A route's header rules for one direction: its product's and its own, merged, as Envoy values. */
export function headerRulesIr(model: ModelSnapshot, product: Product, route: Route, direction: HeaderDirection): HeaderMutationIR {
  const field = direction === 'request' ? 'requestHeaders' : 'responseHeaders';
  const m = mergedRules(product[field], route[field]);
  const c = { model, product, route };
  const values = (pairs: Array<[string, string]>) => pairs.map(([k, v]): [string, string] => [k, headerValueFormat(v, direction, c)]).sort(byName);
  const rename = m.rename.map(([k, v]): [string, string] => [k, v.toLowerCase()]).sort(byName);
  return {
    set: values(m.set),
    add: values(m.add),
    remove: [...new Set(m.remove)].sort(compareStrings),
    ...(rename.length ? { rename } : {}),
  };
}

/** The request headers a route sets to a fresh UUID (correlation ids), lower-cased and sorted. */
export function correlationHeaders(product: Product, route: Route): string[] {
  const m = mergedRules(product.requestHeaders, route.requestHeaders);
  return [...new Set([...m.set, ...m.add].filter(([, v]) => holdsUuid(v, 'request')).map(([k]) => k))].sort(compareStrings);
}
