// Rate limiting in the translator: which routes plan limits apply to and what they count by, the
// filters each mode puts in the chain (combined: ext_authz counts, with a counting-only instance for
// anonymous routes; service: Envoy's rate-limit filter and per-route descriptors), local token
// buckets, the local replies that keep the 429 contract, and what validateTranslation refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import { parseRateLimitRequest } from '../../src/ratelimit/descriptors.ts';
import type { JsonObject } from '../../src/translate/envoy/common.ts';
import { translate, validateTranslation } from '../../src/translate/index.ts';
import { localBucket, routeLimits } from '../../src/translate/to-ir/limits.ts';
import { jsonAt, validModel } from '../support/translate.ts';

interface Out {
  filters: JsonObject[];
  mappers: JsonObject[];
  routes: Map<string, JsonObject>;
}

function out(m: ModelSnapshot, group = 'g'): Out {
  const g = translate(m, { calloutAddress: '127.0.0.1:9001' }).get(group)! as unknown as { listeners: JsonObject[]; routes: JsonObject[] };
  const hcm = jsonAt(g.listeners[0], 'filter_chains', 0, 'filters', 0, 'typed_config') as JsonObject;
  const routes = new Map<string, JsonObject>();
  for (const vh of jsonAt(g.routes[0], 'virtual_hosts') as JsonObject[]) for (const r of vh.routes as JsonObject[]) routes.set(String(r.name), r);
  return { filters: hcm.http_filters as JsonObject[], mappers: jsonAt(hcm, 'local_reply_config', 'mappers') as JsonObject[], routes };
}

const names = (o: Out) => o.filters.map((f) => String(f.name));
const filter = (o: Out, name: string) => o.filters.find((f) => f.name === name);
const perFilter = (o: Out, route: string, name: string) => jsonAt(o.routes.get(route), 'typed_per_filter_config', name) as JsonObject | undefined;

/** A gateway: a public product (login, health) with a public plan, a protected one with a subscription. */
function gateway(group: object, extra: Array<[KindName, object]> = []): ModelSnapshot {
  return validModel([
    ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }], ...group }],
    ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'acc', gatewayGroups: ['g'], auth: { accept: ['none'] }, publicPlan: 'std' }],
    ['routes', { product: 'acc', name: 'login', match: { path: { type: 'exact', value: '/login' } }, service: 's' }],
    ['routes', { product: 'acc', name: 'health', match: { path: { type: 'exact', value: '/health' } }, directResponse: { status: 200 } }],
    ['products', { name: 'api', gatewayGroups: ['g'] }],
    ['routes', { product: 'api', name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 's' }],
    ['routes', { product: 'api', name: 'free', match: { path: { type: 'prefix', value: '/free' } }, service: 's' }],
    [
      'plans',
      {
        name: 'std',
        limits: [{ requests: 100, per: 'second', burst: 20 }],
        countBy: { kind: 'header', header: 'X-User-Id' },
        overrides: [
          { product: 'acc', route: 'login', limits: [{ requests: 10, per: 'minute' }], countBy: { kind: 'client_ip' } },
          { product: 'acc', route: 'health', limits: [] },
          { product: 'api', route: 'free', limits: [] },
        ],
      },
    ],
    ['plans', { name: 'gold', quotas: [{ requests: 1000, per: 'day' }], countBy: { kind: 'header', header: 'X-Tenant' } }],
    ['partners', { name: 'acme' }],
    ['partners', { name: 'globex' }],
    ['subscriptions', { partner: 'acme', product: 'api', plan: 'std' }],
    ['subscriptions', { partner: 'globex', product: 'api', plan: 'gold' }],
    ...extra,
  ]);
}

describe('routeLimits', () => {
  const m = gateway({});
  const r = (p: string, name: string) => routeLimits(m, m.products.get(p)!, m.routes.get(`${p}/${name}`)!);

  it('anonymous routes: only the public plan; an override without limits leaves a route unlimited', () => {
    assert.deepEqual(r('acc', 'login'), { limited: true, countHeaders: [] });
    assert.deepEqual(r('acc', 'health'), { limited: false, countHeaders: [] });
  });

  it("protected routes: every subscribed plan's rules for the route, and the headers they count by", () => {
    assert.deepEqual(r('api', 'items'), { limited: true, countHeaders: ['x-tenant', 'x-user-id'] });
    // std has no limit on free, gold's quota still applies.
    assert.deepEqual(r('api', 'free'), { limited: true, countHeaders: ['x-tenant'] });
  });
});

describe('local token buckets', () => {
  it('refill at exactly the rate, at least 50 ms apart; Retry-After is the longest wait for a token', () => {
    assert.deepEqual(localBucket({ requests: 100, per: 'second', burst: 20 }), { requests: 100, per: 'second', maxTokens: 120, tokensPerFill: 5, fillIntervalNs: 50_000_000, retryAfterSeconds: 1 });
    assert.deepEqual(localBucket({ requests: 10, per: 'minute' }), { requests: 10, per: 'minute', maxTokens: 10, tokensPerFill: 1, fillIntervalNs: 6_000_000_000, retryAfterSeconds: 6 });
    assert.deepEqual(localBucket({ requests: 7, per: 'minute' }).fillIntervalNs, 8_571_428_571);
    assert.equal(localBucket({ requests: 7, per: 'minute' }).retryAfterSeconds, 9);
    assert.deepEqual(localBucket({ requests: 1_000_000_000, per: 'second' }).tokensPerFill, 50_000_000);
    assert.equal(localBucket({ requests: 3, per: 'hour' }).retryAfterSeconds, 1200);
  });
});

describe('combined mode', () => {
  // Stated: unstated, only api (gold's quota by header) would count with the callout, acc natively.
  const o = out(gateway({ authz: { timeoutMs: 200 }, rateLimit: { mode: 'combined', timeoutMs: 80, failureMode: 'closed' } }));

  it('counts in the ext_authz callout: no rate-limit filter; the callout gets the rate limiter time on top', () => {
    assert.deepEqual(names(o), ['envoy.filters.http.header_mutation', 'envoy.filters.http.ext_authz', 'portico.ext_authz.limits', 'envoy.filters.http.router']);
    assert.equal(jsonAt(filter(o, 'envoy.filters.http.ext_authz'), 'typed_config', 'grpc_service', 'timeout'), '0.280s');
  });

  it('marks counted routes; anonymous limited routes go to the counting-only instance, with rate limiting failure mode and timeout', () => {
    assert.equal(jsonAt(perFilter(o, 'api/items', 'envoy.filters.http.ext_authz'), 'check_settings', 'context_extensions', 'ratelimit'), 'combined');
    assert.equal(jsonAt(perFilter(o, 'acc/login', 'envoy.filters.http.ext_authz'), 'disabled'), true);
    assert.deepEqual(jsonAt(perFilter(o, 'acc/login', 'portico.ext_authz.limits'), 'check_settings', 'context_extensions'), { accept: 'none', product: 'acc', ratelimit: 'combined', route: 'login' });
    const limits = filter(o, 'portico.ext_authz.limits')!;
    assert.equal(limits.disabled, true, 'off unless a route turns it on');
    assert.equal(jsonAt(limits, 'typed_config', 'failure_mode_allow'), false);
    assert.equal(jsonAt(limits, 'typed_config', 'grpc_service', 'timeout'), '0.080s');
    // Unlimited public routes make no callout at all.
    assert.equal(jsonAt(perFilter(o, 'acc/health', 'envoy.filters.http.ext_authz'), 'disabled'), true);
    assert.equal(perFilter(o, 'acc/health', 'portico.ext_authz.limits'), undefined);
  });

  it('answers a fail-closed outage of the counting-only instance with the contract 429', () => {
    const m = o.mappers[0]!;
    assert.equal(m.status_code, 429);
    assert.deepEqual(jsonAt(m, 'filter', 'and_filter', 'filters', 1), { response_flag_filter: { flags: ['UAEX'] } });
    assert.equal(
      jsonAt(m, 'body_format_override', 'text_format_source', 'inline_string'),
      '{"error":"rate_limit_unavailable","message":"Rate limiting is temporarily unavailable. Retry after 1 second.","retry_after":1}',
    );
  });

  it('leaves the plain chain alone where nothing is limited', () => {
    const plain = out(
      validModel([
        ['gatewayGroups', { name: 'g', listeners: [{ name: 'web', port: 8080 }] }],
        ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
        ['products', { name: 'api', gatewayGroups: ['g'] }],
        ['routes', { product: 'api', name: 'items', match: { path: { type: 'prefix', value: '/' } }, service: 's' }],
      ]),
    );
    assert.deepEqual(names(plain), ['envoy.filters.http.header_mutation', 'envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
    assert.equal(jsonAt(plain.filters[1], 'typed_config', 'grpc_service', 'timeout'), '1s');
    assert.equal(jsonAt(perFilter(plain, 'api/items', 'envoy.filters.http.ext_authz'), 'check_settings', 'context_extensions', 'ratelimit'), undefined);
  });
});

describe('service mode', () => {
  const o = out(gateway({ rateLimit: { mode: 'service', timeoutMs: 40, failureMode: 'closed' } }));

  it("puts Envoy's rate-limit filter after ext_authz with the contract's settings", () => {
    assert.deepEqual(names(o), ['envoy.filters.http.header_mutation', 'envoy.filters.http.ext_authz', 'envoy.filters.http.ratelimit', 'envoy.filters.http.router']);
    const rl = jsonAt(filter(o, 'envoy.filters.http.ratelimit'), 'typed_config') as JsonObject;
    assert.equal(rl.domain, 'portico');
    assert.equal(rl.timeout, '0.040s');
    assert.equal(rl.failure_mode_deny, true);
    assert.equal(rl.enable_x_ratelimit_headers, 'OFF');
    assert.equal(rl.disable_x_envoy_ratelimited_header, true);
    assert.deepEqual(jsonAt(rl, 'rate_limit_service', 'grpc_service', 'envoy_grpc'), { cluster_name: 'portico.callouts' });
    assert.equal(jsonAt(filter(o, 'envoy.filters.http.ext_authz'), 'typed_config', 'grpc_service', 'timeout'), '1s', 'authorization alone');
  });

  it('sends exactly the descriptor the rate-limit service parses: route, address, partner from ext_authz, counted headers', () => {
    const items = jsonAt(o.routes.get('api/items'), 'route', 'rate_limits') as JsonObject[];
    assert.equal(items.length, 1);
    assert.deepEqual(items[0]!.actions, [
      { generic_key: { descriptor_key: 'portico_route', descriptor_value: 'api/items' } },
      { remote_address: {} },
      { metadata: { descriptor_key: 'portico_partner', metadata_key: { key: 'envoy.filters.http.ext_authz', path: [{ key: 'partner' }] }, source: 'DYNAMIC', skip_if_absent: true } },
      { request_headers: { header_name: 'x-tenant', descriptor_key: 'portico_header.x-tenant', skip_if_absent: true } },
      { request_headers: { header_name: 'x-user-id', descriptor_key: 'portico_header.x-user-id', skip_if_absent: true } },
    ]);
    // What Envoy would send for it is a request the service accepts.
    const parsed = parseRateLimitRequest({
      domain: 'portico',
      descriptors: [
        {
          entries: [
            { key: 'portico_route', value: 'api/items' },
            { key: 'remote_address', value: '10.1.2.3' },
            { key: 'portico_partner', value: 'acme' },
            { key: 'portico_header.x-user-id', value: 'u1' },
          ],
        },
      ],
    });
    assert.deepEqual(parsed, { product: 'api', route: 'items', hits: 1, partner: 'acme', clientIp: '10.1.2.3', headers: { 'x-user-id': 'u1' } });
    // Anonymous: no partner entry; ext_authz stays off (no callout but the rate limit's).
    assert.deepEqual(jsonAt(o.routes.get('acc/login'), 'route', 'rate_limits', 0, 'actions'), [
      { generic_key: { descriptor_key: 'portico_route', descriptor_value: 'acc/login' } },
      { remote_address: {} },
    ]);
    assert.equal(jsonAt(perFilter(o, 'acc/login', 'envoy.filters.http.ext_authz'), 'disabled'), true);
    assert.equal(jsonAt(o.routes.get('acc/health'), 'direct_response', 'status'), 200);
    assert.equal(jsonAt(o.routes.get('portico/not-found'), 'route', 'rate_limits'), undefined);
  });

  it('turns an unreachable service (fail closed) into the contract 429, and leaves the service 429s alone', () => {
    assert.equal(o.mappers.filter((m) => jsonAt(m, 'filter', 'and_filter', 'filters', 1, 'response_flag_filter', 'flags', 0) === 'RLSE').length, 1);
    assert.equal(
      o.mappers.some((m) => JSON.stringify(m).includes('"RL"')),
      false,
      "no mapper keyed on the service's own refusals",
    );
  });
});

describe('local rate limits', () => {
  const o = out(
    gateway({ localRateLimit: { requests: 1000, per: 'second', burst: 100 } }, [
      ['routes', { product: 'api', name: 'slow', match: { path: { type: 'prefix', value: '/slow' } }, service: 's', localRateLimit: { requests: 2, per: 'minute' } }],
    ]),
  );

  it('the group bucket before any callout, the route buckets off unless a route configures one', () => {
    assert.deepEqual(names(o).slice(1, 3), ['portico.local_ratelimit.group', 'portico.local_ratelimit.route']);
    const g = jsonAt(filter(o, 'portico.local_ratelimit.group'), 'typed_config') as JsonObject;
    assert.deepEqual(g.token_bucket, { max_tokens: 1100, tokens_per_fill: 50, fill_interval: '0.050s' });
    assert.deepEqual(jsonAt(g, 'filter_enforced', 'default_value'), { numerator: 100, denominator: 'HUNDRED' });
    assert.equal(filter(o, 'portico.local_ratelimit.route')!.disabled, true);
    const r = perFilter(o, 'api/slow', 'portico.local_ratelimit.route')!;
    assert.deepEqual(r.token_bucket, { max_tokens: 2, tokens_per_fill: 1, fill_interval: '30s' });
    assert.deepEqual(
      (r.response_headers_to_add as JsonObject[]).map((h) => [jsonAt(h, 'header', 'key'), jsonAt(h, 'header', 'value')]),
      [
        ['retry-after', '30'],
        ['x-ratelimit-limit', '2'],
        ['x-ratelimit-remaining', '0'],
        ['x-ratelimit-reset', '%CEL(int(request.time) + 30)%'],
      ],
    );
    assert.equal(perFilter(o, 'api/items', 'portico.local_ratelimit.route'), undefined);
  });

  it("rewrites only the buckets' own 429s (by response code details) into the contract body", () => {
    // First the singular ("Retry after 1 second.") for a bucket whose Retry-After is 1, then the rest.
    const one = o.mappers[0]!;
    assert.equal(
      jsonAt(one, 'filter', 'and_filter', 'filters', 1, 'extension_filter', 'typed_config', 'value', 'expression'),
      "response.code_details == 'local_rate_limited' && response.headers['retry-after'] == '1'",
    );
    assert.equal(jsonAt(one, 'body_format_override', 'text_format_source', 'inline_string'), '{"error":"rate_limit_exceeded","message":"Too many requests. Retry after 1 second.","retry_after":1}');
    const m = o.mappers[1]!;
    assert.equal(jsonAt(m, 'filter', 'and_filter', 'filters', 0, 'status_code_filter', 'comparison', 'value', 'default_value'), 429);
    assert.equal(jsonAt(m, 'filter', 'and_filter', 'filters', 1, 'extension_filter', 'typed_config', 'value', 'expression'), "response.code_details == 'local_rate_limited'");
    assert.equal(
      jsonAt(m, 'body_format_override', 'text_format_source', 'inline_string'),
      '{"error":"rate_limit_exceeded","message":"Too many requests. Retry after %RESP(RETRY-AFTER)% seconds.","retry_after":%RESP(RETRY-AFTER)%}',
    );
    assert.equal(jsonAt(m, 'body_format_override', 'content_type'), 'application/json');
  });
});

describe('validateTranslation', () => {
  it('refuses a plan counting by the API key header of a product it applies to', () => {
    const m = gateway({}, [
      ['plans', { name: 'by-key', limits: [{ requests: 1, per: 'second' }], countBy: { kind: 'header', header: 'X-Api-Key' } }],
      ['partners', { name: 'initech' }],
      ['subscriptions', { partner: 'initech', product: 'api', plan: 'by-key' }],
    ]);
    const errors = validateTranslation(m);
    assert.deepEqual(
      errors.map((e) => [e.kind, e.key, e.field]),
      [['plans', 'by-key', 'countBy.header']],
    );
    assert.match(errors[0]!.message, /removes it before limits are counted/);
    assert.deepEqual(validateTranslation(gateway({})), []);
  });
});
