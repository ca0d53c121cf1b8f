// "New API": from an upstream URL to a protected route in one screen. Creates the service, the
// product (API keys required) with one route, and optionally a partner subscribed with a key.
import { useState } from 'preact/hooks';
import { call, type FieldProblem, type Problem } from '../api.ts';
import { KINDS } from '../kinds.ts';
import { Field, ProblemBanner, useCanWrite, useGet } from '../ui.tsx';

interface Form {
  name: string;
  upstream: string;
  group: string;
  port: number;
  basePath: string;
  partner: string;
  plan: string;
}

interface Step {
  label: string;
  method: 'POST' | 'PUT';
  path: string;
  body: unknown;
  /** Form field that shows an error of this step's body field (first match wins). */
  fields: [RegExp, keyof Form][];
}

/** The admin calls the guide makes, in order (pure). */
export function plan(f: Form, existing: { groups: string[]; plans: string[] }): Step[] | FieldProblem[] {
  let url: URL;
  try {
    url = new URL(f.upstream);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
  } catch {
    return [{ field: 'upstream', message: 'must be an http:// or https:// URL, e.g. http://orders.internal:8080' }];
  }
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const steps: Step[] = [];
  if (!existing.groups.includes(f.group)) {
    steps.push({
      label: `gateway group ${f.group}`,
      method: 'POST',
      path: '/api/v1/gateway-groups',
      body: { name: f.group, listeners: [{ name: 'http', port: f.port }] },
      fields: [
        [/^name/, 'group'],
        [/^listeners/, 'port'],
      ],
    });
  }
  steps.push(
    {
      label: `service ${f.name}`,
      method: 'POST',
      path: '/api/v1/services',
      body: { name: f.name, endpoints: [{ host: url.hostname.replace(/^\[|\]$/g, ''), port }] },
      fields: [
        [/^name/, 'name'],
        [/^endpoints/, 'upstream'],
      ],
    },
    {
      label: `product ${f.name}`,
      method: 'POST',
      path: '/api/v1/products',
      body: { name: f.name, gatewayGroups: [f.group], basePath: f.basePath || `/${f.name}`, auth: { accept: ['api_key'] } },
      fields: [
        [/^name/, 'name'],
        [/^basePath/, 'basePath'],
        [/^gatewayGroups/, 'group'],
      ],
    },
    {
      label: 'route all',
      method: 'POST',
      path: `/api/v1/products/${encodeURIComponent(f.name)}/routes`,
      body: { name: 'all', match: { path: { type: 'prefix', value: '/' } }, service: f.name },
      fields: [],
    },
  );
  if (f.partner) {
    if (!existing.plans.includes(f.plan)) {
      steps.push({ label: `plan ${f.plan}`, method: 'POST', path: '/api/v1/plans', body: { name: f.plan, limits: [{ requests: 10, per: 'second' }] }, fields: [[/^name/, 'plan']] });
    }
    const p = encodeURIComponent(f.partner);
    steps.push(
      { label: `partner ${f.partner}`, method: 'PUT', path: `/api/v1/partners/${p}`, body: { name: f.partner }, fields: [[/^name/, 'partner']] },
      { label: 'subscription', method: 'POST', path: `/api/v1/partners/${p}/subscriptions`, body: { product: f.name, plan: f.plan }, fields: [[/^plan/, 'plan']] },
      { label: 'API key', method: 'POST', path: `/api/v1/partners/${p}/api-keys`, body: { name: `${f.name}-key` }, fields: [] },
    );
  }
  return steps;
}

/** The URL of what a step writes: a PUT names it; a POST to a collection adds the body's key. */
function itemOf(step: Step): string {
  if (step.method === 'PUT') return step.path;
  const body = step.body as { name?: string; product?: string };
  return `${step.path}/${encodeURIComponent(String(body.name ?? body.product))}`;
}

const spec = (path: keyof Form, label: string, help?: string, type?: 'number' | 'select') => ({ path, label, ...(help ? { help } : {}), ...(type ? { type } : {}) });

export function NewApi() {
  const canWrite = useCanWrite();
  const [groups] = useGet<{ items: { name: string }[] }>(`${KINDS.gatewayGroups.collection}?limit=500`);
  const [plans] = useGet<{ items: { name: string }[] }>(`${KINDS.plans.collection}?limit=500`);
  const [form, setForm] = useState<Form>({ name: '', upstream: '', group: '', port: 10080, basePath: '', partner: '', plan: 'default' });
  const [errors, setErrors] = useState<Partial<Record<keyof Form, string>>>({});
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [done, setDone] = useState<string[]>([]);
  const [key, setKey] = useState<string | undefined>(undefined);
  const groupNames = (groups?.data?.items ?? []).map((g) => g.name);
  const planNames = (plans?.data?.items ?? []).map((p) => p.name);
  const group = form.group || groupNames[0] || 'edge';
  const set = (k: keyof Form) => (v: unknown) => setForm((f) => ({ ...f, [k]: v ?? '' }));

  const submit = async (e: Event) => {
    e.preventDefault();
    setErrors({});
    setProblem(undefined);
    setDone([]);
    setKey(undefined);
    const steps = plan({ ...form, group }, { groups: groupNames, plans: planNames });
    if (!steps.length || !('label' in steps[0]!)) {
      const fe = steps as FieldProblem[];
      return setErrors(Object.fromEntries(fe.map((x) => [x.field, x.message])));
    }
    // What this run created, so that a refused step takes the earlier ones back: all or nothing.
    const created: string[] = [];
    for (const step of steps as Step[]) {
      const res = await call(step.method, step.path, step.body);
      if (res.problem) {
        const leftOver: string[] = [];
        for (const item of created.reverse()) {
          const undo = await call('DELETE', item);
          if (undo.problem && undo.status !== 404) leftOver.push(item);
        }
        setDone([]);
        const inline: Partial<Record<keyof Form, string>> = {};
        for (const fe of res.problem.errors ?? []) {
          const to = step.fields.find(([re]) => re.test(fe.field))?.[1];
          if (to) inline[to] = [inline[to], fe.message].filter(Boolean).join('; ');
        }
        setErrors(inline);
        const undone = leftOver.length ? ` Could not take back: ${leftOver.join(', ')}.` : created.length ? ' Nothing was kept.' : '';
        return setProblem({ ...res.problem, title: `${res.problem.title} at step “${step.label}”`, detail: `${res.problem.detail}.${undone}` });
      }
      // PUT answers 201 only when it created the resource; an existing partner is left alone on undo.
      if (res.status === 201) created.push(itemOf(step));
      setDone((d) => [...d, step.label]);
      if (res.data?.key) setKey(res.data.key);
    }
  };

  const basePath = form.basePath || (form.name ? `/${form.name}` : '/…');
  return (
    <section aria-labelledby="h-newapi">
      <h2 id="h-newapi">New API</h2>
      <p>From an upstream URL to a route that requires an API key: a service, a product with one route for every path under its base path and, if you name a partner, a subscription and a key.</p>
      <form onSubmit={submit} aria-label="New API">
        <fieldset disabled={!canWrite}>
          <legend class="visually-hidden">New API</legend>
          <div class="fields">
            <Field spec={spec('name', 'API name', 'names the service and the product')} value={form.name || undefined} onChange={set('name')} error={errors.name} />
            <Field
              spec={spec('upstream', 'Upstream URL', 'where requests go, e.g. http://orders.internal:8080')}
              value={form.upstream || undefined}
              onChange={set('upstream')}
              error={errors.upstream}
            />
            <Field spec={spec('basePath', 'Base path', `callers use ${basePath}/…`)} value={form.basePath || undefined} onChange={set('basePath')} error={errors.basePath} />
            <Field
              spec={{ ...spec('group', 'Gateway group', groupNames.length ? undefined : 'none exists yet: this one is created', 'select') }}
              options={groupNames.length ? groupNames : ['edge']}
              value={group}
              onChange={set('group')}
              error={errors.group}
            />
            {!groupNames.includes(group) && <Field spec={spec('port', 'Listener port of the new group', undefined, 'number')} value={form.port} onChange={set('port')} error={errors.port} />}
            <Field spec={spec('partner', 'Partner (optional)', 'gets a subscription and an API key')} value={form.partner || undefined} onChange={set('partner')} error={errors.partner} />
            {form.partner && (
              <Field
                spec={spec('plan', 'Plan', planNames.includes(form.plan) ? undefined : 'created with 10 requests/second')}
                value={form.plan || undefined}
                onChange={set('plan')}
                error={errors.plan}
              />
            )}
          </div>
          {canWrite && (
            <div class="actions">
              <button type="submit" class="primary">
                Create API
              </button>
            </div>
          )}
        </fieldset>
      </form>
      <ProblemBanner problem={problem} shown={() => Object.keys(errors).length > 0} />
      {done.length > 0 && (
        <div role="status" class="done">
          <p>Created: {done.join(', ')}.</p>
          {key && (
            <>
              <p>The partner's API key, shown only once:</p>
              <output class="secret" aria-label="new API key">
                {key}
              </output>
              <p>
                Try it:{' '}
                <code>
                  curl -H "x-api-key: {key}" http://&lt;envoy&gt;{basePath}/
                </code>
              </p>
            </>
          )}
        </div>
      )}
    </section>
  );
}
