// Client certificates through the whole pipeline: certificates, an https listener with a client CA,
// mTLS identities (subject, SAN, SPIFFE ID, fingerprint) and products, all written through the admin
// API and served by a real Envoy over xDS/SDS. Known certificates map to their partners; an unknown
// certificate from the same CA is refused by ext_authz; a certificate from another CA (or none) never
// completes the TLS handshake. A route taking API key, JWT or certificate picks the first presented.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { selfSigned, signedBy, type TestCertificate } from '../support/certs.ts';
import { freePort } from '../support/components.ts';
import {
  addMtlsListener,
  assertGatewayError,
  assertUnauthorized,
  createApiKey,
  httpsCall,
  identityHeadersOf,
  mirroredHeaders,
  startAuthzGateway,
  startMirror,
  type Tls,
} from '../support/authz-gateway.ts';

const NODE = 'edge-authz-mtls';

describe('authz pipeline: mTLS identities through the admin API, SDS and a real Envoy', () => {
  it('maps verified client certificates to partners and refuses the rest', { timeout: 300_000 }, async (t) => {
    // Certificates first: openssl runs synchronously, and the control plane shares this process.
    const serverCa = await selfSigned('Portico Test Server CA');
    const server = await signedBy(serverCa, 'localhost', { san: 'DNS:localhost,IP:127.0.0.1' });
    const clientCa = await selfSigned('Partner Client CA');
    const bySubject = await signedBy(clientCa, 'subject-client', { client: true, san: 'DNS:a.unmapped.internal' });
    const bySan = await signedBy(clientCa, 'san-client', { client: true, san: 'DNS:san-client.bank-b.internal' });
    const bySpiffe = await signedBy(clientCa, 'spiffe-client', { client: true, san: 'URI:spiffe://bank-c.example/ns/prod/sa/ledger' });
    const byFingerprint = await signedBy(clientCa, 'fp-client', { client: true, san: 'DNS:fp.unmapped.internal' });
    // The same subject as bank-a's mapping, but a SPIFFE ID of bank-c: the more specific identity wins.
    const both = await signedBy(clientCa, 'subject-client', { client: true, san: 'URI:spiffe://bank-c.example/ns/prod/sa/ledger' });
    const stranger = await signedBy(clientCa, 'stranger', { client: true, san: 'DNS:stranger.internal' });
    const otherCa = await selfSigned('Someone Else CA');
    const foreign = await signedBy(otherCa, 'subject-client', { client: true, san: 'URI:spiffe://bank-c.example/ns/prod/sa/ledger' });
    const fingerprint = new X509Certificate(byFingerprint.certificate).fingerprint256; // AB:CD:… (normalised by the model)

    const mirror = await startMirror();
    t.after(() => mirror.close());
    const mtlsPort = await freePort();
    const g = await startAuthzGateway(t, { nodeId: NODE, mutate: (doc) => doc.plans.push({ name: 'unlimited' }) });
    if (!g) return;
    const { api, issuer } = g;
    const ok = (r: { status: number; text: string }, what: string, expected = [200, 201]) => assert.ok(expected.includes(r.status), `${what}: ${r.status} ${r.text}`);
    const https = (path: string, o: Tls = {}) => httpsCall(mtlsPort, path, serverCa.certificate, o);
    try {
      await t.test('certificates, an https listener with a client CA, identities and products through the admin API', async () => {
        await addMtlsListener(api, mtlsPort, server, clientCa);
        ok(await api.post('/api/v1/services', { name: 'ledger', endpoints: [{ host: '127.0.0.1', port: mirror.port }] }), 'service');
        ok(await api.post('/api/v1/products', { name: 'ledger', gatewayGroups: ['edge'], basePath: '/ledger', auth: { accept: ['mtls'] } }), 'mTLS-only product');
        ok(await api.post('/api/v1/products/ledger/routes', { name: 'entries', match: { path: { type: 'prefix', value: '/entries' } }, service: 'ledger' }), 'route');
        ok(await api.post('/api/v1/products', { name: 'vault', gatewayGroups: ['edge'], basePath: '/vault', auth: { accept: ['api_key', 'jwt', 'mtls'] } }), 'multi-credential product');
        ok(await api.post('/api/v1/products/vault/routes', { name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 'ledger' }), 'route');
        const identities: Array<[string, string, { type: string; value: string }]> = [
          ['bank-a', 'subject', { type: 'subject', value: 'CN=subject-client' }],
          ['bank-b', 'san', { type: 'san', value: 'DNS:san-client.bank-b.internal' }],
          ['bank-c', 'spiffe', { type: 'spiffe_id', value: 'spiffe://bank-c.example/ns/prod/sa/ledger' }],
          ['bank-d', 'fingerprint', { type: 'fingerprint', value: fingerprint }],
        ];
        for (const [partner, name, match] of identities) {
          ok(await api.post('/api/v1/partners', { name: partner, kind: 'tenant' }), partner);
          for (const product of ['ledger', 'vault']) ok(await api.post(`/api/v1/partners/${partner}/subscriptions`, { product, plan: 'unlimited' }), `${partner}/${product}`);
          ok(await api.post(`/api/v1/partners/${partner}/mtls-identities`, { name, match }), `${partner} identity`);
        }
        await g.envoy.waitForListener('mtls', 60_000);
        await g.inSync();
      });

      await t.test('each identity kind maps its certificate to its partner; the upstream sees the partner, not what the client sent', async () => {
        const cases: Array<[TestCertificate, string, string]> = [
          [bySubject, 'bank-a', 'subject'],
          [bySan, 'bank-b', 'SAN'],
          [bySpiffe, 'bank-c', 'SPIFFE ID'],
          [byFingerprint, 'bank-d', 'fingerprint'],
          [both, 'bank-c', 'SPIFFE ID before subject'],
        ];
        for (const [client, partner, what] of cases) {
          const r = await https('/ledger/entries/e_1', {
            client,
            headers: { 'x-portico-partner': 'evil', 'x-portico-credential': 'api_key', 'x-forwarded-client-cert': 'By=spiffe://evil;Subject="CN=evil"' },
          });
          const h = mirroredHeaders(r);
          assert.deepEqual(h.get('x-portico-partner'), [partner], what);
          assert.deepEqual(h.get('x-portico-credential'), ['mtls'], what);
          assert.deepEqual(h.get('x-portico-product'), ['ledger'], what);
          assert.ok(!(h.get('x-forwarded-client-cert') ?? []).some((v) => v.includes('evil')), `${what}: a client-sent XFCC never reaches the upstream`);
          assert.equal(r.json.path, '/ledger/entries/e_1');
        }
      });

      await t.test('an unknown certificate from the trusted CA is refused by ext_authz with 401', async () => {
        const r = await https('/ledger/entries/e_1', { client: stranger });
        assertUnauthorized(r, 'unknown_certificate', 'stranger');
        assert.equal(r.headers.get('www-authenticate'), 'ClientCertificate realm="portico"');
      });

      await t.test('a certificate from another CA, or none, never completes the TLS handshake', async () => {
        await assert.rejects(https('/ledger/entries/e_1', { client: foreign }), (e: NodeJS.ErrnoException) => {
          assert.match(`${e.code} ${e.message}`, /ECONNRESET|socket hang up|alert|certificate|EPIPE/i);
          return true;
        });
        await assert.rejects(https('/ledger/entries/e_1'), (e: NodeJS.ErrnoException) => {
          assert.match(`${e.code} ${e.message}`, /ECONNRESET|socket hang up|alert|certificate|EPIPE/i);
          return true;
        });
        // And the listener still serves the next good client.
        assert.deepEqual(mirroredHeaders(await https('/ledger/entries/e_2', { client: bySan })).get('x-portico-partner'), ['bank-b']);
      });

      await t.test('without a certificate (plain HTTP listener) an mTLS-only product answers 401 with its challenge', async () => {
        const r = await g.call('/ledger/entries/e_1', { headers: { 'x-portico-partner': 'bank-a' } });
        assertUnauthorized(r, 'missing_credentials', 'plain HTTP');
        assert.equal(r.headers.get('www-authenticate'), 'ClientCertificate realm="portico"');
      });

      await t.test('suspending a partner, or deleting its identity, takes effect for its certificate', async () => {
        ok(await api.patch('/api/v1/partners/bank-d', { suspended: true }), 'suspend');
        assertGatewayError(await https('/ledger/entries/e_1', { client: byFingerprint }), 403, 'partner_suspended', 'suspended');
        ok(await api.patch('/api/v1/partners/bank-d', { suspended: false }), 'unsuspend');
        assert.equal((await https('/ledger/entries/e_1', { client: byFingerprint })).status, 200);
        ok(await api.delete('/api/v1/partners/bank-d/mtls-identities/fingerprint'), 'delete identity', [200, 204]);
        assertUnauthorized(await https('/ledger/entries/e_1', { client: byFingerprint }), 'unknown_certificate', 'identity deleted');
      });

      await t.test('a route taking API key, JWT or certificate: the first presented decides, an invalid one never falls through', async () => {
        const key = await createApiKey(api, 'bank-a', 'primary');
        const token = await issuer.token({ sub: 'u-1', claims: { team: 'bank-c', role: 'teller' } });
        const cert = mirroredHeaders(await https('/vault/items/1', { client: bySan }));
        assert.deepEqual([cert.get('x-portico-partner'), cert.get('x-portico-credential')], [['bank-b'], ['mtls']]);
        const keyOverCert = mirroredHeaders(await https('/vault/items/1', { client: bySan, headers: { 'x-api-key': key } }));
        assert.deepEqual([keyOverCert.get('x-portico-partner'), keyOverCert.get('x-portico-credential')], [['bank-a'], ['api_key']]);
        assert.equal(keyOverCert.get('x-api-key'), undefined, 'the key stays at the gateway');
        const jwtOverCert = mirroredHeaders(await https('/vault/items/1', { client: bySan, headers: { authorization: `Bearer ${token}` } }));
        assert.deepEqual([jwtOverCert.get('x-portico-partner'), jwtOverCert.get('x-portico-credential'), jwtOverCert.get('x-user-role')], [['bank-c'], ['jwt'], ['teller']]);
        const viaHttp = await g.call('/vault/items/1', { headers: { 'x-api-key': key } });
        assert.deepEqual(identityHeadersOf(Object.fromEntries([...mirroredHeaders(viaHttp).entries()].map(([k, v]) => [k, v.join(',')]))), {
          'x-portico-credential': 'api_key',
          'x-portico-partner': 'bank-a',
          'x-portico-plan': 'unlimited',
          'x-portico-product': 'vault',
          'x-portico-route': 'items',
        });
        assertUnauthorized(await https('/vault/items/1', { client: bySan, headers: { 'x-api-key': `ptk_zzzzzzzz_${'Z'.repeat(43)}` } }), 'invalid_api_key', 'bad key + good cert');
        assertUnauthorized(await https('/vault/items/1', { client: bySan, headers: { authorization: 'Bearer not.a.token' } }), 'invalid_token', 'bad token + good cert');
        const none = await g.call('/vault/items/1');
        assertUnauthorized(none, 'missing_credentials', 'nothing presented');
        assert.equal(none.headers.get('www-authenticate'), 'ApiKey realm="portico", header="x-api-key", Bearer realm="portico", ClientCertificate realm="portico"');
        assert.match(none.json.message, /API key.*bearer token.*client certificate/);
        // Every partner here could call vault; a certificate of nobody cannot.
        assertUnauthorized(await https('/vault/items/1', { client: stranger }), 'unknown_certificate', 'stranger on vault');
      });
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-4000));
      throw e;
    }
  });
});
