// Listener, cluster and secret emission: the HTTP filter chain and its conditions, ext_authz
// settings, JSON local replies, TLS over SDS, discovery types, and the callout cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import { duration, type JsonObject } from '../../src/translate/envoy/common.ts';
import { translate, type GroupResources } from '../../src/translate/index.ts';
import { parseHostPort } from '../../src/translate/to-ir/common.ts';
import { selfSigned } from '../support/certs.ts';
import { jsonAt, validModel } from '../support/translate.ts';

/** The translator builds plain JSON objects; view its output as such to walk it in assertions. */
type JsonGroup = { [K in keyof GroupResources]: JsonObject[] };

function group(m: ModelSnapshot, calloutAddress = '127.0.0.1:9001', name = 'g'): JsonGroup {
  return translate(m, { calloutAddress }).get(name)! as unknown as JsonGroup;
}

function hcm(listener: JsonObject): JsonObject {
  return jsonAt(listener, 'filter_chains', 0, 'filters', 0, 'typed_config') as JsonObject;
}

function filterNames(listener: JsonObject): string[] {
  return (hcm(listener).http_filters as JsonObject[]).map((f) => String(f.name));
}

const svc: [KindName, object] = ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }];
const publicProduct = (groups: string[]): Array<[KindName, object]> => [
  ['products', { name: 'pub', gatewayGroups: groups, auth: { accept: ['none'] } }],
  ['routes', { product: 'pub', name: 'r', match: { path: { type: 'prefix', value: '/pub' } }, service: 's' }],
];

describe('durations', () => {
  it('formats milliseconds as proto3 JSON durations', () => {
    assert.deepEqual([5000, 250, 1500, 15_000, 1, 3_600_000].map(duration), ['5s', '0.250s', '1.500s', '15s', '0.001s', '3600s']);
    assert.throws(() => duration(1.5));
  });
});

describe('HTTP connection manager', () => {
  const m = validModel([
    ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }] }],
    svc,
    ...publicProduct(['g']),
    ['jwtIssuers', { name: 'j', issuer: 'https://id.example', audiences: ['a'], jwksUri: 'https://id.example/jwks', forwardClaims: { sub: 'X-User-Id' } }],
  ]);
  const l = group(m).listeners[0]!;
  const h = hcm(l);

  it('uses RDS over ADS with the listener name, the group as stat prefix, and edge settings', () => {
    assert.equal(l.name, 'web');
    assert.deepEqual(l.address, { socket_address: { address: '0.0.0.0', port_value: 8080 } });
    assert.deepEqual(h.rds, { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: 'web' });
    assert.equal(h.stat_prefix, 'g');
    for (const k of ['use_remote_address', 'generate_request_id', 'normalize_path', 'merge_slashes'] as const) assert.equal(h[k], true, k);
    assert.equal(h.max_request_headers_kb, 60);
    assert.equal(jsonAt(h, 'common_http_protocol_options', 'headers_with_underscores_action'), 'DROP_HEADER');
  });

  it('leaves ext_authz (and CORS) out when every route is public', () => {
    assert.deepEqual(filterNames(l), ['envoy.filters.http.header_mutation', 'envoy.filters.http.router']);
  });

  it('logs JSON to stdout with product and route from route metadata, and the path without its query', () => {
    const log = jsonAt(h, 'access_log', 0) as JsonObject;
    assert.equal(log.name, 'envoy.access_loggers.stdout');
    const fields = jsonAt(log, 'typed_config', 'log_format', 'json_format') as JsonObject;
    assert.equal(fields.product, '%METADATA(ROUTE:portico:product)%');
    assert.equal(fields.route, '%METADATA(ROUTE:portico:route)%');
    assert.equal(fields.path, '%PATH(NQ)%');
    for (const k of ['start_time', 'request_id', 'method', 'status', 'duration_ms', 'upstream_host', 'bytes_received', 'bytes_sent', 'route_name']) {
      assert.ok(k in fields, k);
    }
  });

  it("rewrites Envoy's own errors to the JSON shape, leaving direct responses alone", () => {
    const mappers = jsonAt(h, 'local_reply_config', 'mappers') as JsonObject[];
    const statusOf = (mp: JsonObject) => jsonAt(mp, 'filter', 'and_filter', 'filters', 0, 'status_code_filter', 'comparison', 'value', 'default_value');
    const m503 = mappers.filter((mp) => statusOf(mp) === 503);
    assert.equal(m503.length, 2);
    // ext_authz failures first (first match wins), told apart by the UAEX flag.
    assert.deepEqual(jsonAt(m503[0], 'filter', 'and_filter', 'filters', 1), { response_flag_filter: { flags: ['UAEX'] } });
    assert.deepEqual(jsonAt(m503[0], 'body_format_override', 'json_format', 'error'), 'authorization_unavailable');
    // Everything else only when Envoy made the reply: a response flag, or no request id yet (codec errors).
    const generated = { or_filter: { filters: [{ response_flag_filter: {} }, { header_filter: { header: { name: 'x-request-id', present_match: false } } }] } };
    assert.deepEqual(jsonAt(m503[1], 'filter', 'and_filter', 'filters', 1), generated);
    assert.deepEqual(jsonAt(m503[1], 'body_format_override'), { json_format: { error: 'unavailable', message: '%LOCAL_REPLY_BODY%' } });
    assert.equal(jsonAt(m503[1], 'body', 'inline_string'), 'The upstream service is unavailable.');
    for (const status of [400, 404, 413, 431, 502, 504]) {
      const mp = mappers.find((x) => statusOf(x) === status);
      assert.ok(mp, String(status));
      assert.deepEqual(jsonAt(mp, 'filter', 'and_filter', 'filters', 1), generated, String(status));
    }
    assert.equal(
      mappers.some((x) => [401, 403, 429].includes(Number(statusOf(x)))),
      false,
      'callout replies are left alone',
    );
  });

  it('strips identity headers (every x-portico-* header, and JWT forwardClaims targets) in the first HTTP filter', () => {
    const first = jsonAt(h, 'http_filters', 0) as JsonObject;
    assert.equal(first.name, 'envoy.filters.http.header_mutation');
    // A plain typed config: the loaded 1.40 API has remove_on_match.
    assert.equal(jsonAt(first, 'typed_config', '@type'), 'type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation');
    assert.deepEqual(jsonAt(first, 'typed_config', 'mutations'), {
      request_mutations: [{ remove_on_match: { key_matcher: { prefix: 'x-portico-', ignore_case: true } } }, { remove: 'x-user-id' }],
    });
  });

  it('strips the reserved prefix even when no issuer forwards claims', () => {
    const plain = group(validModel([['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }] }], svc, ...publicProduct(['g'])])).listeners[0]!;
    const first = jsonAt(hcm(plain), 'http_filters', 0) as JsonObject;
    assert.deepEqual(jsonAt(first, 'typed_config', 'mutations', 'request_mutations'), [{ remove_on_match: { key_matcher: { prefix: 'x-portico-', ignore_case: true } } }]);
  });
});

describe('ext_authz', () => {
  const protectedRoute: Array<[KindName, object]> = [
    ['products', { name: 'priv', gatewayGroups: ['g'] }],
    ['routes', { product: 'priv', name: 'r', match: { path: { type: 'prefix', value: '/priv' } }, service: 's' }],
  ];

  it('defaults to failing closed with a 1 s gRPC call to portico.callouts, between CORS and the router', () => {
    const l = group(validModel([['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }] }], svc, ...publicProduct(['g']), ...protectedRoute])).listeners[0]!;
    assert.deepEqual(filterNames(l), ['envoy.filters.http.header_mutation', 'envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
    const cfg = jsonAt(hcm(l), 'http_filters', 1, 'typed_config') as JsonObject;
    assert.deepEqual(cfg.grpc_service, {
      envoy_grpc: { cluster_name: 'portico.callouts' },
      timeout: '1s',
      // A draining or lost replica's refusal is retried on another, inside the same second (and
      // max_interval, Envoy's per-try timeout, is the whole timeout).
      retry_policy: { retry_on: 'connect-failure,refused-stream,reset,unavailable', num_retries: 2, retry_back_off: { base_interval: '0.010s', max_interval: '1s' } },
    });
    assert.equal(cfg.failure_mode_allow, false);
    assert.equal(cfg.include_peer_certificate, true);
    assert.equal(cfg.transport_api_version, 'V3');
  });

  it("takes timeout and failure mode from the group's authz settings", () => {
    const l = group(validModel([['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }], authz: { failureMode: 'open', timeoutMs: 1200 } }], svc, ...protectedRoute])).listeners[0]!;
    const cfg = jsonAt(hcm(l), 'http_filters', 1, 'typed_config') as JsonObject;
    assert.equal(cfg.failure_mode_allow, true);
    assert.equal(jsonAt(cfg, 'grpc_service', 'timeout'), '1.200s');
  });

  it('is only in the groups whose routes need it', () => {
    const m = validModel([
      ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }] }],
      ['gatewayGroups', { name: 'h', listeners: [{ name: 'web', port: 8080 }] }],
      svc,
      ...publicProduct(['g', 'h']),
      ...protectedRoute,
    ]);
    assert.ok(filterNames(group(m).listeners[0]!).includes('envoy.filters.http.ext_authz'));
    assert.deepEqual(filterNames(group(m, '127.0.0.1:9001', 'h').listeners[0]!), ['envoy.filters.http.header_mutation', 'envoy.filters.http.router']);
  });
});

const httpsServer = await selfSigned('api.example.com');
const httpsCa = await selfSigned('Test CA');
const upstreamCa = await selfSigned('Upstream CA');

describe('https listeners and secrets', () => {
  const server = httpsServer;
  const ca = httpsCa;
  const m = validModel([
    ['certificates', { name: 'server', certificate: server.certificate, privateKey: server.privateKey }],
    ['certificates', { name: 'clients', certificate: ca.certificate }],
    [
      'gatewayGroups',
      {
        name: 'g',
        listeners: [
          { name: 'tls', port: 8443, protocol: 'https', hostnames: ['API.example.com', '*.example.com'], tls: { certificate: 'server', clientCa: 'clients' } },
          { name: 'plain-tls', port: 9443, protocol: 'https', tls: { certificate: 'server' } },
        ],
      },
    ],
    svc,
    ...publicProduct(['g']),
  ]);
  const r = group(m);
  const byName = new Map(r.listeners.map((l) => [String(l.name), l]));

  it('serves the certificate and client CA over SDS and requires client certificates by default', () => {
    const tls = jsonAt(byName.get('tls'), 'filter_chains', 0, 'transport_socket', 'typed_config') as JsonObject;
    assert.equal(tls['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext');
    const ads = { ads: {}, resource_api_version: 'V3' };
    assert.deepEqual(jsonAt(tls, 'common_tls_context', 'tls_certificate_sds_secret_configs'), [{ name: 'tls/server', sds_config: ads }]);
    assert.deepEqual(jsonAt(tls, 'common_tls_context', 'validation_context_sds_secret_config'), { name: 'ca/clients', sds_config: ads });
    assert.equal(tls.require_client_certificate, true);
    assert.deepEqual(jsonAt(byName.get('tls'), 'filter_chains', 0, 'filter_chain_match'), { server_names: ['*.example.com', 'api.example.com'] });
  });

  it('omits client verification and server_names when not configured', () => {
    const l = byName.get('plain-tls')!;
    const tls = jsonAt(l, 'filter_chains', 0, 'transport_socket', 'typed_config') as JsonObject;
    assert.equal(jsonAt(tls, 'common_tls_context', 'validation_context_sds_secret_config'), undefined);
    assert.equal(tls.require_client_certificate, undefined);
    assert.equal(jsonAt(l, 'filter_chains', 0, 'filter_chain_match'), undefined);
  });

  it('emits tls/<name> and ca/<name> secrets from the certificate PEMs', () => {
    assert.deepEqual(r.secrets, [
      { name: 'ca/clients', validation_context: { trusted_ca: { inline_string: ca.certificate } } },
      { name: 'tls/server', tls_certificate: { certificate_chain: { inline_string: server.certificate }, private_key: { inline_string: server.privateKey } } },
    ]);
  });
});

describe('clusters', () => {
  const ca = upstreamCa;
  const m = validModel([
    ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }] }],
    ['certificates', { name: 'up-ca', certificate: ca.certificate }],
    [
      'services',
      {
        name: 'ips',
        endpoints: [
          { host: '10.0.0.1', port: 80, weight: 3 },
          { host: '10.0.0.2', port: 80 },
        ],
        protocol: 'http2',
      },
    ],
    ['services', { name: 'names', endpoints: [{ host: 'api.internal', port: 443 }], tls: { ca: 'up-ca' } }],
    ['services', { name: 'insecure', endpoints: [{ host: '10.0.0.3', port: 443 }], tls: { verify: false } }],
    ['services', { name: 'unrouted', endpoints: [{ host: '10.0.0.4', port: 80 }] }],
    ['products', { name: 'p', gatewayGroups: ['g'], auth: { accept: ['none'] } }],
    ['routes', { product: 'p', name: 'a', match: { path: { type: 'prefix', value: '/a' } }, service: 'ips' }],
    [
      'routes',
      {
        product: 'p',
        name: 'b',
        match: { path: { type: 'prefix', value: '/b' } },
        backends: [
          { service: 'names', weight: 1 },
          { service: 'insecure', weight: 1 },
        ],
      },
    ],
  ]);
  const r = group(m, 'callouts.portico.svc:18001');
  const byName = new Map(r.clusters.map((c) => [String(c.name), c]));

  it('has one cluster per routed service plus the callout cluster', () => {
    assert.deepEqual([...byName.keys()], ['insecure', 'ips', 'names', 'portico.callouts']);
  });

  it('serves static endpoints over EDS with their weights, and resolves names with STRICT_DNS', () => {
    assert.equal(byName.get('ips')!.type, 'EDS');
    assert.deepEqual(
      r.endpoints.map((e) => e.cluster_name),
      ['insecure', 'ips'],
    );
    const ips = r.endpoints[1]!;
    assert.deepEqual(jsonAt(ips, 'endpoints', 0, 'lb_endpoints', 0), { endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } }, load_balancing_weight: 3 });
    assert.equal(jsonAt(ips, 'endpoints', 0, 'lb_endpoints', 1, 'load_balancing_weight'), undefined);
    assert.equal(byName.get('names')!.type, 'STRICT_DNS');
    assert.equal(jsonAt(byName.get('names'), 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'address'), 'api.internal');
  });

  it('speaks HTTP/2 upstream through HttpProtocolOptions when asked', () => {
    const key = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
    assert.deepEqual(jsonAt(byName.get('ips'), 'typed_extension_protocol_options', key, 'explicit_http_config'), { http2_protocol_options: {} });
    assert.equal(byName.get('names')!.typed_extension_protocol_options, undefined);
  });

  it('verifies upstream TLS against the CA over SDS and the SNI name, or not at all when verify is false', () => {
    const tls = jsonAt(byName.get('names'), 'transport_socket', 'typed_config') as JsonObject;
    assert.equal(tls.sni, 'api.internal');
    assert.deepEqual(jsonAt(tls, 'common_tls_context', 'combined_validation_context'), {
      default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'api.internal' } }] },
      validation_context_sds_secret_config: { name: 'ca/up-ca', sds_config: { ads: {}, resource_api_version: 'V3' } },
    });
    const insecure = jsonAt(byName.get('insecure'), 'transport_socket', 'typed_config', 'common_tls_context') as JsonObject;
    assert.deepEqual(Object.keys(insecure), []);
    assert.deepEqual(
      r.secrets.map((s) => s.name),
      ['ca/up-ca'],
    );
  });

  it('resolves a callout address that is a name, and keeps an IP static', () => {
    const callouts = byName.get('portico.callouts')!;
    assert.equal(callouts.type, 'STRICT_DNS');
    assert.equal(group(m, '10.9.8.7:18001').clusters.find((c) => c.name === 'portico.callouts')!.type, 'STATIC');
    assert.deepEqual(parseHostPort('[::1]:18001'), { host: '::1', port: 18001 });
    assert.throws(() => parseHostPort('localhost'), /host:port/);
    assert.throws(() => parseHostPort('localhost:99999'), /host:port/);
  });

  it('lets every callout in flight be retried at once (a draining replica refuses them together)', () => {
    assert.deepEqual(byName.get('portico.callouts')!.circuit_breakers, { thresholds: [{ max_retries: 1024 }] });
  });
});
