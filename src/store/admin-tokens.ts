// Admin API tokens (admin, viewer, and partner tokens for the partner portal): stored as a keyed
// hash with a public lookup prefix, held in memory for the per-request check, created and deleted
// with an audit entry and a change announcement.
import { secretPrefix } from '../contract/index.ts';
import type { AdminRole } from '../model/index.ts';
import { DuplicateError, databaseFailure, isDatabaseError } from './errors.ts';
import type { PrismaClient } from './generated/client.ts';
import type { SecretHasher } from './secrets.ts';
import { notifyChange } from './sql.ts';

/** admin and viewer: the whole admin API (viewer read only); partner: the partner portal only. */
export type TokenRole = AdminRole | 'partner';

export interface AdminTokenInfo {
  name: string;
  role: TokenRole;
  /** The partner a partner token acts for. */
  partner?: string;
  prefix: string;
  description?: string;
  expiresAt?: string;
  createdAt: string;
  createdBy: string;
}

export class AdminTokens {
  private tokens = new Map<string, { hash: string; info: AdminTokenInfo }>();

  constructor(
    private readonly prisma: PrismaClient,
    /** The store's keyed hasher (known once the store is open). */
    private readonly hasher: () => SecretHasher,
  ) {}

  async reload(): Promise<void> {
    const rows = await this.prisma.adminToken.findMany({ orderBy: { name: 'asc' } });
    this.tokens = new Map(
      rows.map((r) => [
        r.prefix,
        {
          hash: r.hash,
          info: {
            name: r.name,
            role: r.role as TokenRole,
            ...(r.partner ? { partner: r.partner } : {}),
            prefix: r.prefix,
            ...(r.description ? { description: r.description } : {}),
            ...(r.expiresAt ? { expiresAt: r.expiresAt.toISOString() } : {}),
            createdAt: r.createdAt.toISOString(),
            createdBy: r.createdBy,
          },
        },
      ]),
    );
  }

  list(): AdminTokenInfo[] {
    return [...this.tokens.values()].map((t) => t.info).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  count(): number {
    return this.tokens.size;
  }

  /** Creates a token and returns its secret (the only time it is visible). */
  async create(input: { name: string; role: TokenRole; partner?: string; description?: string; expiresAt?: string }, actor: string): Promise<{ token: string; info: AdminTokenInfo }> {
    if ((input.role === 'partner') !== (input.partner !== undefined)) throw new Error('a partner token names its partner, and only a partner token does');
    const minted = this.hasher().mint('pta');
    try {
      await this.prisma.adminToken.create({
        data: {
          name: input.name,
          role: input.role,
          partner: input.partner ?? null,
          description: input.description ?? null,
          prefix: minted.prefix,
          hash: minted.hash,
          expiresAt: input.expiresAt ? new Date(input.expiresAt) : null,
          createdBy: actor,
        },
      });
    } catch (e) {
      if ((e as { code?: string }).code === 'P2002') throw new DuplicateError(`admin token '${input.name}' already exists`);
      throw isDatabaseError(e) ? databaseFailure(e, 'the token was not saved') : e;
    }
    await this.record(actor, 'create', input.name, { name: input.name, role: input.role, ...(input.partner ? { partner: input.partner } : {}) });
    await this.reload();
    return { token: minted.secret, info: this.tokens.get(minted.prefix)!.info };
  }

  /** Revokes a token; with `partner`, only if it is that partner's token. */
  async delete(name: string, actor: string, partner?: string): Promise<boolean> {
    let count: number;
    try {
      ({ count } = await this.prisma.adminToken.deleteMany({ where: { name, ...(partner !== undefined ? { partner } : {}) } }));
    } catch (e) {
      throw isDatabaseError(e) ? databaseFailure(e, 'the token was not revoked', 'path parameter name') : e;
    }
    if (count) await this.record(actor, 'delete', name, undefined);
    await this.reload();
    return count > 0;
  }

  private async record(actor: string, action: string, name: string, after: object | undefined): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const change = await tx.modelChange.create({ data: { actor, summary: `${action} admin token ${name}` } });
      await tx.auditEntry.create({ data: { changeId: change.id, actor, action, kind: 'adminTokens', key: name, ...(after ? { after } : {}) } });
      await notifyChange(tx, change.id);
    });
  }

  /** The token's identity when the presented secret is valid and unexpired. */
  verify(secret: string, now = Date.now()): AdminTokenInfo | undefined {
    const prefix = secretPrefix(secret, 'pta');
    if (!prefix) return undefined;
    const t = this.tokens.get(prefix);
    if (!t || !this.hasher().verify(secret, t.hash)) return undefined;
    if (t.info.expiresAt && Date.parse(t.info.expiresAt) <= now) return undefined;
    return t.info;
  }
}
