// The Redis idempotency store against a real Redis: one claim wins, a release frees only the claim
// it made (also when a later request with the same body claimed the key after the first lapsed),
// completion replaces the claim and expires.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { RedisIdempotencyStore, type IdempotencyRecord } from '../../src/idempotency/index.ts';
import { startRedis } from '../support/components.ts';

const pendingClaim = (fingerprint: string): IdempotencyRecord => ({ state: 'pending', fingerprint, claim: randomUUID() });

describe('Redis idempotency store', () => {
  it('claims, releases only its own claim, completes and expires', async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    t.after(() => redis.stop());
    const store = new RedisIdempotencyStore(redis.url, { keyPrefix: `test:${randomUUID()}:` });
    t.after(() => store.close());
    await store.ready();

    const first = pendingClaim('f');
    assert.equal(await store.claim('k', first, 10_000), undefined, 'the first claim wins');
    assert.deepEqual(await store.claim('k', pendingClaim('f'), 10_000), first, 'a repeat sees the first claim');
    await store.release('k', pendingClaim('f'));
    assert.deepEqual(await store.claim('k', pendingClaim('f'), 10_000), first, 'a claim with the same body but another id frees nothing');
    await store.release('k', first);
    const again = pendingClaim('f');
    assert.equal(await store.claim('k', again, 10_000), undefined, 'released: claimable again');

    // The first claim lapses (a short pending lifetime); a second request with the same body claims
    // the key; the first request's late release must leave the second's claim in place.
    const lapsing = pendingClaim('g');
    assert.equal(await store.claim('lapse', lapsing, 50), undefined);
    await new Promise((r) => setTimeout(r, 150));
    const second = pendingClaim('g');
    assert.equal(await store.claim('lapse', second, 10_000), undefined, 'the lapsed claim is gone');
    await store.release('lapse', lapsing);
    assert.deepEqual(await store.claim('lapse', pendingClaim('g'), 10_000), second, 'still the second claim');

    const done: IdempotencyRecord = { state: 'done', fingerprint: 'f', response: { status: 201, headers: [['content-type', 'application/json']], body: Buffer.from('{"id":1}') } };
    await store.complete('k', done, 200);
    assert.deepEqual(await store.claim('k', pendingClaim('f'), 10_000), done, 'the stored response');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await store.claim('k', pendingClaim('f'), 10_000), undefined, 'expired');
  });
});
