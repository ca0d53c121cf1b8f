// Master-key rotation: re-seals every stored secret (sealed secrets, certificate private keys) under
// the current key, in one transaction; envelopes already under it are left alone.
import type { PrismaClient } from './generated/client.ts';
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
      const purpose = `certificate:${c.name}:privateKey`;
      await tx.certificate.update({ where: { name: c.name }, data: { privateKey: keys.seal(keys.open(c.privateKey!, purpose), purpose) } });
      n++;
    }
  });
  return n;
}
