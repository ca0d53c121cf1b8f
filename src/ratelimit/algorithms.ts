// Limit arithmetic, pure and with the clock passed in: token buckets for request rates (capacity =
// requests + burst, refilled continuously) and fixed UTC calendar windows (day, month) for quotas.
//
// Bucket state is held as integers so that memory, Redis/Lua (doubles) and replicas compute the same
// answer: tokens are scaled by the period in ms, so one request costs `periodMs` units and each
// elapsed millisecond refills `requests` units. The largest value, (requests + burst) × 3,600,000,
// stays below 2^53.

export type RatePer = 'second' | 'minute' | 'hour';
export type QuotaPer = 'day' | 'month';

export const PERIOD_MS: Readonly<Record<RatePer, number>> = { second: 1_000, minute: 60_000, hour: 3_600_000 };
export const DAY_MS = 86_400_000;
/** Window counters live this long past their window's end (late replies, clock steps). */
export const WINDOW_GRACE_MS = 60_000;
/** A full bucket is the same as no bucket; keys linger this long after they would be full. */
export const BUCKET_GRACE_MS = 1_000;

export interface BucketSpec {
  kind: 'bucket';
  /** Counter key (without any backend prefix). */
  key: string;
  requests: number;
  periodMs: number;
  /** requests + burst. */
  capacity: number;
}

export interface WindowSpec {
  kind: 'window';
  /** Counter key without the window suffix (the suffix names the UTC day or month). */
  key: string;
  limit: number;
  per: QuotaPer;
}

export type CounterSpec = BucketSpec | WindowSpec;

/** Scaled tokens and the ms timestamp they were computed at. */
export interface BucketState {
  tokens: number;
  at: number;
}

/** One counter's verdict for one decision. */
export interface CheckResult {
  /** This counter alone would admit the request. */
  ok: boolean;
  /**
   * Whole requests left after this decision: after consumption when the decision is allowed, as
   * they were when it is refused (a refused request consumes nothing from any counter).
   */
  remaining: number;
  /**
   * When the budget is next available, in ms: for a counter that refuses, when the request would
   * fit; for one that admits, when it is back to its full budget (bucket full / window over).
   */
  resetMs: number;
}

export interface Evaluation {
  /** The clock reading (ms) the decision was made at (Redis TIME for the Redis backend). */
  now: number;
  /** Every counter admitted the request, and it was consumed from all of them. */
  allowed: boolean;
  results: CheckResult[];
}

// ── token bucket ─────────────────────────────────────────────────────────────

export interface BucketStep {
  /** The verdict, with remaining/reset as they are after consuming when this counter admits. */
  result: CheckResult;
  /** The same counter's remaining/reset left untouched (reported when another counter refuses). */
  unconsumed: CheckResult;
  /** State to store when the decision is allowed (consumed). */
  next: BucketState;
  /** How long the stored state matters: until the bucket would be full again. */
  ttlMs: number;
}

/** Tokens (scaled) at `now`: refilled since `state.at`, capped at capacity; absent = full. */
export function bucketTokens(spec: BucketSpec, state: BucketState | undefined, now: number): number {
  const full = spec.capacity * spec.periodMs;
  if (!state) return full;
  // A clock that steps back refills nothing rather than draining the bucket.
  const elapsed = now > state.at ? now - state.at : 0;
  return Math.min(full, state.tokens + elapsed * spec.requests);
}

export function bucketStep(spec: BucketSpec, state: BucketState | undefined, cost: number, now: number): BucketStep {
  const full = spec.capacity * spec.periodMs;
  const tokens = bucketTokens(spec, state, now);
  const need = cost * spec.periodMs;
  if (tokens >= need) {
    const left = tokens - need;
    const untilFull = Math.ceil((full - left) / spec.requests);
    return {
      result: { ok: true, remaining: Math.floor(left / spec.periodMs), resetMs: now + untilFull },
      unconsumed: { ok: true, remaining: Math.floor(tokens / spec.periodMs), resetMs: now + Math.ceil((full - tokens) / spec.requests) },
      next: { tokens: left, at: now },
      ttlMs: untilFull + BUCKET_GRACE_MS,
    };
  }
  // More than the capacity can never pass; tell the caller when the bucket is full at least.
  const wait = need > full ? Math.ceil((full - tokens) / spec.requests) : Math.ceil((need - tokens) / spec.requests);
  const result = { ok: false, remaining: Math.floor(tokens / spec.periodMs), resetMs: now + Math.max(wait, 1) };
  return { result, unconsumed: result, next: { tokens, at: now }, ttlMs: Math.ceil((full - tokens) / spec.requests) + BUCKET_GRACE_MS };
}

// ── calendar windows ─────────────────────────────────────────────────────────

export interface WindowBounds {
  /** Days since the epoch (day windows) or year × 12 + month index (month windows). */
  id: number;
  start: number;
  end: number;
}

/** The UTC day or month containing `now`. */
export function windowBounds(per: QuotaPer, now: number): WindowBounds {
  if (per === 'day') {
    const id = Math.floor(now / DAY_MS);
    return { id, start: id * DAY_MS, end: (id + 1) * DAY_MS };
  }
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { id: y * 12 + m, start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) };
}

/** The stored key of a window counter: one key per window, so a new window starts at zero. */
export function windowKey(spec: WindowSpec, bounds: WindowBounds): string {
  return `${spec.key}:${spec.per === 'day' ? 'd' : 'm'}${bounds.id}`;
}

export interface WindowStep {
  result: CheckResult;
  unconsumed: CheckResult;
  key: string;
  next: number;
  ttlMs: number;
}

export function windowStep(spec: WindowSpec, used: number | undefined, cost: number, now: number, bounds = windowBounds(spec.per, now)): WindowStep {
  const u = used ?? 0;
  const ok = u + cost <= spec.limit;
  const after = ok ? u + cost : u;
  return {
    result: { ok, remaining: Math.max(0, spec.limit - after), resetMs: bounds.end },
    unconsumed: { ok, remaining: Math.max(0, spec.limit - u), resetMs: bounds.end },
    key: windowKey(spec, bounds),
    next: after,
    ttlMs: bounds.end - now + WINDOW_GRACE_MS,
  };
}

// ── the most restrictive limit ───────────────────────────────────────────────

/**
 * Which result speaks for the decision in the response headers: of the refusing counters, the one
 * that keeps the caller waiting longest (the request needs all of them); when all admit, the one
 * with the fewest requests left (earlier index on ties: rates are listed before quotas).
 */
export function reportedIndex(results: readonly CheckResult[]): number {
  let best = -1;
  let refusing = false;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    if (best < 0) {
      best = i;
      refusing = !r.ok;
      continue;
    }
    const b = results[best]!;
    if (!r.ok) {
      if (!refusing || r.resetMs > b.resetMs) {
        best = i;
        refusing = true;
      }
    } else if (!refusing && r.remaining < b.remaining) best = i;
  }
  return best;
}

/** Retry-After in whole seconds, at least 1. */
export function retryAfterSeconds(resetMs: number, now: number): number {
  return Math.max(1, Math.ceil((resetMs - now) / 1000));
}

/** X-RateLimit-Reset: the Unix time (s) when the budget is next available. */
export function resetEpochSeconds(resetMs: number): number {
  return Math.ceil(resetMs / 1000);
}
