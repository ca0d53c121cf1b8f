// The benchmark harness reads load generators' reports: hey prints its percentiles as `50% in`
// in older builds and `50%% in` in recent ones (the doubled verb made every figure NaN before);
// vegeta's JSON report gives nanoseconds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHey, parseVegeta } from '../../bench/harness.ts';

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
