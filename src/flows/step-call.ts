// The call step: builds the request (method, path template, query, headers, body) from the run,
// sends it through the shell's I/O within the step's timeout, and parses the answer.
import { renderTemplate } from './expressions.ts';
import { encodePathValue, encodeQuery, endToEndHeaders, headerValueProblem, textOf } from './http.ts';
import { identity, type RunState } from './run-state.ts';
import { reshape } from './transforms.ts';
import { isJsonType, isXmlType, jsonToXml, xmlToJson } from './xml.ts';
import type { BodyRewrite, CallStep, StepError, StepOutput, StepResponse } from './types.ts';

// A tag, not an Error: a step timing out must not cost a stack trace.
const STEP_TIMEOUT = Object.freeze({ stopped: 'step timeout' });

export async function callStep(run: RunState, step: CallStep, start: number): Promise<StepOutput> {
  const req = run.request;
  const root = run.root;
  const method = step.method ?? (step.forward ? req.method : 'GET');
  // Templates and expressions of plain paths answer synchronously: awaited only when they do not.
  const r = step.path ? renderTemplate(step.path, root, encodePathValue) : undefined;
  const rendered = r instanceof Promise ? await r : r;
  const path = rendered ?? (step.forward ? req.path : '/');
  const query = new Map<string, string | string[]>(step.forward ? Object.entries(req.query ?? {}) : []);
  for (const [name, t] of step.query) {
    const r = renderTemplate(t, root, identity);
    const v = r instanceof Promise ? await r : r;
    if (v === undefined) query.delete(name);
    else query.set(name, v);
  }
  const headers: Record<string, string> = step.forward ? endToEndHeaders(req.headers) : {};
  const fail = (kind: StepError['kind'], message: string): StepOutput => ({ status: 0, headers: {}, body: null, durationMs: run.now() - start, error: { kind, message } });
  for (const [name, t] of step.headers) {
    const r = renderTemplate(t, root, identity);
    const v = r instanceof Promise ? await r : r;
    if (v === undefined) delete headers[name];
    else if (headerValueProblem(v)) return fail('expression', `header ${name} ${headerValueProblem(v)}`);
    else headers[name] = v;
  }
  let body: string | Uint8Array | undefined;
  if (step.body) {
    const e = step.body.evaluate(root);
    const v = e instanceof Promise ? await e : e;
    if (v !== undefined) {
      body = JSON.stringify(v);
      headers['content-type'] = 'application/json';
    }
  } else if (step.forward && req.body !== undefined) {
    body = step.requestBody ? await rewriteRequestBody(run, step.requestBody, headers) : req.body;
  }
  const target = query.size ? path + encodeQuery(query) : path;
  run.inputs?.set(step.name, { service: step.service, method, path: target, headers, ...(body === undefined ? {} : { body: textOf(body) }) });
  // The step's timeout travels with the call (the shell has Envoy enforce it on the upstream
  // request); the timer here is the engine's own guarantee that the step ends on time.
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(reject, step.timeoutMs, STEP_TIMEOUT)));
  let res: StepResponse;
  run.inflight++;
  try {
    const call = run.io.call({ step: step.name, service: step.service, method, path: target, headers, body, timeoutMs: step.timeoutMs, maxResponseBytes: run.flow.maxResponseBytes }, run.signal);
    res = await Promise.race([call, timeout, run.stopped]);
  } catch (e) {
    if (e === STEP_TIMEOUT) return fail('timeout', `${step.service} did not answer within ${step.timeoutMs} ms`);
    if (run.signal.aborted) throw run.signal.reason;
    return fail('transport', `${step.service} could not be reached: ${(e as Error)?.message ?? String(e)}`);
  } finally {
    run.inflight--;
    clearTimeout(timer);
  }
  const durationMs = run.now() - start;
  const size = typeof res.body === 'string' ? Buffer.byteLength(res.body) : res.body.byteLength;
  if (size > run.flow.maxResponseBytes) return { ...fail('limit', `${step.service} answered with more than ${run.flow.maxResponseBytes} bytes`), status: res.status };
  let parsed: unknown;
  try {
    parsed = parseBody(res.body, res.headers['content-type'], step.parse, step);
  } catch (e) {
    return { status: res.status, headers: res.headers, body: null, durationMs, error: { kind: 'transport', message: `${step.service} answered with a body that ${(e as Error).message}` } };
  }
  const out: StepOutput = { status: res.status, headers: res.headers, body: parsed, durationMs };
  if (!step.ok(res.status)) out.error = { kind: 'status', message: `${step.service} answered ${res.status}` };
  return out;
}

/** A forwarded request body reshaped (and converted between JSON and XML) on its way. */
async function rewriteRequestBody(run: RunState, rw: BodyRewrite, headers: Record<string, string>): Promise<string | Uint8Array> {
  const type = run.request.headers['content-type'];
  if (!isJsonType(type) && !isXmlType(type)) return run.request.body!;
  const value = await reshape(rw.reshape, run.root.request.body, run.bindings);
  const xml = rw.format === 'xml' || (rw.format === undefined && isXmlType(type));
  headers['content-type'] = xml ? 'application/xml' : 'application/json';
  return xml ? jsonToXml(value, rw.xml) : JSON.stringify(value);
}

function parseBody(body: string | Uint8Array, type: string | undefined, mode: CallStep['parse'], step: CallStep): unknown {
  const size = typeof body === 'string' ? body.length : body.byteLength;
  if (size === 0) return null;
  const text = textOf(body);
  const as = mode !== 'auto' ? mode : isJsonType(type) ? 'json' : isXmlType(type) ? 'xml' : 'text';
  if (as === 'json') {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error('is not valid JSON');
    }
  }
  if (as === 'xml') return xmlToJson(text, step.xml);
  return text;
}
