// What an audit entry may hold of a resource: everything but private keys and API-key hashes and secrets.
import { canonicalResource, type AnyResource, type KindName } from '../model/index.ts';

/** Removes what must never leave the store: private keys and key hashes. */
export function redact(kind: KindName, r: AnyResource | undefined): unknown {
  if (!r) return undefined;
  const out = { ...(canonicalResource(kind, r) as Record<string, unknown>) };
  if (kind === 'certificates' && 'privateKey' in out) out.privateKey = '[sealed]';
  if (kind === 'apiKeys') {
    delete out.hash;
    delete out.secret;
  }
  return out;
}
