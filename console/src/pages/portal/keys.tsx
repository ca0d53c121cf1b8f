// The partner's own API keys: create (the key shown once), rotate (a new key beside the old one),
// revoke, and delete once revoked. Field errors from problem+json appear at their field.
import { useState } from 'preact/hooks';
import { api, type Problem, problemOf } from '../../api.ts';
import { errorFor, Field, ProblemBanner, ShownOnce, TableHead } from '../../ui.tsx';
import { useLoad } from './load.ts';

const FORM_FIELDS = [
  { path: 'name', label: 'Name', help: 'lowercase letters, digits and -, e.g. web-shop' },
  { path: 'description', label: 'Description' },
  { path: 'expiresAt', label: 'Expires at', help: 'optional, e.g. 2027-01-31T00:00:00Z' },
];

export function Keys() {
  const [loaded, reload] = useLoad(async () => {
    const { data, error, response } = await api.GET('/api/v1/portal/keys');
    return data ? { data } : { problem: problemOf(error, response) };
  });
  const [creating, setCreating] = useState(false);
  const [form, setForm] = useState<Record<string, string | undefined>>({});
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [minted, setMinted] = useState<{ name: string; key: string; replaces?: string } | undefined>(undefined);
  const [confirming, setConfirming] = useState<string | undefined>(undefined);
  const items = loaded?.data?.items ?? [];

  const showMinted = (m: { name: string; key: string; replaces?: string | undefined }) => {
    setMinted({ name: m.name, key: m.key, ...(m.replaces ? { replaces: m.replaces } : {}) });
    reload();
    setTimeout(() => document.getElementById('minted')?.focus());
  };
  const failed = (p: Problem) => {
    setProblem(p);
    // Focus the first field named, or the banner.
    setTimeout(() => (document.querySelector<HTMLElement>('[aria-invalid="true"]') ?? document.querySelector<HTMLElement>('.problem'))?.focus());
  };
  const create = async (e: Event) => {
    e.preventDefault();
    const body = Object.fromEntries(Object.entries(form).filter(([, v]) => v !== undefined)) as { name: string };
    const { data, error, response } = await api.POST('/api/v1/portal/keys', { body });
    if (!data) return failed(problemOf(error, response));
    setProblem(undefined);
    setCreating(false);
    setForm({});
    showMinted(data);
  };
  const rotate = async (name: string) => {
    const { data, error, response } = await api.POST('/api/v1/portal/keys/{name}/rotate', { params: { path: { name } }, body: {} });
    if (!data) return failed(problemOf(error, response));
    setProblem(undefined);
    showMinted(data);
  };
  const remove = async (name: string) => {
    const { error, response } = await api.DELETE('/api/v1/portal/keys/{name}', { params: { path: { name } } });
    if (!response.ok) return failed(problemOf(error, response));
    setProblem(undefined);
    reload();
  };
  const revoke = async (name: string) => {
    const { data, error, response } = await api.POST('/api/v1/portal/keys/{name}/revoke', { params: { path: { name } } });
    setConfirming(undefined);
    if (!data) return failed(problemOf(error, response));
    setProblem(undefined);
    reload();
  };

  return (
    <section aria-labelledby="h-keys">
      <h2 id="h-keys">API keys</h2>
      <ProblemBanner problem={loaded?.problem} />
      {minted && (
        <ShownOnce id="minted" label="new API key" secret={minted.key} onDone={() => setMinted(undefined)}>
          New key <strong>{minted.name}</strong>
          {minted.replaces ? ` (replaces ${minted.replaces}, which keeps working until you revoke it)` : ''}.
        </ShownOnce>
      )}
      <ProblemBanner problem={problem} shown={(f) => creating && FORM_FIELDS.some((s) => s.path === f)} />
      <div class="toolbar">
        {!creating && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New API key
          </button>
        )}
      </div>
      {creating && (
        <form class="editor" aria-label="New API key" onSubmit={create}>
          <div class="fields">
            {FORM_FIELDS.map((spec) => (
              <Field key={spec.path} spec={spec} value={form[spec.path]} onChange={(v) => setForm({ ...form, [spec.path]: v as string | undefined })} error={errorFor(problem?.errors, spec.path)} />
            ))}
          </div>
          <div class="actions">
            <button type="submit" class="primary">
              Create
            </button>
            <button
              type="button"
              onClick={() => {
                setCreating(false);
                setProblem(undefined);
              }}
            >
              Cancel
            </button>
          </div>
        </form>
      )}
      {loaded?.data && items.length === 0 && <p>No keys yet.</p>}
      {items.length > 0 && (
        <div class="table-wrap">
          <table aria-label="API keys">
            <TableHead columns={['Name', 'Prefix', 'Status', 'Expires', 'Description', 'Actions']} />
            <tbody>
              {items.map((k) => (
                <tr key={k.name}>
                  <th scope="row">{k.name}</th>
                  <td>
                    <code>{k.prefix}</code>
                  </td>
                  <td>{k.revoked ? 'revoked' : 'active'}</td>
                  <td>{k.expiresAt ? new Date(k.expiresAt).toLocaleString() : '—'}</td>
                  <td>{k.description ?? ''}</td>
                  <td>
                    <div class="actions">
                      {k.revoked && (
                        <button type="button" aria-label={`Delete ${k.name}`} onClick={() => remove(k.name)}>
                          Delete
                        </button>
                      )}
                      {!k.revoked && confirming !== k.name && (
                        <>
                          <button type="button" aria-label={`Rotate ${k.name}`} onClick={() => rotate(k.name)}>
                            Rotate
                          </button>
                          <button type="button" aria-label={`Revoke ${k.name}`} onClick={() => setConfirming(k.name)}>
                            Revoke
                          </button>
                        </>
                      )}
                      {confirming === k.name && (
                        <>
                          <span>Revoke {k.name}? Callers using it are refused.</span>
                          <button type="button" class="danger" aria-label={`Confirm revoking ${k.name}`} onClick={() => revoke(k.name)}>
                            Revoke
                          </button>
                          <button type="button" onClick={() => setConfirming(undefined)}>
                            Keep it
                          </button>
                        </>
                      )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
