// The access-log service's parts: the partial wire decoder agrees with the full protobuf encoding
// of what Envoy sends, outcomes are classified from status, response flags and ext_authz metadata,
// request metrics keep label values bounded, and the gRPC service aggregates a client stream and
// ends open streams on close.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { AccessLogService, STREAM_METHOD, registerAccessLogService } from '../../src/telemetry/access-log-service.ts';
import { decodeAccessLogMessage, AccessLogDecodeError, splitLatency, type AccessLogRecord } from '../../src/telemetry/access-log-wire.ts';
import { classify, RequestMetrics, statusClass } from '../../src/telemetry/request-metrics.ts';
import { encodeMessage } from '../../src/proto/index.ts';

const EXT_AUTHZ = 'envoy.filters.http.ext_authz';

interface EntryInput {
  status?: number;
  durationMs?: number;
  flags?: Record<string, unknown>;
  routeName?: string;
  cluster?: string;
  tags?: Record<string, string>;
  authz?: Record<string, string>;
  requestId?: string;
}

/** An HTTPAccessLogEntry as proto3 JSON, shaped like what Envoy's http_grpc logger sends. */
function entry(i: EntryInput): Record<string, unknown> {
  const ms = i.durationMs ?? 12;
  return {
    common_properties: {
      sample_rate: 1,
      downstream_remote_address: { socket_address: { address: '127.0.0.1', port_value: 40000 } },
      start_time: '2026-01-01T00:00:00Z',
      time_to_last_downstream_tx_byte: `${(ms + 1) / 1000}s`,
      duration: `${ms / 1000}s`,
      upstream_cluster: i.cluster ?? '',
      response_flags: i.flags ?? {},
      route_name: i.routeName ?? '',
      ...(i.tags ? { custom_tags: i.tags } : {}),
      ...(i.authz ? { metadata: { filter_metadata: { other: { fields: { x: { number_value: 1 } } }, [EXT_AUTHZ]: { ...i.authz, n: 3 } } } } : {}),
    },
    protocol_version: 'HTTP11',
    request: { request_method: 'GET', path: '/api/orders/1', request_id: i.requestId ?? 'rid-1', request_headers_bytes: 120, authority: 'gw' },
    response: { ...(i.status !== undefined ? { response_code: i.status } : {}), response_code_details: 'via_upstream', response_body_bytes: 42 },
  };
}

function message(entries: EntryInput[], identifier = true): Uint8Array {
  return encodeMessage('envoy.service.accesslog.v3.StreamAccessLogsMessage', {
    ...(identifier ? { identifier: { node: { id: 'edge-1', cluster: 'edge', metadata: { fields: {} } }, log_name: 'portico' } } : {}),
    http_logs: { log_entry: entries.map(entry) },
  });
}

function record(over: Partial<AccessLogRecord>): AccessLogRecord {
  return {
    status: 200,
    durationSeconds: 0.01,
    gatewaySeconds: 0.001,
    upstreamSeconds: 0.008,
    flags: 0,
    routeName: 'orders/get',
    upstreamCluster: 'orders',
    requestId: '',
    startMs: 0,
    authority: '',
    path: '',
    responseCodeDetails: '',
    tags: new Map(),
    authz: new Map(),
    ...over,
  };
}

async function values(registry: Registry, name: string): Promise<Array<Record<string, string | number>>> {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.map(
    (v) => ({ ...v.labels, value: v.value, ...((v as { metricName?: string }).metricName ? { metric: (v as { metricName?: string }).metricName! } : {}) }) as Record<string, string | number>,
  );
}

describe('access-log wire decoder', () => {
  it('reads status, duration, flags, route, tags, ext_authz metadata and the identifier', () => {
    const b = decodeAccessLogMessage(
      message([
        {
          status: 403,
          durationMs: 250,
          flags: { unauthorized_details: { reason: 'EXTERNAL_SERVICE' } },
          routeName: 'orders/get',
          tags: { group: 'edge', product: 'orders', route: 'get' },
          authz: { partner: 'acme', plan: 'gold', error: 'forbidden' },
          requestId: 'req-42',
        },
        { status: 503, flags: { upstream_connection_failure: true, no_healthy_upstream: true }, cluster: 'orders' },
      ]),
    );
    assert.deepEqual(b.identifier, { nodeId: 'edge-1', cluster: 'edge', logName: 'portico' });
    assert.equal(b.entries.length, 2);
    const [a, c] = b.entries;
    assert.equal(a!.status, 403);
    assert.equal(a!.durationSeconds, 0.25);
    assert.equal(a!.routeName, 'orders/get');
    assert.equal(a!.requestId, 'req-42');
    assert.equal(a!.responseCodeDetails, 'via_upstream');
    assert.deepEqual(Object.fromEntries(a!.tags), { group: 'edge', product: 'orders', route: 'get' });
    assert.deepEqual(Object.fromEntries(a!.authz), { partner: 'acme', plan: 'gold', error: 'forbidden' }, 'string values of the ext_authz namespace only');
    assert.equal(classify(a!), 'authz_denied');
    assert.equal(c!.status, 503);
    assert.equal(c!.upstreamCluster, 'orders');
    assert.equal(classify(c!), 'upstream_error');
    assert.equal(c!.authz.size, 0);
  });

  it('falls back to the last downstream byte when duration is absent, and 0 without a status', () => {
    const bytes = encodeMessage('envoy.service.accesslog.v3.StreamAccessLogsMessage', {
      http_logs: { log_entry: [{ common_properties: { time_to_last_downstream_tx_byte: '0.5s' }, response: {} }] },
    });
    const b = decodeAccessLogMessage(bytes);
    assert.equal(b.identifier, undefined);
    assert.equal(b.entries[0]!.durationSeconds, 0.5);
    assert.equal(b.entries[0]!.status, 0);
  });

  it("splits a request's time between Envoy and the upstream", () => {
    const common = (t: Record<string, string>) => ({ common_properties: { duration: '0.9s', ...t }, response: { response_code: 200 } });
    const bytes = encodeMessage('envoy.service.accesslog.v3.StreamAccessLogsMessage', {
      http_logs: {
        log_entry: [
          // Forwarded: 0.3 ms to the upstream, its 800 ms, 0.2 ms of response filters.
          common({
            time_to_first_upstream_tx_byte: '0.0003s',
            time_to_last_upstream_tx_byte: '0.0004s',
            time_to_first_upstream_rx_byte: '0.8004s',
            time_to_first_downstream_tx_byte: '0.8006s',
            time_to_last_downstream_tx_byte: '0.9s',
          }),
          // A local reply (a refusal): all Envoy's.
          common({ time_to_first_downstream_tx_byte: '0.0012s', time_to_last_downstream_tx_byte: '0.0013s' }),
          // The client left before any response.
          common({}),
        ],
      },
    });
    const [forwarded, local, gone] = decodeAccessLogMessage(bytes).entries;
    assert.ok(Math.abs(forwarded!.gatewaySeconds - 0.0005) < 1e-9, `${forwarded!.gatewaySeconds}`);
    assert.ok(Math.abs(forwarded!.upstreamSeconds - 0.8) < 1e-9, `${forwarded!.upstreamSeconds}`);
    assert.equal(local!.gatewaySeconds, 0.0012);
    assert.equal(local!.upstreamSeconds, -1);
    assert.equal(gone!.gatewaySeconds, -1);
    assert.equal(gone!.upstreamSeconds, -1);
    // A response that started before the request's body was all sent: no negative spans.
    const early = splitLatency({ firstUpstreamTx: 0.001, lastUpstreamTx: 0.5, firstUpstreamRx: 0.2, firstDownstreamTx: 0.2001 });
    assert.equal(early.upstream, 0);
    assert.ok(Math.abs(early.gateway - 0.0011) < 1e-9, `${early.gateway}`);
  });

  it('refuses bytes that are not a message', () => {
    assert.throws(() => decodeAccessLogMessage(Buffer.from([0x12, 0x50, 0x01])), AccessLogDecodeError);
  });
});

describe('outcomes', () => {
  const flags = (names: string[], ids: Record<string, number>) => names.reduce((f, n) => f | (1 << ids[n]!), 0);
  const ids = { rate_limited: 12, unauthorized_details: 13, no_route_found: 9, upstream_connection_failure: 6, upstream_request_timeout: 3, rate_limit_service_error: 14, downstream_remote_reset: 28 };
  const cases: Array<[string, Partial<AccessLogRecord>, string]> = [
    ['2xx', { status: 200 }, 'ok'],
    ['redirect', { status: 302 }, 'ok'],
    ['ext_authz 401', { status: 401, flags: flags(['unauthorized_details'], ids), upstreamCluster: '' }, 'authz_denied'],
    ['ext_authz 403 by metadata', { status: 403, authz: new Map([['error', 'forbidden']]) }, 'authz_denied'],
    ['rate-limit filter', { status: 429, flags: flags(['rate_limited'], ids) }, 'rate_limited'],
    ['combined callout 429', { status: 429, flags: flags(['unauthorized_details'], ids), authz: new Map([['error', 'rate_limited']]) }, 'rate_limited'],
    ['upstream answers 429 itself', { status: 429 }, 'client_error'],
    ['upstream 500', { status: 500 }, 'upstream_error'],
    ['connect failure', { status: 503, flags: flags(['upstream_connection_failure'], ids) }, 'upstream_error'],
    ['timeout', { status: 504, flags: flags(['upstream_request_timeout'], ids) }, 'upstream_error'],
    ['callout failed', { status: 503, flags: flags(['unauthorized_details'], ids), upstreamCluster: '' }, 'gateway_error'],
    ['rate-limit service failed', { status: 500, flags: flags(['rate_limit_service_error'], ids) }, 'gateway_error'],
    ['direct 500', { status: 500, upstreamCluster: '' }, 'gateway_error'],
    ['gateway 404', { status: 404, routeName: 'portico/not-found', upstreamCluster: '' }, 'no_route'],
    ['no route flag', { status: 404, flags: flags(['no_route_found'], ids), upstreamCluster: '' }, 'no_route'],
    ['upstream 404', { status: 404 }, 'client_error'],
    ['client gone', { status: 0, flags: flags(['downstream_remote_reset'], ids) }, 'cancelled'],
  ];
  for (const [name, over, want] of cases) it(`${name} → ${want}`, () => assert.equal(classify(record(over)), want));

  it('status classes', () => {
    assert.deepEqual([200, 204, 404, 503, 0, 99].map(statusClass), ['2xx', '2xx', '4xx', '5xx', 'none', 'none']);
  });
});

describe('request metrics', () => {
  const model = {
    products: new Map([
      ['orders', {}],
      ['users', {}],
    ]),
    partners: new Map([
      ['a', {}],
      ['b', {}],
      ['c', {}],
    ]),
    gatewayGroups: new Map([['edge', {}]]),
  } as never;

  it('counts per group × product × partner × class × outcome, with bounded labels', async () => {
    const registry = new Registry();
    const m = new RequestMetrics({ registry, maxPartnerLabels: 2 });
    m.setModel(model);
    const tags = (product: string) =>
      new Map([
        ['group', 'edge'],
        ['product', product],
      ]);
    const withPartner = (p: string, extra: Array<[string, string]> = []) => new Map<string, string>([['partner', p], ...extra]);
    m.record(record({ tags: tags('orders'), authz: withPartner('a') }));
    m.record(record({ tags: tags('orders'), authz: withPartner('a') }));
    m.record(record({ tags: tags('orders'), authz: withPartner('b'), status: 500 }));
    m.record(record({ tags: tags('orders'), authz: withPartner('c') }), 'edge');
    m.record(record({ tags: tags('users'), authz: withPartner('forged-by-a-token') }));
    m.record(record({ tags: tags('not-a-product'), status: 401, authz: new Map([['error', 'missing_credential']]) }));
    m.record(record({ tags: new Map([['product', 'users']]) }), 'edge');
    m.record(record({ tags: new Map(), routeName: 'portico/not-found', status: 404, upstreamCluster: '' }), 'some-other-group');
    const counts = await values(registry, 'portico_http_requests_total');
    const find = (l: Record<string, string>) => counts.filter((c) => Object.entries(l).every(([k, v]) => c[k] === v)).reduce((n, c) => n + (c.value as number), 0);
    assert.equal(find({ product: 'orders', partner: 'a', outcome: 'ok', code_class: '2xx', group: 'edge' }), 2);
    assert.equal(find({ product: 'orders', partner: 'b', outcome: 'upstream_error', code_class: '5xx' }), 1);
    assert.equal(find({ partner: 'c' }), 0, 'past the cap');
    assert.equal(find({ product: 'orders', partner: 'other' }), 1);
    assert.equal(find({ product: 'users', partner: 'unknown' }), 1, 'a partner the model does not know');
    assert.equal(find({ product: 'unknown', partner: 'none', outcome: 'authz_denied' }), 1);
    assert.equal(find({ product: 'users', partner: 'none', group: 'edge' }), 1, 'group from the stream when the entry has none');
    assert.equal(find({ product: 'none', outcome: 'no_route', group: 'unknown' }), 1);
    assert.ok(!counts.some((c) => c.partner === 'forged-by-a-token' || c.product === 'not-a-product'));
    // Flushed counts are not added twice.
    assert.equal(
      (await values(registry, 'portico_http_requests_total')).reduce((n, c) => n + (c.value as number), 0),
      8,
    );
    const hist = await values(registry, 'portico_http_request_duration_seconds');
    const count = hist.find((h) => h.metric === 'portico_http_request_duration_seconds_count' && h.product === 'orders' && h.partner === 'a');
    assert.equal(count?.value, 2);
  });
});

describe('access-log gRPC service', () => {
  it('aggregates a client stream from a gRPC client and ends open streams on close', async (t) => {
    const registry = new Registry();
    const svc = new AccessLogService({ registry });
    svc.setModel({
      products: new Map([['orders', {}]]),
      partners: new Map([['acme', {}]]),
      gatewayGroups: new Map([['edge', {}]]),
      routes: new Map(),
    } as never);
    const server = new grpc.Server();
    registerAccessLogService(server, svc);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    t.after(() => server.forceShutdown());
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    t.after(() => client.close());
    const raw = (b: Buffer) => b;
    let ended: { err: grpc.ServiceError | null } | undefined;
    const finished = new Promise<void>((resolve) => {
      const call = client.makeClientStreamRequest<Buffer, Buffer>(STREAM_METHOD, raw, raw, (err) => {
        ended = { err };
        resolve();
      });
      // No group tag: the stream's node cluster (first message) names the group.
      call.write(Buffer.from(message([{ status: 200, tags: { product: 'orders' }, authz: { partner: 'acme' } }])));
      call.write(Buffer.from(message([{ status: 429, flags: { rate_limited: true }, tags: { product: 'orders' }, authz: { partner: 'acme' } }], false)));
      call.write(Buffer.from([0xff, 0xff]));
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await values(registry, 'portico_access_log_entries_total'))[0]?.value !== 2) await new Promise((r) => setTimeout(r, 20));
    while (Date.now() < deadline && (await values(registry, 'portico_access_log_errors_total'))[0]?.value !== 1) await new Promise((r) => setTimeout(r, 20));
    assert.equal(svc.streamCount(), 1);
    const counts = await values(registry, 'portico_http_requests_total');
    assert.deepEqual(counts.map((c) => [c.group, c.product, c.partner, c.code_class, c.outcome, c.value]).sort(), [
      ['edge', 'orders', 'acme', '2xx', 'ok', 1],
      ['edge', 'orders', 'acme', '4xx', 'rate_limited', 1],
    ]);
    assert.equal((await values(registry, 'portico_access_log_streams'))[0]?.value, 1);
    svc.close();
    await finished;
    assert.equal(ended?.err, null, 'the stream ends with OK');
    assert.equal(svc.streamCount(), 0);
    assert.equal((await values(registry, 'portico_access_log_streams'))[0]?.value, 0);
  });
});
