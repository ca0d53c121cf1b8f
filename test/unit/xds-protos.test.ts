// The strict proto3-JSON encoder and the decoder: round trips, every special type, and the errors
// (with their JSON paths) that protobufjs's fromObject would have swallowed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { decodeMessage, decodeResource, encodeMessage, encodeResource, lookupService, lookupType, protoRoot, ProtoJsonError, TYPE_URLS } from '../../src/proto/index.ts';
import { httpListener } from '../support/xds-fixtures.ts';

// A test-only message with every scalar kind, non-string map keys, proto3 optional and a oneof.
protobuf.parse(
  `syntax = "proto3";
   package portico.test;
   import "google/protobuf/struct.proto";
   message Scalars {
     enum Kind { KIND_UNSPECIFIED = 0; SMALL = 1; LARGE = 2; }
     int32 i32 = 1; uint32 u32 = 2; sint32 s32 = 3; fixed32 f32 = 4; sfixed32 sf32 = 5;
     int64 i64 = 6; uint64 u64 = 7; sint64 s64 = 8; fixed64 f64 = 9; sfixed64 sf64 = 10;
     float f = 11; double d = 12; bool b = 13; string s = 14; bytes by = 15;
     repeated int32 packed = 16; repeated string strs = 17;
     map<uint32, string> um = 18; map<bool, int32> bm = 19; map<int64, string> lm = 20;
     optional int32 opt = 21;
     oneof choice { string a = 22; int32 n = 23; }
     google.protobuf.NullValue nv = 24;
     Kind kind = 25; repeated Kind kinds = 26;
   }`,
  protoRoot(),
  { keepCase: true },
);
protoRoot().resolveAll();

function roundTrip(typeUrl: string, json: unknown): unknown {
  return decodeResource(typeUrl, encodeResource(typeUrl, json));
}

function throwsAt(fn: () => unknown, path: string, reason?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtoJsonError, `expected ProtoJsonError, got ${String(e)}`);
    assert.equal(e.path, path);
    if (reason) assert.match(e.reason, reason);
    return true;
  });
}

/** Independent check of the wire format: protobufjs's own decoder reads what we wrote. */
function pbjsDecode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  const t = lookupType(typeName);
  return t.toObject(t.decode(bytes), { longs: String, enums: String, bytes: String, oneofs: true }) as Record<string, unknown>;
}

describe('proto loading', () => {
  it('loads every resource type, filter, access logger and callout service Portico uses', () => {
    for (const url of Object.values(TYPE_URLS)) assert.ok(lookupType(url.split('/')[1]!));
    for (const t of [
      'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      'envoy.extensions.filters.http.router.v3.Router',
      'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
      'envoy.extensions.filters.http.ratelimit.v3.RateLimit',
      'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
      'envoy.extensions.filters.http.cors.v3.Cors',
      'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
      'envoy.extensions.filters.http.rbac.v3.RBAC',
      'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation',
      'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
      'envoy.extensions.access_loggers.file.v3.FileAccessLog',
      'envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig',
      'envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig',
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      'envoy.service.auth.v3.CheckRequest',
      'envoy.service.ratelimit.v3.RateLimitRequest',
      'envoy.service.discovery.v3.DeltaDiscoveryRequest',
    ]) {
      assert.ok(lookupType(t), t);
    }
    for (const s of [
      'envoy.service.discovery.v3.AggregatedDiscoveryService',
      'envoy.service.cluster.v3.ClusterDiscoveryService',
      'envoy.service.secret.v3.SecretDiscoveryService',
      'envoy.service.auth.v3.Authorization',
      'envoy.service.ratelimit.v3.RateLimitService',
    ]) {
      assert.ok(lookupService(s).methodsArray.length > 0, s);
    }
  });

  it("is Envoy 1.40's API: api_key_auth and header_mutation's remove_on_match encode strictly, unknown fields still fail", () => {
    // Neither is in the older API @grpc/grpc-js-xds ships; the strict encoder refused both before.
    const apiKeyAuth = 'envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth';
    const filter = {
      name: 'envoy.filters.http.api_key_auth',
      typed_config: {
        '@type': `type.googleapis.com/${apiKeyAuth}`,
        credentials: [{ key: 'k-1', client: 'acme' }],
        key_sources: [{ header: 'x-api-key' }],
        forwarding: { header: 'x-portico-partner', hide_credentials: true },
      },
    };
    const hcm = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter';
    const same = (type: string, json: unknown) => assert.deepEqual(decodeMessage(type, encodeMessage(type, json)), json);
    same(hcm, filter);
    same(`${apiKeyAuth}PerRoute`, { allowed_clients: ['acme'] });
    same('envoy.extensions.filters.http.header_mutation.v3.HeaderMutation', {
      mutations: { request_mutations: [{ remove_on_match: { key_matcher: { prefix: 'x-portico-', ignore_case: true } } }] },
    });
    throwsAt(() => encodeMessage(hcm, { ...filter, typed_config: { ...filter.typed_config, forwarding: { header: 'x', hide_key: true } } }), '$.typed_config.forwarding.hide_key', /unknown field/);
    throwsAt(() => encodeMessage(apiKeyAuth, { credentials: [{ key: 'k', client: 'c', scope: 'x' }] }), '$.credentials[0].scope', /unknown field/);
  });
});

describe('encodeResource round trips', () => {
  it('a listener with nested Any (HCM holding the router) comes back identical', () => {
    const l = httpListener('edge', 8080, 'edge-routes');
    assert.deepEqual(roundTrip(TYPE_URLS.listener, l), l);
  });

  it('a cluster with durations, wrappers, enums, maps of Any and 64-bit values', () => {
    const c = {
      name: 'svc',
      type: 'EDS',
      connect_timeout: '0.250s',
      lb_policy: 'LEAST_REQUEST',
      per_connection_buffer_limit_bytes: 32768,
      circuit_breakers: { thresholds: [{ priority: 'HIGH', max_connections: 10, max_requests: 0 }] },
      ring_hash_lb_config: { maximum_ring_size: '8388608' },
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'svc-eds' },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
          explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 100 } },
        },
      },
      metadata: { filter_metadata: { portico: { product: 'p', weight: 1.5, tags: ['a', null, true, { n: 2 }], none: null } } },
    };
    const back = roundTrip(TYPE_URLS.cluster, c) as Record<string, unknown>;
    // A wrapper set to its default keeps its presence: max_requests 0 is not the same as unset.
    assert.deepEqual(back, c);
  });

  it('bytes are base64 (standard and URL-safe) and come back standard', () => {
    const secret = { name: 's', generic_secret: { secret: { inline_bytes: 'aGVsbG8_Pz8-' } } };
    const back = roundTrip(TYPE_URLS.secret, secret) as { generic_secret: { secret: { inline_bytes: string } } };
    assert.equal(Buffer.from(back.generic_secret.secret.inline_bytes, 'base64').toString(), 'hello???>');
    assert.equal(back.generic_secret.secret.inline_bytes, 'aGVsbG8/Pz8+');
  });

  it('every scalar kind, packed repeated, non-string map keys, optional and oneof — read back by protobufjs', () => {
    const json = {
      i32: -5,
      u32: 4294967295,
      s32: -2147483648,
      f32: 7,
      sf32: -7,
      i64: '-9223372036854775808',
      u64: '18446744073709551615',
      s64: -3,
      f64: '12345678901234567',
      sf64: '-1',
      f: 1.5,
      d: 'NaN',
      b: true,
      s: 'x',
      by: 'AQID',
      packed: [1, -1, 300],
      strs: ['a', 'b'],
      um: { '7': 'seven', '1': 'one' },
      bm: { true: 1, false: 2 },
      lm: { '-5': 'minus five' },
      opt: 0,
      n: 0,
      nv: null,
      kind: 'LARGE',
      kinds: ['SMALL', 2],
    };
    const bytes = encodeMessage('portico.test.Scalars', json);
    const o = pbjsDecode('portico.test.Scalars', bytes);
    assert.equal(o.i32, -5);
    assert.equal(o.u32, 4294967295);
    assert.equal(o.s32, -2147483648);
    assert.equal(o.i64, '-9223372036854775808');
    assert.equal(o.u64, '18446744073709551615');
    assert.equal(o.s64, '-3');
    assert.equal(o.f64, '12345678901234567');
    assert.equal(o.sf64, '-1');
    assert.equal(o.f, 1.5);
    assert.ok(Number.isNaN(o.d as number));
    assert.equal(o.by, 'AQID');
    assert.deepEqual(o.packed, [1, -1, 300]);
    assert.deepEqual(o.um, { '1': 'one', '7': 'seven' });
    assert.deepEqual(o.bm, { true: 1, false: 2 });
    // (protobufjs keys 64-bit maps by a bit hash; our decoder turns it back into the decimal.)
    // Explicit presence: proto3 optional and oneof members are written even when zero.
    assert.equal(o.opt, 0);
    assert.equal(o.n, 0);
    assert.equal(o.choice, 'n');
    assert.equal(o.kind, 'LARGE');
    assert.deepEqual(o.kinds, ['SMALL', 'LARGE']);
    // And our own decoder gives proto3 JSON back.
    const j = decodeMessage('portico.test.Scalars', bytes) as Record<string, unknown>;
    assert.equal(j.i64, '-9223372036854775808');
    assert.equal(j.s64, '-3');
    assert.equal(j.d, 'NaN');
    assert.equal(j.opt, 0);
    assert.equal(j.n, 0);
    assert.deepEqual(j.um, { '1': 'one', '7': 'seven' });
    assert.deepEqual(j.lm, { '-5': 'minus five' });
    assert.deepEqual(j.bm, { false: 2, true: 1 });
    assert.deepEqual(j.kinds, ['SMALL', 'LARGE']);
  });

  it('implicit-presence defaults are not written; null means unset', () => {
    const a = encodeMessage('portico.test.Scalars', { i32: 0, s: '', b: false, by: '', kind: 'KIND_UNSPECIFIED', u64: '0', packed: [] });
    assert.equal(a.length, 0);
    const b = encodeMessage('portico.test.Scalars', { i32: null, s: null, a: null, n: 3 });
    assert.deepEqual(decodeMessage('portico.test.Scalars', b), { n: 3 });
  });

  it('accepts lowerCamelCase JSON names', () => {
    const a = encodeResource(TYPE_URLS.cluster, { name: 'c', connect_timeout: '1s' });
    const b = encodeResource(TYPE_URLS.cluster, { name: 'c', connectTimeout: '1s' });
    assert.deepEqual(a, b);
  });

  it('is deterministic: key order and map insertion order do not change the bytes', () => {
    const a = { name: 'c', type: 'STATIC', connect_timeout: '1s', metadata: { filter_metadata: { x: { b: 1, a: 2 } } } };
    const b = { metadata: { filter_metadata: { x: { a: 2, b: 1 } } }, connect_timeout: '1s', type: 'STATIC', name: 'c' };
    assert.deepEqual(encodeResource(TYPE_URLS.cluster, a), encodeResource(TYPE_URLS.cluster, b));
  });
});

describe('well-known types', () => {
  const dur = (v: string) => pbjsDecode('google.protobuf.Duration', encodeMessage('google.protobuf.Duration', v));

  it('Duration strings', () => {
    assert.deepEqual(dur('5s'), { seconds: '5' });
    assert.deepEqual(dur('1.5s'), { seconds: '1', nanos: 500000000 });
    assert.deepEqual(dur('-1.5s'), { seconds: '-1', nanos: -500000000 });
    assert.deepEqual(dur('0.000000001s'), { nanos: 1 });
    assert.equal(decodeMessage('google.protobuf.Duration', encodeMessage('google.protobuf.Duration', '0.250s')), '0.250s');
    assert.equal(decodeMessage('google.protobuf.Duration', encodeMessage('google.protobuf.Duration', '-0.5s')), '-0.500s');
    assert.equal(decodeMessage('google.protobuf.Duration', encodeMessage('google.protobuf.Duration', '3.000001s')), '3.000001s');
    for (const bad of ['5', '5ms', '1.1234567891s', ' 5s', '315576000001s', 5]) {
      throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', connect_timeout: bad }), '$.connect_timeout', /duration/);
    }
  });

  it('Timestamp strings (UTC and offsets) and invalid dates', () => {
    const ts = (v: string) => pbjsDecode('google.protobuf.Timestamp', encodeMessage('google.protobuf.Timestamp', v));
    assert.deepEqual(ts('1970-01-01T00:00:01Z'), { seconds: '1' });
    assert.deepEqual(ts('1972-01-01T10:00:20.021Z'), { seconds: '63108020', nanos: 21000000 });
    assert.deepEqual(ts('1970-01-01T01:00:00+01:00'), {});
    assert.equal(decodeMessage('google.protobuf.Timestamp', encodeMessage('google.protobuf.Timestamp', '2024-02-29T12:00:00.5Z')), '2024-02-29T12:00:00.500Z');
    assert.equal(decodeMessage('google.protobuf.Timestamp', encodeMessage('google.protobuf.Timestamp', '0001-01-01T00:00:00Z')), '0001-01-01T00:00:00Z');
    for (const bad of ['2023-02-29T00:00:00Z', '2024-13-01T00:00:00Z', '2024-01-01 00:00:00Z', '2024-01-01T00:00:00', 'yesterday']) {
      assert.throws(() => encodeMessage('google.protobuf.Timestamp', bad), ProtoJsonError, bad);
    }
  });

  it('wrappers take the bare value and check its type', () => {
    const cb = (t: unknown) => ({ name: 'c', circuit_breakers: { thresholds: [t] } });
    assert.deepEqual(roundTrip(TYPE_URLS.cluster, cb({ max_retries: 3 })), cb({ max_retries: 3 }));
    throwsAt(() => encodeResource(TYPE_URLS.cluster, cb({ max_retries: '3x' })), '$.circuit_breakers.thresholds[0].max_retries', /uint32/);
    throwsAt(() => encodeResource(TYPE_URLS.cluster, cb({ max_retries: { value: 3 } })), '$.circuit_breakers.thresholds[0].max_retries', /uint32/);
    throwsAt(() => encodeResource(TYPE_URLS.cluster, cb({ max_retries: -1 })), '$.circuit_breakers.thresholds[0].max_retries', /uint32/);
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', ring_hash_lb_config: { maximum_ring_size: 2 ** 60 } }), '$.ring_hash_lb_config.maximum_ring_size', /string/);
  });

  it('Any: nested recursively, holding a well-known type under "value", unknown @type rejected', () => {
    const anyDur = encodeMessage('google.protobuf.Any', { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' });
    assert.deepEqual(decodeMessage('google.protobuf.Any', anyDur), { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '2s' });
    const anyStruct = { '@type': 'type.googleapis.com/google.protobuf.Struct', value: { a: [1, 'x'] } };
    assert.deepEqual(decodeMessage('google.protobuf.Any', encodeMessage('google.protobuf.Any', anyStruct)), anyStruct);
    throwsAt(() => encodeMessage('google.protobuf.Any', { '@type': 'type.googleapis.com/google.protobuf.Duration', seconds: 2 }), '$.seconds', /only "value"/);
    const l = httpListener('edge', 8080, 'r') as { filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[] };
    l.filter_chains[0]!.filters[0]!.typed_config['@type'] = 'type.googleapis.com/envoy.extensions.filters.network.nope.v3.Nope';
    throwsAt(() => encodeResource(TYPE_URLS.listener, l), '$.filter_chains[0].filters[0].typed_config["@type"]', /unknown type/);
    throwsAt(
      () => encodeResource(TYPE_URLS.listener, { name: 'x', filter_chains: [{ filters: [{ name: 'f', typed_config: { stat_prefix: 'x' } }] }] }),
      '$.filter_chains[0].filters[0].typed_config',
      /@type/,
    );
    throwsAt(() => encodeMessage('google.protobuf.Any', { '@type': 'envoy.config.cluster.v3.Cluster' }), '$["@type"]', /unknown type/);
  });

  it('Struct, Value and ListValue', () => {
    const v = { s: 'x', n: -1.25, b: false, z: null, l: [[], {}, [1, [2]]], o: { deep: { er: 'y' } } };
    assert.deepEqual(decodeMessage('google.protobuf.Struct', encodeMessage('google.protobuf.Struct', v)), v);
    assert.deepEqual(decodeMessage('google.protobuf.Value', encodeMessage('google.protobuf.Value', null)), null);
    assert.deepEqual(decodeMessage('google.protobuf.ListValue', encodeMessage('google.protobuf.ListValue', [1, 'a', null])), [1, 'a', null]);
    throwsAt(() => encodeMessage('google.protobuf.Struct', [1]), '$', /Struct/);
    throwsAt(() => encodeMessage('google.protobuf.Struct', { a: { b: Infinity } }), '$.a.b', /finite/);
  });

  it('FieldMask converts camelCase paths', () => {
    const b = encodeMessage('google.protobuf.FieldMask', 'fooBar,baz.quxQuux');
    assert.deepEqual(pbjsDecode('google.protobuf.FieldMask', b), { paths: ['foo_bar', 'baz.qux_quux'] });
    assert.equal(decodeMessage('google.protobuf.FieldMask', b), 'fooBar,baz.quxQuux');
    throwsAt(() => encodeMessage('google.protobuf.FieldMask', 'foo_bar'), '$', /field mask/);
  });
});

describe('encoder errors name the JSON path', () => {
  it('unknown field deep inside nested Any', () => {
    const l = httpListener('edge', 8080, 'r') as { filter_chains: { filters: { typed_config: { http_filters: { typed_config: Record<string, unknown> }[] } }[] }[] };
    l.filter_chains[0]!.filters[0]!.typed_config.http_filters[0]!.typed_config.bogus = true;
    throwsAt(
      () => encodeResource(TYPE_URLS.listener, l),
      '$.filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.bogus',
      /unknown field "bogus" in envoy.extensions.filters.http.router.v3.Router/,
    );
  });

  it('unknown top-level field (what fromObject would silently drop)', () => {
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', conect_timeout: '1s' }), '$.conect_timeout', /unknown field/);
    // The contrast that motivates this encoder:
    const t = lookupType('envoy.config.cluster.v3.Cluster');
    assert.doesNotThrow(() => t.encode(t.fromObject({ name: 'c', conect_timeout: '1s' })).finish());
  });

  it('wrong types and ranges', () => {
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 5 }), '$.name', /expected string/);
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', per_connection_buffer_limit_bytes: 1.5 }), '$.per_connection_buffer_limit_bytes', /uint32/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { i32: 2147483648 }), '$.i32', /int32/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { u64: '-1' }), '$.u64', /out of range/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { i64: '9223372036854775808' }), '$.i64', /out of range/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { i64: 1.5 }), '$.i64', /int64/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { f: 1e39 }), '$.f', /float out of range/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { d: 'one' }), '$.d', /double/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { b: 'true' }), '$.b', /bool/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { by: 'not base64!' }), '$.by', /base64/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { packed: [1, 'x'] }), '$.packed[1]', /int32/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { strs: 'a' }), '$.strs', /array/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { strs: ['a', null] }), '$.strs[1]', /null/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { um: { x: 'y' } }), '$.um.x', /uint32/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { bm: { yes: 1 } }), '$.bm.yes', /true/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { um: { '1': null } }), '$.um["1"]', /null/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { um: [] }), '$.um', /object/);
  });

  it('enums by name or number, unknown values rejected', () => {
    assert.deepEqual(pbjsDecode('portico.test.Scalars', encodeMessage('portico.test.Scalars', { kind: 1 })), { kind: 'SMALL' });
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', lb_policy: 'FASTEST' }), '$.lb_policy', /unknown value "FASTEST".*ROUND_ROBIN/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { kind: 9 }), '$.kind', /unknown number 9/);
    throwsAt(() => encodeMessage('portico.test.Scalars', { kind: true }), '$.kind', /enum/);
  });

  it('two members of a oneof', () => {
    throwsAt(() => encodeMessage('portico.test.Scalars', { a: 'x', n: 1 }), '$', /oneof "choice".*a, n/);
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', type: 'STATIC', cluster_type: { name: 'x' } }), '$', /oneof "cluster_discovery_type"/);
  });

  it('a field given under both its names', () => {
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', connect_timeout: '1s', connectTimeout: '2s' }), '$.connectTimeout', /twice/);
  });

  it('messages where an object is needed', () => {
    throwsAt(() => encodeResource(TYPE_URLS.cluster, { name: 'c', eds_cluster_config: 'ads' }), '$.eds_cluster_config', /object/);
    throwsAt(() => encodeResource(TYPE_URLS.route, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [1] }] }), '$.virtual_hosts[0].routes[0]', /object/);
  });
});
