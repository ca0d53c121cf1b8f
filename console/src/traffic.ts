// Traffic arithmetic for the overview (pure): request rate between two polls of the control plane's
// counters, error and denial counts, latency percentiles from histogram buckets.
export interface TrafficSeries {
  product: string;
  partner: string;
  requests: number;
  outcomes: Record<string, number>;
  codeClasses: Record<string, number>;
  durationSum: number;
  buckets: { le: string; count: number }[];
}

export interface TrafficRow {
  product: string;
  partner: string;
  requests: number;
  /** Requests per second since the previous poll (undefined on the first). */
  rate: number | undefined;
  errors: number;
  rateLimited: number;
  denied: number;
  p50: number | undefined;
  p99: number | undefined;
}

/** The q-quantile (0..1) in seconds from cumulative buckets, interpolated inside its bucket as Prometheus does. */
export function quantile(q: number, buckets: { le: string; count: number }[]): number | undefined {
  const sorted = buckets.map((b) => ({ le: b.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(b.le), count: b.count })).sort((a, b) => a.le - b.le);
  const total = sorted[sorted.length - 1]?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.count >= rank) {
      if (b.le === Number.POSITIVE_INFINITY) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket > 0 ? prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket : b.le;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

export function trafficRows(now: { at: string; series: TrafficSeries[] }, before?: { at: string; series: TrafficSeries[] }): TrafficRow[] {
  const seconds = before ? (Date.parse(now.at) - Date.parse(before.at)) / 1000 : 0;
  const prev = new Map((before?.series ?? []).map((s) => [`${s.product}\0${s.partner}`, s]));
  return now.series.map((s) => {
    const p = prev.get(`${s.product}\0${s.partner}`);
    return {
      product: s.product,
      partner: s.partner,
      requests: s.requests,
      rate: before && seconds > 0 ? Math.max(0, s.requests - (p?.requests ?? 0)) / seconds : undefined,
      errors: s.codeClasses['5xx'] ?? 0,
      rateLimited: s.outcomes.rate_limited ?? 0,
      denied: s.outcomes.authz_denied ?? 0,
      p50: quantile(0.5, s.buckets),
      p99: quantile(0.99, s.buckets),
    };
  });
}

export function ms(seconds: number | undefined): string {
  return seconds === undefined ? '–' : `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)} ms`;
}
