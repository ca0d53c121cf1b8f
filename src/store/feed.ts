// The change feed across replicas: LISTEN for the revision each committed write announces, and a
// periodic reconcile as a safety net for missed notifications or a dropped connection.
import pg from 'pg';
import { CHANGE_CHANNEL } from './sql.ts';
import type { ModelStore } from './store.ts';

export interface ChangeFeedOptions {
  databaseUrl: string;
  /** How often to compare with the database even without notifications. */
  reconcileMs: number;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

export class ChangeFeed {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private syncing: Promise<void> | undefined;
  private again = false;
  private connectedOnce = false;
  private failing = false;

  constructor(
    private readonly store: ModelStore,
    private readonly options: ChangeFeedOptions,
  ) {}

  start(): void {
    void this.connect();
    this.timer = setInterval(() => this.sync('reconcile'), this.options.reconcileMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retry);
    await this.client?.end().catch(() => undefined);
    await this.syncing;
  }

  /** Catches up now; calls that arrive while one runs are folded into one more run. */
  sync(reason: string): void {
    if (this.stopped) return;
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = this.store
      .catchUp()
      .then(
        (moved) => {
          if (moved) this.options.log.info({ reason, revision: this.store.current().revision }, 'caught up with another replica');
          if (this.failing) this.options.log.info({}, 'database reachable again; change feed resumed');
          this.failing = false;
        },
        (e: Error) => {
          // One line per outage, not per attempt: the reconcile keeps trying by itself.
          if (!this.failing) this.options.log.warn({ err: e.message }, 'cannot read changes from the database; serving the last model');
          this.failing = true;
        },
      )
      .finally(() => {
        this.syncing = undefined;
        if (this.again) {
          this.again = false;
          this.sync(reason);
        }
      });
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.options.databaseUrl });
    client.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL && Number(n.payload) > this.store.current().revision) this.sync('notification');
    });
    client.on('error', () => this.reconnect(client));
    client.on('end', () => this.reconnect(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
      this.client = client;
      if (this.connectedOnce) this.options.log.info({}, 'change feed reconnected');
      this.connectedOnce = true;
      // Anything committed while we were not listening.
      this.sync('listen');
    } catch {
      this.reconnect(client);
    }
  }

  private reconnect(client: pg.Client): void {
    if (this.stopped || this.retry) return;
    if (this.client === client) this.client = undefined;
    client.end().catch(() => undefined);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, 1000);
    this.retry.unref();
  }
}
