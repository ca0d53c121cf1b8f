// The code step's sandbox: JavaScript run by QuickJS compiled to WebAssembly, with a CPU-time
// limit (interrupt handler), a memory limit and a stack limit. The code sees only its JSON input
// and returns JSON: no host functions, no I/O, no timers, no modules. Never Node's `vm`.
import { newQuickJSWASMModuleFromVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from 'quickjs-emscripten-core';
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

export type CodeOutcome =
  | { ok: true; value: unknown }
  | { ok: false; kind: 'timeout' | 'memory' | 'error'; message: string };

/**
 * Kept well under Node's own stack (~984 KiB): QuickJS's check must fire before V8's, or the
 * WebAssembly instance is left in a state that aborts on the next free.
 */
const MAX_STACK_BYTES = 256 * 1024;
/** Code steps kept ready (a runtime each); the least recently used is disposed beyond this. */
const MAX_READY = 32;

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

  private constructor(private module: QuickJSWASMModule) {}

  static async create(): Promise<CodeSandbox> {
    const sandbox = new CodeSandbox(await newQuickJSWASMModuleFromVariant(variant));
    // The first run of a fresh WebAssembly instance compiles lazily and is slow: do it now, not
    // inside a request's time limit.
    sandbox.run('return 1', 'null', { timeMs: 1000, memoryBytes: 8 << 20, maxOutputBytes: 64 });
    sandbox.forget('return 1');
    return sandbox;
  }

  /** Why the source does not compile, or undefined when it does. */
  check(source: string): string | undefined {
    const rt = this.module.newRuntime();
    rt.setMaxStackSize(MAX_STACK_BYTES);
    rt.setMemoryLimit(8 << 20);
    rt.setInterruptHandler(shortly(100));
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
    try {
      const entry = this.prepare(source);
      if ('error' in entry) {
        healthy = true;
        return { ok: false, kind: 'error', message: entry.error as string };
      }
      const { runtime, context: ctx, fn } = entry;
      runtime.setMemoryLimit(limits.memoryBytes);
      runtime.setInterruptHandler(shortly(limits.timeMs));
      const input = ctx.newString(inputJson);
      const r = ctx.callFunction(fn, ctx.undefined, input);
      input.dispose();
      if (r.error) {
        const message = errorMessage(ctx, r.error);
        r.error.dispose();
        if (message === 'interrupted') return { ok: false, kind: 'timeout', message: `ran past its ${limits.timeMs} ms CPU limit` };
        if (message === 'out of memory') return { ok: false, kind: 'memory', message: `went over its ${Math.round(limits.memoryBytes / 1048576)} MiB memory limit` };
        healthy = true;
        return { ok: false, kind: 'error', message };
      }
      const text = ctx.typeof(r.value) === 'string' ? ctx.getString(r.value) : undefined;
      r.value.dispose();
      healthy = true;
      if (text === undefined) return { ok: true, value: null };
      if (text.length > limits.maxOutputBytes) return { ok: false, kind: 'memory', message: `returned more than ${limits.maxOutputBytes} bytes` };
      return { ok: true, value: JSON.parse(text) };
    } catch (e) {
      // A failure of the WebAssembly instance itself: start a new one for the next run.
      this.replaceModule();
      return { ok: false, kind: 'error', message: `sandbox failure: ${(e as Error).message}` };
    } finally {
      // After an interrupt or out-of-memory a runtime's state is suspect: never reuse it.
      if (!healthy) this.forget(source);
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
    runtime.setMemoryLimit(32 << 20);
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
      this.replaceModule();
    }
  }

  private replaceModule(): void {
    this.ready.clear();
    // The broken instance is left to the garbage collector; a new one is ready in ~10 ms. Until
    // then runs fail with an error rather than wait, so a request never hangs on it.
    const restarting = {
      newRuntime: () => {
        throw new Error('the sandbox is restarting');
      },
    } as unknown as QuickJSWASMModule;
    this.module = restarting;
    void newQuickJSWASMModuleFromVariant(variant).then(
      (m) => {
        if (this.module === restarting) this.module = m;
      },
      () => undefined,
    );
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
/** The process's sandbox, created on first use. */
export function codeSandbox(): Promise<CodeSandbox> {
  shared ??= CodeSandbox.create();
  return shared;
}
