// Envoy bootstrap rendering: the files in envoy/ match renderBootstrap, every rendering is a valid
// envoy.config.bootstrap.v3.Bootstrap, and the safety properties (loopback admin, HA, limits) hold.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { bootstrapYaml, fileOptions, renderBootstrap, ROLE_DEFAULTS, XDS_CLUSTER } from '../../src/xds/bootstrap.ts';
import { encodeMessage } from '../../src/proto/index.ts';

// Test-only probing of rendered JSON.
type J = Record<string, any>;

describe('bootstrap', () => {
  for (const role of ['edge', 'sidecar'] as const) {
    it(`envoy/${role}.yaml is what renderBootstrap produces`, () => {
      const file = readFileSync(new URL(`../../envoy/${role}.yaml`, import.meta.url), 'utf8');
      assert.equal(file, bootstrapYaml(role), `regenerate with: npx tsx src/xds/bootstrap.ts --write-files`);
      assert.deepEqual(YAML.parse(file), renderBootstrap(fileOptions(role)));
    });
  }

  it('renders a strict-valid Bootstrap proto for every variant', () => {
    for (const o of [
      fileOptions('edge'),
      fileOptions('sidecar'),
      { nodeId: 'n', group: 'g', xdsAddresses: ['cp-0.portico:18000', 'cp-1.portico:18000'], adminPort: 9000, apiType: 'DELTA_GRPC' as const },
      { xdsAddresses: ['[::1]:18000'], adminPort: 9000, xdsTls: { caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem', sni: 'portico' } },
    ]) {
      assert.doesNotThrow(() => encodeMessage('envoy.config.bootstrap.v3.Bootstrap', renderBootstrap(o)), JSON.stringify(o));
    }
  });

  it('puts node identity, ADS, loopback admin and overload limits in place', () => {
    const b = renderBootstrap({ nodeId: 'edge-7', group: 'public', xdsAddresses: ['10.0.0.1:18000', '10.0.0.2:18000'], adminPort: 9901, apiType: 'DELTA_GRPC' }) as J;
    assert.deepEqual([b.node.id, b.node.cluster], ['edge-7', 'public']);
    assert.equal(b.admin.address.socket_address.address, '127.0.0.1');
    assert.equal(b.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
    assert.equal(b.dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name, XDS_CLUSTER);
    assert.deepEqual(b.dynamic_resources.cds_config, { ads: {}, resource_api_version: 'V3' });
    const cluster = b.static_resources.clusters[0];
    assert.equal(cluster.type, 'STATIC');
    assert.deepEqual(
      cluster.load_assignment.endpoints[0].lb_endpoints.map((e: J) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}`),
      ['10.0.0.1:18000', '10.0.0.2:18000'],
    );
    assert.ok(cluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http2_protocol_options);
    const monitors = b.overload_manager.resource_monitors.map((m: J) => m.name);
    assert.deepEqual(monitors, ['envoy.resource_monitors.fixed_heap', 'envoy.resource_monitors.global_downstream_max_connections']);
    assert.equal(b.overload_manager.resource_monitors[0].typed_config.max_heap_size_bytes, String(ROLE_DEFAULTS.edge.maxHeapBytes));
  });

  it('leaves node identity to the command line when not given, resolves names with DNS', () => {
    const b = renderBootstrap({ xdsAddresses: ['portico:18000'], adminPort: 9901, role: 'sidecar' }) as J;
    assert.equal(b.node.id, undefined);
    assert.equal(b.node.cluster, undefined);
    assert.equal(b.static_resources.clusters[0].type, 'STRICT_DNS');
    assert.equal(b.overload_manager.resource_monitors[1].typed_config.max_active_downstream_connections, String(ROLE_DEFAULTS.sidecar.maxDownstreamConnections));
  });

  it('refuses bad addresses', () => {
    assert.throws(() => renderBootstrap({ xdsAddresses: [], adminPort: 1 }), /at least one/);
    assert.throws(() => renderBootstrap({ xdsAddresses: ['portico'], adminPort: 1 }), /host:port/);
    assert.throws(() => renderBootstrap({ xdsAddresses: ['portico:99999'], adminPort: 1 }), /host:port/);
  });
});
