// The code step's sandbox: JavaScript run by QuickJS compiled to WebAssembly, with a CPU-time
// limit (interrupt handler), memory limits and a stack limit. The code sees only its JSON input
// and returns JSON: no host functions, no I/O, no timers, no modules. Never Node's `vm`.
//
// Memory, measured: this QuickJS build has no malloc_usable_size, so JS_SetMemoryLimit counts
// allocations (8 bytes each), not bytes — 64 one-MiB buffers pass an 8 MiB limit. What bounds
// memory instead: (1) each WebAssembly instance has a fixed maximum memory (INSTANCE_MAX_BYTES),
// where QuickJS fails cleanly with "out of memory"; (2) a run whose heap grew by more than its
// limit is stopped (checked on every interrupt poll and once more at the end); (3) an instance
// whose heap has grown past RECYCLE_BYTES (or that failed a run for memory) is swapped for a fresh
// spare, so one run's growth is not the next run's allowance.
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from 'quickjs-emscripten-core';
import variantModule from '@jitl/quickjs-wasmfile-release-sync';

// The package's default export is the variant; its typings describe the module namespace.
const variant = variantModule as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0];

export interface CodeLimits {
  /** CPU time for one run, in milliseconds (the run is synchronous, so wall time is CPU time). */
  timeMs: number;
  memoryBytes: number;
  /** Largest JSON the code may return. */
  maxOutputBytes: number;
}

export type CodeOutcome = { ok: true; value: unknown } | { ok: false; kind: 'timeout' | 'memory' | 'error'; message: string };

/**
 * Kept well under Node's own stack (~984 KiB): QuickJS's check must fire before V8's, or the
 * WebAssembly instance is left in a state that aborts on the next free.
 */
const MAX_STACK_BYTES = 256 * 1024;
/** Code steps kept ready (a runtime each); the least recently used is disposed beyond this. */
const MAX_READY = 32;
const PAGE = 64 * 1024;
/** Hard ceiling of one WebAssembly instance's memory: what all code steps together can hold. */
const INSTANCE_MAX_BYTES = 256 << 20;
const INSTANCE_INITIAL_BYTES = 16 << 20;
/** Past this heap size an instance is replaced between runs. */
const RECYCLE_BYTES = 64 << 20;

interface Instance {
  module: QuickJSWASMModule;
  memory: WebAssembly.Memory;
}

async function newInstance(): Promise<Instance> {
  const memory = new WebAssembly.Memory({ initial: INSTANCE_INITIAL_BYTES / PAGE, maximum: INSTANCE_MAX_BYTES / PAGE });
  const custom = newVariant(variant as Parameters<typeof newVariant>[0], { wasmMemory: memory });
  const module = await newQuickJSWASMModuleFromVariant(custom as typeof variant);
  // The first run of a fresh instance compiles lazily and is slow: do it now, not inside a
  // request's time limit.
  const rt = module.newRuntime();
  rt.setMaxStackSize(MAX_STACK_BYTES);
  const ctx = rt.newContext();
  const r = ctx.evalCode(`(${PREPARE})('return 1')('null')`, 'warm.js');
  (r.error ?? r.value).dispose();
  ctx.dispose();
  rt.dispose();
  return { module, memory };
}

/**
 * Freezes every object reachable from the global object, so a run cannot leave state behind for
 * the next one (assignments to globals or built-in prototypes fail), then compiles the step's
 * source as a function body with the Function constructor, which cannot be broken out of.
 */
const PREPARE = `(source) => {
  const seen = new Set();
  const freeze = (o) => {
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) return;
    seen.add(o);
    Object.freeze(o);
    for (const k of Reflect.ownKeys(o)) {
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d) { freeze(d.value); freeze(d.get); freeze(d.set); }
    }
    freeze(Object.getPrototypeOf(o));
  };
  const parse = JSON.parse, stringify = JSON.stringify;
  const f = Function('input', "'use strict';\\n" + source);
  freeze(globalThis);
  return (text) => stringify(f(parse(text)));
}`;

/** One code step made ready: its own runtime (so its memory limit is its own) and its function. */
interface Ready {
  runtime: QuickJSRuntime;
  context: QuickJSContext;
  fn: QuickJSHandle;
}

export class CodeSandbox {
  private readonly ready = new Map<string, Ready>();
  /** The next instance, once loaded, for when this one must be replaced. */
  private spare: Instance | undefined;
  private spareLoading: Promise<void> | undefined;
  /** This instance should be replaced as soon as the spare is there. */
  private swapDue = false;
  /** This instance is broken: runs fail until the spare is there. */
  private broken = false;

  private constructor(
    private instance: Instance,
    spare: boolean,
  ) {
    if (spare) this.loadSpare();
  }

  /**
   * `spare: false` for a sandbox that mostly checks code: no second instance (a 16 MiB WebAssembly
   * memory) is held in advance; one is loaded when a run first needs a replacement.
   */
  static async create(opts: { spare?: boolean } = {}): Promise<CodeSandbox> {
    return new CodeSandbox(await newInstance(), opts.spare !== false);
  }

  /** Resolves once the spare instance has loaded (its loading holds the thread it runs on for a while). */
  async loaded(): Promise<void> {
    await this.spareLoading;
  }

  /** Resolves once a replacement that was due has happened (for tests and orderly shutdown). */
  async settled(): Promise<void> {
    while (this.swapDue || this.broken) await (this.spareLoading ?? Promise.resolve());
  }

  private get module(): QuickJSWASMModule {
    if (this.swapDue && this.spare) this.swap();
    if (this.broken) throw new Error('the sandbox is restarting');
    return this.instance.module;
  }

  private loadSpare(): void {
    this.spareLoading = newInstance().then(
      (i) => {
        this.spare = i;
        this.spareLoading = undefined;
        if (this.swapDue || this.broken) this.swap();
      },
      () => {
        this.spareLoading = undefined;
      },
    );
  }

  /**
   * Moves to the spare instance (the old one goes to the garbage collector) and loads the next.
   * Without a spare yet, a healthy instance goes on serving until it comes; a broken one does not.
   */
  private swap(broken = false): void {
    if (!this.spare) {
      this.swapDue = true;
      if (broken) {
        this.broken = true;
        this.ready.clear();
      }
      if (!this.spareLoading) this.loadSpare();
      return;
    }
    for (const source of [...this.ready.keys()]) this.forget(source);
    this.instance = this.spare;
    this.spare = undefined;
    this.swapDue = false;
    this.broken = false;
    this.loadSpare();
  }

  /** Why the source does not compile, or undefined when it does. */
  check(source: string): string | undefined {
    const rt = this.module.newRuntime();
    rt.setMaxStackSize(MAX_STACK_BYTES);
    rt.setMemoryLimit(8 << 20);
    // Compiling only: a guard against a pathological source, generous so a loaded machine never refuses valid code.
    rt.setInterruptHandler(shortly(1000));
    const ctx = rt.newContext();
    try {
      const src = ctx.newString(source);
      const make = ctx.evalCode(`(source) => { Function('input', "'use strict';\\n" + source); }`, 'check.js');
      if (make.error) throw new Error('sandbox bootstrap failed');
      const r = ctx.callFunction(make.value, ctx.undefined, src);
      src.dispose();
      make.value.dispose();
      if (r.error) {
        const message = errorMessage(ctx, r.error);
        r.error.dispose();
        return message;
      }
      r.value.dispose();
      return undefined;
    } finally {
      ctx.dispose();
      rt.dispose();
    }
  }

  /** Runs the source as a function of `input` (given as JSON text); synchronous and bounded by `limits`. */
  run(source: string, inputJson: string, limits: CodeLimits): CodeOutcome {
    let healthy = false;
    let recycle = false;
    const overMemory: CodeOutcome = { ok: false, kind: 'memory', message: `went over its ${Math.round(limits.memoryBytes / 1048576)} MiB memory limit` };
    try {
      const entry = this.prepare(source);
      if ('error' in entry) {
        healthy = true;
        return { ok: false, kind: 'error', message: entry.error as string };
      }
      const { runtime, context: ctx, fn } = entry;
      const memory = this.instance.memory;
      const heapAtStart = memory.buffer.byteLength;
      const grown = () => memory.buffer.byteLength - heapAtStart > limits.memoryBytes;
      const deadline = performance.now() + limits.timeMs;
      let stoppedForMemory = false;
      runtime.setMemoryLimit(limits.memoryBytes);
      runtime.setInterruptHandler(() => {
        if (grown()) stoppedForMemory = true;
        return stoppedForMemory || performance.now() > deadline;
      });
      const input = ctx.newString(inputJson);
      const r = ctx.callFunction(fn, ctx.undefined, input);
      input.dispose();
      if (r.error) {
        const message = errorMessage(ctx, r.error);
        r.error.dispose();
        if (message === 'out of memory' || stoppedForMemory) {
          recycle = true;
          return overMemory;
        }
        if (message === 'interrupted') {
          // An interrupt unwinds QuickJS cleanly and the realm is frozen: the prepared step is
          // kept (preparing it again costs far more than a run).
          healthy = true;
          return { ok: false, kind: 'timeout', message: `ran past its ${limits.timeMs} ms CPU limit` };
        }
        healthy = true;
        return { ok: false, kind: 'error', message };
      }
      const text = ctx.typeof(r.value) === 'string' ? ctx.getString(r.value) : undefined;
      r.value.dispose();
      // Between interrupt polls a run can allocate much: judge its growth once more at the end.
      if (grown()) {
        recycle = true;
        return overMemory;
      }
      healthy = true;
      if (text === undefined) return { ok: true, value: null };
      if (text.length > limits.maxOutputBytes) return { ok: false, kind: 'memory', message: `returned more than ${limits.maxOutputBytes} bytes` };
      return { ok: true, value: JSON.parse(text) };
    } catch (e) {
      // A failure of the WebAssembly instance itself: move to a fresh one for the next run.
      const restarting = this.broken;
      this.swap(true);
      return { ok: false, kind: 'error', message: restarting ? 'the sandbox is restarting' : `sandbox failure: ${(e as Error).message}` };
    } finally {
      // After running out of memory (or a failure of the instance) a runtime's state is suspect.
      if (!healthy && !this.broken) this.forget(source);
      if (recycle || this.instance.memory.buffer.byteLength > RECYCLE_BYTES) this.swap();
    }
  }

  private prepare(source: string): Ready | { error: string } {
    const hit = this.ready.get(source);
    if (hit) {
      // Most recently used last, so the first key is the one to evict.
      this.ready.delete(source);
      this.ready.set(source, hit);
      return hit;
    }
    const runtime = this.module.newRuntime();
    runtime.setMaxStackSize(MAX_STACK_BYTES);
    runtime.setMemoryLimit(INSTANCE_MAX_BYTES);
    runtime.setInterruptHandler(shortly(1000));
    const context = runtime.newContext();
    const make = context.evalCode(PREPARE, 'prepare.js');
    const src = context.newString(source);
    const r = make.error ? make : context.callFunction(make.value, context.undefined, src);
    src.dispose();
    if (!make.error) make.value.dispose();
    if (r.error) {
      const error = errorMessage(context, r.error);
      r.error.dispose();
      context.dispose();
      runtime.dispose();
      return { error };
    }
    const entry = { runtime, context, fn: r.value };
    this.ready.set(source, entry);
    if (this.ready.size > MAX_READY) this.forget(this.ready.keys().next().value as string);
    return entry;
  }

  /** Disposes a prepared step (after a failure, or when evicted). */
  forget(source: string): void {
    const entry = this.ready.get(source);
    if (!entry) return;
    this.ready.delete(source);
    try {
      entry.fn.dispose();
      entry.context.dispose();
      entry.runtime.dispose();
    } catch {
      this.swap(true);
    }
  }
}

function shortly(ms: number): () => boolean {
  const deadline = performance.now() + ms;
  return () => performance.now() > deadline;
}

function errorMessage(ctx: QuickJSContext, handle: QuickJSHandle): string {
  const e = ctx.dump(handle) as { name?: string; message?: string } | string;
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && typeof e.message === 'string') return e.name && e.name !== 'InternalError' && e.name !== 'Error' ? `${e.name}: ${e.message}` : e.message;
  return String(e);
}

let shared: Promise<CodeSandbox> | undefined;
/**
 * The process's sandbox, created on first use. It compiles code steps at write time (runs go to the
 * CodePool's workers), so it holds no spare: that was 16 MiB of the control plane's RSS, loaded on
 * the main thread while it starts.
 */
export function codeSandbox(): Promise<CodeSandbox> {
  // A failed load is tried again by the next caller.
  shared ??= CodeSandbox.create({ spare: false }).catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return shared;
}
