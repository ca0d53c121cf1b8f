// The overview's traffic arithmetic (console/src/traffic.ts): percentiles from histogram buckets,
// rates between two polls, error and denial counts; and the field-path helpers forms rely on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { quantile, trafficRows } from '../../console/src/traffic.ts';
import { getPath, setPath } from '../../console/src/kinds.ts';

const buckets = (pairs: [string, number][]) => pairs.map(([le, count]) => ({ le, count }));

describe('console traffic', () => {
  it('interpolates a quantile inside its bucket, as Prometheus does', () => {
    const b = buckets([
      ['0.01', 50],
      ['0.1', 90],
      ['1', 100],
      ['+Inf', 100],
    ]);
    assert.equal(quantile(0.5, b), 0.01);
    assert.ok(Math.abs(quantile(0.7, b)! - 0.055) < 1e-9);
    assert.ok(Math.abs(quantile(0.99, b)! - 0.91) < 1e-9);
    assert.equal(quantile(0.5, buckets([['+Inf', 0]])), undefined);
    // Everything above the last finite bound: the bound is the best answer.
    assert.equal(
      quantile(
        0.99,
        buckets([
          ['0.5', 1],
          ['+Inf', 10],
        ]),
      ),
      0.5,
    );
  });

  it('computes rates between polls; the first poll has none', () => {
    const s = (requests: number) => ({
      product: 'shop',
      partner: 'acme',
      requests,
      outcomes: { rate_limited: 2, authz_denied: 1 },
      codeClasses: { '2xx': requests - 3, '5xx': 3 },
      durationSum: 1,
      buckets: [],
    });
    const first = { at: '2026-01-01T00:00:00.000Z', series: [s(10)] };
    const second = { at: '2026-01-01T00:00:05.000Z', series: [s(60)] };
    assert.equal(trafficRows(first)[0]!.rate, undefined);
    const row = trafficRows(second, first)[0]!;
    assert.equal(row.rate, 10);
    assert.equal(row.errors, 3);
    assert.equal(row.rateLimited, 2);
    assert.equal(row.denied, 1);
    // A series new since the last poll counts from zero; a counter reset never gives a negative rate.
    assert.equal(trafficRows(second, { at: first.at, series: [] })[0]!.rate, 12);
    assert.equal(trafficRows(first, { at: '2025-12-31T23:59:55.000Z', series: [s(60)] })[0]!.rate, 0);
  });

  it('reads and writes the field paths problem+json names', () => {
    const body = { name: 'a', endpoints: [{ host: 'h', port: 1 }] };
    assert.equal(getPath(body, 'endpoints[0].port'), 1);
    const changed = setPath(body, 'endpoints[0].port', 2);
    assert.equal(changed.endpoints[0]!.port, 2);
    assert.equal(body.endpoints[0]!.port, 1, 'the original is not changed');
    assert.deepEqual(setPath({}, 'limits[0].per', 'second'), { limits: [{ per: 'second' }] });
    assert.deepEqual(setPath({ auth: { accept: ['jwt'] }, x: 1 }, 'auth', undefined), { x: 1 });
  });
});
