// A bounded least-recently-used map with optional per-entry expiry, for the hot-path caches
// (verified tokens, parsed peer certificates): memory stays bounded whatever callers send.

export class Lru<K, V> {
  private readonly map = new Map<K, { value: V; expiresAt: number }>();

  /** `capacity` 0 disables the cache (every get misses, set stores nothing). */
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  /** The value, unless absent or expired at `now` (an expired entry is dropped). */
  get(key: K, now = 0): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= now) {
      this.map.delete(key);
      return undefined;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  set(key: K, value: V, expiresAt = Number.POSITIVE_INFINITY): void {
    if (this.capacity <= 0) return;
    this.map.delete(key);
    this.map.set(key, { value, expiresAt });
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
