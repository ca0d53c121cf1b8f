// Path rules of the translator: most-specific-first route ordering and the strip-prefix rewrite.
// Envoy takes the first route that matches, so this order decides which route serves a request.
import { escapeRegex } from '../model/index.ts';
import type { PathKind, PathMatchIR, PathRewriteIR } from './ir.ts';

// Both kinds of prefix share a rank: the longer prefix goes first whichever kind it is.
const KIND_RANK: Readonly<Record<PathKind, number>> = { exact: 0, template: 1, regex: 2, prefix: 3, segment_prefix: 3 };

/** Prefix matches of either kind: both replace the matched characters in a prefix rewrite. */
export function isPrefix(path: PathMatchIR): boolean {
  return path.kind === 'prefix' || path.kind === 'segment_prefix';
}

/** Plain code-unit order (never locale-dependent). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** 0: literal segment, 1: matches one segment, 2: matches any number of segments. */
function templateSegmentRank(segment: string): number {
  if (segment === '**' || /=\*\*\}$/.test(segment)) return 2;
  if (segment === '*' || segment.startsWith('{')) return 1;
  return 0;
}

function compareTemplates(a: string, b: string): number {
  const sa = a.split('/').slice(1);
  const sb = b.split('/').slice(1);
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const x = sa[i]!;
    const y = sb[i]!;
    const rank = templateSegmentRank(x) - templateSegmentRank(y);
    if (rank !== 0) return rank;
    if (templateSegmentRank(x) === 0 && x !== y) return compareStrings(x, y);
  }
  // One is a prefix of the other: the shorter is more specific (a trailing ** may match nothing).
  if (sa.length !== sb.length) return sa.length - sb.length;
  return compareStrings(a, b);
}

/**
 * Orders path matches most-specific-first: exact, then templates (literal segments before
 * variables before **), then regexes, then prefixes longest first (on a segment boundary before
 * one without, for the same characters: it matches less). 0 only for identical matches.
 */
export function comparePaths(a: PathMatchIR, b: PathMatchIR): number {
  const kind = KIND_RANK[a.kind] - KIND_RANK[b.kind];
  if (kind !== 0) return kind;
  switch (a.kind) {
    case 'exact':
      return compareStrings(a.value, b.value);
    case 'template':
      return compareTemplates(a.value, b.value);
    case 'regex':
      return b.value.length - a.value.length || compareStrings(a.value, b.value);
    case 'prefix':
    case 'segment_prefix':
      return b.value.length - a.value.length || compareStrings(a.value, b.value) || (a.kind === b.kind ? 0 : a.kind === 'segment_prefix' ? -1 : 1);
  }
}

export function samePath(a: PathMatchIR, b: PathMatchIR): boolean {
  return a.kind === b.kind && a.value === b.value;
}

/** What decides the order of routes that share a virtual host. */
export interface RouteOrderKey {
  path: PathMatchIR;
  /** 1 for a method restriction, plus one per header and query matcher. */
  constraints: number;
  /** Number of methods allowed (Infinity when unrestricted). */
  methodCount: number;
  /** How specifically the route's product claims the host: 0 exact, 1 wildcard, 2 any host. */
  hostRank: number;
  /** `<product>/<route>`: the final tie-break. */
  name: string;
}

export function compareRoutes(a: RouteOrderKey, b: RouteOrderKey): number {
  return (
    comparePaths(a.path, b.path) ||
    b.constraints - a.constraints ||
    (a.methodCount === b.methodCount ? 0 : a.methodCount < b.methodCount ? -1 : 1) ||
    a.hostRank - b.hostRank ||
    compareStrings(a.name, b.name)
  );
}

/**
 * The rewrite that removes the literal prefix `strip` from the request path, never leaving it
 * empty: with strip '/api', '/api/orders' becomes '/orders' and '/api' becomes '/'. Prefix matches
 * use prefix_rewrite where that is exact; everything else uses an anchored regex.
 */
export function stripPrefixRewrite(path: PathMatchIR, strip: string): PathRewriteIR | undefined {
  // Removing '/' and restoring the leading slash changes nothing.
  if (strip === '/') return undefined;
  if (isPrefix(path) && path.value.startsWith(strip)) {
    const rest = path.value.slice(strip.length);
    if (rest !== '') return { kind: 'prefix', value: rest.startsWith('/') ? rest : `/${rest}` };
    // The matched prefix is exactly the stripped one: '/' is only right if nothing can follow but a segment.
    if (strip.endsWith('/')) return { kind: 'prefix', value: '/' };
  }
  return { kind: 'regex', pattern: `^${escapeRegex(strip)}/?`, substitution: '/' };
}

/** Whether a request path (without query) matches a prefix of either kind, as Envoy decides it. */
export function prefixMatches(path: PathMatchIR, requestPath: string): boolean {
  if (!requestPath.startsWith(path.value)) return false;
  return path.kind !== 'segment_prefix' || requestPath.length === path.value.length || requestPath[path.value.length] === '/';
}

/** Applies a path rewrite the way Envoy does, for tests and previews (the query string is kept aside). */
export function applyRewrite(path: PathMatchIR, rewrite: PathRewriteIR, requestPath: string): string {
  if (rewrite.kind === 'prefix') {
    if (!isPrefix(path) || !prefixMatches(path, requestPath)) return requestPath;
    return rewrite.value + requestPath.slice(path.value.length);
  }
  // Envoy substitutes every match; the patterns generated here are anchored, so there is at most one.
  const re = new RegExp(rewrite.pattern, 'g');
  return requestPath.replace(re, rewrite.substitution.replace(/\\(\d)/g, '$$$1'));
}

/** Segments of a URI template path (without the leading empty one). */
export function templateSegments(template: string): string[] {
  return template.split('/').slice(1);
}

/** Variable names bound by a URI template. */
export function templateVariables(template: string): string[] {
  const out: string[] = [];
  for (const s of templateSegments(template)) {
    const m = /^\{([A-Za-z_][A-Za-z0-9_]*)(=\*\*?)?\}$/.exec(s);
    if (m) out.push(m[1]!);
  }
  return out;
}
