// Envoy bootstrap for edge and sidecar Envoys: ADS to the control plane replicas, admin on loopback,
// overload limits. Run as a script it renders one from the environment (or rewrites envoy/*.yaml).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isIP } from 'node:net';
import YAML from 'yaml';
import { channelSdsDocuments, channelTransportSocket } from '../contract/index.ts';
import { controlPlaneIdentityUri } from '../grpc/index.ts';
import type { JsonObject } from '../proto/index.ts';

export type EnvoyRole = 'edge' | 'sidecar';

export interface BootstrapOptions {
  role?: EnvoyRole;
  /** node.id; omitted → Envoy takes --service-node. */
  nodeId?: string;
  /** node.cluster = the gateway group; omitted → Envoy takes --service-cluster. */
  group?: string;
  /** Control-plane replicas as host:port; all become endpoints of the xDS cluster (HA). */
  xdsAddresses: string[];
  adminPort: number;
  /** Admin listens on loopback only: it can change Envoy's state. */
  adminAddress?: string;
  /** 'GRPC' = state of the world, 'DELTA_GRPC' = incremental. */
  apiType?: 'GRPC' | 'DELTA_GRPC';
  /** Overload manager: heap ceiling and global downstream connection limit. */
  maxHeapBytes?: number;
  maxDownstreamConnections?: number;
  /**
   * mTLS to the control plane: the directory on the Envoy host with the file-based SDS files (written
   * with renderChannelSds) naming the node's certificate, key and CA. Envoy reloads them when they change.
   */
  channelSdsDir?: string;
  /** SNI sent to the control plane (optional; the control plane's identity is checked by its URI SAN). */
  sni?: string;
}

export const XDS_CLUSTER = 'portico_xds';
/** Where an Envoy host keeps its channel credentials by default (a Kubernetes TLS Secret's layout: tls.crt, tls.key, ca.crt). */
export const DEFAULT_TLS_DIR = '/etc/portico/tls';
/** Where the SDS files naming them live, beside the bootstrap; the control plane's PORTICO_ENVOY_CHANNEL_SDS_DIR default. */
export const DEFAULT_CHANNEL_SDS_DIR = '/etc/portico/envoy';

/**
 * Stats tags beyond Envoy's defaults: routes carry the stat prefix `<product>/<route>` (see
 * src/translate/envoy/observability.ts), which Envoy's default extraction already turns into
 * envoy_virtual_host and envoy_route; this adds the product alone as portico_product, so
 * /stats/prometheus has e.g. envoy_vhost_route_upstream_rq{envoy_route="orders/get",portico_product="orders",…}.
 */
/** The RE2 program size (instructions) above which Envoy refuses a regex: its default is 100. */
export const RE2_PROGRAM_LIMIT = 10_000;

export const STATS_TAGS: readonly JsonObject[] = [{ tag_name: 'portico_product', regex: '^vhost\\.[^.]+\\.route\\.(([a-z0-9-]+)/)' }];

/** Defaults per role: an edge takes Internet-scale connection counts, a sidecar serves one workload. */
export const ROLE_DEFAULTS: Readonly<Record<EnvoyRole, { adminPort: number; maxHeapBytes: number; maxDownstreamConnections: number }>> = {
  edge: { adminPort: 9901, maxHeapBytes: 1024 * 1024 * 1024, maxDownstreamConnections: 50_000 },
  sidecar: { adminPort: 9902, maxHeapBytes: 256 * 1024 * 1024, maxDownstreamConnections: 5_000 },
};

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error(`xDS address must be host:port, got '${addr}'`);
  return { host: m[1]!, port };
}

/** The bootstrap as proto3 JSON (Envoy reads it as .json or .yaml). */
export function renderBootstrap(o: BootstrapOptions): JsonObject {
  const role = o.role ?? 'edge';
  const defaults = ROLE_DEFAULTS[role];
  if (o.xdsAddresses.length === 0) throw new Error('at least one xDS address is needed');
  const endpoints = o.xdsAddresses.map(splitHostPort);
  // IP literals need no resolver; names are resolved and re-resolved (every address a replica).
  const staticAddresses = endpoints.every((e) => isIP(e.host) !== 0);
  const node: JsonObject = { metadata: { 'portico.role': role } };
  if (o.nodeId) node.id = o.nodeId;
  if (o.group) node.cluster = o.group;

  const xdsCluster: JsonObject = {
    name: XDS_CLUSTER,
    type: staticAddresses ? 'STATIC' : 'STRICT_DNS',
    connect_timeout: '1s',
    lb_policy: 'ROUND_ROBIN',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: {
          // HTTP/2 pings notice a dead control plane faster than TCP does.
          http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '5s' } },
        },
      },
    },
    upstream_connection_options: { tcp_keepalive: { keepalive_time: 60 } },
    load_assignment: {
      cluster_name: XDS_CLUSTER,
      endpoints: [
        {
          lb_endpoints: endpoints.map((e) => ({ endpoint: { address: { socket_address: { address: e.host, port_value: e.port } } } })),
        },
      ],
    },
  };
  if (o.channelSdsDir) {
    const socket = channelTransportSocket(o.channelSdsDir) as JsonObject & { typed_config: JsonObject };
    if (o.sni) socket.typed_config.sni = o.sni;
    xdsCluster.transport_socket = socket;
  }

  const heap = o.maxHeapBytes ?? defaults.maxHeapBytes;
  return {
    node,
    admin: { address: { socket_address: { address: o.adminAddress ?? '127.0.0.1', port_value: o.adminPort } } },
    dynamic_resources: {
      ads_config: {
        api_type: o.apiType ?? 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [
          {
            envoy_grpc: {
              cluster_name: XDS_CLUSTER,
              // Reconnect quickly after a replica restarts, without hammering a fleet-wide outage.
              retry_policy: { retry_back_off: { base_interval: '0.25s', max_interval: '5s' } },
            },
          },
        ],
        set_node_on_first_message_only: true,
      },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: { clusters: [xdsCluster] },
    stats_config: { stats_tags: STATS_TAGS.map((t) => ({ ...t })) },
    // Envoy's ext_proc client otherwise resets every idempotency-processor stream when it has its last
    // answer (an RST_STREAM per protected request). Node's HTTP/2 server rate-limits received resets
    // (nghttp2: a burst of 1,000 per connection, refilled at 33/s; not settable in Node 20) and ends a
    // connection past that with GOAWAY, refusing the streams in flight. With this flag (opt-in in Envoy
    // 1.40) Envoy half-closes each stream and waits for the processor's status: one connection lasts,
    // and both sides do less per request (test/e2e/idempotency-envoy.test.ts).
    // re2.max_program_size.error_level: Envoy refuses a regex over 100 RE2 instructions by default, and
    // with it the whole resource (every route of the group stops updating). An operator's route regex
    // (with the product's base path before it) passes 100 easily, e.g. an alternation of ten path
    // segments; the control plane's own patterns stay under 100 whatever this says.
    layered_runtime: {
      layers: [
        { name: 'portico', static_layer: { 'envoy.reloadable_features.ext_proc_graceful_grpc_close': true, 're2.max_program_size.error_level': RE2_PROGRAM_LIMIT } },
        { name: 'admin', admin_layer: {} },
      ],
    },
    overload_manager: {
      refresh_interval: '0.25s',
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.fixed_heap',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig',
            max_heap_size_bytes: String(heap),
          },
        },
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
            max_active_downstream_connections: String(o.maxDownstreamConnections ?? defaults.maxDownstreamConnections),
          },
        },
      ],
      actions: [
        { name: 'envoy.overload_actions.shrink_heap', triggers: [{ name: 'envoy.resource_monitors.fixed_heap', threshold: { value: 0.9 } }] },
        { name: 'envoy.overload_actions.stop_accepting_requests', triggers: [{ name: 'envoy.resource_monitors.fixed_heap', threshold: { value: 0.98 } }] },
      ],
    },
  };
}

/** The SDS files (by file name) for the bootstrap's channelSdsDir: the node's certificate files and the control plane's identity. */
export function renderChannelSds(o: { certFile: string; keyFile: string; caFile: string; trustDomain: string }): Record<string, JsonObject> {
  return channelSdsDocuments({ certFile: o.certFile, keyFile: o.keyFile, caFile: o.caFile, controlPlaneIdentity: controlPlaneIdentityUri(o.trustDomain) }) as Record<string, JsonObject>;
}

/** The options envoy/<role>.yaml is rendered with (node id and group come from Envoy's command line). */
export function fileOptions(role: EnvoyRole): BootstrapOptions {
  return { role, xdsAddresses: ['127.0.0.1:18000'], adminPort: ROLE_DEFAULTS[role].adminPort, channelSdsDir: DEFAULT_CHANNEL_SDS_DIR };
}

/** envoy/portico-*-sds.yaml, by file name: the node's files in DEFAULT_TLS_DIR, trust domain 'portico'. */
export function channelSdsYaml(): Record<string, string> {
  const header = [
    '# An SDS file envoy/edge.yaml and envoy/sidecar.yaml read their mTLS credentials for the control plane through.',
    `# Install both portico-*-sds.yaml files in ${DEFAULT_CHANNEL_SDS_DIR}; put the node's tls.crt, tls.key and ca.crt in`,
    `# ${DEFAULT_TLS_DIR} (\`portico certs node --group <gateway-group>\` makes them). Envoy re-reads them when they change.`,
    '# Generated by src/xds/bootstrap.ts (renderChannelSds); a test keeps it in sync.',
    '',
  ].join('\n');
  const dir = DEFAULT_TLS_DIR;
  const docs = renderChannelSds({ certFile: `${dir}/tls.crt`, keyFile: `${dir}/tls.key`, caFile: `${dir}/ca.crt`, trustDomain: 'portico' });
  return Object.fromEntries(Object.entries(docs).map(([file, doc]) => [file, header + YAML.stringify(doc)]));
}

export function bootstrapYaml(role: EnvoyRole): string {
  const header = [
    `# Portico ${role} Envoy bootstrap. Generated by src/xds/bootstrap.ts (renderBootstrap); a test keeps it in sync.`,
    `# Start: envoy -c envoy/${role}.yaml --service-node <node-id> --service-cluster <gateway-group>`,
    `# mTLS to the control plane: needs envoy/portico-*-sds.yaml in ${DEFAULT_CHANNEL_SDS_DIR} and the node's certificate files.`,
    '# Other control-plane addresses, ports or limits: render one with `npx tsx src/xds/bootstrap.ts` (see envoy/README.md).',
    '',
  ].join('\n');
  return header + YAML.stringify(renderBootstrap(fileOptions(role)));
}

function fromEnv(env: NodeJS.ProcessEnv, role: EnvoyRole): BootstrapOptions {
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (!v) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
  const api = (env.PORTICO_XDS_API ?? 'sotw').toLowerCase();
  if (api !== 'sotw' && api !== 'delta') throw new Error(`PORTICO_XDS_API must be sotw or delta, got '${api}'`);
  return {
    role,
    nodeId: env.ENVOY_NODE_ID || undefined,
    group: env.ENVOY_GATEWAY_GROUP || undefined,
    xdsAddresses: (env.PORTICO_XDS_ADDRS || '127.0.0.1:18000')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    adminPort: num('ENVOY_ADMIN_PORT') ?? ROLE_DEFAULTS[role].adminPort,
    apiType: api === 'delta' ? 'DELTA_GRPC' : 'GRPC',
    maxHeapBytes: num('ENVOY_MAX_HEAP_BYTES'),
    maxDownstreamConnections: num('ENVOY_MAX_CONNECTIONS'),
    ...(insecure(env) ? {} : { channelSdsDir: env.PORTICO_ENVOY_CHANNEL_SDS_DIR || DEFAULT_CHANNEL_SDS_DIR }),
    sni: env.PORTICO_XDS_SNI || undefined,
  };
}

function insecure(env: NodeJS.ProcessEnv): boolean {
  return ['1', 'true', 'yes', 'on'].includes((env.PORTICO_GRPC_INSECURE ?? '').toLowerCase());
}

/** The SDS files from the environment: the node's files as mounted on the Envoy host. */
function sdsFromEnv(env: NodeJS.ProcessEnv): Record<string, JsonObject> {
  const dir = env.PORTICO_ENVOY_TLS_DIR || DEFAULT_TLS_DIR;
  return renderChannelSds({
    certFile: env.PORTICO_XDS_CERT_FILE || path.posix.join(dir, 'tls.crt'),
    keyFile: env.PORTICO_XDS_KEY_FILE || path.posix.join(dir, 'tls.key'),
    caFile: env.PORTICO_XDS_CA_FILE || path.posix.join(dir, 'ca.crt'),
    trustDomain: env.PORTICO_TRUST_DOMAIN || 'portico',
  });
}

/**
 * What a bootstrap rendered from `env` leaves to Envoy's command line: a node id and gateway group
 * missing here must come from --service-node / --service-cluster, or Envoy gets no config.
 */
export function missingNodeSettings(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  if (!env.ENVOY_NODE_ID) out.push('ENVOY_NODE_ID is not set: the bootstrap has no node id; set it, or start Envoy with --service-node <id>');
  if (!env.ENVOY_GATEWAY_GROUP) out.push('ENVOY_GATEWAY_GROUP is not set: the bootstrap names no gateway group; set it, or start Envoy with --service-cluster <group>');
  return out;
}

const BOOTSTRAP_USAGE = `usage: npx tsx src/xds/bootstrap.ts [edge|sidecar] [--strict]   a bootstrap (JSON) from the environment
       npx tsx src/xds/bootstrap.ts sds                        the channel SDS files from the environment
       npx tsx src/xds/bootstrap.ts --write-files              regenerate envoy/*.yaml
Variables: ENVOY_NODE_ID, ENVOY_GATEWAY_GROUP, PORTICO_XDS_ADDRS, PORTICO_XDS_API, ENVOY_ADMIN_PORT, … (envoy/README.md).
Without ENVOY_NODE_ID or ENVOY_GATEWAY_GROUP it warns (Envoy's --service-node/--service-cluster must supply them); --strict refuses instead.`;

// `tsx src/xds/bootstrap.ts [edge|sidecar]` prints a bootstrap from the environment;
// `tsx src/xds/bootstrap.ts sds` prints the channel SDS files (by file name) from the environment;
// `tsx src/xds/bootstrap.ts --write-files` regenerates envoy/edge.yaml, envoy/sidecar.yaml and envoy/portico-*-sds.yaml.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const fail = (message: string): never => {
    process.stderr.write(`bootstrap: ${message}\n`);
    process.exit(1);
  };
  const unknown = args.find((a) => !['edge', 'sidecar', 'sds', '--write-files', '--strict', '--help', '-h'].includes(a));
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${BOOTSTRAP_USAGE}\n`);
  } else if (unknown) {
    fail(`unknown argument '${unknown}'\n${BOOTSTRAP_USAGE}`);
  } else if (args.includes('--write-files')) {
    const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../envoy');
    for (const role of ['edge', 'sidecar'] as const) writeFileSync(path.join(dir, `${role}.yaml`), bootstrapYaml(role));
    for (const [file, text] of Object.entries(channelSdsYaml())) writeFileSync(path.join(dir, file), text);
  } else if (args.includes('sds')) {
    process.stdout.write(`${JSON.stringify(sdsFromEnv(process.env), null, 2)}\n`);
  } else {
    const role = (args.find((a) => a === 'edge' || a === 'sidecar') ?? 'edge') as EnvoyRole;
    const missing = missingNodeSettings(process.env);
    if (missing.length && args.includes('--strict')) fail(missing.join('\n'));
    let bootstrap: JsonObject | undefined;
    try {
      bootstrap = renderBootstrap(fromEnv(process.env, role));
    } catch (e) {
      fail((e as Error).message);
    }
    for (const m of missing) process.stderr.write(`bootstrap: warning: ${m}\n`);
    process.stdout.write(`${JSON.stringify(bootstrap, null, 2)}\n`);
  }
}
