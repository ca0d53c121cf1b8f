// The claims a flow run by the runtime reads (request.identity.claims), from the headers the route's
// own product's issuers forward them in: another product's issuer using the same header name for
// another claim must not change what this route's flow reads.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { FLOW_HEADERS } from '../../src/contract/index.ts';
import { FlowRuntime } from '../../src/flows/index.ts';
import { parseModelDocument } from '../../src/model/index.ts';
import { createLogger } from '../../src/telemetry/index.ts';

const issuer = (name: string, forwardClaims: Record<string, string>) => ({ name, issuer: `https://${name}.example`, audiences: ['api'], jwksUri: `https://${name}.example/jwks`, forwardClaims });
const product = (name: string, jwtIssuers: string[], accept = ['jwt']) => ({
  name,
  gatewayGroups: ['edge'],
  basePath: `/${name}`,
  jwtIssuers,
  auth: { accept },
  routes: [{ name: 'who', match: { path: { type: 'exact', value: '/who' } }, flow: { steps: [{ name: 'reply', respond: { body: '{"claims": request.identity.claims}' } }] } }],
});

describe("a runtime flow's claims", { timeout: 60_000 }, () => {
  let runtime: FlowRuntime;
  let port = 0;

  before(async () => {
    const doc = {
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
      // Sorted by name, `staff` comes last: with one map across issuers its email won X-User for everyone.
      jwtIssuers: [issuer('customers', { sub: 'X-User', tier: 'X-Tier' }), issuer('staff', { email: 'X-User' })],
      products: [product('shop', ['customers']), product('desk', ['staff']), product('both', ['customers', 'staff']), product('open', ['customers'], ['api_key'])],
    };
    const { model, errors } = parseModelDocument(doc, { hashApiKey: (key) => ({ prefix: key.slice(0, 8), hash: key, secret: key }) });
    assert.deepEqual(errors, []);
    runtime = new FlowRuntime({ registry: new Registry(), logger: createLogger('silent'), stepPort: 0, maxConcurrent: 10 });
    runtime.update(model);
    port = await runtime.listen('127.0.0.1', 0);
  });
  after(() => runtime.close(0));

  const claims = (productName: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const headers = { [FLOW_HEADERS.flow]: `${productName}/who`, 'x-user': 'u-1', 'x-tier': 'gold' };
      http
        .get({ host: '127.0.0.1', port, path: `/${productName}/who`, headers, agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => (res.statusCode === 200 ? resolve((JSON.parse(text) as { claims?: unknown }).claims) : reject(new Error(`${res.statusCode} ${text}`))));
        })
        .on('error', reject);
    });

  it("reads the header as the claim the route's own issuer forwards in it", async () => {
    assert.deepEqual(await claims('shop'), { sub: 'u-1', tier: 'gold' });
    assert.deepEqual(await claims('desk'), { email: 'u-1' });
  });

  it('leaves out a header two of the product issuers fill with different claims', async () => {
    assert.deepEqual(await claims('both'), { tier: 'gold' });
  });

  it('reads no claims on a route that takes no JWT', async () => {
    assert.equal(await claims('open'), undefined);
  });
});
