// Model → IR for response compression: a route's settings (its own, else its product's), and the
// group's compressor profiles — one per distinct content-type list and minimum size, since Envoy
// cannot change those per route: each profile is a set of compressor filters routes switch on.
import type { Compression, CompressionAlgorithm, Product, Route } from '../../model/index.ts';
import type { CompressionIR, RouteIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';

/** When Accept-Encoding prefers none of them over another: brotli, then zstd, then gzip (Envoy's chain order decides ties). */
export const ALGORITHM_ORDER: readonly CompressionAlgorithm[] = ['br', 'zstd', 'gzip'];
const DEFAULT_MIN_SIZE = 1024;

export function compressionIr(product: Product, route: Route): CompressionIR | undefined {
  const c: Compression | undefined = route.compression ?? product.compression;
  if (!c || c.enabled === false) return undefined;
  const algorithms = c.algorithms ?? ALGORITHM_ORDER;
  return {
    algorithms: ALGORITHM_ORDER.filter((a) => algorithms.includes(a)),
    minSizeBytes: c.minSizeBytes ?? DEFAULT_MIN_SIZE,
    contentTypes: [...new Set((c.contentTypes ?? []).map((t) => t.toLowerCase()))].sort(compareStrings),
  };
}

/** What makes two routes' compressors the same filter: minimum size and content types. */
export function compressionProfileKey(c: Pick<CompressionIR, 'minSizeBytes' | 'contentTypes'>): string {
  return `${c.minSizeBytes}|${c.contentTypes.join(',')}`;
}

/** The group's compressor profiles, each with every algorithm some route of it uses; sorted by key. */
export function compressionProfiles(routes: Iterable<RouteIR>): CompressionIR[] {
  const profiles = new Map<string, CompressionIR>();
  for (const r of routes) {
    if (!r.compression) continue;
    const key = compressionProfileKey(r.compression);
    const p = profiles.get(key);
    if (!p) profiles.set(key, { ...r.compression, algorithms: [...r.compression.algorithms] });
    else p.algorithms = ALGORITHM_ORDER.filter((a) => p.algorithms.includes(a) || r.compression!.algorithms.includes(a));
  }
  return [...profiles].sort((a, b) => compareStrings(a[0], b[0])).map(([, p]) => p);
}
