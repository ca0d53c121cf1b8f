// Binding a listener at start: a port in use (or not bindable) becomes one sentence naming the port
// and the setting that moves it, instead of a stack trace.
/** A start that cannot go on, said in one sentence (a port in use, an address that cannot be bound). */
export class StartupError extends Error {}

/** Binds a listener; a port in use (or not bindable) becomes a StartupError naming it and the setting that moves it. */
export async function bind<T>(what: string, setting: string, host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (e) {
    const text = `${(e as NodeJS.ErrnoException).code ?? ''} ${(e as Error).message}`;
    if (/EADDRINUSE|address already in use/i.test(text)) throw new StartupError(`port ${port} (${what}) is in use: is another Portico running? Stop it or set ${setting}`);
    if (/EACCES|permission denied/i.test(text)) throw new StartupError(`not allowed to listen on port ${port} (${what}): choose another with ${setting}`);
    if (/EADDRNOTAVAIL|ENOTFOUND|address not available/i.test(text)) throw new StartupError(`cannot listen on ${host}:${port} (${what}): no such local address; check ${setting}`);
    throw e;
  }
}
