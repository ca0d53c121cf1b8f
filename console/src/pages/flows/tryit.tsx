// "Try it": a sample request (method, path, path parameters, query, headers, body, who is calling),
// run once by the server against the real upstreams; the answer and each step's input, output,
// outcome and time (the graph shows them on the nodes too). Admins only: the server refuses viewers.
import { useState } from 'preact/hooks';
import { call, type Problem } from '../../api.ts';
import type { paths } from '../../generated/api.d.ts';
import { Field, ProblemBanner } from '../../ui.tsx';
import { JsonDetails, type TraceStep } from './graph.tsx';
import { type FlowDoc, parseRecord } from './model.ts';

const TRY_PATH: keyof paths = '/api/v1/flows/try';

export interface TryResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  durationMs: number;
  incomplete: string[];
  failedStep?: string;
  trace: TraceStep[];
}

interface Sample {
  method: string;
  /** Unset until typed: the route's own path (base path and match). */
  path?: string;
  params?: string;
  query?: string;
  headers?: string;
  body?: string;
  partner?: string;
  claims?: string;
}

/** The admin API's sample request from the form's text fields; a message for a field that does not parse. */
export function sampleOf(s: Sample): { request?: Record<string, unknown>; error?: { field: string; message: string } } {
  const request: Record<string, unknown> = { method: s.method, path: s.path || '/' };
  const params = parseRecord(s.params ?? '', '=');
  if (params) request.params = params;
  const query = parseRecord(s.query ?? '', '=');
  if (query) request.query = query;
  const headers = parseRecord(s.headers ?? '', ': ');
  if (headers) request.headers = headers;
  if (s.body?.trim()) {
    try {
      request.body = JSON.parse(s.body);
    } catch {
      request.body = s.body;
    }
  }
  const identity: Record<string, unknown> = {};
  if (s.partner) identity.partner = s.partner;
  if (s.claims?.trim()) {
    try {
      identity.claims = JSON.parse(s.claims);
    } catch {
      return { error: { field: 'claims', message: 'is not valid JSON' } };
    }
  }
  if (Object.keys(identity).length) request.identity = identity;
  return { request };
}

export function TryIt(props: { flow: FlowDoc; path: string; canWrite: boolean; onResult(r: TryResult | undefined, p?: Problem): void }) {
  const [typed, setS] = useState<Sample>({ method: 'GET' });
  const s = { ...typed, path: typed.path ?? props.path };
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<TryResult | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [claimsError, setClaimsError] = useState<string | undefined>(undefined);
  const set = (k: keyof Sample) => (v: unknown) => setS({ ...typed, [k]: k === 'path' ? String(v ?? '') : v === undefined ? undefined : String(v) });
  const run = async () => {
    const { request, error } = sampleOf(s);
    setClaimsError(error?.message);
    if (!request) return;
    setBusy(true);
    const r = await call<TryResult>('POST', TRY_PATH, { flow: props.flow, request });
    setBusy(false);
    setResult(r.data);
    setProblem(r.problem);
    props.onResult(r.data, r.problem);
  };
  return (
    <section class="tryit" aria-labelledby="h-tryit">
      <h3 id="h-tryit">Try it</h3>
      <p class="help">Runs the flow once, as it is in the editor, against the services' real endpoints (not through Envoy). Credentials are never shown.</p>
      <form
        aria-label="Sample request"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <div class="tryit-fields">
          <Field spec={{ path: 'sample.method', label: 'Method', type: 'select', options: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] }} value={s.method} onChange={set('method')} />
          <Field spec={{ path: 'sample.samplePath', label: 'Request path' }} value={s.path} onChange={set('path')} />
          <Field spec={{ path: 'sample.params', label: 'Path parameters', type: 'textarea', help: 'one name=value a line' }} value={s.params} onChange={set('params')} />
          <Field spec={{ path: 'sample.query', label: 'Query parameters', type: 'textarea', help: 'one name=value a line' }} value={s.query} onChange={set('query')} />
          <Field spec={{ path: 'sample.headers', label: 'Request headers', type: 'textarea', help: 'one name: value a line' }} value={s.headers} onChange={set('headers')} />
          <Field spec={{ path: 'sample.body', label: 'Request body', type: 'textarea', help: 'JSON, or text' }} value={s.body} onChange={set('body')} />
          <Field spec={{ path: 'sample.partner', label: 'Partner' }} value={s.partner} onChange={set('partner')} />
          <Field spec={{ path: 'sample.claims', label: 'JWT claims (JSON)', type: 'textarea', help: 'e.g. {"sub": "usr_8a3f"}' }} value={s.claims} error={claimsError} onChange={set('claims')} />
        </div>
        <button type="submit" class="primary" disabled={!props.canWrite || busy} title={props.canWrite ? undefined : 'admins only'}>
          {busy ? 'Running…' : 'Try it'}
        </button>
      </form>
      <ProblemBanner problem={problem} />
      {result && <TryOutput result={result} />}
    </section>
  );
}

function TryOutput(props: { result: TryResult }) {
  const r = props.result;
  return (
    <div class="tryit-result" role="status" aria-label="Try it result">
      <p>
        The flow answered <strong>{r.status}</strong> in {Math.round(r.durationMs * 10) / 10} ms
        {r.failedStep ? `; step ${r.failedStep} failed` : ''}
        {r.incomplete.length ? `; incomplete: ${r.incomplete.join(', ')}` : ''}.
      </p>
      <details open>
        <summary>Response body</summary>
        <pre class="code">{pretty(r.body)}</pre>
      </details>
      <table class="trace">
        <caption>Steps as they ran</caption>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Kind</th>
            <th scope="col">Outcome</th>
            <th scope="col">Start (ms)</th>
            <th scope="col">Time (ms)</th>
            <th scope="col">Input and output</th>
          </tr>
        </thead>
        <tbody>
          {r.trace.map((t, i) => (
            <tr key={`${t.name}${i}`} class={t.outcome}>
              <th scope="row">{t.name}</th>
              <td>{t.kind}</td>
              <td>
                {t.outcome}
                {t.error ? `: ${t.error.message}` : ''}
              </td>
              <td>{Math.round(t.startMs * 10) / 10}</td>
              <td>{Math.round(t.durationMs * 10) / 10}</td>
              <td>
                <JsonDetails summary={`Input of ${t.name}`} value={t.input} />
                <JsonDetails summary={`Output of ${t.name}`} value={t.output} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function pretty(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}
