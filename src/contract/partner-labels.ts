// The one policy for partner label values in metrics (authz decisions, rate-limit decisions, request
// metrics from access logs): "none" without a partner, "unknown" for a name the model does not hold
// (a token or a log line may name anything), the name itself for the first N partners, then "other".

export const PARTNER_LABEL = { none: 'none', unknown: 'unknown', other: 'other' } as const;

/** PORTICO_METRICS_MAX_PARTNERS' default. */
export const DEFAULT_MAX_PARTNER_LABELS = 200;

export class PartnerLabels {
  private readonly named = new Set<string>();
  private known: ReadonlySet<string> = new Set();

  constructor(private readonly max: number = DEFAULT_MAX_PARTNER_LABELS) {}

  /** The model's partners: only these may become label values. */
  setKnown(partners: Iterable<string>): void {
    this.known = new Set(partners);
  }

  label(partner: string | undefined): string {
    if (partner === undefined || partner === '') return PARTNER_LABEL.none;
    if (!this.known.has(partner)) return PARTNER_LABEL.unknown;
    if (this.named.has(partner)) return partner;
    if (this.named.size < this.max) {
      this.named.add(partner);
      return partner;
    }
    return PARTNER_LABEL.other;
  }
}
