// The partner's subscriptions: each product, its plan, and the plan's limits, quotas and per-route
// rules on that product.
import { api, problemOf } from '../../api.ts';
import { ProblemBanner, TableHead } from '../../ui.tsx';
import { useLoad } from './load.ts';

type Rule = { requests?: number; per?: string; burst?: number };

export function describeRules(limits: Rule[], quotas: Rule[]): string {
  const parts = [...limits.map((l) => `${l.requests} per ${l.per}${l.burst ? ` (burst ${l.burst})` : ''}`), ...quotas.map((q) => `${q.requests} per ${q.per} (quota)`)];
  return parts.length ? parts.join(', ') : 'no limits';
}

export function Subscriptions() {
  const [loaded] = useLoad(async () => {
    const { data, error, response } = await api.GET('/api/v1/portal/subscriptions');
    return data ? { data } : { problem: problemOf(error, response) };
  });
  const items = loaded?.data?.items ?? [];
  return (
    <section aria-labelledby="h-subs">
      <h2 id="h-subs">Subscriptions</h2>
      <ProblemBanner problem={loaded?.problem} />
      {loaded && !loaded.problem && items.length === 0 && <p>No subscriptions yet: ask your API provider for access to a product.</p>}
      {items.length > 0 && (
        <div class="table-wrap">
          <table aria-label="Subscriptions">
            <TableHead columns={['Product', 'Plan', 'Status', 'Limits and quotas', 'Per-route rules']} />
            <tbody>
              {items.map((s) => (
                <tr key={s.product}>
                  <th scope="row">
                    {s.productInfo.displayName ?? s.product}
                    {s.productInfo.basePath && (
                      <>
                        {' '}
                        <code>{s.productInfo.basePath}</code>
                      </>
                    )}
                  </th>
                  <td>
                    {s.plan}
                    {s.planRules.shadow ? ' (not enforced)' : ''}
                  </td>
                  <td>
                    {s.status}
                    {s.expiresAt ? `, until ${new Date(s.expiresAt).toLocaleString()}` : ''}
                  </td>
                  <td>
                    {describeRules(s.planRules.limits as Rule[], s.planRules.quotas as Rule[])}
                    <span class="muted"> · counted by {s.planRules.countBy.replace('_', ' ')}</span>
                  </td>
                  <td>
                    {s.planRules.overrides.length === 0
                      ? '—'
                      : s.planRules.overrides.map((o) => {
                          const r = o as { route: string; limits?: Rule[]; quotas?: Rule[] };
                          return (
                            <div key={r.route}>
                              <code>{r.route}</code>: {describeRules(r.limits ?? [], r.quotas ?? [])}
                            </div>
                          );
                        })}
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
