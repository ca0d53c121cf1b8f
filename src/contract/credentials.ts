// The shape of the bearer secrets Portico mints (API keys `ptk_…`, admin tokens `pta_…`): what the
// store writes when minting and what ext_authz and the admin API parse when one is presented.

/** ptk: a partner's API key; pta: an admin API token. */
export type SecretKind = 'ptk' | 'pta';

/** `<kind>_<8-character public prefix>_<43 characters of base64url secret>`. */
export function bearerSecret(kind: SecretKind, prefix: string, body: string): string {
  return `${kind}_${prefix}_${body}`;
}

/** The public lookup prefix of a bearer secret, or undefined when it is not one of ours. */
export function secretPrefix(secret: string, kind: SecretKind): string | undefined {
  const m = new RegExp(`^${kind}_([a-z0-9]{8})_[A-Za-z0-9_-]{43}$`).exec(secret);
  return m?.[1];
}
