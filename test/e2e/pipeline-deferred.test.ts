// `portico serve` translates when the first Envoy connects, not at start: before that the control
// plane is ready (model loaded) but holds no translation; the first stream gets the whole snapshot;
// a write before any stream is still gated by translation and published.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TYPE_URLS } from '../../src/proto/index.ts';
import { DISCOVERY_SERVICES, discoveryServiceDefinition, unpackDeltaResource } from '../../src/xds/services.ts';
import type { DeltaResponse } from '../../src/xds/stream.ts';
import { waitFor } from '../support/components.ts';
import { startTestPortico, type TestPortico } from '../support/portico.ts';

const GROUP = 'edge';
const TYPES = [TYPE_URLS.cluster, TYPE_URLS.endpoint, TYPE_URLS.listener, TYPE_URLS.route];
const DOCUMENT = `portico: v1
gatewayGroups:
  - name: ${GROUP}
    listeners:
      - name: http
        port: 10080
services:
  - name: users
    endpoints:
      - host: 127.0.0.1
        port: 3001
products:
  - name: users
    gatewayGroups: [${GROUP}]
    auth:
      accept: [none]
    routes:
      - name: list
        match:
          path: { type: prefix, value: /users }
        service: users
`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-deferred-'));
const file = path.join(dir, 'model.yaml');
writeFileSync(file, DOCUMENT);
after(() => rmSync(dir, { recursive: true, force: true }));

/** Snapshots built so far (portico_snapshot_build_seconds' count). */
async function builds(p: TestPortico): Promise<number> {
  const text = await p.registry.getSingleMetricAsString('portico_snapshot_build_seconds');
  return Number(/_count (\d+)/.exec(text)?.[1]);
}

/** One Delta ADS stream of the group subscribed to everything: resource names per type once all four types arrived. */
function deltaSnapshot(address: string): Promise<Record<string, string[]>> {
  const m = discoveryServiceDefinition(DISCOVERY_SERVICES.ads.service).DeltaAggregatedResources!;
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize as (b: Buffer) => DeltaResponse);
  const got: Record<string, string[]> = {};
  return new Promise<Record<string, string[]>>((resolve, reject) => {
    call.on('data', (r: DeltaResponse) => {
      got[r.type_url] = r.resources.map((b) => unpackDeltaResource(b).name).sort();
      call.write({ type_url: r.type_url, response_nonce: r.nonce });
      if (TYPES.every((t) => got[t])) resolve(got);
    });
    call.on('error', (e: grpc.ServiceError) => reject(e));
    TYPES.forEach((t, k) => call.write({ ...(k === 0 ? { node: { id: 'deferred-test', cluster: GROUP } } : {}), type_url: t, resource_names_subscribe: ['*'] }));
  }).finally(() => {
    call.cancel();
    client.close();
  });
}

describe('pipeline: translation deferred until the first Envoy connects', () => {
  it('is ready without a translation, and the first stream receives the whole snapshot', async (t) => {
    const portico = await startTestPortico({ start: { applyFile: file, translateOnFirstStream: true } });
    t.after(() => portico.close());
    const ready = await portico.api.get('/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.ok(ready.body.modelRevision >= 1, 'the model is loaded');
    assert.equal(ready.body.servedRevision, -1, 'nothing translated yet');
    assert.equal(await builds(portico), 0, 'no snapshot built before a stream');
    assert.equal(portico.xds.cache.isReady(), false);

    const names = await deltaSnapshot(`127.0.0.1:${portico.grpcPort}`);
    assert.deepEqual(names[TYPE_URLS.cluster], ['portico.callouts', 'portico.telemetry', 'users']);
    assert.ok(names[TYPE_URLS.endpoint]!.includes('users'));
    assert.equal(names[TYPE_URLS.listener]!.length, 1);
    assert.equal(names[TYPE_URLS.route]!.length, 1);
    assert.equal(await builds(portico), 1, 'translated once, for the first stream');
    assert.equal(portico.pipeline.current().servedRevision, ready.body.modelRevision);
  });

  it('a write before any stream is translated (the gate) and published', async (t) => {
    const portico = await startTestPortico({ start: { applyFile: file, translateOnFirstStream: true } });
    t.after(() => portico.close());
    assert.equal(await builds(portico), 0);
    const created = await portico.api.post('/api/v1/products/users/routes', { name: 'one', match: { path: { type: 'exact', value: '/users/one' } }, service: 'users' });
    assert.equal(created.status, 201, created.text);
    const revision = (await portico.api.get('/readyz')).body.modelRevision;
    await waitFor('the write to be served', () => (portico.pipeline.current().servedRevision === revision && portico.xds.cache.isReady() ? true : undefined));
    assert.equal(await builds(portico), 1, 'the publish served the gate translation');
    assert.ok(portico.xds.cache.getSnapshot(GROUP).types.get(TYPE_URLS.cluster)!.resources.has('users'));
  });
});
