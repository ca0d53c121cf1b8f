// The descriptor contract: what a ShouldRateLimit request must carry, precise errors for malformed
// ones, the RateLimitResponse built from a decision, and the Envoy actions the translator emits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routeRateLimit } from '../../src/contract/index.ts';
import { DescriptorError, parseRateLimitRequest, type RateLimitRequestMessage } from '../../src/ratelimit/descriptors.ts';
import { buildDecision, failureDecision, unlimitedDecision, type Decision } from '../../src/ratelimit/decision.ts';
import { CODE, decodeRateLimitResponse, encodeDecision, encodeRateLimitResponse, toRateLimitResponse } from '../../src/ratelimit/service.ts';
import { encodeMessage } from '../../src/proto/index.ts';
import type { RuleSet } from '../../src/ratelimit/table.ts';

const req = (entries: Array<[string, string]>, extra: Partial<RateLimitRequestMessage> = {}): RateLimitRequestMessage => ({
  domain: 'portico',
  descriptors: [{ entries: entries.map(([key, value]) => ({ key, value })) }],
  ...extra,
});

function fails(msg: RateLimitRequestMessage, pattern: RegExp): void {
  assert.throws(
    () => parseRateLimitRequest(msg),
    (e: unknown) => e instanceof DescriptorError && pattern.test(e.message),
  );
}

describe('descriptor contract: parsing', () => {
  it('reads route, partner, client address, headers and hits', () => {
    assert.deepEqual(
      parseRateLimitRequest(
        req(
          [
            ['portico_route', 'shop/login'],
            ['remote_address', '203.0.113.7'],
            ['portico_partner', 'acme'],
            ['portico_header.x-user-id', 'u1'],
            ['portico_header', 'fallback'],
          ],
          { hits_addend: 3 },
        ),
      ),
      { product: 'shop', route: 'login', partner: 'acme', clientIp: '203.0.113.7', headers: { 'x-user-id': 'u1' }, headerValue: 'fallback', hits: 3 },
    );
    assert.deepEqual(parseRateLimitRequest(req([['portico_route', 'a/b']])), { product: 'a', route: 'b', hits: 1 }, 'hits_addend 0 means 1');
  });

  it('client address: portico_client_ip, then remote_address, then masked_remote_address', () => {
    const ip = (entries: Array<[string, string]>) => parseRateLimitRequest(req([['portico_route', 'a/b'], ...entries])).clientIp;
    assert.equal(
      ip([
        ['masked_remote_address', '10.0.0.0/24'],
        ['remote_address', '10.0.0.7'],
      ]),
      '10.0.0.7',
    );
    assert.equal(
      ip([
        ['remote_address', '10.0.0.7'],
        ['portico_client_ip', '2001:db8::1'],
      ]),
      '2001:db8::1',
    );
    assert.equal(ip([['masked_remote_address', '2001:db8::/64']]), '2001:db8::/64');
  });

  it('caller-controlled header values are accepted as they are', () => {
    const v = 'ünïcødé ; = " \' <script>';
    assert.equal(
      parseRateLimitRequest(
        req([
          ['portico_route', 'a/b'],
          ['portico_header.x-user-id', v],
        ]),
      ).headers?.['x-user-id'],
      v,
    );
  });

  it('malformed requests are refused, naming what is wrong', () => {
    fails({ ...req([['portico_route', 'a/b']]), domain: 'other' }, /unknown domain "other".*"portico"/);
    fails({ domain: 'portico', descriptors: [] }, /exactly one descriptor, got 0/);
    fails({ domain: 'portico', descriptors: [{ entries: [{ key: 'portico_route', value: 'a/b' }] }, { entries: [{ key: 'portico_route', value: 'a/c' }] }] }, /exactly one descriptor, got 2/);
    fails(req([['portico_partner', 'acme']]), /no portico_route entry/);
    fails(req([]), /no portico_route entry/);
    fails(req([['portico_route', 'shop']]), /entry 0 \("portico_route"\).*"<product>\/<route>"/);
    fails(req([['portico_route', 'Shop/../x']]), /portico_route/);
    fails(
      req([
        ['portico_route', 'a/b'],
        ['portico_partner', 'Not A Name'],
      ]),
      /not a partner name/,
    );
    fails(
      req([
        ['portico_route', 'a/b'],
        ['remote_address', 'garbage'],
      ]),
      /entry 1 \("remote_address"\): not an IP address/,
    );
    fails(
      req([
        ['portico_route', 'a/b'],
        ['masked_remote_address', '10.0.0.0/33'],
      ]),
      /not an IP address/,
    );
    fails(
      req([
        ['portico_route', 'a/b'],
        ['mystery', 'x'],
      ]),
      /entry 1 \("mystery"\): unknown key/,
    );
    fails(
      req([
        ['portico_route', 'a/b'],
        ['portico_route', 'a/c'],
      ]),
      /appears twice/,
    );
    fails(
      req([
        ['portico_route', 'a/b'],
        ['portico_header.x-a', '1'],
        ['portico_header.x-a', '2'],
      ]),
      /entry 2 .*appears twice/,
    );
    fails(
      req([
        ['portico_route', 'a/b'],
        ['portico_partner', ''],
      ]),
      /empty value/,
    );
    fails(
      req([
        ['portico_route', 'a/b'],
        ['portico_header.X Bad', 'v'],
      ]),
      /not a lower-case header name/,
    );
    fails(req([['portico_route', 'a/b']], { hits_addend: 2_000_000 }), /hits_addend/);
    fails(
      req([
        ['portico_route', 'a/b'],
        ['portico_header.x', 'v'.repeat(9000)],
      ]),
      /longer than 8192 bytes/,
    );
  });
});

describe('descriptor contract: the Envoy actions the translator emits', () => {
  it('one descriptor with route, address, partner and counted headers; all valid Envoy config', () => {
    const rl = routeRateLimit({
      product: 'shop',
      route: 'search',
      partner: { metadataNamespace: 'envoy.filters.http.ext_authz', metadataKey: 'partner' },
      countHeaders: ['X-User-Id', 'x-user-id', 'X-Tenant'],
    });
    assert.deepEqual(rl.actions, [
      { generic_key: { descriptor_key: 'portico_route', descriptor_value: 'shop/search' } },
      { remote_address: {} },
      {
        metadata: {
          descriptor_key: 'portico_partner',
          metadata_key: { key: 'envoy.filters.http.ext_authz', path: [{ key: 'partner' }] },
          source: 'DYNAMIC',
          skip_if_absent: true,
        },
      },
      { request_headers: { header_name: 'x-tenant', descriptor_key: 'portico_header.x-tenant', skip_if_absent: true } },
      { request_headers: { header_name: 'x-user-id', descriptor_key: 'portico_header.x-user-id', skip_if_absent: true } },
    ]);
    // The strict proto3-JSON encoder refuses unknown fields and bad enum values.
    assert.ok(encodeMessage('envoy.config.route.v3.RateLimit', rl).length > 0);
    const byHeader = routeRateLimit({ product: 'shop', route: 'login', partner: { header: 'X-Portico-Partner' } });
    assert.deepEqual(byHeader.actions[2], { request_headers: { header_name: 'x-portico-partner', descriptor_key: 'portico_partner', skip_if_absent: true } });
    assert.ok(encodeMessage('envoy.config.route.v3.RateLimit', byHeader).length > 0);
  });
});

describe('RateLimitResponse', () => {
  const rules: RuleSet = {
    plan: 'standard',
    shadow: false,
    countBy: { kind: 'partner' },
    limits: [{ id: 'standard:shop:*:second', kind: 'rate', per: 'second', requests: 100, burst: 20, scope: 'plan' }],
  };
  const now = 1_712_937_599_500;

  it('OVER_LIMIT with the headers, the raw JSON body and the descriptor status', () => {
    const d = buildDecision(rules, { now, allowed: false, results: [{ ok: false, remaining: 0, resetMs: now + 2_250 }] });
    const msg = decodeRateLimitResponse(encodeRateLimitResponse(toRateLimitResponse(d)));
    assert.equal(msg.overall_code, CODE.OVER_LIMIT);
    assert.deepEqual(
      msg.response_headers_to_add.map((h) => [h.key, h.value]),
      [
        ['Retry-After', '3'],
        ['X-RateLimit-Limit', '100'],
        ['X-RateLimit-Remaining', '0'],
        ['X-RateLimit-Reset', '1712937602'],
        ['content-type', 'application/json'],
      ],
    );
    assert.equal(Buffer.from(msg.raw_body!).toString(), '{"error":"rate_limit_exceeded","message":"Too many requests. Retry after 3 seconds.","retry_after":3}');
    assert.deepEqual(msg.statuses[0], {
      code: CODE.OVER_LIMIT,
      // unit_multiplier (new in Envoy 1.40's API) is not set.
      current_limit: { name: 'standard:shop:*:second', requests_per_unit: 100, unit: 1, unit_multiplier: null },
      limit_remaining: 0,
      duration_until_reset: { seconds: 2, nanos: 250_000_000 },
      quota: null,
    });
  });

  it('OK carries X-RateLimit-Limit/Remaining and no body', () => {
    const d = buildDecision(rules, { now, allowed: true, results: [{ ok: true, remaining: 42, resetMs: now + 780 }] });
    const msg = decodeRateLimitResponse(encodeRateLimitResponse(toRateLimitResponse(d)));
    assert.equal(msg.overall_code, CODE.OK);
    assert.deepEqual(
      msg.response_headers_to_add.map((h) => [h.key, h.value]),
      [
        ['X-RateLimit-Limit', '100'],
        ['X-RateLimit-Remaining', '42'],
      ],
    );
    assert.equal(msg.raw_body!.length, 0);
    assert.equal(msg.statuses[0]!.limit_remaining, 42);
  });

  it('the direct encoder writes the same message as the generic one, for every kind of decision', () => {
    const quota: RuleSet = { ...rules, shadow: true, limits: [...rules.limits, { id: 'q', kind: 'quota', per: 'day', requests: 5_000_000_000, burst: 0, scope: 'route' }] };
    const decisions: Decision[] = [
      buildDecision(rules, { now, allowed: false, results: [{ ok: false, remaining: 0, resetMs: now + 2_250 }] }),
      buildDecision(rules, { now, allowed: true, results: [{ ok: true, remaining: 0, resetMs: now }] }),
      buildDecision(rules, { now, allowed: true, results: [{ ok: true, remaining: 119, resetMs: now + 1_000 }] }),
      buildDecision(quota, {
        now,
        allowed: false,
        results: [
          { ok: true, remaining: 3, resetMs: now + 10 },
          { ok: false, remaining: 0, resetMs: now + 86_399_001 },
        ],
      }),
      buildDecision(
        { ...rules, shadow: false, limits: quota.limits },
        {
          now,
          allowed: false,
          results: [
            { ok: true, remaining: 3, resetMs: now + 10 },
            { ok: false, remaining: 0, resetMs: now + 86_399_001 },
          ],
        },
      ),
      unlimitedDecision(now),
      failureDecision(true, now),
      failureDecision(false, now, rules),
    ];
    for (const d of decisions) {
      assert.deepEqual(decodeRateLimitResponse(encodeDecision(d)), decodeRateLimitResponse(encodeRateLimitResponse(toRateLimitResponse(d))), d.outcome);
    }
    assert.equal(decodeRateLimitResponse(encodeDecision(decisions[3]!)).overall_code, CODE.OK, 'shadow');
    assert.equal(Buffer.from(decodeRateLimitResponse(encodeDecision(decisions[4]!)).raw_body!).toString(), decisions[4]!.body);
  });

  it('quotas above uint32 are clamped in the status (headers keep the exact numbers)', () => {
    const big: RuleSet = { ...rules, limits: [{ id: 'q', kind: 'quota', per: 'month', requests: 1_000_000_000_000, burst: 0, scope: 'plan' }] };
    const d = buildDecision(big, { now, allowed: true, results: [{ ok: true, remaining: 999_999_999_999, resetMs: now + 1000 }] });
    const msg = decodeRateLimitResponse(encodeRateLimitResponse(toRateLimitResponse(d)));
    assert.equal(msg.statuses[0]!.current_limit!.requests_per_unit, 4_294_967_295);
    assert.equal(msg.statuses[0]!.current_limit!.unit, 5);
    assert.equal(msg.response_headers_to_add[1]!.value, '999999999999');
  });
});
