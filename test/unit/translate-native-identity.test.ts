// Native JWT and mTLS decisions (pure): the key set Envoy gets (public signing keys only, each pinned to an
// allowed algorithm), which issuers and certificate identities Envoy can match alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jwtIssuerCalloutReason, mtlsPrincipalName } from '../../src/model/index.ts';
import { envoyJwks, jwtProvider } from '../../src/translate/to-ir/native-jwt.ts';

const rsa = { kty: 'RSA', kid: 'r', n: 'AQAB-n', e: 'AQAB' };
const ec = { kty: 'EC', kid: 'e', crv: 'P-256', x: 'xx', y: 'yy' };

describe('native JWT: the key set pushed to Envoy', () => {
  it('pins each key to the allowed algorithms it can verify and keeps only public members', () => {
    const out = JSON.parse(envoyJwks({ keys: [{ ...rsa, use: 'sig', extra: 'dropped' }, ec] }, ['RS256', 'PS256', 'ES256'])!);
    assert.deepEqual(out.keys, [
      { kty: 'RSA', n: 'AQAB-n', e: 'AQAB', kid: 'r', alg: 'RS256' },
      { kty: 'RSA', n: 'AQAB-n', e: 'AQAB', kid: 'r', alg: 'PS256' },
      { kty: 'EC', crv: 'P-256', x: 'xx', y: 'yy', kid: 'e', alg: 'ES256' },
    ]);
  });

  it('drops private, symmetric, encryption and disallowed keys; nothing usable gives no key set', () => {
    const keys = [{ ...rsa, d: 'secret' }, { kty: 'oct', k: 'c2VjcmV0' }, { ...rsa, use: 'enc' }, { ...rsa, alg: 'RS512' }, { ...ec, crv: 'P-384' }, 'junk', null];
    assert.equal(envoyJwks({ keys }, ['RS256', 'ES256']), undefined);
    assert.equal(envoyJwks({ nokeys: [] }, ['RS256']), undefined);
    assert.equal(envoyJwks(undefined, ['RS256']), undefined);
  });
});

describe('native JWT: which issuers Envoy verifies alone', () => {
  const base = { name: 'idp', issuer: 'https://idp', audiences: ['api'], jwks: { keys: [rsa] }, partnerClaim: 'partner' };

  it('an issuer with a partner claim and usable keys is a provider; its claims become headers, partner first by name', () => {
    const p = jwtProvider({ ...base, forwardClaims: { sub: 'X-User-Id', org: 'A-Org' } }, undefined)!;
    assert.deepEqual(p.claimHeaders, [
      ['a-org', 'org'],
      ['x-portico-partner', 'partner'],
      ['x-user-id', 'sub'],
    ]);
    assert.equal(p.clockSkewSeconds, 30);
    assert.equal(p.forwardToken, false);
  });

  it('a fixed partner or a dotted partner claim is read from the payload in metadata; excluded paths are provider-neutral; an issuer naming no partner is verified by Envoy too (its tokens refused as unknown_partner)', () => {
    assert.equal(jwtIssuerCalloutReason(base), undefined);
    assert.equal(jwtProvider(base, undefined)!.partner, undefined, 'a plain claim is copied into the partner header');
    const fixed = jwtProvider({ ...base, partnerClaim: undefined, partner: 'acme' }, undefined)!;
    assert.deepEqual(fixed.partner, { fixed: 'acme' });
    assert.deepEqual(fixed.claimHeaders, [], 'no partner header from a token that names none');
    const dotted = jwtProvider({ ...base, partnerClaim: 'https://idp.example/partner' }, undefined)!;
    assert.deepEqual(dotted.partner, { claim: 'https://idp.example/partner' });
    assert.deepEqual(dotted.claimHeaders, [], 'Envoy would read the dotted name as a path only');
    assert.ok(jwtProvider({ ...base, excludedPaths: ['/health'] }, undefined));
    const neither = { ...base, partnerClaim: undefined };
    assert.equal(jwtIssuerCalloutReason(neither), undefined);
    const none = jwtProvider(neither, undefined)!;
    assert.deepEqual(none.partner, { none: true }, 'its payload goes to metadata: the access RBAC refuses any of its tokens');
    assert.deepEqual(none.claimHeaders, [], 'no partner header');
  });

  it('a jwksUri issuer is a provider only once its key set was fetched', () => {
    const remote = { ...base, jwks: undefined, jwksUri: 'https://idp/jwks' };
    assert.equal(jwtProvider(remote, undefined), undefined);
    assert.match(jwtProvider(remote, { keys: [rsa] })!.jwks, /"kid":"r"/);
  });
});

describe('native mTLS: which identities Envoy matches as principal names', () => {
  it('SPIFFE IDs, URI and DNS SANs and RFC 2253 subjects are principals; fingerprints, email and IP SANs are matched as Envoy prints them (IPv6 in RFC 5952 form); other subject forms are not', () => {
    assert.deepEqual(mtlsPrincipalName({ type: 'spiffe_id', value: 'spiffe://a/b' }), { name: 'spiffe://a/b' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'DNS:Api.Example.COM' }), { name: 'api.example.com' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'URI:https://x.example/Client' }), { name: 'https://x.example/Client' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'Host.Internal' }), { name: 'host.internal' });
    assert.deepEqual(mtlsPrincipalName({ type: 'subject', value: 'CN=billing,O=Acme' }), { name: 'CN=billing,O=Acme' });
    assert.deepEqual(mtlsPrincipalName({ type: 'fingerprint', value: `${'AB:'.repeat(31)}AB` }), { fingerprint: 'ab'.repeat(32) });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'email:Ops@B.example' }), { email: 'Ops@B.example' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'IP Address:10.0.0.1' }), { ip: '10.0.0.1' });
    // Envoy's header joins email SANs with commas: an address holding one is matched as one SAN (mtls_authenticated).
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'email:"a,b"@b.example' }), { emailSan: '"a,b"@b.example' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: '"a,b"@b.example' }), { name: '"a,b"@b.example', emailSan: '"a,b"@b.example' });
    // A bare value is a SAN of any type, as the callout reads it.
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'ops@b.example' }), { name: 'ops@b.example', email: 'ops@b.example' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: '10.0.0.1' }), { name: '10.0.0.1', ip: '10.0.0.1' });
    // IPv6 in the form Envoy (inet_ntop) prints: lower case, the first longest zero run (two groups or more) compressed.
    for (const [written, printed] of [
      ['FD00:0:0:0:0:0:0:7', 'fd00::7'],
      ['fd00::7', 'fd00::7'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['::1', '::1'],
      // The first 80 bits zero, then 0000 or ffff: inet_ntop writes the last 32 bits dotted.
      ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
      ['0:0:0:0:0:FFFF:A01:203', '::ffff:10.1.2.3'],
      ['::a01:204', '::10.1.2.4'],
      ['::1:0', '::0.1.0.0'],
    ] as const) {
      assert.deepEqual(mtlsPrincipalName({ type: 'san', value: `IP:${written}` }), { ip: printed }, written);
      assert.deepEqual(mtlsPrincipalName({ type: 'san', value: written }), { name: printed, ip: printed }, `bare ${written}`);
    }
    for (const match of [
      { type: 'san', value: 'IP:fd00::1::2' },
      { type: 'san', value: 'IP:10.0.0.256' },
      { type: 'subject', value: '/O=Acme/CN=billing' },
      { type: 'subject', value: 'CN=billing, O=Acme' },
      { type: 'subject', value: 'CN=a\\,b' },
    ] as const) {
      assert.ok('reason' in mtlsPrincipalName(match), JSON.stringify(match));
    }
  });
});
