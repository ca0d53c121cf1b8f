// Secret sealing (AES-256-GCM, key rotation, tamper detection), keyed hashes, and settings parsing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { secretPrefix } from '../../src/contract/index.ts';
import { KeyRing, SecretHasher, generateMasterKey, loadKeyRing, parseMasterKey } from '../../src/store/secrets.ts';
import { loadSettings, SettingsError } from '../../src/settings.ts';

describe('KeyRing', () => {
  const k1 = parseMasterKey(generateMasterKey());
  const k2 = parseMasterKey(generateMasterKey());

  it('seals and opens, binding the purpose', () => {
    const ring = new KeyRing(k1);
    const env = ring.seal('-----BEGIN PRIVATE KEY-----x', 'certificate:a:privateKey');
    assert.ok(!env.includes('BEGIN'));
    assert.equal(ring.open(env, 'certificate:a:privateKey'), '-----BEGIN PRIVATE KEY-----x');
    assert.throws(() => ring.open(env, 'certificate:b:privateKey'), /failed authentication/);
    assert.notEqual(ring.seal('same', 'p'), ring.seal('same', 'p'), 'a fresh IV each time');
  });

  it('detects tampering', () => {
    const ring = new KeyRing(k1);
    const env = ring.seal('secret', 'p');
    const parts = env.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    parts[3] = body.toString('base64url');
    assert.throws(() => ring.open(parts.join('.'), 'p'), /failed authentication/);
    assert.throws(() => ring.open('v2.x.y.z', 'p'), /unknown format/);
  });

  it('rotates: the new key seals, old envelopes open while the old key is listed', () => {
    const old = new KeyRing(k1);
    const env = old.seal('secret', 'p');
    const rotated = new KeyRing(k2, [k1]);
    assert.equal(rotated.open(env, 'p'), 'secret');
    assert.equal(rotated.isCurrent(env), false);
    assert.equal(rotated.isCurrent(rotated.seal('secret', 'p')), true);
    assert.throws(() => new KeyRing(k2).open(env, 'p'), new RegExp(`master key ${k1.id}, which is not configured`));
  });

  it('parses keys in base64 and hex, and rejects wrong sizes', () => {
    const hex = 'ab'.repeat(32);
    assert.equal(parseMasterKey(hex).key.length, 32);
    assert.throws(() => parseMasterKey('c2hvcnQ='), /32 bytes/);
  });

  it('generates a private key file in embedded mode and demands one with an external database', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-keys-'));
    const ring = loadKeyRing({ masterKey: undefined, masterKeyFile: undefined, previousMasterKeys: [], dataDir: dir, databaseUrl: undefined });
    assert.equal(statSync(path.join(dir, 'master.key')).mode & 0o777, 0o600);
    const again = loadKeyRing({ masterKey: undefined, masterKeyFile: undefined, previousMasterKeys: [], dataDir: dir, databaseUrl: undefined });
    assert.equal(again.current.id, ring.current.id, 'the same key on restart');
    assert.throws(
      () => loadKeyRing({ masterKey: undefined, masterKeyFile: undefined, previousMasterKeys: [], dataDir: dir, databaseUrl: 'postgresql://x' }),
      /PORTICO_MASTER_KEY or PORTICO_MASTER_KEY_FILE is required/,
    );
  });
});

describe('SecretHasher', () => {
  it('mints bearer secrets whose prefix finds them and whose hash verifies them', () => {
    const h = new SecretHasher(Buffer.alloc(32, 7));
    const m = h.mint('ptk');
    assert.equal(secretPrefix(m.secret, 'ptk'), m.prefix);
    assert.equal(secretPrefix(m.secret, 'pta'), undefined);
    assert.ok(h.verify(m.secret, m.hash));
    assert.ok(!h.verify(`${m.secret.slice(0, -1)}x`, m.hash));
    assert.ok(!new SecretHasher(Buffer.alloc(32, 8)).verify(m.secret, m.hash), 'the hash is keyed');
    assert.equal(secretPrefix('ptk_short_x', 'ptk'), undefined);
  });
});

describe('loadSettings', () => {
  it('has embedded defaults', () => {
    const s = loadSettings({});
    assert.equal(s.databaseUrl, undefined);
    assert.equal(s.adminPort, 8081);
    assert.equal(s.grpcPort, 18000);
    assert.equal(s.calloutAddress, undefined, 'defaults to the bound callout listener at start');
    assert.equal(s.calloutListenPort, 18001);
    assert.equal(s.rateLimitFailureMode, 'open');
    assert.equal(s.migrate, true);
    assert.ok(path.isAbsolute(s.dataDir));
  });

  it('names the variable that is wrong', () => {
    assert.throws(
      () => loadSettings({ PORTICO_ADMIN_ADDR: 'nope' }),
      (e: Error) => e instanceof SettingsError && /PORTICO_ADMIN_ADDR must be host:port/.test(e.message),
    );
    assert.throws(() => loadSettings({ PORTICO_MIGRATE: 'maybe' }), /PORTICO_MIGRATE must be true or false/);
    assert.throws(() => loadSettings({ PORTICO_DEBOUNCE_MS: '-1' }), /PORTICO_DEBOUNCE_MS must be an integer between 0/);
    assert.throws(() => loadSettings({ PORTICO_ROLE: 'edge' }), /PORTICO_ROLE must be one of all, xds, callouts/);
    assert.throws(() => loadSettings({ PORTICO_DEBOUNCE_MS: '500', PORTICO_DEBOUNCE_MAX_MS: '100' }), /at least PORTICO_DEBOUNCE_MS/);
    assert.throws(() => loadSettings({ PORTICO_ROLE: 'callouts' }), /PORTICO_ROLE=callouts needs DATABASE_URL/);
    assert.equal(loadSettings({ PORTICO_ROLE: 'callouts', DATABASE_URL: 'postgresql://db/x' }).role, 'callouts');
    // A split role names the listeners it does not run in Envoy's config: port 0 (any free port) cannot say where.
    const xds = { PORTICO_ROLE: 'xds', DATABASE_URL: 'postgresql://db/x' };
    assert.throws(() => loadSettings({ ...xds, PORTICO_FLOWS_LISTEN_ADDR: '127.0.0.1:0' }), /PORTICO_ROLE=xds needs PORTICO_FLOWS_ADDR: this role does not run the flows listener/);
    assert.throws(() => loadSettings({ ...xds, PORTICO_CALLOUT_LISTEN_ADDR: '127.0.0.1:0' }), /PORTICO_ROLE=xds needs PORTICO_CALLOUT_ADDR/);
    assert.equal(loadSettings({ ...xds, PORTICO_FLOWS_LISTEN_ADDR: '127.0.0.1:0', PORTICO_FLOWS_ADDR: 'flows:18002' }).flowsAddress, 'flows:18002');
    assert.equal(loadSettings({ PORTICO_ROLE: 'flows', DATABASE_URL: 'postgresql://db/x', PORTICO_FLOWS_LISTEN_ADDR: '127.0.0.1:0', PORTICO_CALLOUT_ADDR: 'c:1' }).flowsListenPort, 0);
    assert.equal(loadSettings({ PORTICO_FLOWS_LISTEN_ADDR: '127.0.0.1:0', PORTICO_CALLOUT_LISTEN_ADDR: '127.0.0.1:0' }).role, 'all');
  });

  it('reads overrides', () => {
    const s = loadSettings({ PORTICO_GRPC_ADDR: '0.0.0.0:19000', PORTICO_GRPC_INSECURE: 'true', PORTICO_ADMIN_ADDR: '[::1]:9000', DATABASE_URL: 'postgresql://db/x', PORTICO_MIGRATE: 'false' });
    assert.equal(s.grpcPort, 19000);
    assert.throws(() => loadSettings({ PORTICO_CALLOUT_ADDR: 'no-port' }), /PORTICO_CALLOUT_ADDR must be host:port/);
    assert.equal(s.adminHost, '::1');
    assert.equal(s.databaseUrl, 'postgresql://db/x');
    assert.equal(s.migrate, false);
  });
});

describe('channel security settings', () => {
  const tls = { PORTICO_TLS_CERT_FILE: '/tls/tls.crt', PORTICO_TLS_KEY_FILE: '/tls/tls.key', PORTICO_TLS_CLIENT_CA_FILE: '/tls/ca.crt' };

  it('plaintext on loopback by default; mTLS when the three files are set', () => {
    const s = loadSettings({});
    assert.equal(s.tls, undefined);
    assert.equal(s.grpcInsecure, false);
    assert.equal(s.trustDomain, 'portico');
    assert.deepEqual(loadSettings({ ...tls, PORTICO_GRPC_ADDR: '0.0.0.0:18000' }).tls, { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key', caFile: '/tls/ca.crt' });
    assert.equal(loadSettings({ PORTICO_GRPC_ADDR: '[::1]:18000', PORTICO_CALLOUT_LISTEN_ADDR: 'localhost:18001' }).tls, undefined);
  });

  it('refuses a non-loopback bind without TLS, naming the address and both ways out; accepts it with PORTICO_GRPC_INSECURE=true', () => {
    assert.throws(
      () => loadSettings({ PORTICO_GRPC_ADDR: '0.0.0.0:18000' }),
      (e: Error) =>
        e instanceof SettingsError &&
        /PORTICO_GRPC_ADDR binds 0\.0\.0\.0, which is not loopback, without TLS/.test(e.message) &&
        /PORTICO_TLS_CERT_FILE, PORTICO_TLS_KEY_FILE and PORTICO_TLS_CLIENT_CA_FILE/.test(e.message) &&
        /PORTICO_GRPC_INSECURE=true/.test(e.message),
    );
    assert.throws(() => loadSettings({ PORTICO_CALLOUT_LISTEN_ADDR: '10.1.2.3:18001' }), /PORTICO_CALLOUT_LISTEN_ADDR binds 10\.1\.2\.3/);
    assert.equal(loadSettings({ PORTICO_GRPC_ADDR: '0.0.0.0:18000', PORTICO_CALLOUT_LISTEN_ADDR: ':18001', PORTICO_GRPC_INSECURE: 'true' }).grpcInsecure, true);
    // A split role checks only the listener it binds.
    assert.equal(loadSettings({ PORTICO_ROLE: 'xds', DATABASE_URL: 'postgresql://db/x', PORTICO_CALLOUT_LISTEN_ADDR: '0.0.0.0:18001' }).role, 'xds');
  });

  it('refuses half a TLS configuration, TLS together with the insecure flag, and a bad trust domain', () => {
    assert.throws(() => loadSettings({ PORTICO_TLS_CERT_FILE: '/tls/tls.crt' }), /missing PORTICO_TLS_KEY_FILE, PORTICO_TLS_CLIENT_CA_FILE/);
    assert.throws(() => loadSettings({ ...tls, PORTICO_GRPC_INSECURE: 'true' }), /choose mTLS or plaintext/);
    assert.throws(() => loadSettings({ PORTICO_TRUST_DOMAIN: 'Not/A/Domain' }), /PORTICO_TRUST_DOMAIN/);
    assert.throws(() => loadSettings({ PORTICO_ENVOY_CHANNEL_SDS_DIR: 'relative.yaml' }), /absolute path/);
  });
});
