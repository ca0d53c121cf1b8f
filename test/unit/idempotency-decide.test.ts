// The pure rules of duplicate-request protection: reading the key, fingerprints, what a repeat
// gets, what is stored and replayed, the route settings' round trip, and the memory store's claims.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { formatRouteSettings, parseRouteSettings } from '../../src/contract/index.ts';
import {
  decideRepeat,
  decodeRecord,
  encodeRecord,
  fingerprint,
  MemoryIdempotencyStore,
  readIdempotencyKey,
  recordKey,
  replayHeaders,
  startRequest,
  storable,
  storedHeaders,
  type IdempotencyRecord,
} from '../../src/idempotency/index.ts';
import { idempotencyProblems, protectedMethods } from '../../src/model/index.ts';

const SETTINGS = { product: 'shop', route: 'orders', required: false, ttlSeconds: 60, methods: ['PATCH', 'POST'] };

describe('idempotency decisions', () => {
  it('reads keys as structured-field strings or bare values, refusing the malformed', () => {
    assert.deepEqual(readIdempotencyKey(undefined), { kind: 'absent' });
    assert.deepEqual(readIdempotencyKey('"abc-1"'), { kind: 'key', key: 'abc-1' });
    assert.deepEqual(readIdempotencyKey('abc-1'), { kind: 'key', key: 'abc-1' });
    assert.deepEqual(readIdempotencyKey('"a \\"q\\" b"'), { kind: 'key', key: 'a "q" b' });
    for (const bad of ['""', '"x', 'a b', '', '"a"b"', 'é', `"${'x'.repeat(256)}"`, 'x'.repeat(256)]) assert.deepEqual(readIdempotencyKey(bad), { kind: 'invalid' }, bad);
    assert.equal(readIdempotencyKey('x'.repeat(255)).kind, 'key');
    // The common shapes take a path without regular expressions; every reading matches the full one's.
    assert.deepEqual(readIdempotencyKey('"a b"'), { kind: 'key', key: 'a b' });
    assert.deepEqual(readIdempotencyKey('a"b'), { kind: 'key', key: 'a"b' });
    assert.deepEqual(readIdempotencyKey('a\\b'), { kind: 'key', key: 'a\\b' });
    assert.deepEqual(readIdempotencyKey(' "k" '), { kind: 'key', key: 'k' });
    assert.deepEqual(readIdempotencyKey(`"${'x'.repeat(255)}"`), { kind: 'key', key: 'x'.repeat(255) });
    for (const bad of ['"', '"a\\b"', '"a\tb"', '"k', '"é"', '\x7f']) assert.deepEqual(readIdempotencyKey(bad), { kind: 'invalid' }, bad);
  });

  it('starts a request: unprotected method or no key skips, a required key is refused when missing', () => {
    assert.deepEqual(startRequest(SETTINGS, 'GET', '"k"'), { kind: 'skip', reason: 'method' });
    assert.deepEqual(startRequest(SETTINGS, 'POST', undefined), { kind: 'skip', reason: 'no_key' });
    assert.deepEqual(startRequest({ ...SETTINGS, required: true }, 'POST', undefined), { kind: 'refuse', refusal: 'missing' });
    assert.deepEqual(startRequest(SETTINGS, 'POST', '"k" extra'), { kind: 'refuse', refusal: 'invalid' });
    assert.deepEqual(startRequest(SETTINGS, 'PATCH', '"k"'), { kind: 'check', key: 'k' });
  });

  it('fingerprints method, path and body; scopes records per route and partner', () => {
    const body = Buffer.from('{"a":1}');
    const fp = fingerprint('POST', '/o?x=1', body);
    assert.equal(fingerprint('POST', '/o?x=1', Buffer.from('{"a":1}')), fp);
    assert.notEqual(fingerprint('PUT', '/o?x=1', body), fp);
    assert.notEqual(fingerprint('POST', '/o?x=2', body), fp);
    assert.notEqual(fingerprint('POST', '/o?x=1', Buffer.from('{"a":2}')), fp);
    // The digest of method, path and body joined by newlines: records written by other processor versions still match.
    for (const [m, p, b] of [
      ['POST', '/o?x=1', body],
      ['PUT', '/é/ü?q=€', Buffer.from([0, 255])],
      ['POST', '/', Buffer.alloc(0)],
    ] as const)
      assert.equal(fingerprint(m, p, b), createHash('sha256').update(`${m}\n${p}\n`).update(b).digest('base64url'), p);
    assert.notEqual(recordKey(SETTINGS, 'acme', 'k'), recordKey(SETTINGS, 'globex', 'k'));
    assert.notEqual(recordKey(SETTINGS, 'acme', 'k'), recordKey({ product: 'shop', route: 'other' }, 'acme', 'k'));
    // The separator keeps partner and key apart (no "ab"+"c" = "a"+"bc").
    assert.notEqual(recordKey(SETTINGS, 'ab', 'c'), recordKey(SETTINGS, 'a', 'bc'));
  });

  it('decides repeats: replay when done, 409 while pending, 422 for another request', () => {
    const response = { status: 201, headers: [['x-id', '7']] as Array<[string, string]>, body: Buffer.from('ok') };
    assert.deepEqual(decideRepeat({ state: 'done', fingerprint: 'f', response }, 'f'), { kind: 'replay', response });
    assert.deepEqual(decideRepeat({ state: 'pending', fingerprint: 'f', claim: 'c1' }, 'f'), { kind: 'in_flight' });
    assert.deepEqual(decideRepeat({ state: 'pending', fingerprint: 'f', claim: 'c1' }, 'g'), { kind: 'mismatch' });
    assert.deepEqual(decideRepeat({ state: 'done', fingerprint: 'f', response }, 'g'), { kind: 'mismatch' });
  });

  it('stores what is worth replaying and marks replays', () => {
    assert.equal(storable(201), true);
    assert.equal(storable(404), true);
    assert.equal(storable(500), false);
    assert.equal(storable(503), false);
    const kept = storedHeaders([
      [':status', '201'],
      ['content-type', 'application/json'],
      ['content-length', '12'],
      ['transfer-encoding', 'chunked'],
      ['x-envoy-upstream-service-time', '3'],
      ['location', '/o/1'],
      ['date', 'x'],
    ]);
    assert.deepEqual(kept, [
      ['content-type', 'application/json'],
      ['location', '/o/1'],
    ]);
    assert.deepEqual(replayHeaders({ status: 201, headers: [...kept, ['idempotent-replayed', 'false']], body: Buffer.alloc(0) }).at(-1), ['idempotent-replayed', 'true']);
  });

  it('encodes records and refuses garbage', () => {
    const rec: IdempotencyRecord = { state: 'done', fingerprint: 'f', response: { status: 200, headers: [['a', 'b']], body: Buffer.from([0, 255, 1]) } };
    assert.deepEqual(decodeRecord(encodeRecord(rec)), rec);
    assert.deepEqual(decodeRecord(encodeRecord({ state: 'pending', fingerprint: 'f', claim: 'c1' })), { state: 'pending', fingerprint: 'f', claim: 'c1' });
    assert.equal(decodeRecord('not json'), undefined);
    assert.equal(decodeRecord('{"s":"d","f":"x"}'), undefined);
  });

  it('round-trips route settings and refuses anything else', () => {
    assert.deepEqual(parseRouteSettings(formatRouteSettings(SETTINGS)), SETTINGS);
    for (const bad of [undefined, '', 'shop/orders', 'shop/orders;ttl=0;required=0;methods=POST', 'Shop/x;ttl=1;required=0;methods=POST', 'shop/orders;ttl=1;required=2;methods=POST']) {
      assert.equal(parseRouteSettings(bad), undefined, String(bad));
    }
  });

  it('resolves protected methods against the route match; names the field of impossible settings', () => {
    assert.deepEqual(protectedMethods({ idempotency: {}, match: {} }), ['PATCH', 'POST']);
    assert.deepEqual(protectedMethods({ idempotency: { methods: ['PUT', 'POST'] }, match: { methods: ['GET', 'PUT'] } }), ['PUT']);
    assert.deepEqual(protectedMethods({ idempotency: { enabled: false }, match: {} }), []);
    assert.deepEqual(idempotencyProblems({ idempotency: { methods: ['DELETE'] }, match: { methods: ['GET'] } })[0]?.[0], 'idempotency.methods');
    assert.deepEqual(idempotencyProblems({ idempotency: {}, match: {}, directResponse: { status: 200 } })[0]?.[0], 'idempotency');
    assert.deepEqual(idempotencyProblems({ idempotency: {}, match: { methods: ['POST'] } }), []);
  });

  it('memory store: one claim wins, completion replaces it, release frees only its own pending record, expiry', async () => {
    let now = 1_000;
    const store = new MemoryIdempotencyStore(() => now);
    const pending: IdempotencyRecord = { state: 'pending', fingerprint: 'f', claim: 'c1' };
    assert.equal(await store.claim('k', pending, 100), undefined);
    assert.deepEqual(await store.claim('k', { state: 'pending', fingerprint: 'g', claim: 'c2' }, 100), pending);
    await store.release('k', { state: 'pending', fingerprint: 'other', claim: 'c3' });
    assert.deepEqual(await store.claim('k', pending, 100), pending, 'another record is not released');
    await store.release('k', pending);
    assert.equal(await store.claim('k', pending, 100), undefined, 'released: claimable again');
    const done: IdempotencyRecord = { state: 'done', fingerprint: 'f', response: { status: 201, headers: [], body: Buffer.from('x') } };
    await store.complete('k', done, 500);
    now += 499;
    assert.deepEqual(await store.claim('k', pending, 100), done);
    now += 1;
    assert.equal(await store.claim('k', pending, 100), undefined, 'expired');
    // The first claim lapses and another request claims the key with the same fingerprint: the
    // first one's late release must not free the second one's claim.
    now += 100;
    const second: IdempotencyRecord = { state: 'pending', fingerprint: 'f', claim: 'c4' };
    assert.equal(await store.claim('k', second, 100), undefined, 'the lapsed claim is gone');
    await store.release('k', pending);
    assert.equal(await store.claim('k', { state: 'pending', fingerprint: 'f', claim: 'c5' }, 100), second, 'still the second claim');
    await store.close();
  });
});
