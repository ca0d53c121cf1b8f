// Operators' regular expressions past RE2's default limit: Envoy refuses a regex over 100 RE2
// instructions (and with it the whole route configuration) unless the bootstrap raises
// re2.max_program_size.error_level, which every bootstrap Portico renders does. A route regex of a
// dozen alternatives, behind the product's base path, is served; without the setting Envoy NACKs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startEnvoy, waitInSync } from '../support/envoy.ts';
import { startTestPortico } from '../support/portico.ts';
import { freePort } from '../support/components.ts';
import { call, echo } from '../support/seed003.ts';

const GROUP = 'edge';
const NODE = 'edge-regex';
const SEGMENTS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa'];

describe('route regexes past RE2 default program size', () => {
  it('are accepted by Envoy with the rendered bootstrap and match as written', async (t) => {
    const users = await echo('users');
    const portico = await startTestPortico();
    t.after(() => Promise.all([portico.close(), users.close()]));
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: NODE });
    if (!envoy) return;
    const listenerPort = await freePort();
    const gateway = `http://127.0.0.1:${listenerPort}`;
    // ~150 RE2 instructions with the base path (/api) before it.
    const regex = `/codes/(${SEGMENTS.join('|')})/[0-9a-f]{8}`;
    const document = {
      portico: 'v1',
      gatewayGroups: [{ name: GROUP, listeners: [{ name: 'http', port: listenerPort, address: '127.0.0.1' }] }],
      services: [{ name: 'users', endpoints: [{ host: '127.0.0.1', port: users.port }] }],
      products: [
        {
          name: 'accounts',
          gatewayGroups: [GROUP],
          basePath: '/api',
          auth: { accept: ['none'] },
          routes: [{ name: 'codes', match: { path: { type: 'regex', value: regex }, methods: ['GET'] }, service: 'users' }],
        },
      ],
    };
    const r = await portico.api.post('/api/v1/config', JSON.stringify(document), { 'content-type': 'application/json' });
    assert.equal(r.status, 200, r.text);
    await envoy.waitForListener('http');
    await waitInSync(portico, GROUP, NODE, 30_000, 'Envoy to accept the route configuration');

    const routes = JSON.stringify(await envoy.configDump('dynamic_route_configs'));
    assert.ok(routes.includes('november|oscar|papa'), 'the regex is in the configuration Envoy holds');
    for (const segment of ['alpha', 'papa']) {
      const hit = await call(`${gateway}/api/codes/${segment}/0a1b2c3d`);
      assert.equal(hit.status, 200, hit.text);
      assert.equal(hit.json.service, 'users');
    }
    assert.equal((await call(`${gateway}/api/codes/quebec/0a1b2c3d`)).status, 404, 'an alternative not in the list');
    assert.equal((await call(`${gateway}/api/codes/alpha/0a1b2c3`)).status, 404, 'seven hex digits');
    assert.equal(await envoy.stat('cluster_manager.cds.update_rejected'), 0);
  });
});
