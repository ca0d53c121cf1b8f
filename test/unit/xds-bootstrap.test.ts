// Envoy bootstrap rendering: the files in envoy/ match renderBootstrap, every rendering is a valid
// envoy.config.bootstrap.v3.Bootstrap, and the safety properties (loopback admin, HA, limits) hold.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { bootstrapYaml, channelSdsYaml, DEFAULT_CHANNEL_SDS_DIR, fileOptions, renderBootstrap, renderChannelSds, ROLE_DEFAULTS, XDS_CLUSTER } from '../../src/xds/bootstrap.ts';
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

  it('envoy/portico-*-sds.yaml are what renderChannelSds produces: DiscoveryResponses of one Secret each (Envoy takes one per file)', () => {
    const files = channelSdsYaml();
    assert.deepEqual(Object.keys(files).sort(), ['portico-control-plane-sds.yaml', 'portico-node-sds.yaml']);
    for (const [name, text] of Object.entries(files)) {
      const file = readFileSync(new URL(`../../envoy/${name}`, import.meta.url), 'utf8');
      assert.equal(file, text, 'regenerate with: npx tsx src/xds/bootstrap.ts --write-files');
      assert.equal(YAML.parse(file).resources.length, 1);
      assert.doesNotThrow(() => encodeMessage('envoy.service.discovery.v3.DiscoveryResponse', YAML.parse(file)));
    }
  });

  it('under mTLS the xDS cluster presents the node certificate and accepts only the control-plane identity, both read through the SDS file', () => {
    const b = renderBootstrap({ xdsAddresses: ['portico:18000'], adminPort: 9901, channelSdsDir: DEFAULT_CHANNEL_SDS_DIR }) as J;
    const tls = b.static_resources.clusters[0].transport_socket.typed_config.common_tls_context;
    const source = (f: string) => ({ path_config_source: { path: `${DEFAULT_CHANNEL_SDS_DIR}/${f}` }, resource_api_version: 'V3' });
    assert.deepEqual(tls.tls_certificate_sds_secret_configs, [{ name: 'portico.node', sds_config: source('portico-node-sds.yaml') }]);
    assert.deepEqual(tls.validation_context_sds_secret_config, { name: 'portico.control-plane', sds_config: source('portico-control-plane-sds.yaml') });
    assert.deepEqual(tls.alpn_protocols, ['h2']);
    const sds = renderChannelSds({ certFile: '/t/tls.crt', keyFile: '/t/tls.key', caFile: '/t/ca.crt', trustDomain: 'acme' }) as J;
    assert.deepEqual(sds['portico-control-plane-sds.yaml'].resources[0].validation_context.match_typed_subject_alt_names, [{ san_type: 'URI', matcher: { exact: 'spiffe://acme/control-plane' } }]);
    const plain = renderBootstrap({ xdsAddresses: ['127.0.0.1:18000'], adminPort: 9901 }) as J;
    assert.equal(plain.static_resources.clusters[0].transport_socket, undefined, 'plaintext without channelSdsDir');
  });

  it('renders a strict-valid Bootstrap proto for every variant', () => {
    for (const o of [
      fileOptions('edge'),
      fileOptions('sidecar'),
      { nodeId: 'n', group: 'g', xdsAddresses: ['cp-0.portico:18000', 'cp-1.portico:18000'], adminPort: 9000, apiType: 'DELTA_GRPC' as const },
      { xdsAddresses: ['[::1]:18000'], adminPort: 9000, channelSdsDir: '/etc/portico/envoy', sni: 'portico' },
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
    // ext_proc streams half-closed, not reset (test/e2e/idempotency-envoy.test.ts); operators' regexes past
    // RE2's default 100 instructions accepted (test/e2e/xds-envoy.test.ts); the admin layer kept.
    assert.deepEqual(b.layered_runtime.layers, [
      { name: 'portico', static_layer: { 'envoy.reloadable_features.ext_proc_graceful_grpc_close': true, 're2.max_program_size.error_level': 10_000 } },
      { name: 'admin', admin_layer: {} },
    ]);
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
