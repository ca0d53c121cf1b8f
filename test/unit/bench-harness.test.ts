// The benchmark harness reads load generators' text reports: hey prints its percentiles as `50% in`
// in older builds and `50%% in` in recent ones (the doubled verb made every figure NaN before).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHey } from '../../bench/harness.ts';

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
