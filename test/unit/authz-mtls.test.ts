// mTLS identities: subjects, SANs, SPIFFE IDs and fingerprints read from real certificates (made
// with openssl at test time), mapped to partners, and what happens with unknown or broken ones.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildCredentialIndex } from '../../src/authz/credential-index.ts';
import { decide, type Allow, type Decision, type Deny } from '../../src/authz/decide.ts';
import { authzRequest, modelOf, testHasher } from '../support/authz-fixtures.ts';
import { canonicalSan, canonicalSubject, parseSubjectAltName, peerFromCertificate } from '../../src/authz/mtls.ts';
import type { MtlsIdentity } from '../../src/model/schemas.ts';
import { selfSigned, signedBy, type TestCertificate } from '../support/certs.ts';

const NOW = Date.parse('2025-06-01T00:00:00Z');

/** A client certificate with a full subject (signedBy only sets CN). */
function clientCert(ca: TestCertificate, subj: string, san: string): TestCertificate {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-authz-cert-'));
  try {
    writeFileSync(path.join(dir, 'ca.pem'), ca.certificate);
    writeFileSync(path.join(dir, 'ca.key'), ca.privateKey);
    writeFileSync(path.join(dir, 'ext.cnf'), `subjectAltName=${san}\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n`);
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'req.csr', '-subj', subj]);
    run(['x509', '-req', '-in', 'req.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', '30', '-extfile', 'ext.cnf']);
    return { certificate: execFileSync('cat', ['cert.pem'], { cwd: dir }).toString(), privateKey: '' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fingerprint as openssl computes it: an independent check of ours. */
function opensslFingerprint(pem: string): string {
  const out = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: pem }).toString();
  return out.split('=')[1]!.trim();
}

const ca = await selfSigned('Portico Test Client CA');
const certs = {
  subject: clientCert(ca, '/C=DE/O=Acme, Inc./OU=Billing+L=Berlin/CN=billing', 'DNS:billing-subject.example'),
  san: await signedBy(ca, 'san-client', { client: true, san: 'DNS:Payments.Internal,email:ops@example.com' }),
  bareSan: await signedBy(ca, 'bare-client', { client: true, san: 'email:robot@example.com' }),
  spiffe: await signedBy(ca, 'spiffe-client', { client: true, san: 'URI:spiffe://example.org/ns/prod/sa/ledger,DNS:ledger.internal' }),
  fingerprint: await signedBy(ca, 'fp-client', { client: true, san: 'DNS:ledger.internal' }),
  unknown: await signedBy(ca, 'stranger', { client: true, san: 'DNS:stranger.example' }),
  unsubscribed: await signedBy(ca, 'loner', { client: true, san: 'DNS:loner.internal' }),
};

const identities: MtlsIdentity[] = [
  { partner: 'acme', name: 'by-subject', match: { type: 'subject', value: 'CN=billing, OU=Billing+L=Berlin, O=Acme\\, Inc., C=DE' } },
  { partner: 'globex', name: 'by-san', match: { type: 'san', value: 'DNS:payments.internal' } },
  { partner: 'globex', name: 'by-bare-san', match: { type: 'san', value: 'robot@example.com' } },
  { partner: 'initech', name: 'by-spiffe', match: { type: 'spiffe_id', value: 'spiffe://example.org/ns/prod/sa/ledger' } },
  { partner: 'acme', name: 'by-fp', match: { type: 'fingerprint', value: opensslFingerprint(certs.fingerprint.certificate) } },
  // The fingerprint certificate also carries this SAN: the fingerprint is more specific and wins.
  { partner: 'globex', name: 'ledger-dns', match: { type: 'san', value: 'DNS:ledger.internal' } },
  { partner: 'hooli', name: 'loner', match: { type: 'san', value: 'DNS:loner.internal' } },
];
const partners = ['acme', 'globex', 'initech', 'hooli'].map((name) => ({ name }));
const model = modelOf({
  products: [{ name: 'ledger', gatewayGroups: ['edge'], auth: { accept: ['mtls'] } }],
  routes: [{ product: 'ledger', name: 'post', match: { path: { type: 'prefix', value: '/' } }, service: 'svc' }],
  plans: [{ name: 'internal' }],
  partners,
  subscriptions: ['acme', 'globex', 'initech'].map((partner) => ({ partner, product: 'ledger', plan: 'internal' })),
  mtlsIdentities: identities,
});
const index = buildCredentialIndex(model, { hasher: testHasher() });

function check(pem: string | undefined, principal?: string): Decision {
  return decide(
    index,
    authzRequest({ product: 'ledger', route: 'post', method: 'POST', ...(pem !== undefined ? { certificatePem: pem } : {}), ...(principal !== undefined ? { principal } : {}) }),
    NOW,
  );
}
function partnerOf(d: Decision): string | undefined {
  assert.equal(d.allowed, true, JSON.stringify(d));
  assert.equal((d as Allow).credential, 'mtls');
  return (d as Allow).partner;
}

describe('distinguished names and SANs', () => {
  it('canonicalises RFC 4514 and OpenSSL slash subjects to the same form', () => {
    const a = canonicalSubject('CN=billing,OU=Billing+L=Berlin,O=Acme\\, Inc.,C=DE');
    assert.equal(a, 'CN=billing,L=Berlin+OU=Billing,O=Acme\\, Inc.,C=DE');
    assert.equal(canonicalSubject('cn = billing , L=Berlin + OU=Billing, o=Acme\\, Inc., c=DE'), a);
    assert.equal(canonicalSubject('/C=DE/O=Acme, Inc./OU=Billing+L=Berlin/CN=billing'), a);
    assert.notEqual(canonicalSubject('C=DE,O=Acme\\, Inc.,L=Berlin+OU=Billing,CN=billing'), a, 'RDN order matters');
    assert.equal(canonicalSubject('no equals sign'), undefined);
    assert.equal(canonicalSubject(''), undefined);
  });

  it("parses Node's subjectAltName, including JSON-quoted values", () => {
    assert.deepEqual(parseSubjectAltName('DNS:a.example, URI:spiffe://t/x, IP Address:10.0.0.1, email:"a, b@example.com", DirName:"CN=x"'), [
      { type: 'dns', value: 'a.example' },
      { type: 'uri', value: 'spiffe://t/x' },
      { type: 'ip', value: '10.0.0.1' },
      { type: 'email', value: 'a, b@example.com' },
      { type: 'other', value: 'CN=x' },
    ]);
    assert.deepEqual(parseSubjectAltName(undefined), []);
    assert.deepEqual(canonicalSan('DNS:Foo.Example'), { type: 'dns', value: 'foo.example' });
    assert.deepEqual(canonicalSan('IP Address:10.0.0.1'), { type: 'ip', value: '10.0.0.1' });
    assert.deepEqual(canonicalSan('Foo.Example'), { type: undefined, value: 'foo.example' });
    // IPv6: Node prints a certificate's SAN uncompressed and upper case, an administrator writes it compressed.
    assert.deepEqual(parseSubjectAltName('IP Address:FD00:0:0:0:0:0:0:7'), [{ type: 'ip', value: 'fd00::7' }]);
    assert.deepEqual(canonicalSan('IP:FD00::0:7'), { type: 'ip', value: 'fd00::7' });
    assert.deepEqual(canonicalSan('fd00:0::7'), { type: undefined, value: 'fd00::7' });
  });

  it('reads subject, SANs, SPIFFE ID and fingerprint from a URL-encoded PEM certificate', () => {
    const p = peerFromCertificate(encodeURIComponent(certs.spiffe.certificate))!;
    assert.equal(p.subject, 'CN=spiffe-client');
    assert.deepEqual(p.spiffeIds, ['spiffe://example.org/ns/prod/sa/ledger']);
    assert.deepEqual(p.sans, [
      { type: 'uri', value: 'spiffe://example.org/ns/prod/sa/ledger' },
      { type: 'dns', value: 'ledger.internal' },
    ]);
    assert.equal(p.fingerprint, opensslFingerprint(certs.spiffe.certificate).replace(/:/g, '').toLowerCase());
    assert.equal(peerFromCertificate('not%20a%20certificate'), undefined);
    assert.equal(peerFromCertificate('%E0%A4%A'), undefined, 'broken URL encoding');
  });
});

describe('mTLS decisions', () => {
  it('maps a certificate to its partner by subject, SAN, SPIFFE ID and fingerprint', () => {
    assert.equal(partnerOf(check(certs.subject.certificate)), 'acme');
    assert.equal(partnerOf(check(certs.san.certificate)), 'globex', 'DNS SANs compare case-insensitively');
    assert.equal(partnerOf(check(certs.bareSan.certificate)), 'globex', 'a SAN value without a type matches any type');
    assert.equal(partnerOf(check(certs.spiffe.certificate)), 'initech');
    assert.equal(partnerOf(check(certs.fingerprint.certificate)), 'acme', 'the fingerprint wins over a SAN the certificate also has');
    const a = check(certs.subject.certificate) as Allow;
    assert.deepEqual(a.metadata, { product: 'ledger', route: 'post', partner: 'acme', plan: 'internal', credential: 'mtls' });
  });

  it('refuses an unregistered certificate with a 401 and a registered partner without subscription with a 403', () => {
    const d = check(certs.unknown.certificate) as Deny;
    assert.equal(d.allowed, false);
    assert.equal(d.status, 401);
    assert.equal(d.error, 'unknown_certificate');
    assert.equal(d.wwwAuthenticate, 'ClientCertificate realm="portico"');
    const f = check(certs.unsubscribed.certificate) as Deny;
    assert.equal(f.status, 403);
    assert.equal(f.error, 'no_subscription');
    assert.equal(f.partner, 'hooli');
  });

  it('uses the principal when Envoy does not forward the certificate', () => {
    assert.equal(partnerOf(check(undefined, 'spiffe://example.org/ns/prod/sa/ledger')), 'initech');
    assert.equal(partnerOf(check(undefined, 'payments.internal')), 'globex');
    assert.equal(partnerOf(check(undefined, 'CN=billing,OU=Billing+L=Berlin,O=Acme\\, Inc.,C=DE')), 'acme');
    assert.equal((check(undefined, 'spiffe://example.org/other') as Deny).error, 'unknown_certificate');
  });

  it('answers a missing or unreadable certificate with a 401, never an exception', () => {
    const none = check(undefined) as Deny;
    assert.equal(none.status, 401);
    assert.equal(none.error, 'missing_credentials');
    assert.match(none.message, /client certificate/);
    for (const junk of ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'garbage', certs.san.certificate.slice(0, 200)]) {
      const d = check(junk) as Deny;
      assert.equal(d.status, 401);
      assert.equal(d.error, 'invalid_certificate');
    }
  });
});
