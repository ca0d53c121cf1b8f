// The flow runtime's metrics: flows and steps by product, route and step (names from the model,
// so the label sets stay as small as the model), and what the runtime refused.
import type { Registry } from 'prom-client';
import { counter, gauge, histogram } from '../telemetry/index.ts';
import type { FlowResult } from './types.ts';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type Refusal = 'unknown_flow' | 'overloaded' | 'payload_too_large' | 'draining';

export class FlowMetrics {
  private readonly requests;
  private readonly duration;
  private readonly stepDuration;
  private readonly stepErrors;
  readonly inProgress;
  private readonly refused;

  constructor(registry: Registry) {
    this.requests = counter(registry, {
      name: 'portico_flow_requests_total',
      help: 'Flow runs by product, route and status class of the answer',
      labelNames: ['product', 'route', 'code_class'] as const,
    });
    this.duration = histogram(registry, {
      name: 'portico_flow_duration_seconds',
      help: 'Flow runs from the request read to the answer',
      labelNames: ['product', 'route'] as const,
      buckets: BUCKETS,
    });
    this.stepDuration = histogram(registry, {
      name: 'portico_flow_step_duration_seconds',
      help: 'Steps of flows (calls, transforms, code) by product, route, step and outcome (ok, failed)',
      labelNames: ['product', 'route', 'step', 'outcome'] as const,
      buckets: BUCKETS,
    });
    this.stepErrors = counter(registry, {
      name: 'portico_flow_step_errors_total',
      help: 'Failed steps by product, route, step and kind (timeout, status, transport, limit, expression, code, cancelled)',
      labelNames: ['product', 'route', 'step', 'kind'] as const,
    });
    this.inProgress = gauge(registry, { name: 'portico_flow_in_progress', help: 'Flow runs in progress in this runtime' });
    this.refused = counter(registry, {
      name: 'portico_flow_refused_total',
      help: 'Requests the flow runtime refused before running a flow, by reason',
      labelNames: ['reason'] as const,
    });
  }

  observe(product: string, route: string, r: FlowResult): void {
    this.requests.inc({ product, route, code_class: `${Math.floor(r.status / 100)}xx` });
    this.duration.observe({ product, route }, r.durationMs / 1000);
    for (const s of r.trace) {
      // Structural steps (parallel, switch, respond) take no time of their own worth a series.
      if (s.outcome === 'skipped' || s.kind === 'parallel' || s.kind === 'switch' || s.kind === 'respond') continue;
      this.stepDuration.observe({ product, route, step: s.name, outcome: s.outcome }, s.durationMs / 1000);
      if (s.error) this.stepErrors.inc({ product, route, step: s.name, kind: s.error.kind });
    }
  }

  refuse(reason: Refusal): void {
    this.refused.inc({ reason });
  }
}
