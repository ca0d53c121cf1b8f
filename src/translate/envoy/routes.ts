// IR → envoy.config.route.v3.RouteConfiguration (one per listener, served over RDS): virtual
// hosts, route matches and actions, header mutations; each HTTP filter feature (filters/) adds its
// per-route config and route-action fields.
import { GATEWAY_HEADERS, ROUTE_METADATA_NAMESPACE } from '../../contract/index.ts';
import type { ActionIR, HeaderMatchIR, HeaderMutationIR, MatchIR, QueryMatchIR, RouteIR, RouteTableIR, ValueMatchIR, VirtualHostIR } from '../ir.ts';
import { duration, extension, sortedRecord, type Json, type JsonObject } from './common.ts';
import { verifiedTokenHeaders } from './filters/access.ts';
import { HTTP_FILTERS, type AuthzFilters } from './filters/index.ts';
import { compareStrings } from '../paths.ts';
import { routeStatPrefix, virtualHostName } from './observability.ts';
import type { EmitMemo } from '../memo.ts';

/** Envoy's own limit on direct-response bodies; only raised when a body needs more. */
const DEFAULT_MAX_DIRECT_BODY = 4096;

function stringMatcher(m: Exclude<ValueMatchIR, { kind: 'present' }>): JsonObject {
  if (m.kind === 'regex') return { safe_regex: { regex: m.value } };
  return m.kind === 'exact' ? { exact: m.value } : { prefix: m.value };
}

function headerMatcher(h: HeaderMatchIR): JsonObject {
  const out: JsonObject = { name: h.name };
  if (h.match.kind === 'present') out.present_match = h.match.present;
  else out.string_match = stringMatcher(h.match);
  if (h.invert) out.invert_match = true;
  return out;
}

function queryMatcher(q: QueryMatchIR): JsonObject {
  return q.match.kind === 'present' ? { name: q.name, present_match: q.match.present } : { name: q.name, string_match: stringMatcher(q.match) };
}

function methodMatcher(methods: readonly string[]): JsonObject {
  return methods.length === 1 ? { name: ':method', string_match: { exact: methods[0]! } } : { name: ':method', string_match: { safe_regex: { regex: `^(${methods.join('|')})$` } } };
}

export function routeMatch(m: MatchIR): JsonObject {
  const out: JsonObject = {};
  switch (m.path.kind) {
    case 'exact':
      out.path = m.path.value;
      break;
    case 'prefix':
      out.prefix = m.path.value;
      break;
    case 'segment_prefix':
      out.path_separated_prefix = m.path.value;
      break;
    case 'regex':
      out.safe_regex = { regex: m.path.value };
      break;
    case 'template':
      out.path_match_policy = extension('envoy.path.match.uri_template.uri_template_matcher', 'envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig', { path_template: m.path.value });
      break;
  }
  const headers = [...(m.methods ? [methodMatcher(m.methods)] : []), ...m.headers.map(headerMatcher)];
  if (headers.length) out.headers = headers;
  if (m.query.length) out.query_parameters = m.query.map(queryMatcher);
  return out;
}

function routeAction(a: Extract<ActionIR, { kind: 'forward' }>): JsonObject {
  const out: JsonObject = {};
  if (a.weighted) out.weighted_clusters = { clusters: a.clusters.map((c) => ({ name: c.name, weight: c.weight })) };
  else out.cluster = a.clusters[0]!.name;
  if (a.rewrite?.kind === 'prefix') out.prefix_rewrite = a.rewrite.value;
  if (a.rewrite?.kind === 'regex') out.regex_rewrite = { pattern: { regex: a.rewrite.pattern }, substitution: a.rewrite.substitution };
  if (a.hostRewrite !== undefined) out.host_rewrite_literal = a.hostRewrite;
  if (a.timeoutMs !== undefined) out.timeout = duration(a.timeoutMs);
  // gRPC clients ignore `timeout`; max_stream_duration is the deadline they apply (gRFC A31).
  if (a.maxStreamDurationMs !== undefined) out.max_stream_duration = { max_stream_duration: duration(a.maxStreamDurationMs) };
  if (a.retry) {
    const r = a.retry;
    out.retry_policy = {
      retry_on: r.retryOn.join(','),
      num_retries: r.numRetries,
      ...(r.perTryTimeoutMs !== undefined ? { per_try_timeout: duration(r.perTryTimeoutMs) } : {}),
      ...(r.retriableStatusCodes.length ? { retriable_status_codes: r.retriableStatusCodes } : {}),
    };
  }
  return out;
}

/**
 * Identity headers a native route sets that no filter before the router writes (jwt_authn and
 * api_key_auth write the partner, and partner-from-access on mTLS routes; ext_authz is off there).
 * The edge's header_mutation strips every client x-portico-* first, so the route can add them without
 * looking for an existing copy: OVERWRITE first searches the request's headers for each one, which
 * costs ~1.5k Envoy instructions per request for four headers (bench/gateway-variants.ts, jwt-native).
 */
const ADDED_BY_ROUTE_ONLY: ReadonlySet<string> = new Set([GATEWAY_HEADERS.credential, GATEWAY_HEADERS.product, GATEWAY_HEADERS.route, GATEWAY_HEADERS.plan]);

function headersToAdd(m: HeaderMutationIR, nativeIdentity = false): Json[] {
  const setAction = (key: string): string => (nativeIdentity && ADDED_BY_ROUTE_ONLY.has(key) ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD');
  return [
    ...m.set.map(([key, value]) => ({ header: { key, value }, append_action: setAction(key) })),
    ...m.add.map(([key, value]) => ({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })),
  ];
}

const NO_AUTHZ: AuthzFilters = { authz: false, limits: false };

export function route(r: RouteIR, authz: AuthzFilters = NO_AUTHZ): JsonObject {
  const out: JsonObject = { name: r.name, match: routeMatch(r.match) };
  if (r.action.kind === 'forward') {
    const action = routeAction(r.action);
    for (const f of HTTP_FILTERS) if (f.routeAction) Object.assign(action, f.routeAction(r));
    out.route = action;
  } else out.direct_response = { status: r.action.status, ...(r.action.body ? { body: { inline_string: r.action.body } } : {}) };
  if (r.metadata) {
    const fields: Array<[string, Json]> = [['product', r.metadata.product]];
    if (r.metadata.route !== undefined) fields.push(['route', r.metadata.route]);
    if (r.metadata.flow !== undefined) fields.push(['flow', r.metadata.flow]);
    out.metadata = { filter_metadata: { [ROUTE_METADATA_NAMESPACE]: sortedRecord(fields) } };
  }
  const statPrefix = routeStatPrefix(r);
  if (statPrefix !== undefined) out.stat_prefix = statPrefix;
  // Native routes (Envoy decides access, ext_authz off) only exist on edge groups, whose chain strips x-portico-*.
  const reqAdd = headersToAdd(r.requestHeaders, r.access !== undefined && r.authz?.disabled === true);
  if (reqAdd.length) out.request_headers_to_add = reqAdd;
  // The issuer headers the access RBAC read (filters/access.ts) are the gateway's own: not for the upstream.
  const verified = r.access && r.jwtAuth ? verifiedTokenHeaders(r.access) : [];
  const reqRemove = verified.length ? [...new Set([...r.requestHeaders.remove, ...verified])].sort(compareStrings) : r.requestHeaders.remove;
  if (reqRemove.length) out.request_headers_to_remove = reqRemove;
  const resAdd = headersToAdd(r.responseHeaders);
  if (resAdd.length) out.response_headers_to_add = resAdd;
  if (r.responseHeaders.remove.length) out.response_headers_to_remove = r.responseHeaders.remove;
  const perFilter = HTTP_FILTERS.flatMap((f) => f.perRoute?.(r, authz) ?? []);
  if (perFilter.length) out.typed_per_filter_config = sortedRecord(perFilter);
  return out;
}

/**
 * Route configurations for a group's route tables. A route's JSON is built once however many
 * virtual hosts and listeners carry it, so resources share those objects: treat them as immutable.
 * With `memo`, once across translations too (equal IR → the object built before).
 */
export function routeConfigurations(tables: readonly RouteTableIR[], authz: AuthzFilters = NO_AUTHZ, memo?: EmitMemo): JsonObject[] {
  const routes = new Map<RouteIR, JsonObject>();
  const hosts = new Map<VirtualHostIR, JsonObject>();
  const variant = JSON.stringify(authz);
  const routeJson = (r: RouteIR): JsonObject => {
    let j = routes.get(r);
    // With a memo, kept as its encoding (an EncodedMessage, which the encoder writes as its bytes and
    // JSON.stringify sees as proto3 JSON): the JSON of 10k routes is not held between translations.
    if (!j) routes.set(r, (j = memo ? (memo.encodedFor('route', r, variant, 'envoy.config.route.v3.Route', () => route(r, authz)) as JsonObject) : route(r, authz)));
    return j;
  };
  const hostJson = (vh: VirtualHostIR): JsonObject => {
    let j = hosts.get(vh);
    if (!j) hosts.set(vh, (j = { name: virtualHostName(vh.name), domains: vh.domains, routes: vh.routes.map(routeJson) }));
    return j;
  };
  return tables.map((t) => ({
    name: t.name,
    virtual_hosts: t.virtualHosts.map(hostJson),
    // Product hosts never carry ports (validateTranslation), so clients on non-default ports still match.
    ignore_port_in_host_matching: true,
    ...(t.maxDirectResponseBodyBytes > DEFAULT_MAX_DIRECT_BODY ? { max_direct_response_body_size_bytes: t.maxDirectResponseBodyBytes } : {}),
  }));
}
