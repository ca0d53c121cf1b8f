// Small building blocks shared by the pages: labelled fields with their inline error, the problem
// banner, and the session context (who is signed in, whether they may change things).
import { type ComponentChildren, createContext, type JSX } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { FieldProblem, Problem, Result, Session } from './api.ts';
import { call } from './api.ts';
import type { FieldSpec } from './kinds.ts';

export const SessionContext = createContext<Session | undefined>(undefined);
export function useSession(): Session {
  return useContext(SessionContext)!;
}
export function useCanWrite(): boolean {
  return useSession().role === 'admin';
}

/** Field errors by field path; an error naming a parent field (endpoints) also shows at its children's fields. */
export function errorFor(errors: FieldProblem[] | undefined, path: string): string | undefined {
  const hit = (errors ?? []).filter((e) => e.field === path || path.startsWith(`${e.field}.`) || path.startsWith(`${e.field}[`));
  return hit.length ? hit.map((e) => e.message).join('; ') : undefined;
}

let ids = 0;
export function Field(props: { spec: FieldSpec; value: unknown; onChange: (v: unknown) => void; error?: string | undefined; options?: string[]; disabled?: boolean }) {
  const [id] = useState(() => `f${++ids}`);
  const { spec, value, onChange, error, disabled } = props;
  const described = [spec.help ? `${id}-help` : '', error ? `${id}-err` : ''].filter(Boolean).join(' ') || undefined;
  const common = { id, name: spec.path, disabled, 'aria-invalid': error ? true : undefined, 'aria-describedby': described } as const;
  let input: JSX.Element;
  switch (spec.type ?? 'text') {
    case 'number':
      input = <input {...common} type="number" value={value === undefined ? '' : String(value)} onInput={(e) => onChange(e.currentTarget.value === '' ? undefined : Number(e.currentTarget.value))} />;
      break;
    case 'checkbox':
      input = <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.currentTarget.checked ? true : undefined)} />;
      break;
    case 'textarea':
      input = <textarea {...common} rows={6} value={value === undefined ? '' : String(value)} onInput={(e) => onChange(e.currentTarget.value === '' ? undefined : e.currentTarget.value)} />;
      break;
    case 'list':
      input = <ListInput common={common} value={value} onChange={onChange} list={props.options ? `${id}-options` : undefined} />;
      break;
    case 'select': {
      const options = props.options ?? spec.options ?? [];
      const v = value === undefined ? '' : String(value);
      input = (
        <select {...common} value={v} onChange={(e) => onChange(e.currentTarget.value === '' ? undefined : e.currentTarget.value)}>
          {!options.includes(v) && <option value={v}>{v || '(choose)'}</option>}
          {options.map((o) => (
            <option value={o} key={o}>
              {o || '(default)'}
            </option>
          ))}
        </select>
      );
      break;
    }
    default:
      input = <input {...common} type="text" value={value === undefined ? '' : String(value)} onInput={(e) => onChange(e.currentTarget.value === '' ? undefined : e.currentTarget.value)} />;
  }
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{spec.label}</label>
      {input}
      {spec.type === 'list' && props.options && (
        <datalist id={`${id}-options`}>
          {props.options.map((o) => (
            <option value={o} key={o} />
          ))}
        </datalist>
      )}
      {spec.help && (
        <small id={`${id}-help`} class="help">
          {spec.help}
        </small>
      )}
      {error && (
        <p id={`${id}-err`} class="field-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** A comma-separated list: the text stays as typed, the value is the parsed array. */
function ListInput(props: { common: Record<string, unknown>; value: unknown; list: string | undefined; onChange: (v: unknown) => void }) {
  const [text, setText] = useState(() => (Array.isArray(props.value) ? props.value.join(', ') : ''));
  return (
    <input
      {...props.common}
      value={text}
      list={props.list}
      onInput={(e) => {
        const t = e.currentTarget.value;
        setText(t);
        const items = t
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        props.onChange(items.length ? items : undefined);
      }}
    />
  );
}

/** The problem's title and detail, and the field errors no form field showed. */
export function ProblemBanner(props: { problem?: Problem | undefined; shown?: (field: string) => boolean }) {
  const p = props.problem;
  if (!p) return null;
  const rest = (p.errors ?? []).filter((e) => !props.shown?.(e.field));
  return (
    <div class="problem" role="alert" tabIndex={-1}>
      <strong>{p.title}</strong> ({p.status}): {p.detail}
      {rest.length > 0 && (
        <ul>
          {rest.map((e) => (
            <li key={`${e.resource}${e.field}`}>
              {e.resource ? `${e.resource}: ` : ''}
              <code>{e.field || '(document)'}</code> {e.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** GETs a path, again whenever `deps` change or `reload()` is called. */
export function useGet<T = any>(path: string | undefined, deps: unknown[] = []): [Result<T> | undefined, () => void] {
  const [result, setResult] = useState<Result<T> | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    call<T>('GET', path).then((r) => live && setResult(r));
    return () => {
      live = false;
    };
  }, [path, tick, ...deps]);
  return [result, () => setTick((t) => t + 1)];
}

export function TableHead(props: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {props.columns.map((c) => (
          <th scope="col" key={c}>
            {c}
          </th>
        ))}
      </tr>
    </thead>
  );
}

export function JsonDiff(props: { before: unknown; after: unknown }) {
  const lines = diffLines(props.before, props.after);
  if (!lines.length) return <p>No field changed.</p>;
  return (
    <table class="diff">
      <TableHead columns={['Field', 'Before', 'After']} />
      <tbody>
        {lines.map((l) => (
          <tr key={l.field}>
            <th scope="row">
              <code>{l.field}</code>
            </th>
            <td class="before">{l.before}</td>
            <td class="after">{l.after}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Leaf-level differences between two JSON values, as field paths (pure). */
export function diffLines(before: unknown, after: unknown, prefix = ''): { field: string; before: string; after: string }[] {
  const isObj = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(before) && isObj(after)) {
    const keys = [...new Set([...Object.keys(before as object), ...Object.keys(after as object)])].sort();
    return keys.flatMap((k) => diffLines((before as any)[k], (after as any)[k], prefix ? `${prefix}.${k}` : k));
  }
  const b = before === undefined ? '' : JSON.stringify(before);
  const a = after === undefined ? '' : JSON.stringify(after);
  return a === b ? [] : [{ field: prefix || '(whole)', before: b, after: a }];
}

/** A secret the server returns once (a new key or token): the message, the secret, and "I have copied it". */
export function ShownOnce(props: { label: string; secret: string; onDone: () => void; id?: string; children: ComponentChildren }) {
  return (
    <div class="minted" role="status" id={props.id} tabIndex={props.id ? -1 : undefined}>
      <p>{props.children} Copy it now: it is shown only once.</p>
      <output class="secret" aria-label={props.label}>
        {props.secret}
      </output>
      <button type="button" onClick={props.onDone}>
        I have copied it
      </button>
    </div>
  );
}
