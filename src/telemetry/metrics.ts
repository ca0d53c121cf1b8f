// The control plane's Prometheus registry (process metrics plus whatever each component registers),
// and the one way components register a metric on it.
import { Counter, type CounterConfiguration, Gauge, type GaugeConfiguration, Histogram, type HistogramConfiguration, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The metric registered under `name`, made by `make` the first time: several components of one kind
 * in one process (tests, a restart in place) share a registry and must not register a name twice.
 */
export function registeredMetric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** A counter on `registry` (the one already registered under its name, if any). */
export function counter<L extends string>(registry: Registry, config: Omit<CounterConfiguration<L>, 'registers'>): Counter<L> {
  return registeredMetric(registry, config.name, () => new Counter<L>({ ...config, registers: [registry] }));
}

/** A gauge on `registry` (the one already registered under its name, if any). */
export function gauge<L extends string>(registry: Registry, config: Omit<GaugeConfiguration<L>, 'registers'>): Gauge<L> {
  return registeredMetric(registry, config.name, () => new Gauge<L>({ ...config, registers: [registry] }));
}

/** A histogram on `registry` (the one already registered under its name, if any). */
export function histogram<L extends string>(registry: Registry, config: Omit<HistogramConfiguration<L>, 'registers'>): Histogram<L> {
  return registeredMetric(registry, config.name, () => new Histogram<L>({ ...config, registers: [registry] }));
}
