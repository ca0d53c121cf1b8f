// The flow drawn as a graph in plain DOM: a node per step, arrows for order, parallel branches and
// switch cases side by side (stacked on narrow screens). Nodes are buttons (select → side panel);
// each has move and remove buttons; every list ends with an "add step" control. Errors from the
// server's check and the last "try it" run are shown at the node they concern.
import { useState } from 'preact/hooks';
import type { FieldProblem } from '../../api.ts';
import { type FlowDoc, fieldOf, kindOf, type ListPath, ownErrors, STEP_KINDS, type Step, type StepKind, type StepRef, summary } from './model.ts';

export interface TraceStep {
  name: string;
  kind: string;
  outcome: 'ok' | 'failed' | 'skipped';
  durationMs: number;
  startMs: number;
  service?: string;
  error?: { kind: string; message: string };
  input?: unknown;
  output?: any;
}

export interface GraphProps {
  flow: FlowDoc;
  selected: StepRef | undefined;
  errors: FieldProblem[];
  trace: Map<string, TraceStep> | undefined;
  canWrite: boolean;
  onSelect(ref: StepRef): void;
  onAdd(list: ListPath, kind: StepKind): void;
  onMove(ref: StepRef, by: -1 | 1): void;
  onRemove(ref: StepRef): void;
}

const same = (a: StepRef | undefined, list: ListPath, index: number) => !!a && a.index === index && a.list.join('/') === list.join('/');

export function FlowGraph(props: GraphProps) {
  return (
    <div class="flow-graph">
      <div class="flow-start" aria-hidden="true">
        request
      </div>
      <StepList {...props} list={['steps']} steps={props.flow.steps} label="the flow" />
    </div>
  );
}

/** A sequence of steps (one after the other), or a parallel group's branches (side by side). */
function StepList(props: GraphProps & { list: ListPath; steps: Step[] | undefined; label: string; parallel?: boolean }) {
  const steps = props.steps ?? [];
  return (
    <div class={`step-list${props.parallel ? ' parallel' : ''}`}>
      {steps.length > 0 && (
        <ol aria-label={`${props.parallel ? 'Branches' : 'Steps'} of ${props.label}`}>
          {steps.map((s, i) => (
            <li key={`${i}-${s.name}`}>
              <Node {...props} step={s} index={i} count={steps.length} />
            </li>
          ))}
        </ol>
      )}
      {steps.length === 0 && <p class="muted empty">No steps yet.</p>}
      {props.canWrite && <AddStep list={props.list} label={props.label} onAdd={props.onAdd} />}
    </div>
  );
}

function AddStep(props: { list: ListPath; label: string; onAdd: GraphProps['onAdd'] }) {
  const [kind, setKind] = useState<StepKind>('call');
  const id = `add-${props.list.join('-')}`;
  return (
    <div class="add-step">
      <label class="visually-hidden" for={id}>
        Kind of step to add to {props.label}
      </label>
      <select id={id} value={kind} onChange={(e) => setKind(e.currentTarget.value as StepKind)}>
        {STEP_KINDS.map((k) => (
          <option key={k} value={k}>
            {k}
          </option>
        ))}
      </select>
      <button type="button" onClick={() => props.onAdd(props.list, kind)} aria-label={`Add step to ${props.label}`}>
        + Add step
      </button>
    </div>
  );
}

/** A JSON value under a closed disclosure (nothing when undefined). */
export function JsonDetails(props: { summary: string; value: unknown }) {
  if (props.value === undefined) return null;
  return (
    <details>
      <summary>{props.summary}</summary>
      <pre class="code">{JSON.stringify(props.value, null, 2)}</pre>
    </details>
  );
}

function Node(props: GraphProps & { list: ListPath; step: Step; index: number; count: number }) {
  const { step, list, index } = props;
  const kind = kindOf(step);
  const field = fieldOf(list, index);
  const ref = { list, index };
  const errors = ownErrors(props.errors, field);
  const t = props.trace?.get(step.name);
  const selected = same(props.selected, list, index);
  const status = t?.output && typeof t.output === 'object' && 'status' in t.output ? t.output.status : undefined;
  const cls = ['node', `kind-${kind ?? 'none'}`, selected ? 'selected' : '', errors.length ? 'invalid' : '', t ? `ran-${t.outcome}` : ''].filter(Boolean).join(' ');
  return (
    <div class="node-wrap">
      <div class={cls} data-step={step.name}>
        <div class="node-head">
          {/* Its visible text is its name (kind, step, summary): "call user GET users /users/…". */}
          <button type="button" class="node-main" aria-pressed={selected} onClick={() => props.onSelect(ref)}>
            <span class="node-kind">{kind ?? 'no kind'}</span> <span class="node-name">{step.name}</span> <span class="node-summary">{summary(step)}</span>
            {step.when && <span class="node-when"> when {step.when}</span>}
          </button>
          {props.canWrite && (
            <span class="node-tools">
              <button type="button" disabled={index === 0} aria-label={`Move ${step.name} up`} onClick={() => props.onMove(ref, -1)}>
                ↑
              </button>
              <button type="button" disabled={index === props.count - 1} aria-label={`Move ${step.name} down`} onClick={() => props.onMove(ref, 1)}>
                ↓
              </button>
              <button type="button" aria-label={`Remove ${step.name}`} onClick={() => props.onRemove(ref)}>
                ✕
              </button>
            </span>
          )}
        </div>
        {errors.map((e) => (
          <p class="node-error field-error" key={e.field + e.message}>
            <code>{e.field.slice(field.length + 1) || step.name}</code> {e.message}
          </p>
        ))}
        {t && (
          <div class="node-trace">
            <span class={`badge ${t.outcome}`}>
              {t.outcome}
              {status !== undefined ? ` · ${status}` : ''} · {Math.round(t.durationMs * 10) / 10} ms
            </span>
            {t.error && <span class="field-error"> {t.error.message}</span>}
            <JsonDetails summary={`Output of ${step.name}`} value={t.output} />
          </div>
        )}
      </div>
      {kind === 'parallel' && <StepList {...props} list={[...list, index, 'parallel', 'steps']} steps={step.parallel.steps} label={`parallel ${step.name}`} parallel />}
      {kind === 'switch' && (
        <div class="branches cases">
          {(step.switch.cases ?? []).map((c: { when: string; steps: Step[] }, ci: number) => (
            <div class="branch" key={ci}>
              <p class="case-label">
                case {ci + 1}: <code>{c.when}</code>
              </p>
              <StepList {...props} list={[...list, index, 'switch', 'cases', ci, 'steps']} steps={c.steps} label={`case ${ci + 1} of ${step.name}`} />
            </div>
          ))}
          {step.switch.default && (
            <div class="branch">
              <p class="case-label">default</p>
              <StepList {...props} list={[...list, index, 'switch', 'default']} steps={step.switch.default} label={`default of ${step.name}`} />
            </div>
          )}
        </div>
      )}
    </div>
  );
}
