// A memory of the translator's work across translations, owned by the caller (the pipeline). Two
// layers: model → IR parts (a product's routes, the gateway's generated routes) are reused while
// every input they read is the same object as before, and an emitter given the same (or equal) IR
// hands back the very JSON object it built last time, so the xDS cache and encoder find unchanged
// routes by identity instead of serialising them again. Output equals a fresh translation; only
// object identity is shared, which is why translated IR and JSON are never mutated. Routes are kept
// encoded (EncodedMessage), not as JSON: at 10k routes the JSON held between changes was ~25 MB.
import { createHash } from 'node:crypto';
import { EncodedMessage, encodeMessage, ProtoJsonError } from '../proto/index.ts';
import type { JsonObject } from './envoy/common.ts';

/** What an emitter hands back: JSON, or a sub-message kept by its encoding (written as those bytes). */
type Emitted = JsonObject | EncodedMessage;

interface Reused {
  deps: readonly unknown[];
  value: unknown;
}

/** Values `reuseFor` keeps per owner and tag. */
const OWNED_PER_OBJECT = 4;

export class EmitMemo {
  /** Entries used by the translation under way, and by the one before (kept one more round). */
  private current = new Map<string, Emitted>();
  private previous = new Map<string, Emitted>();
  private reusedNow = new Map<string, Reused>();
  private reusedBefore = new Map<string, Reused>();
  /** Equal values handed to `shared`, one object per content (by its JSON), kept as long as the entries. */
  private sharedNow = new Map<string, unknown>();
  private sharedBefore = new Map<string, unknown>();
  /** The content key of each IR object, per kind and emitter variant: an IR part reused by identity costs no hashing. */
  // One WeakMap per (kind, variant), a handful in all: per IR object only the entry and its key. A
  // Map per object cost ~350 bytes (7 MB at 20k routes); a (tag, key) array per object with the tag
  // built anew each time ~110 bytes (2 MB).
  private readonly byObject = new Map<string, Map<string, WeakMap<object, string>>>();
  /** Values `reuseFor` keeps, on the object that owns them (they go with it). */
  private readonly owned = new Map<string, WeakMap<object, Reused | Reused[]>>();
  /** Objects built (misses), for tests and benchmarks. */
  built = 0;
  /** Values derived (misses of `reuse`) per kind, for tests and benchmarks. */
  readonly derived = new Map<string, number>();

  /** Starts a translation: entries unused by the last two are forgotten. */
  begin(): void {
    this.previous = this.current;
    this.current = new Map();
    this.reusedBefore = this.reusedNow;
    this.reusedNow = new Map();
    this.sharedBefore = this.sharedNow;
    this.sharedNow = new Map();
  }

  /**
   * One object for every equal `value` (JSON-serialisable, never mutated) across the values `reuse`
   * keeps: the header mutations, action and limits of 10k route IRs repeat a few contents, and as
   * objects of their own they held ~25 MB.
   */
  shared<T>(value: T): T {
    const key = JSON.stringify(value);
    const one = (this.sharedNow.get(key) ?? this.sharedBefore.get(key) ?? value) as T;
    this.sharedNow.set(key, one);
    return one;
  }

  /**
   * The value `make` derives, reused while every entry of `deps` is the same (===) as when it was
   * made. `deps` must name everything `make` reads that can change between translations.
   */
  reuse<T>(kind: string, key: string, deps: readonly unknown[], make: () => T): T {
    const k = `${kind}\n${key}`;
    const old = this.reusedNow.get(k) ?? this.reusedBefore.get(k);
    if (old && old.deps.length === deps.length && old.deps.every((d, i) => d === deps[i])) {
      this.reusedNow.set(k, old);
      return old.value as T;
    }
    const value = make();
    this.derived.set(kind, (this.derived.get(kind) ?? 0) + 1);
    this.reusedNow.set(k, { deps, value });
    return value;
  }

  /**
   * As `reuse`, with the value kept on `owner` (an object it derives from, which `deps` must hold)
   * instead of under a key: the generated routes of 10k paths (405 fallbacks) keyed by their routes'
   * names held ~2 MB of key strings. `tag` names the kind of value (a few distinct strings); values
   * are forgotten with their owner. An owner keeps its last few values: a route shared by several
   * virtual hosts may own a different value in each (other routes on its path there).
   */
  reuseFor<T>(kind: string, tag: string, owner: object, deps: readonly unknown[], make: () => T): T {
    let byOwner = this.owned.get(tag);
    if (!byOwner) this.owned.set(tag, (byOwner = new WeakMap()));
    const kept = byOwner.get(owner);
    const same = (r: Reused) => r.deps.length === deps.length && r.deps.every((d, i) => d === deps[i]);
    const old = Array.isArray(kept) ? kept.find(same) : kept && same(kept) ? kept : undefined;
    if (old) return old.value as T;
    const value = make();
    this.derived.set(kind, (this.derived.get(kind) ?? 0) + 1);
    const entry = { deps, value };
    if (!kept) byOwner.set(owner, entry);
    else byOwner.set(owner, [entry, ...(Array.isArray(kept) ? kept.slice(0, OWNED_PER_OBJECT - 1) : [kept])]);
    return value;
  }

  /** The object `make` builds for `input` (JSON-serialisable: it is the key), built once per content. */
  get(kind: string, input: unknown, make: () => JsonObject): JsonObject {
    return this.lookup(this.contentKey(kind, input), make) as JsonObject;
  }

  /**
   * As `get` for the JSON of one IR object and the emitter's `variant` (a string naming its other
   * inputs): the same IR object gives the same JSON without serialising it; equal content in a new
   * object (its product derived again) still finds the object built before.
   */
  getFor(kind: string, ir: object, variant: string, make: () => JsonObject): JsonObject {
    return this.emitFor(kind, ir, variant, make) as JsonObject;
  }

  /**
   * As `getFor`, for JSON that is one message of `typeName`: kept and handed back as its encoding.
   * JSON the encoder refuses is handed back as it is (the cache's check then names the problem).
   */
  encodedFor(kind: string, ir: object, variant: string, typeName: string, make: () => JsonObject): Emitted {
    return this.emitFor(kind, ir, variant, () => {
      const json = make();
      try {
        return new EncodedMessage(typeName, encodeMessage(typeName, json));
      } catch (e) {
        if (e instanceof ProtoJsonError) return json;
        throw e;
      }
    });
  }

  /**
   * Ends a translation: encodings only the translation before used get their own copy of their bytes
   * (they may be views into a resource about to be replaced, which they would keep alive).
   */
  end(): void {
    for (const [key, v] of this.previous) if (v instanceof EncodedMessage && this.current.get(key) !== v) v.detach();
  }

  private emitFor(kind: string, ir: object, variant: string, make: () => Emitted): Emitted {
    let variants = this.byObject.get(kind);
    if (!variants) this.byObject.set(kind, (variants = new Map()));
    let keys = variants.get(variant);
    if (!keys) variants.set(variant, (keys = new WeakMap()));
    // Kept in the content map too, so the entry outlives translations that reuse the IR object.
    let key = keys.get(ir);
    if (key === undefined) keys.set(ir, (key = this.contentKey(kind, [ir, variant])));
    return this.lookup(key, make);
  }

  private contentKey(kind: string, input: unknown): string {
    // A digest, not the text, as key: the IR of 10k routes would otherwise be held as strings. The
    // kind is hashed in rather than prefixed: a prefix made each key a two-part string (~56 bytes more).
    return createHash('sha1').update(kind).update('\n').update(JSON.stringify(input)).digest('base64');
  }

  private lookup(key: string, make: () => Emitted): Emitted {
    let out = this.current.get(key) ?? this.previous.get(key);
    if (!out) {
      out = make();
      this.built++;
    }
    this.current.set(key, out);
    return out;
  }
}
