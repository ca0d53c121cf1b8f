// The decisions of duplicate-request protection, as pure functions: reading the Idempotency-Key
// header, a request's fingerprint, where its record lives, what a repeat gets, and which parts of a
// response are stored and replayed. processor.ts is the I/O around them.
import { hash } from 'node:crypto';
import { IDEMPOTENCY_HEADERS, type IdempotencyRouteSettings } from '../contract/index.ts';

/** A response as stored for replays: headers as sent upstream of the client (minus per-connection ones). */
export interface StoredResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

/**
 * What the store holds under a key: a first request still in flight, or its finished response. A
 * pending record carries its claim's own id: two requests with the same body have the same
 * fingerprint, and a late release by the first (its claim lapsed) must not free the second's.
 */
export type IdempotencyRecord = { state: 'pending'; fingerprint: string; claim: string } | { state: 'done'; fingerprint: string; response: StoredResponse };

export type KeyReading = { kind: 'absent' } | { kind: 'invalid' } | { kind: 'key'; key: string };

const MAX_KEY = 255;

/**
 * The header's value. The draft makes it a Structured Field string (`"8e03978e-…"`); clients that
 * send the bare value are common, so a value without quotes is taken as it is. Visible ASCII only.
 */
export function readIdempotencyKey(raw: string | undefined): KeyReading {
  if (raw === undefined) return { kind: 'absent' };
  const plain = plainKey(raw);
  if (plain !== undefined) return { kind: 'key', key: plain };
  const v = raw.trim();
  if (v.startsWith('"')) {
    if (v.length < 3 || !v.endsWith('"')) return { kind: 'invalid' };
    const inner = v.slice(1, -1);
    // sf-string: printable ASCII with " and \ escaped by a backslash.
    if (!/^(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])+$/.test(inner)) return { kind: 'invalid' };
    const key = inner.replace(/\\(["\\])/g, '$1');
    return key.length <= MAX_KEY ? { kind: 'key', key } : { kind: 'invalid' };
  }
  return /^[\x21-\x7e]{1,255}$/.test(v) ? { kind: 'key', key: v } : { kind: 'invalid' };
}

/**
 * The common shapes read without regular expressions (a per-request cost): a bare key of visible
 * ASCII, or one quoted without escapes. Anything else (spaces around it, escapes, bad characters,
 * too long) is left to the full reading, which gives the same answer for these two shapes.
 */
function plainKey(v: string): string | undefined {
  const quoted = v.charCodeAt(0) === 0x22;
  const start = quoted ? 1 : 0;
  const end = quoted ? v.length - 1 : v.length;
  if (end - start < 1 || end - start > MAX_KEY || (quoted && v.charCodeAt(end) !== 0x22)) return undefined;
  for (let i = start; i < end; i++) {
    const c = v.charCodeAt(i);
    // Inside quotes a space is allowed, a quote or backslash is not (escapes take the full path).
    if (c > 0x7e || c < (quoted ? 0x20 : 0x21) || c === 0x22 || c === 0x5c) return undefined;
  }
  return quoted ? v.slice(start, end) : v;
}

/** Same method, path (with its query) and body bytes ⇒ same fingerprint. */
export function fingerprint(method: string, path: string, body: Uint8Array): string {
  // One-shot hash of the joined bytes (the same digest as hashing the parts in turn): a Hash object
  // and its updates cost more than the copy, for the bodies a processor keeps (under 1 MiB).
  // One buffer for the joined bytes, written in place (no intermediate buffer for the prefix).
  const prefix = Buffer.byteLength(method) + Buffer.byteLength(path) + 2;
  const joined = Buffer.allocUnsafe(prefix + body.length);
  let at = joined.write(method, 0, 'utf8');
  joined[at++] = 0x0a;
  at += joined.write(path, at, 'utf8');
  joined[at++] = 0x0a;
  joined.set(body, at);
  return hash('sha256', joined, 'base64url');
}

/** Where a key's record lives: per route and per caller (anonymous callers share one scope), the key hashed to a fixed length. */
export function recordKey(s: Pick<IdempotencyRouteSettings, 'product' | 'route'>, partner: string, key: string): string {
  const digest = hash('sha256', `${partner}\0${key}`, 'base64url');
  return `${s.product}/${s.route}:${digest}`;
}

export type RepeatDecision = { kind: 'replay'; response: StoredResponse } | { kind: 'in_flight' } | { kind: 'mismatch' };

/** A request whose key already has a record: its stored response, 409 while the first is in flight, 422 for another request. */
export function decideRepeat(existing: IdempotencyRecord, requestFingerprint: string): RepeatDecision {
  if (existing.fingerprint !== requestFingerprint) return { kind: 'mismatch' };
  if (existing.state === 'pending') return { kind: 'in_flight' };
  return { kind: 'replay', response: existing.response };
}

/** What happens to a request before any store is asked: not protected here, refused, or checked. */
export type RequestStart = { kind: 'skip'; reason: 'method' | 'no_key' } | { kind: 'refuse'; refusal: 'missing' | 'invalid' } | { kind: 'check'; key: string };

export function startRequest(s: IdempotencyRouteSettings, method: string, keyHeader: string | undefined): RequestStart {
  if (!s.methods.includes(method)) return { kind: 'skip', reason: 'method' };
  const k = readIdempotencyKey(keyHeader);
  if (k.kind === 'invalid') return { kind: 'refuse', refusal: 'invalid' };
  if (k.kind === 'absent') return s.required ? { kind: 'refuse', refusal: 'missing' } : { kind: 'skip', reason: 'no_key' };
  return { kind: 'check', key: k.key };
}

/**
 * A finished response is kept for replays unless it is a server error: a retry after a 5xx (or a
 * response that never completed) should reach the upstream again, so the key is released instead.
 */
export function storable(status: number): boolean {
  return status >= 200 && status < 500;
}

// Per-connection headers, and what Envoy recomputes for the replay (its length, date, timing).
const NOT_STORED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'date']);

/** The response headers worth replaying. */
export function storedHeaders(headers: Iterable<[string, string]>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of headers) {
    if (k.startsWith(':') || k.startsWith('x-envoy-') || NOT_STORED.has(k)) continue;
    out.push([k, v]);
  }
  return out;
}

/** The replayed response's headers: the stored ones, marked as a replay. */
export function replayHeaders(r: StoredResponse): Array<[string, string]> {
  return [...r.headers.filter(([k]) => k !== IDEMPOTENCY_HEADERS.replayed), [IDEMPOTENCY_HEADERS.replayed, 'true']];
}

/** How long a first request may stay in flight before its key is free again (a processor that died mid-request leaves one behind). */
export function pendingLifetimeMs(ttlSeconds: number): number {
  return Math.min(ttlSeconds * 1000, 600_000);
}

/** Records as stored (JSON; the body base64). */
export function encodeRecord(r: IdempotencyRecord): string {
  if (r.state === 'pending') return JSON.stringify({ s: 'p', f: r.fingerprint, c: r.claim });
  return JSON.stringify({ s: 'd', f: r.fingerprint, st: r.response.status, h: r.response.headers, b: r.response.body.toString('base64') });
}

export function decodeRecord(text: string): IdempotencyRecord | undefined {
  try {
    const o = JSON.parse(text) as { s?: string; f?: string; c?: string; st?: number; h?: Array<[string, string]>; b?: string };
    if (typeof o.f !== 'string') return undefined;
    if (o.s === 'p') return { state: 'pending', fingerprint: o.f, claim: typeof o.c === 'string' ? o.c : '' };
    if (o.s === 'd' && typeof o.st === 'number' && Array.isArray(o.h) && typeof o.b === 'string') {
      return { state: 'done', fingerprint: o.f, response: { status: o.st, headers: o.h, body: Buffer.from(o.b, 'base64') } };
    }
  } catch {}
  return undefined;
}
