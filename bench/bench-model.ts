// The synthetic gateway model that the start, admin-apply and admin-writers benches load: many
// products of five prefix routes, partners subscribed with API keys. One builder, so their figures
// speak of the same shape.
import { randomBytes } from 'node:crypto';
import { documentToYaml } from '../src/model/declarative.ts';

export interface BenchModelShape {
  products: number;
  services: number;
  partners: number;
  keysPerPartner: number;
  routesPerProduct?: number;
  /** Absent: one plan `gold` at 100/s. A number: `plan-0…` at 100·(i+1)/s with burst 20, dealt round-robin. */
  plans?: number;
  /** Tag products `team:t0…t19` and strip each product's base path before the upstream. */
  decorated?: boolean;
}

export function benchDocument(shape: BenchModelShape): string {
  const perProduct = shape.routesPerProduct ?? 5;
  const planName = (i: number) => (shape.plans === undefined ? 'gold' : `plan-${i % shape.plans}`);
  return documentToYaml({
    portico: 'v1',
    gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
    services: Array.from({ length: shape.services }, (_, i) => ({
      name: `svc-${i}`,
      endpoints: [{ host: `10.0.${i >> 8}.${i & 255}`, port: 8080 }],
    })),
    products: Array.from({ length: shape.products }, (_, p) => ({
      name: `product-${p}`,
      ...(shape.decorated ? { tags: [`team:t${p % 20}`] } : {}),
      gatewayGroups: ['edge'],
      basePath: `/p${p}`,
      routes: Array.from({ length: perProduct }, (_, r) => ({
        name: `route-${r}`,
        match: { path: { type: 'prefix', value: `/r${r}` }, methods: ['GET', 'POST'] },
        service: `svc-${(p * perProduct + r) % shape.services}`,
        ...(shape.decorated ? { rewrite: { stripPrefix: `/p${p}` } } : {}),
      })),
    })),
    plans:
      shape.plans === undefined
        ? [{ name: 'gold', limits: [{ requests: 100, per: 'second' }] }]
        : Array.from({ length: shape.plans }, (_, i) => ({ name: `plan-${i}`, limits: [{ requests: 100 * (i + 1), per: 'second', burst: 20 }] })),
    partners: Array.from({ length: shape.partners }, (_, i) => ({
      name: `partner-${i}`,
      subscriptions: [{ product: `product-${i % shape.products}`, plan: planName(i) }],
      apiKeys: Array.from({ length: shape.keysPerPartner }, (_, k) => ({
        name: `key-${k}`,
        key: `ptk_${(i * shape.keysPerPartner + k).toString(36).padStart(8, '0')}_${randomBytes(32).toString('base64url')}`,
      })),
    })),
  });
}
