// Redis counters, shared by every limiter replica: one Lua script checks and consumes all counters
// of a decision atomically, and decisions arriving together are micro-batched into ONE EVALSHA (one
// round trip for the whole batch). Time comes from Redis (TIME inside the script) so replicas agree.
// Quotas live in Redis with TTLs past their window's end, so they survive limiter restarts.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { BUCKET_GRACE_MS, DAY_MS, WINDOW_GRACE_MS, type CheckResult, type CounterSpec, type Evaluation } from './algorithms.ts';
import type { CounterBackend } from './backend.ts';

/**
 * The batch script. KEYS: distinct counter keys (window keys get their window suffix here, from
 * Redis time). ARGV: [now override ('' = Redis TIME), #decisions, then per decision: cost, #checks,
 * then per check (five values): key index, 'b', requests, periodMs, capacity | key index, 'w', limit, 'd'|'m', 0].
 * Returns [now, then per decision: allowed, then per check: ok, remaining, resetMs].
 * The arithmetic mirrors algorithms.ts exactly (integers below 2^53; doubles in both languages).
 * Decisions are applied in order, so later ones in a batch see what earlier ones consumed.
 */
export const BATCH_SCRIPT = `
local DAY = ${DAY_MS}
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local floor, ceil, min = math.floor, math.ceil, math.min

-- UTC calendar (days since the epoch <-> civil date), for month windows.
local function civil(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end
local function days(y, m)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = floor((153 * mp + 2) / 5)
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end
local dayId = floor(now / DAY)
local dayEnd = (dayId + 1) * DAY
local y, m = civil(dayId)
local monthId = y * 12 + m - 1
local monthEnd
if m == 12 then monthEnd = days(y + 1, 1) * DAY else monthEnd = days(y, m + 1) * DAY end

-- Parse the batch; collect the stored name of every counter.
local nd = tonumber(ARGV[2])
local decisions = {}
local names, index = {}, {}
local a = 3
for d = 1, nd do
  local cost, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local checks = {}
  for c = 1, n do
    local key = KEYS[tonumber(ARGV[a])]
    local kind = ARGV[a + 1]
    local ch = { kind = kind, p = tonumber(ARGV[a + 2]) }
    if kind == 'b' then
      ch.period, ch.cap = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
      ch.name = key
    else
      if ARGV[a + 3] == 'd' then
        ch.name, ch.reset = key .. ':d' .. dayId, dayEnd
      else
        ch.name, ch.reset = key .. ':m' .. monthId, monthEnd
      end
    end
    a = a + 5
    if not index[ch.name] then
      names[#names + 1] = ch.name
      index[ch.name] = #names
    end
    checks[c] = ch
  end
  decisions[d] = { cost = cost, checks = checks }
end

-- One read for the whole batch; state is then kept here and written once at the end.
local stored = redis.call('MGET', unpack(names))
local state, ttl, dirty = {}, {}, {}
for i = 1, #names do
  local v = stored[i]
  if v then
    local sep = string.find(v, ':', 1, true)
    if sep then
      state[names[i]] = { tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1)) }
    else
      state[names[i]] = tonumber(v)
    end
  end
end

local out = { now }
for d = 1, nd do
  local dec = decisions[d]
  local cost = dec.cost
  local res = {}
  local allowed = 1
  for c = 1, #dec.checks do
    local ch = dec.checks[c]
    local st = state[ch.name]
    if ch.kind == 'b' then
      local r, period = ch.p, ch.period
      local full = ch.cap * period
      local tokens = full
      if type(st) == 'table' then
        local el = now - st[2]
        if el < 0 then el = 0 end
        tokens = min(full, st[1] + el * r)
      end
      local need = cost * period
      if tokens >= need then
        local left = tokens - need
        local untilFull = ceil((full - left) / r)
        res[c] = { 1, floor(left / period), now + untilFull, { left, now }, untilFull + ${BUCKET_GRACE_MS},
          floor(tokens / period), now + ceil((full - tokens) / r) }
      else
        local wait
        if need > full then wait = ceil((full - tokens) / r) else wait = ceil((need - tokens) / r) end
        if wait < 1 then wait = 1 end
        res[c] = { 0, floor(tokens / period), now + wait }
        allowed = 0
      end
    else
      local used = 0
      if type(st) == 'number' then used = st end
      local limit = ch.p
      if used + cost <= limit then
        local after = used + cost
        res[c] = { 1, limit - after, ch.reset, after, ch.reset - now + ${WINDOW_GRACE_MS}, limit - used, ch.reset }
      else
        local left = limit - used
        if left < 0 then left = 0 end
        res[c] = { 0, left, ch.reset }
        allowed = 0
      end
    end
  end
  out[#out + 1] = allowed
  for c = 1, #dec.checks do
    local r = res[c]
    -- A refused request consumes nothing; an allowed one sees the state it leaves behind.
    if allowed == 1 then
      local name = dec.checks[c].name
      state[name] = r[4]
      ttl[name] = r[5]
      dirty[name] = true
      out[#out + 1] = 1
      out[#out + 1] = r[2]
      out[#out + 1] = r[3]
    elseif r[1] == 1 then
      out[#out + 1] = 1
      out[#out + 1] = r[6]
      out[#out + 1] = r[7]
    else
      out[#out + 1] = 0
      out[#out + 1] = r[2]
      out[#out + 1] = r[3]
    end
  end
end

for i = 1, #names do
  local name = names[i]
  if dirty[name] then
    local st = state[name]
    local v
    if type(st) == 'table' then v = string.format('%.0f:%.0f', st[1], st[2]) else v = string.format('%.0f', st) end
    redis.call('SET', name, v, 'PX', string.format('%.0f', ttl[name]))
  end
end
return out
`;

export const BATCH_SCRIPT_SHA = createHash('sha1').update(BATCH_SCRIPT).digest('hex');

export interface RedisCountersOptions {
  /** redis://[user:password@]host:port[/db] (or rediss://). */
  url: string;
  /** Prefix of every counter key. Default `portico:rl:`. */
  keyPrefix?: string;
  /** A decision batch that has no answer after this long fails (and fails open/closed). Default 250 ms. */
  commandTimeoutMs?: number;
  /** Default 2000 ms. */
  connectTimeoutMs?: number;
  /** Most decisions sent in one EVALSHA. Default 256. */
  maxBatch?: number;
  /** Decide with this clock (ms) instead of Redis TIME — for tests of window boundaries only. */
  clock?: () => number;
  /** Called once per EVALSHA round trip, with the number of decisions it carried. */
  onRoundTrip?: (decisions: number) => void;
}

interface Pending {
  specs: readonly CounterSpec[];
  cost: number;
  resolve: (e: Evaluation) => void;
  reject: (e: Error) => void;
}

export class RedisUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisUnavailableError';
  }
}

export class RedisCounters implements CounterBackend {
  readonly kind = 'redis' as const;
  readonly client: Redis;
  private readonly prefix: string;
  private readonly maxBatch: number;
  private readonly clock: (() => number) | undefined;
  private readonly onRoundTrip: ((n: number) => void) | undefined;
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;

  constructor(opts: RedisCountersOptions) {
    this.prefix = opts.keyPrefix ?? 'portico:rl:';
    this.maxBatch = opts.maxBatch ?? 256;
    this.clock = opts.clock;
    this.onRoundTrip = opts.onRoundTrip;
    this.client = new Redis(opts.url, {
      // Fail fast instead of queueing while Redis is away: the limiter fails open (or closed) at
      // once, and ioredis keeps reconnecting in the background.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 250,
      connectTimeout: opts.connectTimeoutMs ?? 2_000,
      retryStrategy: (times) => Math.min(50 * times, 1_000),
      lazyConnect: false,
    });
    // Connection errors surface as failed decisions (counted and logged by the limiter); without a
    // listener ioredis would print every reconnect attempt.
    this.client.on('error', () => {});
    this.client.on('ready', () => {
      this.client.script('LOAD', BATCH_SCRIPT).catch(() => {});
    });
  }

  /** Resolves once connected (or rejects after timeoutMs); decisions before that fail open/closed. */
  async ready(timeoutMs = 5_000): Promise<void> {
    if (this.client.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        reject(new RedisUnavailableError(`redis not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
  }

  evaluate(specs: readonly CounterSpec[], cost: number): Promise<Evaluation> {
    return new Promise<Evaluation>((resolve, reject) => {
      if (this.closed) {
        reject(new RedisUnavailableError('redis counters are closed'));
        return;
      }
      this.queue.push({ specs, cost, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        // Everything that arrives in this turn of the event loop goes in the same batch.
        setImmediate(this.flushScheduled);
      }
    });
  }

  private readonly flushScheduled = () => {
    this.scheduled = false;
    if (this.queue.length) this.flush();
  };

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    this.send(batch).catch((e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      const wrapped = new RedisUnavailableError(`redis: ${err.message}`, { cause: err });
      for (const p of batch) p.reject(wrapped);
    });
  }

  private async send(batch: Pending[]): Promise<void> {
    const keys: string[] = [];
    const keyIndex = new Map<string, number>();
    const argv: (string | number)[] = [this.clock ? String(Math.floor(this.clock())) : '', batch.length];
    for (const p of batch) {
      argv.push(p.cost, p.specs.length);
      for (const s of p.specs) {
        const key = this.prefix + s.key;
        let k = keyIndex.get(key);
        if (k === undefined) {
          keys.push(key);
          k = keys.length;
          keyIndex.set(key, k);
        }
        if (s.kind === 'bucket') argv.push(k, 'b', s.requests, s.periodMs, s.capacity);
        else argv.push(k, 'w', s.limit, s.per === 'day' ? 'd' : 'm', 0);
      }
    }
    if (keys.length === 0) {
      // Nothing to count (cannot happen from the limiter, which skips rule-less decisions).
      const now = this.clock ? this.clock() : Date.now();
      for (const p of batch) p.resolve({ now, allowed: true, results: [] });
      return;
    }
    let reply: unknown;
    try {
      reply = await this.client.evalsha(BATCH_SCRIPT_SHA, keys.length, ...keys, ...argv);
    } catch (e) {
      // Redis restarted (or SCRIPT FLUSH): load the script and try once more.
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      await this.client.script('LOAD', BATCH_SCRIPT);
      reply = await this.client.evalsha(BATCH_SCRIPT_SHA, keys.length, ...keys, ...argv);
    }
    this.onRoundTrip?.(batch.length);
    if (!Array.isArray(reply)) throw new Error('unexpected reply from the rate-limit script');
    const out = reply as number[];
    const now = out[0]!;
    let i = 1;
    for (const p of batch) {
      const allowed = out[i++] === 1;
      const results: CheckResult[] = new Array(p.specs.length);
      for (let c = 0; c < p.specs.length; c++) {
        results[c] = { ok: out[i] === 1, remaining: out[i + 1]!, resetMs: out[i + 2]! };
        i += 3;
      }
      p.resolve({ now, allowed, results });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.queue.length) this.flush();
    this.client.disconnect();
  }
}
