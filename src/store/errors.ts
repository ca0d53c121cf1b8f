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

/** A value the database refused although the schema allowed it (e.g. a NUL character in text): the request's fault. */
export class InvalidValueError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The SQLSTATE behind a Prisma, driver-adapter or pg error, wherever that layer put it. */
export function sqlState(e: unknown): string | undefined {
  type Cause = { originalCode?: unknown; code?: unknown };
  const err = e as { name?: unknown; code?: unknown; meta?: { driverAdapterError?: { cause?: Cause } }; cause?: Cause; message?: unknown } | undefined;
  // Prisma's own codes (P2xxx) sit in `code` too; a SQLSTATE there only comes from pg itself.
  const own = typeof err?.name === 'string' && err.name.startsWith('Prisma') ? undefined : err?.code;
  for (const c of [err?.meta?.driverAdapterError?.cause?.originalCode, err?.cause?.originalCode, own]) {
    if (typeof c === 'string' && /^[0-9A-Z]{5}$/.test(c)) return c;
  }
  const m = typeof err?.message === 'string' ? /Code: `([0-9A-Z]{5})`/.exec(err.message) : null;
  return m?.[1];
}

/**
 * What a failed database call means to the caller, without the driver's message (it names source
 * paths and SQL): a data exception (SQLSTATE class 22: bad encoding, out-of-range number) is an
 * invalid value in the request; anything else means the database did not do the work.
 */
export function databaseFailure(e: unknown, what: string, field = '(body)'): Error {
  if (sqlState(e)?.startsWith('22')) return new InvalidValueError(field, 'holds a value the database cannot store (a NUL character, or a number out of range)');
  return new StoreUnavailableError(`${what}: the database failed or could not be reached`, { cause: e });
}

/**
 * What to log for a failure of the database itself: the store's sentence and the driver's code
 * (SQLSTATE or errno), never a stack. Formatting a stack goes through the source maps (parsed on
 * first use, synchronously) and a stack says nothing about an unreachable database; while it is
 * down every replica logs this at once, on the event loop that answers the callouts.
 */
export function unavailableSummary(e: StoreUnavailableError): { message: string; code?: string; kind?: string } {
  const cause = e.cause as { code?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown } } }; cause?: { code?: unknown } } | undefined;
  const codes = [sqlState(cause), cause?.cause?.code, cause?.code].filter((c): c is string => typeof c === 'string');
  // A SQLSTATE first, then an errno (ECONNREFUSED), then Prisma's own (P1001: cannot reach the server).
  const code = codes.find((c) => /^[0-9A-Z]{5}$/.test(c) && !c.startsWith('P')) ?? codes.find((c) => /^E[A-Z]+$/.test(c)) ?? codes[0];
  const kind = cause?.meta?.driverAdapterError?.cause?.kind;
  return { message: e.message, ...(code ? { code } : {}), ...(typeof kind === 'string' ? { kind } : {}) };
}

/** Errors from Prisma, the pg driver or the network: the database, not the request, is at fault. */
export function isDatabaseError(e: unknown): boolean {
  const err = e as { name?: string; constructor?: { name?: string }; code?: unknown } | undefined;
  const name = `${err?.constructor?.name ?? ''} ${err?.name ?? ''}`;
  if (/Prisma|DriverAdapter|DatabaseError/.test(name)) return true;
  return typeof err?.code === 'string' && /^(ECONN|ETIMEDOUT|EPIPE|ENOTFOUND|57P|08)/.test(err.code);
}
