// The pipeline's make-before-break removal (clusters leaving the config are kept for one interim
// version so routes that stop using them are served first), and the gate's translation reused by the publish.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ConfigPipeline, keepRemovedClusters } from '../../src/pipeline.ts';
import { FleetStatus, SnapshotCache } from '../../src/xds/index.ts';
import { modelOf, seedModel } from '../support/ratelimit-fixtures.ts';
import type { GroupResources } from '../../src/contract/index.ts';

const group = (clusters: string[], eds: string[] = clusters): GroupResources => ({
  clusters: clusters.map((name) => ({ name, type: 'EDS' })),
  endpoints: eds.map((cluster_name) => ({ cluster_name })),
  listeners: [{ name: 'http' }],
  routes: [{ name: 'http', version: clusters.join(',') }],
  secrets: [],
});

describe('keepRemovedClusters', () => {
  it('returns the target itself when nothing is removed', () => {
    const target = new Map([['edge', group(['a', 'b'])]]);
    assert.equal(keepRemovedClusters(new Map([['edge', group(['a'])]]), target), target);
    assert.equal(keepRemovedClusters(new Map(), target), target, 'first publication');
  });

  it('keeps removed clusters and their endpoints, sorted, with the new routes', () => {
    const served = new Map([['edge', group(['a', 'b', 'c'])]]);
    const target = new Map([['edge', group(['b', 'd'])]]);
    const interim = keepRemovedClusters(served, target);
    assert.notEqual(interim, target);
    const g = interim.get('edge')!;
    assert.deepEqual(
      g.clusters.map((c) => c.name),
      ['a', 'b', 'c', 'd'],
    );
    assert.deepEqual(
      g.endpoints.map((e) => e.cluster_name),
      ['a', 'b', 'c', 'd'],
    );
    assert.deepEqual(g.routes, target.get('edge')!.routes, 'routes are already the new ones');
    assert.deepEqual(
      target.get('edge')!.clusters.map((c) => c.name),
      ['b', 'd'],
      'the target is not modified',
    );
  });

  it('leaves groups without removals untouched', () => {
    const served = new Map([
      ['edge', group(['a', 'b'])],
      ['internal', group(['x'])],
    ]);
    const target = new Map([
      ['edge', group(['a'])],
      ['internal', group(['x', 'y'])],
    ]);
    const interim = keepRemovedClusters(served, target);
    assert.equal(interim.get('internal'), target.get('internal'));
    assert.deepEqual(
      interim.get('edge')!.clusters.map((c) => c.name),
      ['a', 'b'],
    );
  });
});

describe('ConfigPipeline gate and publish', () => {
  it('a write that adds a native group is translated once: its publish serves the gate translation', () => {
    const pipeline = new ConfigPipeline(new SnapshotCache(), new FleetStatus(), { calloutAddress: '127.0.0.1:18001' }, pino({ level: 'silent' }), new Registry());
    const translations = () => (pipeline as unknown as { last?: { groups: unknown } }).last?.groups;
    pipeline.publish(modelOf([]));
    const before = translations();
    // The seed model's group is native: publishing it divides its limits among 1 Envoy, not 0 groups.
    const candidate = seedModel();
    assert.deepEqual(pipeline.gate(candidate), []);
    const gated = translations();
    assert.notEqual(gated, before);
    pipeline.publish(candidate);
    assert.equal(translations(), gated, 'the publish reused the translation the gate made');
    assert.equal(pipeline.current().servedRevision, candidate.revision);
  });
});
