// Console sessions without a server: idle and absolute expiry, the bound on how many are kept,
// and a session ending when its token stops verifying.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyRequest } from 'fastify';
import { ConsoleSessions } from '../../src/admin/console-sessions.ts';

const verify = (valid: Set<string>) => (token: string) => {
  if (!valid.has(token)) throw Object.assign(new Error('invalid token'), { status: 401 });
  return { name: token, role: 'admin' as const };
};
const req = (id: string, method = 'GET', headers: Record<string, string> = {}) => ({ method, headers: { cookie: `portico_session=${id}`, host: 'h', ...headers } }) as unknown as FastifyRequest;

describe('ConsoleSessions', () => {
  it('ends a session after the idle time, and keeps a busy one until the absolute limit', () => {
    let now = 0;
    const s = new ConsoleSessions(verify(new Set(['t'])), { idleMs: 1000, absoluteMs: 2500, now: () => now });
    const { id } = s.create('t');
    now = 900;
    assert.equal(s.principal(req(id))?.name, 't');
    now = 1800; // 900 ms idle: still alive
    assert.equal(s.principal(req(id))?.name, 't');
    now = 2400;
    assert.equal(s.principal(req(id))?.name, 't');
    now = 2600; // busy, but past the absolute limit
    assert.throws(() => s.principal(req(id)), /expired/);
    const second = s.create('t').id;
    now += 1001;
    assert.throws(() => s.principal(req(second)), /expired/);
    assert.equal(s.viewOf(second), undefined);
  });

  it('reports the earlier of the two expiries', () => {
    let now = 0;
    const s = new ConsoleSessions(verify(new Set(['t'])), { idleMs: 1000, absoluteMs: 1500, now: () => now });
    const { id, view } = s.create('t');
    assert.equal(view.expiresAt, new Date(1000).toISOString());
    now = 800;
    s.principal(req(id));
    assert.equal(s.viewOf(id)?.expiresAt, new Date(1500).toISOString());
  });

  it('keeps at most max sessions, dropping the oldest', () => {
    const s = new ConsoleSessions(verify(new Set(['t'])), { max: 2 });
    const a = s.create('t').id;
    const b = s.create('t').id;
    const c = s.create('t').id;
    assert.throws(() => s.principal(req(a)), /expired/);
    assert.ok(s.principal(req(b)));
    assert.ok(s.principal(req(c)));
  });

  it('CSRF: unsafe methods need the token; safe ones and bearer requests do not use the session', () => {
    const s = new ConsoleSessions(verify(new Set(['t'])));
    const { id, view } = s.create('t');
    assert.throws(() => s.principal(req(id, 'POST')), /CSRF/);
    assert.throws(() => s.principal(req(id, 'PATCH', { 'x-portico-csrf': 'nope' })), /CSRF/);
    assert.ok(s.principal(req(id, 'PATCH', { 'x-portico-csrf': view.csrf })));
    assert.throws(() => s.principal(req(id, 'POST', { 'x-portico-csrf': view.csrf, origin: 'http://other' })), /origin/);
    assert.ok(s.principal(req(id, 'POST', { 'x-portico-csrf': view.csrf, origin: 'http://h' })));
    assert.equal(s.principal(req(id, 'POST', { authorization: 'Bearer x' })), undefined);
  });

  it('a token that stops verifying ends its session for good', () => {
    const valid = new Set(['t']);
    const s = new ConsoleSessions(verify(valid));
    const { id } = s.create('t');
    valid.delete('t');
    assert.throws(() => s.principal(req(id)), /invalid token/);
    valid.add('t');
    assert.throws(() => s.principal(req(id)), /expired/);
    assert.throws(() => s.create('other'), /invalid token/);
  });
});
