// The benchmark harness reads load generators' reports: hey prints its percentiles as `50% in`
// in older builds and `50%% in` in recent ones (the doubled verb made every figure NaN before);
// vegeta's JSON report gives nanoseconds; Prometheus histograms are read from a scrape, differenced
// between two scrapes and their quantiles interpolated as histogram_quantile does. A gateway scenario
// whose callouts differ from what its name says is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkCallouts } from '../../bench/gateway-scenarios.ts';
import { bucketQuantile, bucketsDelta, histogramBuckets, parseHey, parseVegeta } from '../../bench/harness.ts';

const report = (pct: string) => `
Summary:
  Total:	10.0021 secs
  Requests/sec:	4999.3051

Latency distribution:
  10${pct} in 0.0003 secs
  50${pct} in 0.0006 secs
  90${pct} in 0.0011 secs
  99${pct} in 0.0042 secs

Status code distribution:
  [200]	49980 responses
  [429]	13 responses
`;

for (const pct of ['%', '%%']) {
  test(`hey reports with '50${pct} in' lines are read`, () => {
    const r = parseHey(report(pct));
    assert.equal(r.rps, 4999.3051);
    assert.equal(r.p50Ms, 0.6);
    assert.equal(r.p90Ms, 1.1);
    assert.equal(r.p99Ms, 4.2);
    assert.deepEqual(r.statuses, { '200': 49980, '429': 13 });
  });
}

test('a percentile hey did not print is NaN, not another line read by mistake', () => {
  // With few samples hey prints its last percentile as `0%% in 0.0000 secs`.
  const r = parseHey(report('%%').replace('99%% in 0.0042', '0%% in 0.0000'));
  assert.ok(Number.isNaN(r.p99Ms));
  assert.equal(r.p50Ms, 0.6);
});

// vegeta's `report -type json` (v12.13.0), as it printed it for a paced run: latencies in nanoseconds.
const vegetaReport = {
  latencies: { total: 419507841651, mean: 12713129, '50th': 611400, '90th': 29409402, '95th': 110718741, '99th': 173035429, max: 264325728, min: 38727 },
  bytes_in: { total: 65996, mean: 2 },
  bytes_out: { total: 0, mean: 0 },
  earliest: '2026-12-07T03:05:04.663808885Z',
  latest: '2026-12-07T03:05:10.665149876Z',
  end: '2026-12-07T03:05:10.66749139Z',
  duration: 6001340991,
  wait: 2341514,
  requests: 32998,
  rate: 5498.437774071818,
  throughput: 5496.293312066142,
  success: 1,
  status_codes: { '200': 32998 },
  errors: [],
};

test('a vegeta JSON report is read as milliseconds, sent rate and throughput apart', () => {
  const r = parseVegeta(JSON.stringify(vegetaReport));
  assert.equal(r.p50Ms, 0.6114);
  assert.equal(r.p90Ms, 29.409402);
  assert.equal(r.p99Ms, 173.035429);
  assert.equal(r.maxMs, 264.325728);
  assert.equal(r.sentRps, 5498.437774071818);
  assert.equal(r.rps, 5496.293312066142);
  assert.equal(r.requests, 32998);
  assert.deepEqual(r.statuses, { '200': 32998 });
  assert.deepEqual(r.errors, []);
});

test('vegeta requests without a response count under status 0 with their errors; null errors read as none', () => {
  const failed = parseVegeta(JSON.stringify({ ...vegetaReport, status_codes: { '0': 3, '200': 32995 }, errors: ['dial tcp 127.0.0.1:1: connect: connection refused'] }));
  assert.deepEqual(failed.statuses, { '0': 3, '200': 32995 });
  assert.deepEqual(failed.errors, ['dial tcp 127.0.0.1:1: connect: connection refused']);
  assert.deepEqual(parseVegeta(JSON.stringify({ ...vegetaReport, errors: null })).errors, []);
});

test('a vegeta report missing a figure is refused naming it, not read as NaN', () => {
  const { '99th': _, ...latencies } = vegetaReport.latencies;
  assert.throws(() => parseVegeta(JSON.stringify({ ...vegetaReport, latencies })), /latencies\.99th missing/);
  const { throughput: __, ...noThroughput } = vegetaReport;
  assert.throws(() => parseVegeta(JSON.stringify(noThroughput)), /throughput missing/);
});

test('histogram buckets from a scrape: summed over matching series, differenced, and their quantiles', () => {
  const scrape = (n: number) =>
    [
      '# TYPE portico_gateway_latency_seconds histogram',
      `portico_gateway_latency_seconds_bucket{le="0.0001",group="edge",product="bench"} ${10 * n}`,
      `portico_gateway_latency_seconds_bucket{le="0.0002",group="edge",product="bench"} ${90 * n}`,
      `portico_gateway_latency_seconds_bucket{le="0.0005",group="edge",product="bench"} ${99 * n}`,
      `portico_gateway_latency_seconds_bucket{le="+Inf",group="edge",product="bench"} ${100 * n}`,
      `portico_gateway_latency_seconds_bucket{le="0.0001",group="edge",product="other"} 7`,
      `portico_gateway_latency_seconds_bucket{le="+Inf",group="edge",product="other"} 7`,
      `portico_gateway_latency_seconds_count{group="edge",product="bench"} ${100 * n}`,
    ].join('\n');
  const before = histogramBuckets(scrape(1), 'portico_gateway_latency_seconds', { product: 'bench' });
  assert.deepEqual(
    [...before],
    [
      [0.0001, 10],
      [0.0002, 90],
      [0.0005, 99],
      [Infinity, 100],
    ],
  );
  assert.equal(histogramBuckets(scrape(1), 'portico_gateway_latency_seconds').get(0.0001), 17, 'no match: every series');
  const d = bucketsDelta(before, histogramBuckets(scrape(3), 'portico_gateway_latency_seconds', { product: 'bench' }));
  assert.equal(d.get(Infinity), 200);
  // Rank 100 of 200: 20 below 0.1 ms, 180 below 0.2 ms -> 0.1 + 0.1 × 80/160 ms.
  assert.ok(Math.abs(bucketQuantile(0.5, d) - 0.00015) < 1e-12, `${bucketQuantile(0.5, d)}`);
  // Rank 198 of 200: exactly the 0.5 ms bound.
  assert.ok(Math.abs(bucketQuantile(0.99, d) - 0.0005) < 1e-12);
  // In the +Inf bucket: the highest finite bound.
  assert.equal(bucketQuantile(0.999, d), 0.0005);
  assert.ok(Number.isNaN(bucketQuantile(0.99, new Map())));
});

test('a scenario measuring another path than its name says is refused: callouts per request checked', () => {
  assert.throws(() => checkCallouts('auth', 0, 40_000), /auth: 0\.00 callouts per request where the scenario makes 1/);
  assert.throws(() => checkCallouts('key-native', 40_000, 40_000), /key-native: 1\.00 callouts per request where the scenario makes 0/);
  assert.throws(() => checkCallouts('service', 40_000, 40_000), /service: 1\.00 .* makes 2/);
  checkCallouts('auth', 40_000, 40_000);
  checkCallouts('service', 80_400, 40_000); // a few retried or warm-up callouts stay within the tolerance
  checkCallouts('jwt-native', 0, 40_000);
  checkCallouts('plain', 0, 0);
});
