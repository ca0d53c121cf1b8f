// What the console's flow designer asks of the engine: check a flow as a route would carry it (the
// schema, then the same compiler the runtime uses), and "try it": run a flow once for a sample
// request over the shell's calls, with every step's input and output, credentials redacted.
import { Flow, schemaErrors, type FlowSpec, type ModelSnapshot } from '../model/index.ts';
import { compileFlow, type FlowError } from './compile.ts';
import { runFlow } from './engine.ts';
import type { FlowIO, FlowIdentity, FlowRequest, FlowResult } from './types.ts';

/** A sample request for "try it", as the admin API receives it. */
export interface SampleRequest {
  method?: string;
  path?: string;
  params?: Record<string, string>;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  /** Text as sent, or any other JSON value (sent as JSON). */
  body?: unknown;
  identity?: FlowIdentity;
}

export interface CheckOptions {
  /** Why a code step's source does not compile (the sandbox's check). */
  checkCode?: (source: string) => string | undefined;
}

/** Field errors of a flow (`flow.steps[1].respond.body`), against the model's services; empty when it would be accepted. */
export function checkFlow(value: unknown, model: ModelSnapshot, opts: CheckOptions = {}): FlowError[] {
  const shape = schemaErrors(Flow, value, 'flow');
  if (shape.length) return shape.map((e) => ({ field: e.field, message: e.message, code: 'invalid' }));
  const r = compileFlow(value as FlowSpec, { prefix: 'flow', services: new Set(model.services.keys()), ...(opts.checkCode ? { checkCode: opts.checkCode } : {}) });
  return r.ok ? [] : r.errors;
}

/** Header names whose values are credentials: never shown in a trace. */
const CREDENTIAL = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-portico-credential-secret)$|api[-_]?key|token|secret|password/i;
export const REDACTED = '[redacted]';

/**
 * A copy of `value` with credential-named fields replaced and every occurrence of the given secret
 * values (the sample's credential headers) masked, wherever a step echoed them.
 */
export function redact<T>(value: T, secrets: readonly string[]): T {
  const masks = secrets.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return masks.reduce((s, m) => s.split(m).join(REDACTED), v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = CREDENTIAL.test(k) && (typeof x === 'string' || Array.isArray(x)) ? REDACTED : walk(x);
      return out;
    }
    return v;
  };
  return walk(value) as T;
}

/** The engine's request for a sample: lower-case header names, a JSON body serialised with its type. */
export function sampleRequest(s: SampleRequest): FlowRequest {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.headers ?? {})) headers[k.toLowerCase()] = v;
  const r: FlowRequest = { method: (s.method ?? 'GET').toUpperCase(), path: s.path ?? '/', headers, params: s.params ?? {}, query: s.query ?? {}, identity: s.identity ?? {} };
  if (s.body !== undefined && s.body !== null && s.body !== '') {
    if (typeof s.body === 'string') r.body = s.body;
    else {
      r.body = JSON.stringify(s.body);
      headers['content-type'] ??= 'application/json';
    }
  }
  return r;
}

export type TryOutcome = { ok: false; errors: FlowError[] } | { ok: true; result: FlowResult };

/** Checks the flow, runs it once for the sample with step detail on, and redacts the credentials it carried. */
export async function tryFlow(value: unknown, sample: SampleRequest, model: ModelSnapshot, io: Pick<FlowIO, 'call' | 'sandbox'>, opts: CheckOptions = {}): Promise<TryOutcome> {
  const errors = checkFlow(value, model, opts);
  if (errors.length) return { ok: false, errors };
  const compiled = compileFlow(value as FlowSpec, { prefix: 'flow', services: new Set(model.services.keys()) });
  if (!compiled.ok) return { ok: false, errors: compiled.errors };
  const request = sampleRequest(sample);
  const result = await runFlow(compiled.flow, request, { ...io, detail: true });
  const secrets = Object.entries(request.headers)
    .filter(([k]) => CREDENTIAL.test(k))
    .map(([, v]) => v.replace(/^(Bearer|Basic)\s+/i, ''));
  return { ok: true, result: redact(result, secrets) };
}
