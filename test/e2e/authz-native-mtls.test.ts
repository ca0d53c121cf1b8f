// Native mTLS (authz.mode native) through the admin API, SDS and a real Envoy: a product taking only
// client certificates is decided by the access RBAC on the verified certificate's names (SPIFFE ID,
// DNS SAN, subject), the partner forwarded from the shadow match, no callout. Every refusal: a
// certificate of no partner (401 unknown_certificate, as the callout; none at all: 401
// missing_credentials), a partner not subscribed, suspended, outside its access level, a
// foreign CA (no handshake); suspension and identity removal on update; a plan limit counted by
// Envoy per certificate partner (429 contract); a fingerprint identity
// matched through the header Envoy writes from the verified certificate (a client's copy never
// counts); email and IPv4 SAN identities the same way (any SAN of the certificate's comma-joined
// list; an email SAN holding a comma matched SAN by SAN, natively), IPv6 SAN identities the same way in the form Envoy prints (RFC 5952, IPv4-mapped and
// -compatible addresses dotted: checked here); a fingerprint beating another partner's SAN (the callout's
// precedence), and the callout's SPIFFE ID over SAN over subject between two partners' identities on one
// certificate; the same answers in native and exact mode (x-portico-plan on a route whose callers are on
// two plans); config_dump holds no private key.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { GatewayResponse } from '../support/seed003.ts';
import { selfSigned, signedBy, type TestCertificate } from '../support/certs.ts';
import { freePort } from '../support/components.ts';
import { assertSameInBothModes } from '../support/authz-parity.ts';
import { addMtlsListener, assertGatewayError, authzDecisions, httpsCall, mirroredHeaders, startAuthzGateway, startMirror } from '../support/authz-gateway.ts';

const NODE = 'edge-authz-native-mtls';

/** The gateway's identity headers the mirror upstream received, one value each. */
const mirroredIdentity = (r: GatewayResponse): Record<string, string> => Object.fromEntries([...mirroredHeaders(r)].filter(([k]) => k.startsWith('x-portico-')).map(([k, v]) => [k, v.join(',')]));

describe('authz native mode: client certificates decided by Envoy itself', () => {
  it('maps certificates to partners with no callout and refuses the rest', { timeout: 300_000 }, async (t) => {
    const serverCa = await selfSigned('Portico Test Server CA');
    const server = await signedBy(serverCa, 'localhost', { san: 'DNS:localhost,IP:127.0.0.1' });
    const clientCa = await selfSigned('Partner Client CA');
    const bySubject = await signedBy(clientCa, 'subject-client', { client: true });
    const bySan = await signedBy(clientCa, 'san-client', { client: true, san: 'DNS:san-client.bank-b.internal' });
    const bySpiffe = await signedBy(clientCa, 'spiffe-client', { client: true, san: 'URI:spiffe://bank-c.example/ns/prod/sa/ledger' });
    const suspended = await signedBy(clientCa, 'suspended-client', { client: true, san: 'DNS:bank-e.internal' });
    const unsubscribed = await signedBy(clientCa, 'other-client', { client: true, san: 'DNS:bank-f.internal' });
    const stranger = await signedBy(clientCa, 'stranger', { client: true, san: 'DNS:stranger.internal' });
    const byFingerprint = await signedBy(clientCa, 'fp-client', { client: true, san: 'DNS:fp.unmapped.internal' });
    const byEmail = await signedBy(clientCa, 'mail-client', { client: true, san: 'DNS:mail.unmapped.internal,email:noreply@bank-g.example,email:ops@bank-g.example' });
    const byIp = await signedBy(clientCa, 'ip-client', { client: true, san: 'IP:10.9.8.7,IP:10.9.8.70' });
    const byIpPrefix = await signedBy(clientCa, 'ip-prefix-client', { client: true, san: 'IP:10.9.8.77' });
    const byIpv6 = await signedBy(clientCa, 'ipv6-client', { client: true, san: 'IP:10.0.0.9,IP:fd00::7' });
    // Two equal zero runs (the first is compressed), a single zero group (never compressed), a neighbour of fd00::7.
    const byIpv6Runs = await signedBy(clientCa, 'ipv6-runs-client', { client: true, san: 'IP:2001:db8:0:0:1:0:0:1' });
    const byIpv6One = await signedBy(clientCa, 'ipv6-one-client', { client: true, san: 'IP:2001:db8:0:1:1:1:1:1' });
    const byIpv6Near = await signedBy(clientCa, 'ipv6-near-client', { client: true, san: 'IP:fd00::70' });
    // The certificate library encodes only the hex form of this address correctly.
    const byMapped = await signedBy(clientCa, 'mapped-client', { client: true, san: 'IP:::ffff:a01:203' });
    const byCompatible = await signedBy(clientCa, 'compatible-client', { client: true, san: 'IP:::a01:204' });
    // Carries bank-b's DNS SAN, but bank-j pinned its fingerprint: the callout's precedence makes it bank-j's.
    const pinnedWithName = await signedBy(clientCa, 'pinned-client', { client: true, san: 'DNS:san-client.bank-b.internal' });
    // Two partners' identities on one certificate: the callout's precedence (SPIFFE ID, then SANs, then subject) names the partner.
    const spiffeAndSan = await signedBy(clientCa, 'two-names', { client: true, san: 'DNS:san-client.bank-b.internal,URI:spiffe://bank-c.example/ns/prod/sa/ledger' });
    const subjectAndSan = await signedBy(clientCa, 'subject-client', { client: true, san: 'DNS:bank-f.internal' });
    const subjectAndEmail = await signedBy(clientCa, 'subject-client', { client: true, san: 'email:ops@bank-g.example' });
    // An email SAN holding a comma (Envoy's header would join two SANs the same way): matched SAN by SAN.
    const byCommaEmail = await signedBy(clientCa, 'comma-client', { client: true, altNames: [{ type: 'email', value: 'ops,night@bank-o.example' }] });
    const twoEmails = await signedBy(clientCa, 'two-emails-client', {
      client: true,
      altNames: [
        { type: 'email', value: 'ops' },
        { type: 'email', value: 'night@bank-o.example' },
        { type: 'dns', value: 'bank-f.internal' },
      ],
    });
    const foreign = await signedBy(await selfSigned('Someone Else CA'), 'subject-client', { client: true, san: 'URI:spiffe://bank-c.example/ns/prod/sa/ledger' });

    const mirror = await startMirror();
    t.after(() => mirror.close());
    const mtlsPort = await freePort();
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      mutate: (doc) => {
        doc.gatewayGroups[0].authz.mode = 'native';
        // Plan limits counted by Envoy too (seed 003's helper states the callout's combined mode).
        doc.gatewayGroups[0].rateLimit = { ...doc.gatewayGroups[0].rateLimit, mode: 'native' };
        doc.plans.push({ name: 'unlimited' }, { name: 'premium' }, { name: 'tight', limits: [{ requests: 2, per: 'minute' }], countBy: { kind: 'partner' } });
      },
    });
    if (!g) return;
    const { api, portico } = g;
    const ok = (r: { status: number; text: string }, what: string) => assert.ok([200, 201, 204].includes(r.status), `${what}: ${r.status} ${r.text}`);
    const https = (path: string, client?: TestCertificate, headers?: Record<string, string>) =>
      httpsCall(mtlsPort, path, serverCa.certificate, { ...(client ? { client } : {}), ...(headers ? { headers } : {}) });
    const ledgerChecks = () => authzDecisions(portico.adminUrl, { product: 'ledger' });

    await addMtlsListener(api, mtlsPort, server, clientCa);
    ok(await api.post('/api/v1/services', { name: 'ledger', endpoints: [{ host: '127.0.0.1', port: mirror.port }] }), 'service');
    for (const product of ['ledger', 'vault', 'metered', 'safe', 'annex', 'mapped']) {
      ok(await api.post('/api/v1/products', { name: product, gatewayGroups: ['edge'], basePath: `/${product}`, auth: { accept: ['mtls'] } }), product);
      for (const route of ['entries', 'audit'])
        ok(await api.post(`/api/v1/products/${product}/routes`, { name: route, match: { path: { type: 'prefix', value: `/${route}` } }, service: 'ledger' }), route);
    }
    const partners: Array<[string, string | undefined, { type: string; value: string }, Record<string, unknown>?]> = [
      ['bank-a', 'ledger', { type: 'subject', value: 'CN=subject-client' }],
      ['bank-b', 'ledger', { type: 'san', value: 'DNS:san-client.bank-b.internal' }, { access: { routes: ['entries'] } }],
      ['bank-c', 'ledger', { type: 'spiffe_id', value: 'spiffe://bank-c.example/ns/prod/sa/ledger' }],
      ['bank-d', 'vault', { type: 'fingerprint', value: new X509Certificate(byFingerprint.certificate).fingerprint256 }],
      ['bank-e', 'ledger', { type: 'san', value: 'DNS:bank-e.internal' }],
      ['bank-f', undefined, { type: 'san', value: 'DNS:bank-f.internal' }],
      ['bank-g', 'safe', { type: 'san', value: 'email:ops@bank-g.example' }],
      // On another plan than bank-g and bank-j: safe's callers are on two plans (a second RBAC names the plan).
      ['bank-h', 'safe', { type: 'san', value: 'IP:10.9.8.70' }, { plan: 'premium' }],
      // Written as Node prints it: compared in RFC 5952 form.
      ['bank-i', 'annex', { type: 'san', value: 'IP:FD00:0:0:0:0:0:0:7' }],
      ['bank-k', 'annex', { type: 'san', value: 'IP:2001:db8:0:0:1:0:0:1' }],
      ['bank-l', 'annex', { type: 'san', value: '2001:DB8:0:1:1:1:1:1' }],
      ['bank-m', 'mapped', { type: 'san', value: 'IP:::ffff:10.1.2.3' }],
      ['bank-n', 'mapped', { type: 'san', value: 'IP:0:0:0:0:0:0:a01:204' }],
      ['bank-o', 'safe', { type: 'san', value: 'email:ops,night@bank-o.example' }],
      ['bank-j', 'safe', { type: 'fingerprint', value: new X509Certificate(pinnedWithName.certificate).fingerprint256 }],
    ];
    for (const [partner, product, match, extra] of partners) {
      ok(await api.post('/api/v1/partners', { name: partner, kind: 'tenant', ...(partner === 'bank-e' ? { suspended: true } : {}) }), partner);
      if (product) ok(await api.post(`/api/v1/partners/${partner}/subscriptions`, { product, plan: 'unlimited', ...extra }), `${partner}/${product}`);
      ok(await api.post(`/api/v1/partners/${partner}/mtls-identities`, { name: 'cert', match }), `${partner} identity`);
    }
    // A plan-limited product: Envoy's buckets count the certificate's partner (native limits, no callout).
    ok(await api.post('/api/v1/partners/bank-a/subscriptions', { product: 'metered', plan: 'tight' }), 'bank-a/metered');
    await g.envoy.waitForListener('mtls', 60_000);
    await g.inSync();

    await t.test('each identity kind (subject, DNS SAN, SPIFFE ID) opens its route in Envoy alone; the upstream sees the partner', async () => {
      for (const [client, partner] of [
        [bySubject, 'bank-a'],
        [bySan, 'bank-b'],
        [bySpiffe, 'bank-c'],
      ] as const) {
        const h = mirroredHeaders(await https('/ledger/entries/1', client, { 'x-portico-partner': 'evil', 'x-portico-credential': 'api_key' }));
        assert.deepEqual(h.get('x-portico-partner'), [partner]);
        assert.deepEqual(h.get('x-portico-credential'), ['mtls']);
        assert.deepEqual(h.get('x-portico-product'), ['ledger']);
      }
      assert.equal(await ledgerChecks(), 0, 'ext_authz was never asked about ledger');
    });

    await t.test('a plan limit on certificate routes is counted by Envoy per partner, with the 429 contract, no callout', async () => {
      for (const n of [1, 2]) assert.deepEqual(mirroredHeaders(await https('/metered/entries/1', bySubject)).get('x-portico-partner'), ['bank-a'], `request ${n}`);
      const refused = await https('/metered/entries/1', bySubject, { 'x-portico-partner': 'someone-else' });
      assert.equal(refused.status, 429, refused.text);
      assert.equal(refused.headers.get('content-type'), 'application/json');
      assert.equal(refused.headers.get('x-ratelimit-limit'), '2');
      assert.equal(refused.headers.get('x-ratelimit-remaining'), '0');
      assert.ok(Number(refused.headers.get('retry-after')) >= 1, `retry-after ${refused.headers.get('retry-after')}`);
      assertGatewayError(await https('/metered/entries/1', bySpiffe), 403, 'no_subscription', 'bank-c has no subscription to metered');
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'metered' }), 0, 'metered was never checked by the callout');
    });

    await t.test("refusals with the callout's codes: no partner (401), not subscribed, suspended, outside the access level", async () => {
      assertGatewayError(await https('/ledger/entries/1', stranger), 401, 'unknown_certificate', 'a certificate of no partner');
      assertGatewayError(await https('/ledger/entries/1', unsubscribed), 403, 'no_subscription', 'a partner without a subscription');
      assertGatewayError(await https('/ledger/entries/1', suspended), 403, 'partner_suspended', 'suspended partner');
      assertGatewayError(await https('/ledger/audit', bySan), 403, 'route_not_in_subscription', 'route outside the access level');
      assert.equal((await https('/ledger/audit', bySpiffe)).status, 200);
      assert.equal(await ledgerChecks(), 0, 'still no callout');
    });

    await t.test('a certificate from another CA, or none, never completes the handshake', async () => {
      for (const client of [foreign, undefined]) {
        await assert.rejects(https('/ledger/entries/1', client), (e: NodeJS.ErrnoException) => {
          assert.match(`${e.code} ${e.message}`, /ECONNRESET|socket hang up|alert|certificate|EPIPE/i);
          return true;
        });
      }
    });

    await t.test('a fingerprint identity is matched by Envoy too; a forged fingerprint header counts for nothing', async () => {
      const fingerprint = new X509Certificate(byFingerprint.certificate).fingerprint256.replace(/:/g, '').toLowerCase();
      const h = mirroredHeaders(await https('/vault/entries/1', byFingerprint, { 'x-portico-peer-sha256': 'f'.repeat(64) }));
      assert.deepEqual(h.get('x-portico-partner'), ['bank-d']);
      assert.deepEqual(h.get('x-portico-credential'), ['mtls']);
      assert.equal(h.get('x-portico-peer-sha256'), undefined, 'the fingerprint header stays inside the gateway');
      // Another partner's certificate, or none (the plain listener), carrying bank-d's fingerprint as a header.
      assertGatewayError(await https('/vault/entries/1', stranger, { 'x-portico-peer-sha256': fingerprint }), 401, 'unknown_certificate', 'forged over mTLS');
      assertGatewayError(await https('/vault/entries/1', bySpiffe, { 'x-portico-peer-sha256': fingerprint }), 403, 'no_subscription', 'a partner of another product, forging');
      const plain = await g.call('/vault/entries/1', { headers: { 'x-portico-peer-sha256': fingerprint } });
      assertGatewayError(plain, 401, 'missing_credentials', 'no certificate at all');
      assert.equal(plain.headers.get('www-authenticate'), 'ClientCertificate realm="portico"');
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'vault' }), 0, 'vault was never checked by the callout');
    });

    await t.test('email and IP SAN identities are matched by Envoy from the verified certificate; a forged header counts for nothing; IPv6 in the form Envoy prints', async () => {
      for (const [client, partner] of [
        [byEmail, 'bank-g'],
        [byIp, 'bank-h'],
      ] as const) {
        const h = mirroredHeaders(await https('/safe/entries/1', client, { 'x-portico-peer-email': 'x', 'x-portico-peer-ip': 'y' }));
        assert.deepEqual(h.get('x-portico-partner'), [partner]);
        assert.equal(h.get('x-portico-peer-email'), undefined, 'the peer headers stay inside the gateway');
        assert.equal(h.get('x-portico-peer-ip'), undefined, 'the peer headers stay inside the gateway');
      }
      // A SAN is matched whole: 10.9.8.77 is not 10.9.8.7 nor 10.9.8.70.
      assertGatewayError(await https('/safe/entries/1', byIpPrefix), 401, 'unknown_certificate', 'an IP that only shares a prefix');
      assertGatewayError(await https('/safe/entries/1', stranger, { 'x-portico-peer-email': 'ops@bank-g.example' }), 401, 'unknown_certificate', 'forged email header');
      assertGatewayError(await https('/safe/entries/1', stranger, { 'x-portico-peer-ip': '10.9.8.70' }), 401, 'unknown_certificate', 'forged IP header');
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'safe' }), 0, 'safe was never checked by the callout');
      // IPv6: Envoy prints RFC 5952's form, which the identities are translated to.
      for (const [client, partner] of [
        [byIpv6, 'bank-i'],
        [byIpv6Runs, 'bank-k'],
        [byIpv6One, 'bank-l'],
      ] as const)
        assert.deepEqual(mirroredHeaders(await https('/annex/entries/1', client)).get('x-portico-partner'), [partner], partner);
      assertGatewayError(await https('/annex/entries/1', byIpv6Near), 401, 'unknown_certificate', 'fd00::70 is not fd00::7');
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'annex' }), 0, 'annex was never checked by the callout');
      // Envoy prints ::ffff:a01:203 and ::a01:204 with their IPv4 part dotted (::ffff:10.1.2.3, ::10.1.2.4): matched in that form.
      assert.deepEqual(mirroredHeaders(await https('/mapped/entries/1', byMapped)).get('x-portico-partner'), ['bank-m']);
      assert.deepEqual(mirroredHeaders(await https('/mapped/entries/1', byCompatible)).get('x-portico-partner'), ['bank-n']);
      assert.equal(await authzDecisions(portico.adminUrl, { product: 'mapped' }), 0, 'mapped was never checked by the callout');
    });

    await t.test("a fingerprint beats another partner's SAN on the same certificate, as in the callout", async () => {
      assertGatewayError(await https('/ledger/entries/1', pinnedWithName), 403, 'no_subscription', "bank-j's certificate on ledger, despite bank-b's SAN");
      assert.deepEqual(mirroredHeaders(await https('/safe/entries/1', pinnedWithName)).get('x-portico-partner'), ['bank-j']);
      assert.deepEqual(mirroredHeaders(await https('/ledger/entries/1', bySan)).get('x-portico-partner'), ['bank-b'], "bank-b's own certificate still is bank-b's");
      assert.equal(await ledgerChecks(), 0, 'no callout');
    });

    await t.test("Envoy's config_dump holds the identities' names and no private key", async () => {
      const dump = JSON.stringify(await g.envoy.configDump());
      assert.match(dump, /spiffe:\/\/bank-c\.example\/ns\/prod\/sa\/ledger/, 'the native policies are in the dump');
      const keyBody = server.privateKey.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
      assert.ok(!dump.includes(keyBody.slice(0, 40)), "the listener's private key is in config_dump");
    });

    await t.test('native and exact mode answer alike: status, body and identity headers, x-portico-plan on a route whose callers are on two plans', async () => {
      const cases: Array<[string, TestCertificate, string]> = [
        ['subject', bySubject, '/ledger/entries/1'],
        ['DNS SAN', bySan, '/ledger/entries/1'],
        ['DNS SAN outside the access level', bySan, '/ledger/audit'],
        ['suspended partner', suspended, '/ledger/entries/1'],
        ['a partner without a subscription', unsubscribed, '/ledger/entries/1'],
        ['fingerprint', byFingerprint, '/vault/entries/1'],
        ['email SAN, plan unlimited', byEmail, '/safe/entries/1'],
        ['IP SAN, plan premium', byIp, '/safe/entries/1'],
        ['a pinned fingerprint beating a SAN', pinnedWithName, '/safe/entries/1'],
        ['the same certificate where its fingerprint partner is not subscribed', pinnedWithName, '/ledger/entries/1'],
        ['IPv6 SAN', byIpv6, '/annex/entries/1'],
        ['IPv4-mapped IPv6 SAN', byMapped, '/mapped/entries/1'],
        ["bank-c's SPIFFE ID beats bank-b's DNS SAN", spiffeAndSan, '/ledger/entries/1'],
        ["bank-f's DNS SAN beats bank-a's subject", subjectAndSan, '/ledger/entries/1'],
        ["bank-g's email SAN beats bank-a's subject", subjectAndEmail, '/ledger/entries/1'],
        ["bank-g's email SAN beats bank-a's subject, where bank-g is subscribed", subjectAndEmail, '/safe/entries/1'],
        ['an email SAN holding a comma', byCommaEmail, '/safe/entries/1'],
        ['two email SANs that Envoy joins into the same text', twoEmails, '/safe/entries/1'],
        ['a certificate of no partner', stranger, '/ledger/entries/1'],
        ['an IP SAN of no partner', byIpPrefix, '/safe/entries/1'],
        ['an IPv6 SAN of no partner', byIpv6Near, '/annex/entries/1'],
      ];
      const exact = await assertSameInBothModes(
        g,
        undefined,
        [...cases.map(([what, client, path]) => ({ what, call: () => https(path, client) })), { what: 'no certificate (the plain listener)', call: () => g.call('/vault/entries/1') }],
        mirroredIdentity,
      );
      assert.equal(exact.get('IP SAN, plan premium')?.identity?.['x-portico-plan'], 'premium');
      assert.equal(exact.get('email SAN, plan unlimited')?.identity?.['x-portico-plan'], 'unlimited');
      assert.equal(exact.get("bank-c's SPIFFE ID beats bank-b's DNS SAN")?.identity?.['x-portico-partner'], 'bank-c');
      assert.equal((exact.get("bank-f's DNS SAN beats bank-a's subject")!.body as { error: string }).error, 'no_subscription');
      assert.equal((exact.get("bank-g's email SAN beats bank-a's subject")!.body as { error: string }).error, 'no_subscription');
      assert.equal(exact.get("bank-g's email SAN beats bank-a's subject, where bank-g is subscribed")?.identity?.['x-portico-partner'], 'bank-g');
      assert.equal(exact.get('an email SAN holding a comma')?.identity?.['x-portico-partner'], 'bank-o');
      assert.equal((exact.get('a certificate of no partner')!.body as { error: string }).error, 'unknown_certificate');
      assert.equal((exact.get('no certificate (the plain listener)')!.body as { error: string }).error, 'missing_credentials');
      assert.equal((exact.get('two email SANs that Envoy joins into the same text')!.body as { error: string }).error, 'no_subscription', "bank-f's, not bank-o's");
      const checks = await ledgerChecks();
      assert.equal((await https('/ledger/entries/1', bySubject)).status, 200);
      assert.equal(await ledgerChecks(), checks, 'back in native mode: no callout');
    });

    await t.test('suspension and identity removal take effect on the next push', async () => {
      const before = await ledgerChecks();
      ok(await api.patch('/api/v1/partners/bank-c', { suspended: true }), 'suspend');
      await g.inSync();
      assertGatewayError(await https('/ledger/entries/1', bySpiffe), 403, 'partner_suspended', 'suspended');
      ok(await api.patch('/api/v1/partners/bank-c', { suspended: false }), 'reinstate');
      await g.inSync();
      assert.equal((await https('/ledger/entries/1', bySpiffe)).status, 200);
      ok(await api.delete('/api/v1/partners/bank-c/mtls-identities/cert'), 'delete identity');
      await g.inSync();
      assertGatewayError(await https('/ledger/entries/1', bySpiffe), 401, 'unknown_certificate', 'identity removed: a certificate of no partner');
      assert.equal(await ledgerChecks(), before, 'still no callout');
    });
  });
});
