// IR → envoy.extensions.transport_sockets.tls.v3.Secret, served over SDS: `tls/<certificate>`
// holds a certificate and its key, `ca/<certificate>` a CA that verifies peers.
import type { SecretIR } from '../ir.ts';
import type { JsonObject } from './common.ts';

export function secret(s: SecretIR): JsonObject {
  if (s.kind === 'tls') {
    return {
      name: s.name,
      tls_certificate: { certificate_chain: { inline_string: s.certificateChain }, private_key: { inline_string: s.privateKey } },
    };
  }
  return { name: s.name, validation_context: { trusted_ca: { inline_string: s.trustedCa } } };
}
