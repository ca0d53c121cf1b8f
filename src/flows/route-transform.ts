// Route-level body transforms (remove/rename fields, JSON ↔ XML) on an ordinary proxied route,
// compiled into a two-step flow — forward the request, answer with the response rewritten — so
// the same engine, limits and observability serve them.
import { compileReshape, ReshapeError, type CompiledReshape } from './transforms.ts';
import { DEFAULTS, type CompileResult, type FlowError } from './compile.ts';
import type { BodyTransformSpec } from '../model/index.ts';
import type { BodyRewrite, CompiledFlow } from './types.ts';

const UPSTREAM = 'upstream';

export function compileRouteTransform(service: string, spec: BodyTransformSpec, opts: { prefix?: string; timeoutMs?: number } = {}): CompileResult {
  const prefix = opts.prefix ?? 'transform';
  const errors: FlowError[] = [];
  const rewrite = (side: 'request' | 'response'): BodyRewrite | undefined => {
    const s = spec[side];
    if (!s) return undefined;
    let r: CompiledReshape;
    try {
      r = compileReshape(s);
    } catch (e) {
      errors.push({ field: `${prefix}.${side}.${e instanceof ReshapeError ? e.field : 'map'}`, message: (e as Error).message, code: 'invalid' });
      return undefined;
    }
    // Route transforms run without earlier steps: a map may read $request, not $steps.
    if (r.refs === 'all' || r.refs.size > 0) errors.push({ field: `${prefix}.${side}.map`, message: 'may not refer to steps: a route transform has none', code: 'reference' });
    return { reshape: r, format: s.format, xml: s.xml };
  };
  const request = rewrite('request');
  const response = rewrite('response') ?? { reshape: { refs: new Set() } };
  if (errors.length) return { ok: false, errors };
  const noop = { refs: new Set<string>(), onError: 'fail', fallback: null } as const;
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.callTimeoutMs;
  const maxBytes = spec.maxBodyBytes ?? DEFAULTS.maxResponseBytes;
  const flow: CompiledFlow = {
    timeoutMs: timeoutMs + 1000,
    maxRequestBytes: maxBytes,
    maxResponseBytes: maxBytes,
    hasCode: false,
    steps: [
      {
        ...noop,
        kind: 'call',
        name: UPSTREAM,
        field: prefix,
        service,
        forward: true,
        query: [],
        headers: [],
        timeoutMs,
        // Every status passes through as it is: the route only reshapes bodies.
        ok: () => true,
        parse: 'auto',
        ...(request ? { requestBody: request } : {}),
      },
      { ...noop, kind: 'respond', name: 'reply', field: prefix, status: 200, headers: [], format: 'json', passthrough: { step: UPSTREAM, rewrite: response } },
    ],
  };
  return { ok: true, flow };
}
