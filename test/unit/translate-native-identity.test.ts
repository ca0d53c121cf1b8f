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

  it('excluded paths, a fixed partner or a dotted partner claim keep the issuer on the callout, and the model says why', () => {
    assert.equal(jwtIssuerCalloutReason(base), undefined);
    for (const [issuer, reason] of [
      [{ ...base, excludedPaths: ['/health'] }, /excludedPaths/],
      [{ ...base, partnerClaim: undefined, partner: 'acme' }, /fixed partner/],
      [{ ...base, partnerClaim: 'org.id' }, /dotted/],
    ] as const) {
      assert.match(jwtIssuerCalloutReason(issuer as never) ?? '', reason);
      assert.equal(jwtProvider(issuer as never, undefined), undefined);
    }
  });

  it('a jwksUri issuer is a provider only once its key set was fetched', () => {
    const remote = { ...base, jwks: undefined, jwksUri: 'https://idp/jwks' };
    assert.equal(jwtProvider(remote, undefined), undefined);
    assert.match(jwtProvider(remote, { keys: [rsa] })!.jwks, /"kid":"r"/);
  });
});

describe('native mTLS: which identities Envoy matches as principal names', () => {
  it('SPIFFE IDs, URI and DNS SANs and RFC 2253 subjects are principals, fingerprints are matched as Envoy prints them; email and IP SANs, other subject forms are not', () => {
    assert.deepEqual(mtlsPrincipalName({ type: 'spiffe_id', value: 'spiffe://a/b' }), { name: 'spiffe://a/b' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'DNS:Api.Example.COM' }), { name: 'api.example.com' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'URI:https://x.example/Client' }), { name: 'https://x.example/Client' });
    assert.deepEqual(mtlsPrincipalName({ type: 'san', value: 'Host.Internal' }), { name: 'host.internal' });
    assert.deepEqual(mtlsPrincipalName({ type: 'subject', value: 'CN=billing,O=Acme' }), { name: 'CN=billing,O=Acme' });
    assert.deepEqual(mtlsPrincipalName({ type: 'fingerprint', value: `${'AB:'.repeat(31)}AB` }), { fingerprint: 'ab'.repeat(32) });
    for (const match of [
      { type: 'san', value: 'email:a@b.example' },
      { type: 'san', value: 'IP:10.0.0.1' },
      { type: 'subject', value: '/O=Acme/CN=billing' },
      { type: 'subject', value: 'CN=billing, O=Acme' },
      { type: 'subject', value: 'CN=a\\,b' },
    ] as const) {
      assert.ok('reason' in mtlsPrincipalName(match), JSON.stringify(match));
    }
  });
});
