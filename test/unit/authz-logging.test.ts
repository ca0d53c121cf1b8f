// Logs of the authz service at trace level: decisions, undecodable requests and JWKS failures are
// logged, and no API key, token, or credential in a JWKS URI ever appears in them.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { checkRequestJson, mintApiKey, modelOf, testHasher } from '../support/authz-fixtures.ts';
import { AuthzService } from '../../src/authz/service.ts';
import { encodeMessage } from '../../src/proto/index.ts';

describe('authz logging', () => {
  it('logs decisions and failures without credentials', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    const hasher = testHasher();
    const key = mintApiKey(hasher, 'acme', 'k');
    const revoked = mintApiKey(hasher, 'acme', 'r', { revoked: true });
    const service = new AuthzService({ hasher, registry: new Registry(), logger, jwt: { fetchTimeoutMs: 500, unknownKidWaitMs: 0 } });
    service.update(
      modelOf({
        products: [{ name: 'orders', gatewayGroups: ['edge'] }],
        partners: [{ name: 'acme' }],
        plans: [{ name: 'gold' }],
        subscriptions: [{ partner: 'acme', product: 'orders', plan: 'gold' }],
        apiKeys: [key.resource, revoked.resource],
        // Nothing listens on port 9: the fetch fails and is logged, with the URI's secrets left out.
        jwtIssuers: [{ name: 'idp', issuer: 'https://idp.example/', audiences: ['orders'], jwksUri: 'http://jwks-user:hunter2@127.0.0.1:9/keys?access_token=s3cr3t', partner: 'acme' }],
      }),
    );
    await service.ready();
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({ iss: 'https://idp.example/', aud: 'orders' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(privateKey);

    const send = (headers: Record<string, string>, path = '/orders') =>
      service.checkBytes(encodeMessage('envoy.service.auth.v3.CheckRequest', checkRequestJson({ product: 'orders', route: 'list', path, headers })), () => '10.0.0.9:1234');
    for (const r of [
      await send({ 'x-api-key': key.secret }),
      await send({ 'x-api-key': revoked.secret }),
      await send({ 'x-api-key': `${key.secret}tail` }),
      await send({ authorization: `Bearer ${token}` }),
      await send({ authorization: `Bearer ${token}` }, `/orders?api_key=${key.secret}`),
      await service.checkBytes(Buffer.from('garbage bytes, not a CheckRequest'), () => '10.0.0.9:1234'),
    ]) {
      assert.equal(typeof r.ok, 'boolean');
    }
    service.close();

    const all = lines.join('');
    assert.ok(
      lines.some((l) => l.includes('authz: decision') && l.includes('"outcome":"allow"')),
      'allowed decisions are logged at debug',
    );
    assert.ok(
      lines.some((l) => l.includes('"error":"revoked_api_key"')),
      'denials are logged with their code',
    );
    assert.ok(
      lines.some((l) => l.includes('undecodable CheckRequest') && l.includes('"peer":"10.0.0.9:1234"')),
      'with the peer, for operators',
    );
    const jwksLine = lines.find((l) => l.includes('JWKS fetch failed'));
    assert.ok(jwksLine, 'a JWKS failure is logged');
    assert.match(jwksLine, /"uri":"http:\/\/127\.0\.0\.1:9\/keys"/);
    for (const secret of [key.secret, key.secret.slice(13), revoked.secret.slice(13), token, token.split('.')[2]!, 'hunter2', 's3cr3t', 'jwks-user']) {
      assert.ok(!all.includes(secret), `a log line contains a secret (${secret.slice(0, 8)}…)`);
    }
  });
});
