// Response compression: Envoy's compressor filter, one instance per compressor profile (minimum size
// and content types, which Envoy cannot change per route) and algorithm, off unless a route switches
// it on. Envoy picks the instance the client's Accept-Encoding prefers and never compresses a response
// that already has a Content-Encoding (or Cache-Control: no-transform).
import { createHash } from 'node:crypto';
import type { CompressionIR } from '../../ir.ts';
import { any, FILTERS, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const COMPRESSOR = 'envoy.extensions.filters.http.compressor.v3.Compressor';
const PER_ROUTE = 'envoy.extensions.filters.http.compressor.v3.CompressorPerRoute';

const LIBRARIES: Record<CompressionIR['algorithms'][number], { name: string; type: string }> = {
  br: { name: 'envoy.compression.brotli.compressor', type: 'envoy.extensions.compression.brotli.compressor.v3.Brotli' },
  zstd: { name: 'envoy.compression.zstd.compressor', type: 'envoy.extensions.compression.zstd.compressor.v3.Zstd' },
  gzip: { name: 'envoy.compression.gzip.compressor', type: 'envoy.extensions.compression.gzip.compressor.v3.Gzip' },
};

/** A profile's filter name carries a digest of its settings, so a route finds its filters without the group. */
export function compressorName(algorithm: CompressionIR['algorithms'][number], c: CompressionIR): string {
  const digest = createHash('sha256')
    .update(`${c.minSizeBytes}|${c.contentTypes.join(',')}`)
    .digest('hex')
    .slice(0, 8);
  return `${FILTERS.compressorPrefix}.${algorithm}.${digest}`;
}

function compressor(algorithm: CompressionIR['algorithms'][number], c: CompressionIR): JsonObject {
  const lib = LIBRARIES[algorithm];
  return disabledByDefault({
    name: compressorName(algorithm, c),
    typed_config: any(COMPRESSOR, {
      compressor_library: { name: lib.name, typed_config: any(lib.type) },
      response_direction_config: {
        common_config: { min_content_length: c.minSizeBytes, ...(c.contentTypes.length ? { content_type: c.contentTypes } : {}) },
      },
    }),
  });
}

export const compression: HttpFilterEmitter = {
  chain: (g) => (g.filters.compression ?? []).flatMap((p) => p.algorithms.map((a) => compressor(a, p))),
  perRoute: (r) => (r.compression ? r.compression.algorithms.map((a) => [compressorName(a, r.compression!), any(PER_ROUTE, { overrides: {} })]) : []),
};
