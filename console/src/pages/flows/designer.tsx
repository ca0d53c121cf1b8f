// The flow designer page: pick a route (or name a new one), edit its flow as a graph with a side
// panel or as JSON or YAML text (the views stay in sync), see the server's check as you type (debounced),
// "try it" with a sample request, and save the route through the admin API.
import { useEffect, useRef, useState } from 'preact/hooks';
import { call, type FieldProblem, type Problem } from '../../api.ts';
import type { paths } from '../../generated/api.d.ts';
import { Field, ProblemBanner, useCanWrite, useGet } from '../../ui.tsx';
import './flows.css';
import { FlowGraph, type TraceStep } from './graph.tsx';
import { type FlowDoc, fieldOf, insertStep, moveStep, newStep, removeStep, replaceStep, type StepRef, stepAt } from './model.ts';
import { StepPanel } from './panel.tsx';
import { FlowText } from './text.tsx';
import { TryIt } from './tryit.tsx';

const CHECK_DELAY_MS = 350;
/** Typed against the OpenAPI document (as tryit.tsx's): a renamed endpoint fails `npm run typecheck`. */
const CHECK_PATH: keyof paths = '/api/v1/flows/check';
/** The route choice that starts a new route (route names cannot hold parentheses or spaces). */
const NEW_ROUTE = '(new route)';
/** Fields of a route the server writes; left out of a PUT. Other actions give way to the flow. */
const NOT_SENT = ['revision', 'createdAt', 'updatedAt', 'product', 'service', 'backends', 'directResponse', 'transform', 'rewrite'];

export function FlowDesigner(props: { selected?: string | undefined; navigate(key: string | undefined): void }) {
  const canWrite = useCanWrite();
  const [productName, routeName] = (props.selected ?? '').split('/') as [string | undefined, string | undefined];
  const [products] = useGet<{ items: Array<{ name: string; basePath?: string }> }>('/api/v1/products?limit=500');
  const [routes] = useGet<{ items: Array<{ name: string; flow?: unknown }> }>(productName ? `/api/v1/products/${encodeURIComponent(productName)}/routes?limit=500` : undefined, [productName]);
  const [services] = useGet<{ items: Array<{ name: string }> }>('/api/v1/services?limit=500');
  const [route, setRoute] = useState<Record<string, any> | undefined>(undefined);
  const [flow, setFlowState] = useState<FlowDoc>({ steps: [] });
  const [selected, setSelected] = useState<StepRef | undefined>(undefined);
  const [errors, setErrors] = useState<FieldProblem[]>([]);
  const [checkState, setCheckState] = useState<'idle' | 'checking' | 'done'>('idle');
  const [trace, setTrace] = useState<Map<string, TraceStep> | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [saved, setSaved] = useState<string | undefined>(undefined);
  const [newRoute, setNewRoute] = useState<{ name?: string; path?: string }>({});
  // Bumped when the text view replaces the flow, so the side panel's own text fields start over.
  const [textVersion, setTextVersion] = useState(0);
  const serviceNames = (services?.data?.items ?? []).map((s) => s.name);
  const product = products?.data?.items.find((p) => p.name === productName);

  const setFlow = (f: FlowDoc) => {
    setFlowState(f);
    setSaved(undefined);
  };

  // Load the route's flow when the route changes (a new route just saved keeps its "saved" note and trace).
  const justSaved = useRef<string | undefined>(undefined);
  useEffect(() => {
    const keep = justSaved.current === `${productName}/${routeName}`;
    justSaved.current = undefined;
    if (!keep) {
      setSelected(undefined);
      setTrace(undefined);
      setProblem(undefined);
      setSaved(undefined);
    }
    if (!productName || !routeName) {
      setRoute(undefined);
      setFlowState({ steps: [] });
      return;
    }
    let live = true;
    call('GET', `/api/v1/products/${encodeURIComponent(productName)}/routes/${encodeURIComponent(routeName)}`).then((r) => {
      if (!live) return;
      setRoute(r.data);
      setFlowState((r.data?.flow as FlowDoc) ?? { steps: [] });
      setTextVersion((v) => v + 1);
      if (r.problem) setProblem(r.problem);
    });
    return () => {
      live = false;
    };
  }, [productName, routeName]);

  // Check the flow as it is edited: the server's compiler, debounced; the newest answer wins.
  const checkSeq = useRef(0);
  useEffect(() => {
    const seq = ++checkSeq.current;
    setCheckState('checking');
    const t = setTimeout(async () => {
      const r = await call('POST', CHECK_PATH, { flow });
      if (seq !== checkSeq.current) return;
      setErrors(r.problem?.errors ?? []);
      setCheckState('done');
    }, CHECK_DELAY_MS);
    return () => clearTimeout(t);
  }, [flow]);

  const save = async () => {
    setProblem(undefined);
    const name = route?.name ?? newRoute.name ?? '';
    const body: Record<string, any> = route ? { ...route, flow } : { name, match: { path: { type: 'exact', value: newRoute.path ?? '' } }, flow };
    if (route) for (const f of NOT_SENT) delete body[f];
    if (!productName || !name) {
      setProblem({ title: 'Invalid request', status: 422, detail: 'choose a product and name the route', errors: [{ field: 'name', message: 'is required' }] });
      return;
    }
    const r = await call('PUT', `/api/v1/products/${encodeURIComponent(productName)}/routes/${encodeURIComponent(name)}`, body);
    if (r.problem) {
      setProblem(r.problem);
      setErrors(r.problem.errors ?? []);
      return;
    }
    setRoute(r.data);
    setSaved(`Saved route ${name} (revision ${r.data?.revision ?? '?'}).`);
    if (!route) {
      justSaved.current = `${productName}/${name}`;
      props.navigate(`${productName}/${name}`);
    }
  };

  const step = stepAt(flow, selected);
  const flowErrors = errors.filter((e) => e.field === 'flow' || e.field === 'flow.steps' || /^flow\.[a-zA-Z]+$/.test(e.field));
  const errorCount = errors.length;
  const basePath = product?.basePath ?? '';
  const routePath = route?.match?.path?.value ?? newRoute.path ?? '/';

  return (
    <section class="flow-designer" aria-labelledby="h-flows">
      <h2 id="h-flows">Flow designer</h2>
      <form class="route-pick" aria-label="Route" onSubmit={(e) => e.preventDefault()}>
        <Field
          spec={{ path: 'product', label: 'Product', type: 'select' }}
          value={productName}
          options={(products?.data?.items ?? []).map((p) => p.name)}
          onChange={(v) => props.navigate(v ? `${v}/` : undefined)}
        />
        <Field
          spec={{ path: 'route', label: 'Route', type: 'select', help: `its flow is loaded; ${NEW_ROUTE} to start one` }}
          value={routeName || NEW_ROUTE}
          options={[NEW_ROUTE, ...(routes?.data?.items ?? []).map((r) => r.name)]}
          onChange={(v) => productName && props.navigate(`${productName}/${v === NEW_ROUTE ? '' : (v ?? '')}`)}
        />
        {productName && !routeName && (
          <>
            <Field spec={{ path: 'newName', label: 'New route name' }} value={newRoute.name} onChange={(v) => setNewRoute({ ...newRoute, name: v as string })} error={errorFor(problem, 'name')} />
            <Field
              spec={{ path: 'newPath', label: 'New route path', help: `exact path under ${basePath || '/'}` }}
              value={newRoute.path}
              onChange={(v) => setNewRoute({ ...newRoute, path: v as string })}
              error={errorFor(problem, 'match.path.value')}
            />
          </>
        )}
      </form>

      <div class="flow-settings">
        <Field
          spec={{ path: 'timeoutMs', label: 'Flow deadline (ms)', type: 'number', help: 'default 10000' }}
          value={flow.timeoutMs}
          disabled={!canWrite}
          error={errorFor({ errors } as Problem, 'flow.timeoutMs')}
          onChange={(v) => setFlow({ ...flow, timeoutMs: v as number | undefined } as FlowDoc)}
        />
        <p class="check-state" role="status" aria-live="polite">
          {checkState === 'checking' ? 'Checking…' : checkState === 'done' ? (errorCount ? `${errorCount} problem${errorCount > 1 ? 's' : ''} found` : 'No problems found') : ''}
        </p>
      </div>
      {flowErrors.map((e) => (
        <p class="field-error" key={e.field + e.message}>
          <code>{e.field}</code> {e.message}
        </p>
      ))}

      <div class="designer-body">
        <FlowGraph
          flow={flow}
          selected={selected}
          errors={errors}
          trace={trace}
          canWrite={canWrite}
          onSelect={setSelected}
          onAdd={(list, kind) => {
            const r = insertStep(flow, list, newStep(kind, flow, serviceNames));
            setFlow(r.flow);
            setSelected(r.ref);
          }}
          onMove={(ref, by) => {
            const r = moveStep(flow, ref, by);
            setFlow(r.flow);
            setSelected(r.ref);
          }}
          onRemove={(ref) => {
            setFlow(removeStep(flow, ref));
            setSelected(undefined);
          }}
        />
        <aside class="side" aria-label="Step properties">
          {step && selected ? (
            <StepPanel
              key={`${fieldOf(selected.list, selected.index)}:${textVersion}`}
              step={step}
              field={fieldOf(selected.list, selected.index)}
              errors={errors}
              services={serviceNames}
              disabled={!canWrite}
              onChange={(s) => setFlow(replaceStep(flow, selected, s))}
            />
          ) : (
            <p class="muted">Select a step to edit its properties.</p>
          )}
        </aside>
      </div>

      <FlowText
        flow={flow}
        disabled={!canWrite}
        onChange={(f) => {
          setFlow(f);
          setTextVersion((v) => v + 1);
        }}
      />

      <div class="toolbar">
        {canWrite && (
          <button type="button" class="primary" onClick={save} disabled={!productName}>
            Save flow
          </button>
        )}
        {saved && <span role="status">{saved}</span>}
      </div>
      <ProblemBanner problem={problem} shown={(f) => f.startsWith('flow.steps[')} />

      <TryIt
        flow={flow}
        path={`${basePath}${routePath}`}
        canWrite={canWrite}
        onResult={(r) => setTrace(r ? new Map(r.trace.filter((t) => t.kind !== 'switch' || t.output).map((t) => [t.name, t])) : undefined)}
      />
    </section>
  );
}

function errorFor(problem: Pick<Problem, 'errors'> | undefined, field: string): string | undefined {
  const hit = (problem?.errors ?? []).filter((e) => e.field === field);
  return hit.length ? hit.map((e) => e.message).join('; ') : undefined;
}
