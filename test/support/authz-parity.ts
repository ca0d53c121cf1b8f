// Native and exact mode side by side on one gateway: the same requests answered first by Envoy's own
// filters (authz.mode native), then by the ext_authz callout after the group is switched to exact
// mode, then native again. Status, JSON body, challenge and the identity headers the upstream saw
// must be the same in both modes (the callout is the reference: it is what exact mode promises).
import assert from 'node:assert/strict';
import { authzDecisions, GROUP, identityHeadersOf, type AuthzGateway } from './authz-gateway.ts';
import type { GatewayResponse } from './seed003.ts';

export interface ParityCase {
  what: string;
  /** One request through the gateway; called once per mode (build credentials outside, so both modes see the same). */
  call: () => Promise<GatewayResponse>;
}

/** What a caller and an upstream can tell apart between the two modes. */
export interface Seen {
  status: number;
  body: unknown;
  challenge: string | null;
  /** Identity headers the upstream received (200s only). */
  identity?: Record<string, string>;
}

/** The identity headers an echo upstream saw (its answer lists the request headers). */
export const echoedIdentity = (r: GatewayResponse): Record<string, string> => identityHeadersOf((r.json as { headers: Record<string, string> }).headers);

function seen(r: GatewayResponse, identity: (r: GatewayResponse) => Record<string, string>): Seen {
  const out: Seen = { status: r.status, body: r.status === 200 ? undefined : (r.json ?? r.text), challenge: r.headers.get('www-authenticate') };
  if (r.status === 200) out.identity = identity(r);
  return out;
}

async function setMode(g: AuthzGateway, mode: 'native' | 'exact'): Promise<void> {
  const r = await g.api.patch(`/api/v1/gateway-groups/${GROUP}`, { authz: { mode } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.authz.mode, mode, r.text);
  await g.inSync();
}

/**
 * Runs every case in native mode, then in exact mode (the callout answering, checked by its decision
 * count, for `product` when given), and asserts each pair equal. Leaves the group in native mode. Returns the
 * exact mode's answers, for assertions on what they are.
 */
export async function assertSameInBothModes(
  g: AuthzGateway,
  product: string | undefined,
  cases: readonly ParityCase[],
  identity: (r: GatewayResponse) => Record<string, string> = echoedIdentity,
): Promise<Map<string, Seen>> {
  const { native, exact } = await inBothModes(g, product, cases, identity);
  cases.forEach((c, i) => assert.deepEqual(native[i], exact.get(c.what), `${c.what}: native (actual) and exact (expected) differ`));
  return exact;
}

/** The answers of both modes, case by case (native first, then exact; the group is left native). */
export async function inBothModes(
  g: AuthzGateway,
  product: string | undefined,
  cases: readonly ParityCase[],
  identity: (r: GatewayResponse) => Record<string, string> = echoedIdentity,
): Promise<{ native: Seen[]; exact: Map<string, Seen> }> {
  const native: Seen[] = [];
  for (const c of cases) native.push(seen(await c.call(), identity));
  await setMode(g, 'exact');
  const exact = new Map<string, Seen>();
  try {
    const before = await authzDecisions(g.portico.adminUrl, product ? { product } : {});
    for (const c of cases) exact.set(c.what, seen(await c.call(), identity));
    assert.ok((await authzDecisions(g.portico.adminUrl, product ? { product } : {})) >= before + cases.length, 'exact mode: the callout answered every case');
  } finally {
    await setMode(g, 'native');
  }
  return { native, exact };
}
