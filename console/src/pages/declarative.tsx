// Declarative: paste or upload a YAML (or JSON) document, preview what applying it changes, apply
// it; export the model as YAML.
import { useState } from 'preact/hooks';
import { call, type Problem } from '../api.ts';
import { ProblemBanner, useCanWrite } from '../ui.tsx';

interface ApplyResult {
  dryRun: boolean;
  changed: boolean;
  revision: number;
  summary: { create: number; update: number; delete: number };
  changes: { action: string; kind: string; key: string; fields?: { field: string; before?: unknown; after?: unknown }[] }[];
  /** What the document leaves out, kept because the apply did not prune. */
  leftOut?: { kind: string; key: string }[];
}

const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));

export function Declarative() {
  const canWrite = useCanWrite();
  const [text, setText] = useState('');
  const [tag, setTag] = useState('');
  const [prune, setPrune] = useState(false);
  const [result, setResult] = useState<ApplyResult | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const query = (dryRun: boolean) => `/api/v1/config?${new URLSearchParams({ ...(tag ? { tag } : {}), ...(dryRun ? { dryRun: 'true' } : {}), ...(prune ? { prune: 'true' } : {}) })}`;
  const send = async (dryRun: boolean) => {
    setBusy(true);
    setProblem(undefined);
    const res = await call<ApplyResult>('POST', query(dryRun), text, 'application/yaml');
    setBusy(false);
    if (res.problem) {
      setResult(undefined);
      return setProblem(res.problem);
    }
    setResult(res.data);
  };
  const exportModel = async () => {
    const res = await call<string>('GET', `/api/v1/config?${new URLSearchParams({ format: 'yaml', ...(tag ? { tag } : {}) })}`);
    if (res.problem) return setProblem(res.problem);
    setText(res.data ?? '');
    setResult(undefined);
  };
  const download = () => {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'application/yaml' }));
    a.download = tag ? `portico-${tag}.yaml` : 'portico.yaml';
    a.click();
    URL.revokeObjectURL(a.href);
  };

  return (
    <section aria-labelledby="h-declarative">
      <h2 id="h-declarative">Declarative configuration</h2>
      <p>
        Applying a document creates or replaces the resources it describes; what it leaves out is kept. With <strong>Prune</strong>, the model (or, with a tag, the resources carrying that tag) becomes
        exactly the document: what it leaves out is <strong>deleted</strong>. Preview first.
      </p>
      <div class="fields">
        <div class="field">
          <label for="decl-tag">Tag (optional)</label>
          <input id="decl-tag" value={tag} onInput={(e) => setTag(e.currentTarget.value)} aria-describedby="decl-tag-help" />
          <small id="decl-tag-help" class="help">
            limit export and apply to resources tagged so, e.g. team:orders
          </small>
        </div>
        <div class="field">
          <label for="decl-prune">
            <input
              id="decl-prune"
              type="checkbox"
              checked={prune}
              onChange={(e) => {
                setPrune(e.currentTarget.checked);
                setResult(undefined);
              }}
            />{' '}
            Prune: delete what the document leaves out
          </label>
        </div>
        <div class="field">
          <label for="decl-file">Upload a file</label>
          <input
            id="decl-file"
            type="file"
            accept=".yaml,.yml,.json,application/yaml,application/json"
            onChange={async (e) => {
              const f = e.currentTarget.files?.[0];
              if (f) setText(await f.text());
            }}
          />
        </div>
      </div>
      <label for="decl-text">Document (YAML or JSON)</label>
      <textarea id="decl-text" class="code" rows={18} value={text} onInput={(e) => setText(e.currentTarget.value)} spellcheck={false} />
      <div class="actions">
        <button type="button" onClick={exportModel}>
          Export current model
        </button>
        <button type="button" onClick={download} disabled={!text}>
          Download
        </button>
        {canWrite && (
          <>
            <button type="button" disabled={busy || !text} onClick={() => send(true)}>
              Preview changes
            </button>
            <button type="button" class="primary" disabled={busy || !text || !result?.dryRun} onClick={() => send(false)}>
              Apply
            </button>
          </>
        )}
      </div>
      <ProblemBanner problem={problem} />
      {result && (
        <div class="apply-result" role="status">
          <h3>{result.dryRun ? 'Would change' : `Applied (revision ${result.revision})`}</h3>
          <p>
            {result.summary.create} created, {result.summary.update} updated, {result.summary.delete} deleted.
            {result.leftOut?.length ? ` ${result.leftOut.length} not in the document, kept (Prune would delete them).` : ''}
          </p>
          <ul class="changes">
            {result.changes.map((c) => (
              <li key={`${c.kind}/${c.key}`} class={c.action}>
                <strong>
                  {c.action === 'create' ? '+' : c.action === 'delete' ? '−' : '~'} {c.kind} {c.key}
                </strong>
                {c.fields && (
                  <ul>
                    {c.fields.map((f) => (
                      <li key={f.field}>
                        <code>{f.field}</code>: {show(f.before)} → {show(f.after)}
                      </li>
                    ))}
                  </ul>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}
