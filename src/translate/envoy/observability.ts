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

/**
 * JSON access-log fields beyond the request basics: who called (partner, plan, credential type) and
 * what the gateway decided (ext_authz's error, Envoy's response code details: `ext_authz_denied`,
 * `request_rate_limited`, `local_rate_limited`, `via_upstream`…). Where ext_authz runs, who called
 * comes from its dynamic metadata (refusals included). A group without it (every route native or
 * public) reads the identity headers its own filters and routes set (the edge strips any a client
 * sends): ext_authz's metadata is never there, and reading it costs Envoy a lookup per field on every
 * request once another filter (the access RBAC) has written metadata of its own.
 * Never a credential: neither source holds one, and the path is logged without query.
 */
export function accessLogExtraFields(withExtAuthz: boolean): Array<[string, Json]> {
  const who = (key: 'partner' | 'plan' | 'credential') => (withExtAuthz ? `%DYNAMIC_METADATA(${AUTHZ_NS}:${key})%` : `%REQ(${GATEWAY_HEADERS[key]})%`);
  return [
    ['partner', who('partner')],
    ['plan', who('plan')],
    ['credential', who('credential')],
    // Without ext_authz it is always null: a literal, not a lookup that finds nothing on every request.
    ['authz_error', withExtAuthz ? `%DYNAMIC_METADATA(${AUTHZ_NS}:error)%` : null],
    ['response_code_details', '%RESPONSE_CODE_DETAILS%'],
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
      custom_tags: [
        routeMetadataTag('portico.product', 'product'),
        routeMetadataTag('portico.route', 'route'),
        { tag: 'portico.partner', metadata: { kind: { request: {} }, metadata_key: { key: AUTHZ_NS, path: [{ key: 'partner' }] } } },
      ],
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
