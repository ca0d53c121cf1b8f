// The side panel: the selected step's properties as labelled fields, each with the server's error
// for it underneath (the check runs as you type). Key/value fields (query, headers, rename) are
// edited as lines; the fallback as JSON.
import { useState } from 'preact/hooks';
import type { FieldProblem } from '../../api.ts';
import type { FieldSpec } from '../../kinds.ts';
import { errorFor, Field } from '../../ui.tsx';
import { kindOf, parseRecord, recordText, setField, type Step } from './model.ts';

interface PanelProps {
  step: Step;
  /** The step's field path (flow.steps[0]…), to find its errors. */
  field: string;
  errors: FieldProblem[];
  services: string[];
  disabled: boolean;
  onChange(step: Step): void;
}

// Paths are the controls' names: prefixed, because a control named `remove` or `name` would hide the
// <form> element's own property of that name (Preact calls form.remove() when the panel goes).
type Spec = FieldSpec & { key: string; kind?: 'record' | 'json'; sep?: string };

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const FIELDS: Record<string, Spec[]> = {
  call: [
    { key: 'service', path: 'step.service', label: 'Service', type: 'select' },
    { key: 'method', path: 'step.method', label: 'Method', type: 'select', options: ['', ...METHODS] },
    { key: 'path', path: 'step.path', label: 'Path', help: 'a template: /users/{request.identity.claims.sub}' },
    { key: 'query', path: 'step.query', label: 'Query', type: 'textarea', kind: 'record', sep: '=', help: 'one name=template a line' },
    { key: 'headers', path: 'step.headers', label: 'Headers', type: 'textarea', kind: 'record', sep: ': ', help: 'one name: template a line' },
    { key: 'body', path: 'step.body', label: 'Body', type: 'textarea', help: 'JSONata; sent as JSON' },
    { key: 'timeoutMs', path: 'step.timeoutMs', label: 'Timeout (ms)', type: 'number' },
    { key: 'forward', path: 'step.forward', label: 'Forward the incoming request', type: 'checkbox' },
  ],
  parallel: [{ key: 'wait', path: 'step.wait', label: 'Wait for', type: 'select', options: ['', 'all', 'referenced'], help: 'all (default), or only the branches later steps read' }],
  switch: [],
  respond: [
    { key: 'status', path: 'step.status', label: 'Status', help: 'a number, or JSONata giving one; default 200' },
    { key: 'body', path: 'step.body', label: 'Body', type: 'textarea', help: 'JSONata over {request, steps}' },
    { key: 'headers', path: 'step.headers', label: 'Headers', type: 'textarea', kind: 'record', sep: ': ', help: 'one name: template a line' },
    { key: 'format', path: 'step.format', label: 'Format', type: 'select', options: ['', 'json', 'xml', 'text', 'accept'] },
  ],
  transform: [
    { key: 'from', path: 'step.from', label: 'From', help: 'JSONata: the value to reshape, e.g. steps.user.body' },
    { key: 'pick', path: 'step.pick', label: 'Pick', type: 'list', help: 'comma-separated fields to keep' },
    { key: 'remove', path: 'step.remove', label: 'Remove', type: 'list', help: 'comma-separated fields to drop' },
    { key: 'rename', path: 'step.rename', label: 'Rename', type: 'textarea', kind: 'record', sep: '=', help: 'one old=new a line' },
    { key: 'map', path: 'step.map', label: 'Map', type: 'textarea', help: 'JSONata with the value as $' },
  ],
  code: [
    { key: 'source', path: 'step.source', label: 'Source', type: 'textarea', help: 'a JavaScript function body; `input` holds the input; return JSON' },
    { key: 'input', path: 'step.input', label: 'Input', help: 'JSONata; default {request, steps}' },
    { key: 'timeMs', path: 'step.timeMs', label: 'CPU time limit (ms)', type: 'number' },
  ],
};
const PRODUCES = new Set(['call', 'transform', 'code']);

export function StepPanel(props: PanelProps) {
  const { step, field, errors, disabled } = props;
  const kind = kindOf(step);
  const body = kind ? (step[kind] as Record<string, unknown>) : {};
  const setBody = (key: string, v: unknown) => kind && props.onChange({ ...step, [kind]: setField(body, key, v) });
  const common: Spec[] = [
    { key: 'name', path: 'step.name', label: 'Name', help: 'read by later steps as steps.<name>' },
    { key: 'when', path: 'step.when', label: 'Run when', help: 'JSONata; the step is skipped when false' },
  ];
  return (
    <form class="step-panel" aria-label={`Step ${step.name}`} onSubmit={(e) => e.preventDefault()}>
      <h3>
        {kind ?? 'step'} <code>{step.name}</code>
      </h3>
      {common.map((s) => (
        <Field
          key={s.key}
          spec={s}
          value={step[s.key]}
          disabled={disabled}
          error={errorFor(errors, `${field}.${s.key}`)}
          onChange={(v) => props.onChange(setField(step, s.key, s.key === 'name' ? (v ?? '') : v))}
        />
      ))}
      {(FIELDS[kind ?? ''] ?? []).map((s) => {
        const error = errorFor(errors, `${field}.${kind}.${s.key}`);
        if (s.kind === 'record') return <RecordField key={s.key} spec={s} value={body[s.key] as Record<string, string>} disabled={disabled} error={error} onChange={(v) => setBody(s.key, v)} />;
        const options = s.key === 'service' ? props.services : s.options ? [...s.options] : undefined;
        const value = s.key === 'status' && typeof body.status === 'number' ? String(body.status) : body[s.key];
        const change = (v: unknown) => setBody(s.key, s.key === 'status' && typeof v === 'string' && /^\d{3}$/.test(v) ? Number(v) : v);
        return <Field key={s.key} spec={s} value={value} disabled={disabled} error={error} {...(options ? { options } : {})} onChange={change} />;
      })}
      {kind === 'switch' && <Cases step={step} field={field} errors={errors} disabled={disabled} onChange={props.onChange} />}
      {kind && PRODUCES.has(kind) && (
        <>
          <Field
            spec={{ path: 'step.onError', label: 'On error', type: 'select', options: ['', 'fail', 'continue'], help: 'fail (default): the flow answers with an error; continue: use the fallback' }}
            value={step.onError}
            disabled={disabled}
            error={errorFor(errors, `${field}.onError`)}
            onChange={(v) => props.onChange(setField(step, 'onError', v))}
          />
          <JsonField label="Fallback (JSON)" value={step.fallback} disabled={disabled} error={errorFor(errors, `${field}.fallback`)} onChange={(v) => props.onChange(setField(step, 'fallback', v))} />
        </>
      )}
    </form>
  );
}

/** A switch's cases: each condition, add and remove, and the default branch. */
function Cases(props: { step: Step; field: string; errors: FieldProblem[]; disabled: boolean; onChange(step: Step): void }) {
  const sw = props.step.switch as { cases: Array<{ when: string; steps: Step[] }>; default?: Step[] };
  const set = (next: typeof sw) => props.onChange({ ...props.step, switch: next });
  return (
    <fieldset class="cases-edit">
      <legend>Cases (the first whose condition holds runs)</legend>
      {sw.cases.map((c, i) => (
        <div class="case-edit" key={i}>
          <Field
            spec={{ path: `step.case${i}`, label: `Case ${i + 1} when`, help: 'JSONata' }}
            value={c.when}
            disabled={props.disabled}
            error={errorFor(props.errors, `${props.field}.switch.cases[${i}].when`)}
            onChange={(v) => set({ ...sw, cases: sw.cases.map((x, j) => (j === i ? { ...x, when: String(v ?? '') } : x)) })}
          />
          {!props.disabled && sw.cases.length > 1 && (
            <button type="button" onClick={() => set({ ...sw, cases: sw.cases.filter((_, j) => j !== i) })}>
              Remove case {i + 1}
            </button>
          )}
        </div>
      ))}
      {!props.disabled && (
        <p>
          <button type="button" onClick={() => set({ ...sw, cases: [...sw.cases, { when: 'true', steps: [] }] })}>
            Add case
          </button>{' '}
          {sw.default ? (
            <button type="button" onClick={() => set(setField(sw, 'default', undefined))}>
              Remove default
            </button>
          ) : (
            <button type="button" onClick={() => set({ ...sw, default: [] })}>
              Add default
            </button>
          )}
        </p>
      )}
    </fieldset>
  );
}

/** Lines of `name<sep>value`, kept as typed; the value is the parsed record. */
function RecordField(props: { spec: Spec; value: Record<string, string> | undefined; disabled: boolean; error: string | undefined; onChange(v: unknown): void }) {
  const [text, setText] = useState(() => recordText(props.value, props.spec.sep!));
  return (
    <Field
      spec={props.spec}
      value={text || undefined}
      disabled={props.disabled}
      error={props.error}
      onChange={(v) => {
        const t = String(v ?? '');
        setText(t);
        props.onChange(parseRecord(t, props.spec.sep!));
      }}
    />
  );
}

/** Any JSON value, as typed; invalid JSON is shown as such and not applied. */
function JsonField(props: { label: string; value: unknown; disabled: boolean; error: string | undefined; onChange(v: unknown): void }) {
  const [text, setText] = useState(() => (props.value === undefined ? '' : JSON.stringify(props.value)));
  const [bad, setBad] = useState<string | undefined>(undefined);
  return (
    <Field
      spec={{ path: 'step.fallback', label: props.label, type: 'textarea', help: 'what the step yields when it fails under continue' }}
      value={text || undefined}
      disabled={props.disabled}
      error={bad ?? props.error}
      onChange={(v) => {
        const t = String(v ?? '');
        setText(t);
        if (!t.trim()) {
          setBad(undefined);
          return props.onChange(undefined);
        }
        try {
          props.onChange(JSON.parse(t));
          setBad(undefined);
        } catch {
          setBad('is not valid JSON');
        }
      }}
    />
  );
}
