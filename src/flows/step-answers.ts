// The steps that compute rather than call: transform and code steps' results, and the flow's
// answer (a respond step, a call's answer passed through with its body rewritten, or the last result).
import { renderTemplate } from './expressions.ts';
import { endToEndHeaders, headerValueProblem } from './http.ts';
import { identity, StepFailed, type Outcome, type RunState } from './run-state.ts';
import { reshape } from './transforms.ts';
import { acceptsXmlFirst, isJsonType, isXmlType, jsonToXml } from './xml.ts';
import type { BodyRewrite, CodeStep, RespondStep, StepOutput, TransformStep } from './types.ts';

export async function transformStep(run: RunState, step: TransformStep, start: number): Promise<StepOutput> {
  // Plain paths and reshapes without a map answer synchronously: awaited only when they do not.
  const f = step.from.evaluate(run.root);
  const from = f instanceof Promise ? await f : f;
  run.inputs?.set(step.name, from);
  const b = reshape(step.reshape, from, run.bindings);
  const body = b instanceof Promise ? await b : b;
  return { status: 200, headers: {}, body, durationMs: run.now() - start };
}

export async function codeStep(run: RunState, step: CodeStep, start: number): Promise<StepOutput> {
  const sandbox = run.io.sandbox;
  const done = (o: Omit<StepOutput, 'durationMs'>): StepOutput => ({ ...o, durationMs: run.now() - start });
  if (!sandbox) return done({ status: 0, headers: {}, body: null, error: { kind: 'code', message: 'no code sandbox is configured' } });
  const input = step.input ? step.input.evaluate(run.root) : run.root;
  if (input instanceof Promise) throw new Error('code input must be a plain path');
  const json = JSON.stringify(input ?? null);
  run.inputs?.set(step.name, input ?? null);
  if (json.length > run.flow.maxRequestBytes + run.flow.maxResponseBytes * 2)
    return done({ status: 0, headers: {}, body: null, error: { kind: 'limit', message: 'the code step input is too large' } });
  const limits = { timeMs: step.timeMs, memoryBytes: step.memoryBytes, maxOutputBytes: run.flow.maxResponseBytes };
  let r = sandbox.run(step.source, json, limits, run.signal);
  if (r instanceof Promise) {
    // On a worker: the flow's deadline or its caller leaving does not wait for the run.
    run.inflight++;
    try {
      r = await Promise.race([r, run.stopped]);
    } finally {
      run.inflight--;
    }
  }
  return r.ok ? done({ status: 200, headers: {}, body: r.value }) : done({ status: 0, headers: {}, body: null, error: { kind: 'code', message: `code ${r.message}` } });
}

export async function respondStep(run: RunState, step: RespondStep): Promise<Outcome> {
  const headers: Record<string, string> = {};
  for (const [name, t] of step.headers) {
    const r = renderTemplate(t, run.root, identity);
    const v = r instanceof Promise ? await r : r;
    if (v === undefined) continue;
    const problem = headerValueProblem(v);
    if (problem) throw new StepFailed(step.name, { kind: 'expression', message: `header ${name} ${problem}` });
    headers[name] = v;
  }
  if (step.passthrough) return await passthrough(run, step.passthrough.step, step.passthrough.rewrite);
  const status = typeof step.status === 'number' ? step.status : await step.status.evaluate(run.root);
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw new StepFailed(step.name, { kind: 'expression', message: `status evaluated to ${JSON.stringify(status)}, not a status between 200 and 599` });
  }
  const e = step.body ? step.body.evaluate(run.root) : undefined;
  const value = e instanceof Promise ? await e : e;
  if (value === undefined) return { status, headers, body: '' };
  const format = step.format === 'accept' ? (acceptsXmlFirst(run.request.headers.accept) ? 'xml' : 'json') : step.format;
  const body = format === 'xml' ? jsonToXml(value, step.xml) : format === 'text' ? (typeof value === 'string' ? value : JSON.stringify(value)) : JSON.stringify(value);
  headers['content-type'] ??= format === 'xml' ? 'application/xml' : format === 'text' ? 'text/plain; charset=utf-8' : 'application/json';
  return { status, headers, body };
}

/** Answers with a call's status and headers, its body rewritten (route-level transforms). */
async function passthrough(run: RunState, name: string, rw: BodyRewrite): Promise<Outcome> {
  const out = run.root.steps[name]!;
  const type = out.headers['content-type'];
  const headers = endToEndHeaders(out.headers);
  if (!isJsonType(type) && !isXmlType(type)) return { status: out.status, headers, body: serialize(out.body, type) };
  const value = await reshape(rw.reshape, out.body, run.bindings);
  const xml = rw.format === 'accept' ? acceptsXmlFirst(run.request.headers.accept) : rw.format === undefined ? isXmlType(type) : rw.format === 'xml';
  headers['content-type'] = xml ? 'application/xml' : 'application/json';
  return { status: out.status, headers, body: xml ? jsonToXml(value, rw.xml) : JSON.stringify(value) };
}

/** Without a respond step, the flow answers with the last result. */
export function implicitResponse(out: StepOutput | undefined): Outcome {
  if (!out) return { status: 204, headers: {}, body: '' };
  const type = out.headers['content-type'] ?? (typeof out.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json');
  return { status: out.status || 200, headers: { ...endToEndHeaders(out.headers), 'content-type': type }, body: serialize(out.body, type) };
}

function serialize(body: unknown, type: string | undefined): string {
  if (typeof body === 'string') return body;
  if (body === null || body === undefined) return isJsonType(type) ? 'null' : '';
  if (isXmlType(type)) return jsonToXml(body);
  return JSON.stringify(body);
}
