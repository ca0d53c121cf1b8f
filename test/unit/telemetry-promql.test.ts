// The dashboard checker's PromQL reader and scrape parser (test/e2e/observability-promql.ts): it must
// find every metric name, matcher label and grouping label, and flag what a scrape does not export,
// or the dashboard test could pass on queries that show nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VARIABLE, checkExpression, dashboardQueries, parseScrape, promqlRefs, sum } from '../e2e/observability-promql.ts';

describe('PromQL reader', () => {
  it('finds metrics, matchers and grouping labels; skips functions, keywords, strings, ranges and variables', () => {
    const r = promqlRefs(
      'histogram_quantile(0.95, sum by (le, product) (rate(portico_http_request_duration_seconds_bucket{product=~"$product", partner!="none"}[$__rate_interval]))) / ignoring(x) group_left sum(rate(envoy_x_total{a="b,c}"}[5m] offset 1h)) > 0.5',
    );
    assert.deepEqual([...r.metrics].sort(), ['envoy_x_total', 'portico_http_request_duration_seconds_bucket']);
    assert.deepEqual(r.matchers, [
      { metric: 'portico_http_request_duration_seconds_bucket', label: 'product', op: '=~', value: VARIABLE },
      { metric: 'portico_http_request_duration_seconds_bucket', label: 'partner', op: '!=', value: 'none' },
      { metric: 'envoy_x_total', label: 'a', op: '=', value: 'b,c}' },
    ]);
    assert.deepEqual([...r.grouping].sort(), ['le', 'product', 'x']);
  });

  it('reads Grafana label_values() variable queries', () => {
    const r = promqlRefs('label_values(portico_http_requests_total{product=~"$product"}, partner)');
    assert.deepEqual([...r.metrics], ['portico_http_requests_total']);
    assert.deepEqual([...r.grouping], ['partner']);
    assert.deepEqual(r.matchers, [{ metric: 'portico_http_requests_total', label: 'product', op: '=~', value: VARIABLE }]);
  });

  it('sum(…) by (…) after the call, and bare metrics', () => {
    const r = promqlRefs('sum(increase(a_total[1h])) by (group) + b');
    assert.deepEqual([...r.metrics].sort(), ['a_total', 'b']);
    assert.deepEqual([...r.grouping], ['group']);
  });
});

describe('checking expressions against scrapes', () => {
  const scrape = parseScrape(
    [
      '# HELP a_total A',
      '# TYPE a_total counter',
      'a_total{product="orders",partner="x"} 3',
      'a_total{product="billing",partner="y",extra="1"} 4',
      '# TYPE h histogram',
      'h_bucket{le="0.1",product="orders"} 1',
      'h_sum{product="orders"} 0.05',
      'h_count{product="orders"} 1',
      '# TYPE empty_total counter',
      'envoy_route{envoy_route="orders/get",value="a \\"quoted\\" one"} 7',
    ].join('\n'),
  );

  it('parses samples, labels and values', () => {
    assert.equal(sum(scrape, 'a_total'), 7);
    assert.equal(sum(scrape, 'a_total', { product: 'orders' }), 3);
    assert.deepEqual([...scrape.samples.get('h_bucket')!].sort(), ['le', 'product']);
    assert.equal(scrape.values.find((v) => v.name === 'envoy_route')?.labels.value, 'a "quoted" one');
  });

  it('accepts what is exported and flags what is not', () => {
    assert.deepEqual(checkExpression('sum by (partner) (rate(a_total{product="orders"}[5m]))', [scrape]), []);
    assert.deepEqual(checkExpression('histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))', [scrape]), []);
    assert.deepEqual(checkExpression('rate(nope_total[5m])', [scrape]), ['metric nope_total is not exported']);
    assert.deepEqual(checkExpression('a_total{route="x"}', [scrape]), ['metric a_total has no label route']);
    assert.deepEqual(checkExpression('sum by (route) (a_total)', [scrape]), ['no metric of the expression has label route']);
    assert.deepEqual(checkExpression('a_total{product="ordres"}', [scrape]), ['no a_total sample has product="ordres"'], 'a fixed value must exist');
    assert.deepEqual(checkExpression('a_total{product=~"ordres|$product", partner="$partner"}', [scrape]), [], 'regexes and variables are not values');
    // A declared family without samples: its labels come from the registry.
    assert.deepEqual(
      checkExpression('sum by (type) (empty_total)', [scrape], (m) => (m === 'empty_total' ? ['type'] : undefined)),
      [],
    );
    assert.deepEqual(
      checkExpression('sum by (group) (empty_total)', [scrape], () => ['type']),
      ['no metric of the expression has label group'],
    );
  });

  it('lists the queries of a dashboard, nested panels and variables included', () => {
    const q = dashboardQueries({
      panels: [
        { title: 'A', targets: [{ refId: 'A', expr: 'x' }] },
        { type: 'row', title: 'R', panels: [{ title: 'B', targets: [{ expr: 'y' }] }] },
      ],
      templating: {
        list: [
          { type: 'query', name: 'product', query: { query: 'label_values(x, product)' } },
          { type: 'custom', name: 'c', query: 'a,b' },
        ],
      },
    });
    assert.deepEqual(
      q.map((x) => x.expr),
      ['x', 'y', 'label_values(x, product)'],
    );
  });
});
