// One page per kind, from its descriptor in kinds.ts: a table of the resources, a form to create or
// edit one (with every field as JSON too), problem+json errors next to the field they name.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { call, type Problem } from '../api.ts';
import { collectionUrl, getPath, itemUrl, KINDS, type KindId, type KindSpec, setPath } from '../kinds.ts';
import { errorFor, Field, ProblemBanner, ShownOnce, useCanWrite, useGet } from '../ui.tsx';

/** Fields the server adds; stripped before a PUT so GET → edit → PUT stays clean. */
const OUTPUT_ONLY = ['revision', 'createdAt', 'updatedAt', 'hasPrivateKey', 'notAfter', 'notBefore', 'subject', 'issuer', 'fingerprintSha256', 'prefix', 'hash', 'product', 'partner'];

function editable(kind: KindSpec, r: Record<string, unknown>): Record<string, unknown> {
  const out = { ...r };
  for (const f of OUTPUT_ONLY) if (f !== kind.keyField) delete out[f];
  return out;
}

export function ResourcePage(props: { kind: KindId; parent?: string; selected?: string; navigate?: (key: string | undefined) => void }) {
  const kind = KINDS[props.kind];
  const canWrite = useCanWrite();
  const [list, reload] = useGet<{ items: any[]; total?: number }>(`${collectionUrl(kind, props.parent)}${kind.unpaged ? '' : '?limit=500'}`, [props.parent]);
  const [localSel, setLocalSel] = useState<string | undefined>(undefined);
  const selected = props.navigate ? props.selected : localSel;
  const select = props.navigate ?? setLocalSel;
  const [creating, setCreating] = useState(false);
  const [minted, setMinted] = useState<{ name: string; key: string } | undefined>(undefined);
  const items = list?.data?.items ?? [];
  const current = items.find((r) => String(r[kind.keyField]) === selected);
  const Heading = props.parent ? 'h3' : 'h2';

  return (
    <section class="resource" aria-labelledby={`h-${kind.id}`}>
      <Heading id={`h-${kind.id}`}>
        {kind.title}
        {props.parent ? ` of ${props.parent}` : ''}
      </Heading>
      {list?.problem && <ProblemBanner problem={list.problem} />}
      {minted && (
        <ShownOnce label={kind.id === 'adminTokens' ? 'new admin token' : 'new API key'} secret={minted.key} onDone={() => setMinted(undefined)}>
          New {kind.id === 'adminTokens' ? 'token' : 'key'} for <strong>{minted.name}</strong>.
        </ShownOnce>
      )}
      <div class="toolbar">
        {canWrite && (
          <button
            type="button"
            onClick={() => {
              setCreating(true);
              select(undefined);
            }}
          >
            New {kind.singular}
          </button>
        )}
        <span class="count">{list?.data ? count(list.data.total ?? items.length, kind) : 'loading…'}</span>
      </div>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">{kind.keyField[0]!.toUpperCase() + kind.keyField.slice(1)}</th>
              {kind.columns.map((c) => (
                <th scope="col" key={c.label}>
                  {c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {items.map((r) => {
              const key = String(r[kind.keyField]);
              return (
                <tr key={key} class={key === selected ? 'selected' : ''}>
                  <th scope="row">
                    <a
                      href={props.navigate ? `#/${kind.id}/${encodeURIComponent(key)}` : '#'}
                      aria-current={key === selected ? 'true' : undefined}
                      onClick={(e) => {
                        e.preventDefault();
                        setCreating(false);
                        select(key);
                      }}
                    >
                      {key}
                    </a>
                  </th>
                  {kind.columns.map((c) => (
                    <td key={c.label}>{c.value(r)}</td>
                  ))}
                </tr>
              );
            })}
            {items.length === 0 && list?.data && (
              <tr>
                <td colSpan={kind.columns.length + 1}>None yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {(creating || current) && (
        <Editor
          key={creating ? '(new)' : selected}
          kind={kind}
          parent={props.parent}
          initial={creating ? kind.template() : editable(kind, current)}
          existing={creating ? undefined : current}
          onSaved={(key, secret) => {
            setCreating(false);
            if (secret) setMinted({ name: key, key: secret });
            reload();
            select(key);
          }}
          onDeleted={() => {
            select(undefined);
            reload();
          }}
          onMinted={(name, key) => {
            setMinted({ name, key });
            reload();
          }}
          onCancel={() => {
            setCreating(false);
            select(undefined);
          }}
        />
      )}
      {current && !creating && kind.children?.map((child) => <ResourcePage key={`${child}/${selected}`} kind={child} parent={String(current[kind.keyField])} />)}
    </section>
  );
}

function count(n: number, kind: KindSpec): string {
  return `${n} ${n === 1 ? kind.singular : kind.title.toLowerCase()}`;
}

function useRefOptions(kind: KindSpec): Record<string, string[]> {
  const refs = useMemo(() => [...new Set(kind.fields.map((f) => f.ref).filter(Boolean))] as KindId[], [kind]);
  const [options, setOptions] = useState<Record<string, string[]>>({});
  useEffect(() => {
    for (const r of refs) {
      call<{ items: any[] }>('GET', `${collectionUrl(KINDS[r])}?limit=500`).then((res) => {
        const names = (res.data?.items ?? []).map((i) => String(i[KINDS[r].keyField]));
        setOptions((o) => ({ ...o, [r]: names }));
      });
    }
  }, [refs]);
  return options;
}

function Editor(props: {
  kind: KindSpec;
  parent?: string | undefined;
  initial: Record<string, unknown>;
  existing?: Record<string, any> | undefined;
  onSaved: (key: string, secret?: string) => void;
  onDeleted: () => void;
  onMinted: (name: string, key: string) => void;
  onCancel: () => void;
}) {
  const { kind, existing } = props;
  const canWrite = useCanWrite();
  const [body, setBody] = useState<Record<string, unknown>>(props.initial);
  const [jsonText, setJsonText] = useState<string | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const refOptions = useRefOptions(kind);
  const formRef = useRef<HTMLFormElement>(null);
  // Keyboard users land in the form that just opened, and on the first field a refusal names.
  useEffect(() => {
    formRef.current?.querySelector<HTMLElement>('input:not(:disabled), select:not(:disabled), textarea:not(:disabled)')?.focus();
  }, []);
  useEffect(() => {
    if (problem) (formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]') ?? formRef.current?.querySelector<HTMLElement>('.problem'))?.focus();
  }, [problem]);
  const title = existing ? `${kind.singular} ${existing[kind.keyField]}` : `New ${kind.singular}`;
  const shownFields = kind.fields.map((f) => f.path);
  const shown = (field: string) => shownFields.some((p) => errorFor([{ field, message: '' }], p) !== undefined);

  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setProblem(undefined);
    try {
      await f();
    } finally {
      setBusy(false);
    }
  };

  const save = (e: Event) => {
    e.preventDefault();
    run(async () => {
      let send = body;
      if (jsonText !== undefined) {
        try {
          send = JSON.parse(jsonText);
        } catch (err) {
          setProblem({ title: 'Invalid JSON', status: 400, detail: String(err), errors: [{ field: '(json)', message: String(err) }] });
          return;
        }
      }
      const key = String(send[kind.keyField] ?? '');
      const res = existing ? await call('PUT', itemUrl(kind, String(existing[kind.keyField]), props.parent), send) : await call('POST', collectionUrl(kind, props.parent), send);
      if (res.problem) return setProblem(res.problem);
      props.onSaved(existing ? String(existing[kind.keyField]) : key || String(res.data?.[kind.keyField] ?? ''), kind.secretField ? res.data?.[kind.secretField] : undefined);
    });
  };

  const remove = () =>
    run(async () => {
      if (!existing || !confirm(`Delete ${kind.singular} ${existing[kind.keyField]}?`)) return;
      const res = await call('DELETE', itemUrl(kind, String(existing[kind.keyField]), props.parent));
      if (res.problem) return setProblem(res.problem);
      props.onDeleted();
    });

  const revoke = () =>
    run(async () => {
      const res = await call('PATCH', itemUrl(kind, String(existing![kind.keyField]), props.parent), { revoked: true }, 'application/merge-patch+json');
      if (res.problem) return setProblem(res.problem);
      props.onSaved(String(existing![kind.keyField]));
    });

  // A rotation mints a new key beside the old one, so callers can switch before the old is revoked.
  const rotate = () =>
    run(async () => {
      const base = String(existing![kind.keyField]).replace(/-r\d{12}$/, '');
      const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 12);
      const name = `${base}-r${stamp}`.slice(0, 63);
      const res = await call('POST', collectionUrl(kind, props.parent), { name, ...(existing!.expiresAt ? { expiresAt: existing!.expiresAt } : {}) });
      if (res.problem) return setProblem(res.problem);
      props.onMinted(name, res.data.key);
    });

  return (
    <form class="editor" onSubmit={save} aria-label={title} ref={formRef}>
      <h4>{title}</h4>
      <ProblemBanner problem={problem} shown={shown} />
      <fieldset disabled={!canWrite || busy}>
        <legend class="visually-hidden">{title}</legend>
        <div class="fields">
          {kind.fields.map((f) => (
            <Field
              key={f.path}
              spec={f}
              value={getPath(body, f.path)}
              disabled={(existing && (f.createOnly || kind.immutable)) || jsonText !== undefined}
              options={f.ref ? [...(f.type === 'select' ? [''] : []), ...(refOptions[f.ref] ?? [])] : undefined}
              error={errorFor(problem?.errors, f.path)}
              onChange={(v) => setBody((b) => setPath(b, f.path, v))}
            />
          ))}
        </div>
        {!(existing && kind.immutable) && (
          <details onToggle={(e) => setJsonText((e.currentTarget as HTMLDetailsElement).open ? JSON.stringify(body, null, 2) : undefined)}>
            <summary>All fields (JSON)</summary>
            <label for={`json-${kind.id}`}>The whole {kind.singular} as JSON (edits here replace the form)</label>
            <textarea id={`json-${kind.id}`} class="code" rows={14} value={jsonText ?? ''} onInput={(e) => setJsonText(e.currentTarget.value)} />
          </details>
        )}
        {canWrite && (
          <div class="actions">
            {!(existing && kind.immutable) && (
              <button type="submit" class="primary">
                {existing ? 'Save' : 'Create'}
              </button>
            )}
            {existing && kind.id === 'apiKeys' && !existing.revoked && (
              <>
                <button type="button" onClick={rotate}>
                  Rotate
                </button>
                <button type="button" onClick={revoke}>
                  Revoke
                </button>
              </>
            )}
            {existing && (
              <button type="button" class="danger" onClick={remove}>
                Delete
              </button>
            )}
            <button type="button" onClick={props.onCancel}>
              Cancel
            </button>
          </div>
        )}
      </fieldset>
      {!canWrite && <p class="readonly-note">Read only: you signed in with a viewer token.</p>}
    </form>
  );
}
