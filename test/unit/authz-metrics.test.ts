// ext_authz metrics: label values stay bounded whatever callers send (unknown names fold into
// "unknown", partners past the cap into "other"), and two services can share one registry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { AuthzMetrics } from '../../src/authz/metrics.ts';

async function series(registry: Registry): Promise<Array<Record<string, string | number>>> {
  const m = await registry.getSingleMetric('portico_authz_decisions_total')!.get();
  return m.values.map((v) => ({ ...v.labels, value: v.value }) as Record<string, string | number>);
}

describe('authz metrics', () => {
  it('caps partner label values and folds names outside the model', async () => {
    const registry = new Registry();
    const m = new AuthzMetrics({ registry, maxPartnerLabels: 2 });
    m.setKnown(['orders'], ['a', 'b', 'c']);
    m.decision('orders', 'a', 'allow', 'api_key', 'ok');
    m.decision('orders', 'b', 'allow', 'api_key', 'ok');
    m.decision('orders', 'c', 'allow', 'api_key', 'ok');
    m.decision('orders', 'c', 'allow', 'api_key', 'ok');
    m.decision('orders', 'a', 'allow', 'api_key', 'ok');
    m.decision('orders', 'attacker-chosen-claim', 'deny', 'jwt', 'unknown_partner');
    m.decision('nope', undefined, 'deny', undefined, 'unknown_product');
    const s = await series(registry);
    const find = (partner: string, product = 'orders') => s.find((x) => x.partner === partner && x.product === product)?.value;
    assert.equal(find('a'), 2);
    assert.equal(find('b'), 1);
    assert.equal(find('c'), undefined, 'the third partner is past the cap');
    assert.equal(find('other'), 2);
    assert.equal(find('unknown'), 1);
    assert.equal(find('none', 'unknown'), 1);
    assert.ok(!s.some((x) => x.partner === 'attacker-chosen-claim'));
  });

  it('lets a second service register on the same registry', () => {
    const registry = new Registry();
    const a = new AuthzMetrics({ registry });
    const b = new AuthzMetrics({ registry });
    a.checkDuration(0.001, 'allow');
    b.checkDuration(0.002, 'deny');
    assert.equal(registry.getMetricsAsArray().filter((x) => x.name === 'portico_authz_check_duration_seconds').length, 1);
  });
});
