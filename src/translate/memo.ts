// A memory of emitted Envoy JSON across translations, owned by the caller (the pipeline): an emitter
// given equal IR hands back the very object it built last time, so the xDS cache and encoder find
// unchanged routes by identity instead of serialising them again. Output equals what a fresh
// translation gives; only object identity is shared.
import { createHash } from 'node:crypto';
import type { JsonObject } from './envoy/common.ts';

export class EmitMemo {
  /** Entries used by the translation under way, and by the one before (kept one more round). */
  private current = new Map<string, JsonObject>();
  private previous = new Map<string, JsonObject>();
  /** Objects built (misses), for tests and benchmarks. */
  built = 0;

  /** Starts a translation: entries unused by the last two are forgotten. */
  begin(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  /** The object `make` builds for `input` (JSON-serialisable: it is the key), built once per content. */
  get(kind: string, input: unknown, make: () => JsonObject): JsonObject {
    // A digest, not the text, as key: the IR of 10k routes would otherwise be held as strings.
    const key = `${kind}\n${createHash('sha1').update(JSON.stringify(input)).digest('base64')}`;
    let out = this.current.get(key) ?? this.previous.get(key);
    if (!out) {
      out = make();
      this.built++;
    }
    this.current.set(key, out);
    return out;
  }
}
