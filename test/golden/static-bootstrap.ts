// Renders one gateway group's xDS resources as a static Envoy bootstrap (routes inline, EDS
// clusters made STATIC, secrets static), so `envoy --mode validate` can judge them without ADS.
import type { GroupResources } from '../../src/translate/index.ts';
import type { Json, JsonObject } from '../../src/translate/envoy/common.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function clone(v: unknown): JsonObject {
  return JSON.parse(JSON.stringify(v)) as JsonObject;
}

/** Static secrets are referenced by name alone: an SdsSecretConfig without sds_config. */
function dropSdsConfig(v: Json): void {
  if (Array.isArray(v)) v.forEach(dropSdsConfig);
  else if (v && typeof v === 'object') {
    if (typeof v.name === 'string' && 'sds_config' in v) delete v.sds_config;
    Object.values(v).forEach(dropSdsConfig);
  }
}

export function staticBootstrap(r: GroupResources): JsonObject {
  const routes = new Map(r.routes.map((rc) => [String(rc.name), rc]));
  const endpoints = new Map(r.endpoints.map((e) => [String(e.cluster_name), e]));
  const listeners = r.listeners.map((l, i) => {
    const copy = clone(l);
    // Envoy has no API listener extension (proxyless gRPC clients read those): check the same
    // connection manager and route table on a socket listener instead.
    const api = copy.api_listener as JsonObject | undefined;
    if (api) {
      delete copy.api_listener;
      copy.address = { socket_address: { address: '127.0.0.1', port_value: 20_000 + i } };
      copy.filter_chains = [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { ...(api.api_listener as JsonObject), stat_prefix: String(l.name) } }] }];
    }
    for (const chain of copy.filter_chains as JsonObject[]) {
      for (const f of chain.filters as JsonObject[]) {
        const hcm = f.typed_config as JsonObject;
        if (hcm['@type'] !== HCM) continue;
        const rds = hcm.rds as JsonObject;
        const rc = routes.get(String(rds.route_config_name));
        if (!rc) throw new Error(`listener ${String(l.name)} names route configuration ${String(rds.route_config_name)}, which is missing`);
        delete hcm.rds;
        hcm.route_config = clone(rc);
      }
    }
    return copy;
  });
  const clusters = r.clusters.map((c) => {
    const copy = clone(c);
    if (copy.type === 'EDS') {
      const la = endpoints.get(String(c.name));
      if (!la) throw new Error(`EDS cluster ${String(c.name)} has no ClusterLoadAssignment`);
      copy.type = 'STATIC';
      delete copy.eds_cluster_config;
      copy.load_assignment = clone(la);
    }
    return copy;
  });
  const boot: JsonObject = { static_resources: { listeners, clusters, secrets: r.secrets.map((s) => clone(s)) } };
  dropSdsConfig(boot);
  return boot;
}
