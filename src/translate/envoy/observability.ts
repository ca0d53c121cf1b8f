// What the translator adds for observability, in one place (the emitters call in with one-line
// hooks): access-log fields naming the partner, plan, credential and the authz/limit outcome; the
// gRPC access logger that streams every request to the control plane (per-partner metrics); the
// OpenTelemetry tracer; per-route stat prefixes (`product/route`) and stat-safe virtual host names,
// so Envoy's own route stats carry the product as labels (see the tag extractors in
// src/xds/bootstrap.ts). Pure, like the rest of the translator.
import { ACCESS_LOG_NAME, ACCESS_LOG_TAGS, EXT_AUTHZ_FILTERS, FLOW_HEADERS, GATEWAY_HEADERS, ROUTE_METADATA_NAMESPACE } from '../../contract/index.ts';
import type { GroupIR, RouteIR } from '../ir.ts';
import { any, duration, extension, type Json, type JsonObject } from './common.ts';

/** Where ext_authz's dynamic metadata (partner, plan, credential, error) lives. */
const AUTHZ_NS = EXT_AUTHZ_FILTERS.main;

/** Where a stdout access-log line reads who called: the identity headers, or ext_authz's dynamic metadata. */
export type CallerSource = 'headers' | 'callout';

/**
 * JSON access-log fields beyond the request basics: who called (partner, plan, credential type) and
 * what the gateway decided (ext_authz's error, Envoy's response code details: `ext_authz_denied`,
 * `request_rate_limited`, `local_rate_limited`, `via_upstream`…). `headers`: the identity headers
 * Envoy's own filters, the route or an ext_authz allow set (the edge strips any a client sends);
 * `callout`: ext_authz's dynamic metadata, which also names the caller of a request it refused.
 * Never a credential: neither source holds one, and the path is logged without query.
 */
export function accessLogExtraFields(source: CallerSource): Array<[string, Json]> {
  const who = (key: 'partner' | 'plan' | 'credential') => (source === 'callout' ? `%DYNAMIC_METADATA(${AUTHZ_NS}:${key})%` : `%REQ(${GATEWAY_HEADERS[key]})%`);
  return [
    ['partner', who('partner')],
    ['plan', who('plan')],
    ['credential', who('credential')],
    // An ext_authz error comes with a refusal, which sets no identity header: on the headers line it
    // is always null, a literal rather than a lookup that finds nothing on every request.
    ['authz_error', source === 'callout' ? `%DYNAMIC_METADATA(${AUTHZ_NS}:error)%` : null],
    ['response_code_details', '%RESPONSE_CODE_DETAILS%'],
  ];
}

/** Whether a request carries an identity header (`present`), or neither the partner nor the credential one. */
function identityHeaderFilter(present: boolean): JsonObject {
  const header = (name: string) => ({ header_filter: { header: { name, present_match: present } } });
  const both = [header(GATEWAY_HEADERS.partner), header(GATEWAY_HEADERS.credential)];
  return present ? { or_filter: { filters: both } } : { and_filter: { filters: both } };
}

/**
 * The stdout loggers of a group, each with the source it names the caller from and the requests it
 * logs (every request exactly one line). Without ext_authz, one reading the identity headers. With
 * ext_authz, two split on those headers: a request that carries one was identified (by Envoy's own
 * filters, or allowed by the callout, which sets the same headers) and is logged from them; one
 * that carries neither was refused by the callout (its metadata names the caller and the error),
 * refused before anything identified it, or is anonymous, and is logged from ext_authz's metadata.
 * Reading the metadata alone named every caller on a native route of a mixed group (native routes
 * beside callout routes, common since plan limits fall back per product) as null; reading the
 * headers alone loses who the callout refused. The split costs two header lookups per logger and
 * spares the four metadata lookups on identified requests.
 */
export function stdoutAccessLogSources(withExtAuthz: boolean): Array<{ source: CallerSource; filter?: JsonObject }> {
  if (!withExtAuthz) return [{ source: 'headers' }];
  return [
    { source: 'headers', filter: identityHeaderFilter(true) },
    { source: 'callout', filter: identityHeaderFilter(false) },
  ];
}

function routeMetadataTag(tag: string, key: string): JsonObject {
  return { tag, metadata: { kind: { route: {} }, metadata_key: { key: ROUTE_METADATA_NAMESPACE, path: [{ key }] } } };
}

/**
 * The gRPC access logger streaming each request to Portico's access-log service. Product and route
 * travel as custom tags from the route's metadata (ext_authz's dynamic metadata, with the partner,
 * is part of every entry); the group as a literal tag. Entries are batched (1 s or 16 KiB).
 */
export function grpcAccessLogs(g: GroupIR): JsonObject[] {
  const cluster = g.telemetry?.accessLogCluster;
  if (!cluster) return [];
  return [
    extension('envoy.access_loggers.http_grpc', 'envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig', {
      common_config: {
        log_name: ACCESS_LOG_NAME,
        grpc_service: { envoy_grpc: { cluster_name: cluster } },
        transport_api_version: 'V3',
        buffer_flush_interval: duration(1_000),
        buffer_size_bytes: 16_384,
        custom_tags: [
          { tag: ACCESS_LOG_TAGS.group, literal: { value: g.name } },
          routeMetadataTag(ACCESS_LOG_TAGS.product, 'product'),
          routeMetadataTag(ACCESS_LOG_TAGS.route, 'route'),
          // The partner header authentication set (native or ext_authz): native quotas count by it.
          { tag: ACCESS_LOG_TAGS.partner, request_header: { name: GATEWAY_HEADERS.partner } },
        ],
      },
    }),
  ];
}

/**
 * Where a span's `portico.partner` comes from. Envoy keeps one custom tag per name (no fallback), so
 * one source per group: the partner header wherever Envoy's own filters identify callers (it is set
 * on every identified request, natively or by an ext_authz allow, and on native refusals after
 * identification); ext_authz's metadata only in a group where the callout identifies every caller
 * (it also names the partners the callout refuses). Reading the metadata alone left every native
 * caller's span without a partner.
 */
function partnerTag(g: GroupIR): JsonObject {
  const f = g.filters;
  const calloutOnly = (f.extAuthz !== undefined || f.extAuthzLimits !== undefined) && !f.apiKeyAuth && !f.access && !f.jwtAuthn;
  return calloutOnly
    ? { tag: 'portico.partner', metadata: { kind: { request: {} }, metadata_key: { key: AUTHZ_NS, path: [{ key: 'partner' }] } } }
    : { tag: 'portico.partner', request_header: { name: GATEWAY_HEADERS.partner } };
}

/** HCM tracing with the OpenTelemetry tracer (spread into the connection manager; empty when off). */
export function tracing(g: GroupIR): JsonObject {
  const t = g.telemetry?.tracing;
  if (!t) return {};
  return {
    tracing: {
      provider: {
        name: 'envoy.tracers.opentelemetry',
        typed_config: any('envoy.config.trace.v3.OpenTelemetryConfig', {
          grpc_service: { envoy_grpc: { cluster_name: t.cluster }, timeout: duration(1_000) },
          service_name: `portico-${g.name}`,
        }),
      },
      random_sampling: { value: t.samplePercent },
      custom_tags: [routeMetadataTag('portico.product', 'product'), routeMetadataTag('portico.route', 'route'), partnerTag(g)],
    },
  };
}

/** Tracing on the flow step listener: a span per step call, tagged with the step (product/route/step). */
export function stepTracing(g: GroupIR): JsonObject {
  const t = tracing(g).tracing as JsonObject | undefined;
  if (!t) return {};
  // Sampling follows the edge's decision, carried in the propagated trace headers.
  return { tracing: { provider: t.provider as Json, random_sampling: { value: 100 }, custom_tags: [{ tag: 'portico.flow.step', request_header: { name: FLOW_HEADERS.step } }] } };
}

/**
 * A model route's stats prefix, `product/route`: Envoy then keeps per-route stats under
 * `vhost.<virtual host>.route.<product>/<route>.` (upstream_rq_<code>, upstream_rq_time…), which
 * its default tag extraction labels envoy_virtual_host and envoy_route and the bootstrap's
 * extractor portico_product. Gateway-generated routes (404, 405, preflights) get none.
 */
export function routeStatPrefix(r: RouteIR): string | undefined {
  return r.metadata?.route !== undefined ? `${r.metadata.product}/${r.metadata.route}` : undefined;
}

/**
 * Portico's own clusters are named with a dot (`portico.callouts`: service names never hold one), which
 * Envoy's tag extraction would split (envoy_cluster_name="portico"): they get a stat name with `_`.
 */
export function clusterStatName(name: string): { alt_stat_name?: string } {
  return name.includes('.') ? { alt_stat_name: name.replaceAll('.', '_') } : {};
}

/**
 * A virtual host's name for stats: Envoy's tag extraction splits stat names at dots, so a host name
 * would break the envoy_virtual_host label apart; dots become underscores (hosts never hold `_`).
 */
export function virtualHostName(name: string): string {
  return name.replaceAll('.', '_');
}
