// Decisions and the 429 contract (pure): turns counter results into allow/deny with the exact
// headers and JSON body clients see, the same whether the answer goes out through Envoy's
// rate-limit service or through ext_authz in one callout.
import { errorBody, type RateLimitErrorCode } from '../contract/index.ts';
import { reportedIndex, resetEpochSeconds, retryAfterSeconds, type Evaluation } from './algorithms.ts';
import type { CompiledLimit, CountKind, RuleSet } from './table.ts';

/** What is being asked: one request on one route, as identified by the gateway. */
export interface DecisionRequest {
  product: string;
  route: string;
  /** Authenticated partner (set by ext_authz); absent for anonymous callers. */
  partner?: string | undefined;
  /** Client address as Envoy trusts it (x-forwarded-for handling applied). */
  clientIp?: string | undefined;
  /** Value of the header the applicable rules count by (when the caller does not know which one). */
  headerValue?: string | undefined;
  /** Request headers by lower-case name; the applicable countBy header is looked up here first. */
  headers?: Readonly<Record<string, string | undefined>> | undefined;
  /** Requests this call accounts for (Envoy's hits_addend); default 1. */
  hits?: number | undefined;
}

export type Outcome = 'allowed' | 'limited' | 'shadow_limited' | 'quota_exceeded' | 'error';
export type ErrorCode = RateLimitErrorCode;

export interface HeaderPair {
  key: string;
  value: string;
}

export interface LimitStatus {
  /** `<plan>:<product>:<route|*>:<per>` — which limit or quota. */
  id: string;
  kind: 'rate' | 'quota';
  per: CompiledLimit['per'];
  requests: number;
  burst: number;
  scope: 'plan' | 'route';
  countBy: CountKind;
  /** This limit alone admits the request. */
  ok: boolean;
  remaining: number;
  /** Unix time (ms) when the budget is next available (refusing) or full again (admitting). */
  resetMs: number;
}

export interface Decision {
  /** Let the request through (also true for shadow plans and fail-open errors). */
  allowed: boolean;
  outcome: Outcome;
  /** The HTTP status the client gets from this decision: 429 when refused, else 200 (pass through). */
  status: 200 | 429;
  /** Set when refused. */
  error?: ErrorCode;
  plan?: string;
  shadow: boolean;
  /** The limit the headers speak for: the refusing one, or the one with the fewest requests left. */
  limit?: LimitStatus;
  /** Every limit and quota evaluated, rates first. */
  limits: LimitStatus[];
  /** Response headers to add: to the 429, or to the upstream's response when allowed. */
  headers: HeaderPair[];
  /** The exact JSON body of the 429 (absent when allowed). */
  body?: string;
  /** Seconds, when refused. */
  retryAfter?: number;
  /** Clock reading (ms) the decision was made at. */
  now: number;
}

/** The headers of a refusal: Retry-After, X-RateLimit-Limit/Remaining/Reset and the body's type. */
export function deniedHeaders(limit: number, remaining: number, resetEpochS: number, retryAfter: number): HeaderPair[] {
  return [
    { key: 'Retry-After', value: String(retryAfter) },
    { key: 'X-RateLimit-Limit', value: String(limit) },
    { key: 'X-RateLimit-Remaining', value: String(remaining) },
    { key: 'X-RateLimit-Reset', value: String(resetEpochS) },
    // Envoy's local reply defaults to text/plain; a content-type from the rate-limit service wins.
    { key: 'content-type', value: 'application/json' },
  ];
}

/** The headers of an admitted request (added to the upstream's response). */
export function allowedHeaders(limit: number, remaining: number): HeaderPair[] {
  return [
    { key: 'X-RateLimit-Limit', value: String(limit) },
    { key: 'X-RateLimit-Remaining', value: String(remaining) },
  ];
}

/** A decision for a request no limit applies to: allowed, and nothing to report. */
export function unlimitedDecision(now: number): Decision {
  return { allowed: true, outcome: 'allowed', status: 200, shadow: false, limits: [], headers: [], now };
}

/** The backend could not answer: fail open (allow, no headers) or closed (429, retry in 1 s). */
export function failureDecision(failOpen: boolean, now: number, rules?: RuleSet): Decision {
  const base = { outcome: 'error' as const, shadow: rules?.shadow ?? false, limits: [], now, ...(rules ? { plan: rules.plan } : {}) };
  if (failOpen || rules?.shadow) return { ...base, allowed: true, status: 200, headers: [] };
  const retryAfter = 1;
  return {
    ...base,
    allowed: false,
    status: 429,
    error: 'rate_limit_unavailable',
    headers: [
      { key: 'Retry-After', value: String(retryAfter) },
      { key: 'content-type', value: 'application/json' },
    ],
    body: errorBody('rate_limit_unavailable', retryAfter),
    retryAfter,
  };
}

/** Combines the counters' verdicts into the decision and its response. */
export function buildDecision(rules: RuleSet, evaluation: Evaluation): Decision {
  // Hot path: plain loops and object literals of one shape (no spreads, no closures).
  const { now, results } = evaluation;
  const n = rules.limits.length;
  const limits: LimitStatus[] = new Array(n);
  const countBy = rules.countBy.kind;
  for (let i = 0; i < n; i++) {
    const l = rules.limits[i]!;
    const r = results[i]!;
    // Limit is the window's quota (requests per `per`) and Remaining the quota units left in it, as in
    // the IETF httpapi RateLimit header draft; a bucket whose burst lets it hold more than one window's
    // quota still reports at most the quota (the burst is extra the gateway grants, never advertised).
    const remaining = Math.min(r.remaining, l.requests);
    limits[i] = { id: l.id, kind: l.kind, per: l.per, requests: l.requests, burst: l.burst, scope: l.scope, countBy, ok: r.ok, remaining, resetMs: r.resetMs };
  }
  const limit = limits[reportedIndex(results)];
  if (!limit) return { allowed: true, outcome: 'allowed', status: 200, plan: rules.plan, shadow: rules.shadow, limits, headers: [], now };
  if (evaluation.allowed || rules.shadow) {
    // Shadow plans: decided as if enforcing (nothing was consumed when refused), reported, let through.
    return {
      allowed: true,
      outcome: evaluation.allowed ? 'allowed' : 'shadow_limited',
      status: 200,
      plan: rules.plan,
      shadow: rules.shadow,
      limit,
      limits,
      headers: allowedHeaders(limit.requests, limit.remaining),
      now,
    };
  }
  const error: ErrorCode = limit.kind === 'quota' ? 'quota_exceeded' : 'rate_limit_exceeded';
  const retryAfter = retryAfterSeconds(limit.resetMs, now);
  return {
    allowed: false,
    outcome: error === 'quota_exceeded' ? 'quota_exceeded' : 'limited',
    status: 429,
    error,
    plan: rules.plan,
    shadow: false,
    limit,
    limits,
    headers: deniedHeaders(limit.requests, limit.remaining, resetEpochSeconds(limit.resetMs), retryAfter),
    body: errorBody(error, retryAfter),
    retryAfter,
    now,
  };
}
