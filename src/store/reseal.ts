// Master-key rotation: re-seals every stored secret (sealed secrets, certificate private keys, API
// keys) under the current key, in one transaction; envelopes already under it are left alone.
import type { PrismaClient } from './generated/client.ts';
import { apiKeyPurpose, certificatePurpose } from './rows.ts';
import type { KeyRing } from './secrets.ts';

/** Re-seals every stored secret under the current master key; returns how many were re-sealed. */
export async function resealSecrets(prisma: PrismaClient, keys: KeyRing): Promise<number> {
  let n = 0;
  await prisma.$transaction(async (tx) => {
    for (const s of await tx.sealedSecret.findMany()) {
      if (keys.isCurrent(s.envelope)) continue;
      const purpose = `sealed:${s.name}`;
      await tx.sealedSecret.update({ where: { name: s.name }, data: { envelope: keys.seal(keys.open(s.envelope, purpose), purpose), updatedAt: new Date() } });
      n++;
    }
    for (const c of await tx.certificate.findMany({ where: { privateKey: { not: null } } })) {
      if (keys.isCurrent(c.privateKey!)) continue;
      const purpose = certificatePurpose(c.name);
      await tx.certificate.update({ where: { name: c.name }, data: { privateKey: keys.seal(keys.open(c.privateKey!, purpose), purpose) } });
      n++;
    }
    for (const k of await tx.apiKey.findMany({ where: { sealedKey: { not: null } } })) {
      if (keys.isCurrent(k.sealedKey!)) continue;
      const purpose = apiKeyPurpose(k.partnerName, k.name);
      await tx.apiKey.update({ where: { partnerName_name: { partnerName: k.partnerName, name: k.name } }, data: { sealedKey: keys.seal(keys.open(k.sealedKey!, purpose), purpose) } });
      n++;
    }
  });
  return n;
}
