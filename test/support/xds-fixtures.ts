// Hand-written Envoy resources (GroupResources) for xDS tests, benchmarks and demos: an HTTP gateway,
// a proxyless-gRPC target, and a large generated group. Not used by the running control plane.
import type { EnvoyResource, GroupResources } from '../../src/contract/index.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const ADS_SOURCE = { ads: {}, resource_api_version: 'V3' };

export function edsCluster(name: string, extra: Record<string, unknown> = {}): EnvoyResource {
  return { name, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: ADS_SOURCE }, ...extra };
}

/** Endpoints of one cluster; proxyless gRPC also needs a locality with a weight. */
export function loadAssignment(cluster: string, endpoints: { host: string; port: number }[], locality?: { zone: string }): EnvoyResource {
  return {
    cluster_name: cluster,
    endpoints: [
      {
        ...(locality ? { locality: { zone: locality.zone }, load_balancing_weight: 1 } : {}),
        lb_endpoints: endpoints.map((e) => ({ endpoint: { address: { socket_address: { address: e.host, port_value: e.port } } } })),
      },
    ],
  };
}

export function httpListener(name: string, port: number, routeConfig: string, host = '127.0.0.1'): EnvoyResource {
  return {
    name,
    address: { socket_address: { address: host, port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: name,
              rds: { route_config_name: routeConfig, config_source: ADS_SOURCE },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
            },
          },
        ],
      },
    ],
  };
}

export interface SimpleRoute {
  prefix: string;
  cluster: string;
  /** Added to the response so tests can tell which route answered. */
  tag?: string;
}

export function routeConfiguration(name: string, routes: SimpleRoute[], domains: string[] = ['*']): EnvoyResource {
  return {
    name,
    virtual_hosts: [
      {
        name: `${name}-vh`,
        domains,
        routes: routes.map((r) => ({
          match: { prefix: r.prefix },
          route: { cluster: r.cluster },
          ...(r.tag ? { response_headers_to_add: [{ header: { key: 'x-portico-route', value: r.tag } }] } : {}),
        })),
      },
    ],
  };
}

export interface HttpGatewayFixture {
  listenerPort: number;
  /** cluster name → upstream ports. */
  upstreams: Record<string, number[]>;
  routes: SimpleRoute[];
  listenerName?: string;
  routeConfigName?: string;
}

/** One listener with RDS, one route configuration, EDS clusters on loopback upstreams. */
export function httpGatewayResources(f: HttpGatewayFixture): GroupResources {
  const listener = f.listenerName ?? 'edge-http';
  const rc = f.routeConfigName ?? 'edge-routes';
  const names = Object.keys(f.upstreams).sort();
  return {
    clusters: names.map((n) => edsCluster(n)),
    endpoints: names.map((n) =>
      loadAssignment(
        n,
        f.upstreams[n]!.map((port) => ({ host: '127.0.0.1', port })),
      ),
    ),
    listeners: [httpListener(listener, f.listenerPort, rc)],
    routes: [routeConfiguration(rc, f.routes)],
    secrets: [],
  };
}

/**
 * What a proxyless gRPC client needs for target `xds:///<target>`: an API listener named as the
 * target (HCM with RDS), a route configuration, an EDS cluster and its endpoints.
 */
export function proxylessGrpcResources(target: string, cluster: string, upstreamPorts: number[]): GroupResources {
  const rc = `${target}-routes`;
  return {
    clusters: [edsCluster(cluster, { lb_policy: 'ROUND_ROBIN' })],
    endpoints: [
      loadAssignment(
        cluster,
        upstreamPorts.map((port) => ({ host: '127.0.0.1', port })),
        { zone: 'local' },
      ),
    ],
    listeners: [
      {
        name: target,
        api_listener: {
          api_listener: {
            '@type': HCM,
            rds: { route_config_name: rc, config_source: ADS_SOURCE },
            http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
          },
        },
      },
    ],
    routes: [
      {
        name: rc,
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster } }] }],
      },
    ],
    secrets: [],
  };
}

export interface LargeGroupOptions {
  clusters: number;
  routes: number;
  /** Route configurations the routes are spread over (one listener each). */
  routeConfigs: number;
  /** Changes one route's prefix (a "one-route change"). */
  variant?: number;
  /** Changes one cluster's endpoints (a "one-endpoint change"). */
  endpointVariant?: number;
}

/** A big realistic-looking group: EDS clusters, one listener + route configuration per shard. */
export function largeGroupResources(o: LargeGroupOptions): GroupResources {
  const pad = (n: number) => String(n).padStart(5, '0');
  const clusters: EnvoyResource[] = [];
  const endpoints: EnvoyResource[] = [];
  for (let i = 0; i < o.clusters; i++) {
    const name = `svc-${pad(i)}`;
    clusters.push(
      edsCluster(name, {
        lb_policy: 'LEAST_REQUEST',
        circuit_breakers: { thresholds: [{ max_connections: 1024, max_pending_requests: 1024, max_requests: 4096 }] },
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            common_http_protocol_options: { idle_timeout: '60s' },
            explicit_http_config: { http_protocol_options: {} },
          },
        },
      }),
    );
    const base = 10 + (i % 200);
    const hosts = [0, 1, 2].map((k) => ({ host: `10.${base}.${(i >> 8) & 255}.${(i & 255) ^ k}`, port: 8080 + (i === 0 ? (o.endpointVariant ?? 0) : 0) }));
    endpoints.push(loadAssignment(name, hosts));
  }
  const perConfig = Math.ceil(o.routes / o.routeConfigs);
  const listeners: EnvoyResource[] = [];
  const routes: EnvoyResource[] = [];
  for (let c = 0; c < o.routeConfigs; c++) {
    const rcName = `routes-${pad(c)}`;
    listeners.push(httpListener(`listener-${pad(c)}`, 10000 + c, rcName, '0.0.0.0'));
    const vhosts: Record<string, unknown>[] = [];
    const perVh = 100;
    for (let start = c * perConfig; start < Math.min(o.routes, (c + 1) * perConfig); start += perVh) {
      const rs: Record<string, unknown>[] = [];
      for (let r = start; r < Math.min(o.routes, (c + 1) * perConfig, start + perVh); r++) {
        const v = r === 0 && o.variant ? `-v${o.variant}` : '';
        rs.push({
          name: `route-${pad(r)}`,
          match: { path_separated_prefix: `/api/product-${pad(r)}${v}`, headers: [{ name: ':method', string_match: { exact: 'GET' } }] },
          route: { cluster: `svc-${pad(r % o.clusters)}`, timeout: '15s', retry_policy: { retry_on: '5xx', num_retries: 2 } },
          request_headers_to_add: [{ header: { key: 'x-portico-product', value: `product-${pad(r)}` }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
        });
      }
      vhosts.push({ name: `vh-${pad(start)}`, domains: [`api-${pad(start)}.example.com`], routes: rs });
    }
    routes.push({ name: rcName, virtual_hosts: vhosts });
  }
  return { clusters, endpoints, listeners, routes, secrets: [] };
}
