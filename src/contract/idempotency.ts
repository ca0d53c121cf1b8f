// What Envoy's ext_proc filter, the translator and the idempotency processor agree on: the header
// names of the Idempotency-Key protocol, the per-route settings the route hands the processor as
// gRPC metadata, the names of the processor's cluster and filter, and the refusals' bodies.
import { gatewayErrorBody } from './errors.ts';

export const IDEMPOTENCY_HEADERS = {
  /** The client's key (IETF httpapi draft "The Idempotency-Key HTTP Header Field"). */
  key: 'idempotency-key',
  /** Set to `true` on a response served from the store rather than the upstream. */
  replayed: 'idempotent-replayed',
} as const;

/** The cluster of the processor (Envoy's ext_proc gRPC service) and the filter's name in the chain. */
export const IDEMPOTENCY_NAMES = {
  cluster: 'portico.idempotency',
  filter: 'portico.idempotency',
  /** gRPC initial metadata each protected route adds to the processor's stream: its settings. */
  metadata: 'x-portico-idempotency',
} as const;

/** A route's settings as the processor reads them (one stream per request carries them). */
export interface IdempotencyRouteSettings {
  product: string;
  route: string;
  /** A request of a protected method without a key: refused (400) or served unprotected. */
  required: boolean;
  ttlSeconds: number;
  /** Upper-case, sorted. */
  methods: string[];
}

/** `product/route;ttl=…;required=0|1;methods=POST,PATCH`: what the translator writes into the route's metadata. */
export function formatRouteSettings(s: IdempotencyRouteSettings): string {
  return `${s.product}/${s.route};ttl=${s.ttlSeconds};required=${s.required ? 1 : 0};methods=${s.methods.join(',')}`;
}

/** The reverse of formatRouteSettings; undefined for anything else (the stream is then refused). */
export function parseRouteSettings(text: string | undefined): IdempotencyRouteSettings | undefined {
  if (!text) return undefined;
  const m = /^([a-z0-9-]+)\/([a-z0-9-]+);ttl=(\d{1,7});required=([01]);methods=([A-Z,]+)$/.exec(text);
  if (!m) return undefined;
  const ttlSeconds = Number(m[3]);
  if (ttlSeconds < 1) return undefined;
  return { product: m[1]!, route: m[2]!, ttlSeconds, required: m[4] === '1', methods: m[5]!.split(',').filter(Boolean) };
}

export type IdempotencyRefusal = 'missing' | 'invalid' | 'in_flight' | 'mismatch' | 'too_large' | 'unavailable';

/** The gateway's JSON error bodies of the processor's refusals, with their statuses. */
export const IDEMPOTENCY_REFUSALS: Record<IdempotencyRefusal, { status: number; body: string }> = {
  missing: { status: 400, body: gatewayErrorBody('idempotency_key_missing', 'This request needs an Idempotency-Key header.') },
  invalid: { status: 400, body: gatewayErrorBody('invalid_idempotency_key', 'The Idempotency-Key header must be a string of 1 to 255 visible characters.') },
  in_flight: { status: 409, body: gatewayErrorBody('idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed. Retry later.') },
  mismatch: { status: 422, body: gatewayErrorBody('idempotency_key_reused', 'This Idempotency-Key was already used for a different request.') },
  too_large: { status: 413, body: gatewayErrorBody('idempotency_body_too_large', 'A request with an Idempotency-Key may carry at most 960 KiB of body.') },
  unavailable: { status: 503, body: gatewayErrorBody('idempotency_unavailable', 'Duplicate-request protection is temporarily unavailable. Retry later.') },
};
