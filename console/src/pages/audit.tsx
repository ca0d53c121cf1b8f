// Audit log: who changed what and when, newest first, each entry's before/after as a field diff.
import { useState } from 'preact/hooks';
import { JsonDiff, ProblemBanner, useGet } from '../ui.tsx';

// The audit route declares no response schema in the OpenAPI document yet; when it does, the
// generated type replaces this one.
interface AuditRecord {
  id: string;
  at: string;
  actor: string;
  action: string;
  kind: string;
  key: string;
  before: unknown;
  after: unknown;
}

export function Audit() {
  const [kind, setKind] = useState('');
  const [actor, setActor] = useState('');
  const [before, setBefore] = useState<string | undefined>(undefined);
  const q = new URLSearchParams({ limit: '50', ...(kind ? { kind } : {}), ...(actor ? { actor } : {}), ...(before ? { before } : {}) });
  const [res] = useGet<{ items: AuditRecord[]; nextBefore?: string }>(`/api/v1/audit?${q}`);
  return (
    <section aria-labelledby="h-audit">
      <h2 id="h-audit">Audit log</h2>
      <form class="fields" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="audit-kind">Kind</label>
          <input
            id="audit-kind"
            value={kind}
            placeholder="e.g. services"
            onChange={(e) => {
              setKind(e.currentTarget.value.trim());
              setBefore(undefined);
            }}
          />
        </div>
        <div class="field">
          <label for="audit-actor">Actor</label>
          <input
            id="audit-actor"
            value={actor}
            onChange={(e) => {
              setActor(e.currentTarget.value.trim());
              setBefore(undefined);
            }}
          />
        </div>
      </form>
      <ProblemBanner problem={res?.problem} />
      <ol class="audit">
        {(res?.data?.items ?? []).map((a) => (
          <li key={a.id}>
            <details>
              <summary>
                <time dateTime={a.at}>{new Date(a.at).toLocaleString()}</time> <strong>{a.actor}</strong> {a.action} {a.kind} <code>{a.key}</code>
              </summary>
              <JsonDiff before={a.before ?? undefined} after={a.after ?? undefined} />
            </details>
          </li>
        ))}
      </ol>
      {res?.data?.items.length === 0 && <p>No entries.</p>}
      <div class="actions">
        {before && (
          <button type="button" onClick={() => setBefore(undefined)}>
            Newest
          </button>
        )}
        {res?.data?.nextBefore && (
          <button type="button" onClick={() => setBefore(res.data!.nextBefore)}>
            Older
          </button>
        )}
      </div>
    </section>
  );
}
