// The control plane's Prometheus registry (process metrics plus whatever each component registers),
// and the one way components register a metric on it.
import { Registry, collectDefaultMetrics } from 'prom-client';

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
