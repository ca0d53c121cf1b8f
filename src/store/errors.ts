// Why a write did not happen: an invalid resulting model, a stale precondition, a duplicate, or the
// database itself (never the request's fault); the admin API maps each to its status.
import { KINDS, type KindName, type ModelError } from '../model/index.ts';

/** A write refused because the resulting model would be invalid; nothing was written. */
export class ModelValidationError extends Error {
  constructor(readonly errors: ModelError[]) {
    super(errors.map((e) => `${KINDS[e.kind].singular} '${e.key}': ${e.field} ${e.message}`).join('; '));
  }
}

/** What a write expects of a resource it changes (If-Match / If-None-Match). */
export interface Precondition {
  kind: KindName;
  key: string;
  /** The revision the caller read, 'absent' for create-only writes, 'exists' for If-Match: *. */
  revision: number | 'absent' | 'exists';
}

/** A write refused because a resource changed since the caller read it. */
export class PreconditionFailedError extends Error {
  constructor(
    readonly kind: KindName,
    readonly key: string,
    readonly expected: Precondition['revision'],
    readonly actual: number | undefined,
  ) {
    const what = `${KINDS[kind].singular} '${key}'`;
    super(expected === 'absent' ? `${what} already exists` : actual === undefined ? `${what} does not exist` : `${what} is at revision ${actual}, not ${expected}; read it again and retry`);
  }
}

/** The database could not be reached or failed; the write did not happen. */
export class StoreUnavailableError extends Error {}

export class DuplicateError extends Error {}

/** Errors from Prisma, the pg driver or the network: the database, not the request, is at fault. */
export function isDatabaseError(e: unknown): boolean {
  const err = e as { name?: string; constructor?: { name?: string }; code?: unknown } | undefined;
  const name = `${err?.constructor?.name ?? ''} ${err?.name ?? ''}`;
  if (/Prisma|DriverAdapter|DatabaseError/.test(name)) return true;
  return typeof err?.code === 'string' && /^(ECONN|ETIMEDOUT|EPIPE|ENOTFOUND|57P|08)/.test(err.code);
}
