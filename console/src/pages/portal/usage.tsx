// Usage against every limit and quota of the partner's plans, as the gateway counts it (refreshed
// every 5 s), and its requests per product.
import { useEffect } from 'preact/hooks';
import { api, problemOf } from '../../api.ts';
import { ProblemBanner, TableHead } from '../../ui.tsx';
import { useLoad } from './load.ts';

const SOURCES: Record<string, string> = {
  'rate-limiter': 'gateway counters',
  'quota-ledger': 'access logs',
  envoy: 'each Envoy',
};

export function Usage() {
  const [loaded, reload] = useLoad(async () => {
    const { data, error, response } = await api.GET('/api/v1/portal/usage');
    return data ? { data } : { problem: problemOf(error, response) };
  });
  useEffect(() => {
    const timer = setInterval(reload, 5000);
    return () => clearInterval(timer);
  }, []);
  const budgets = loaded?.data?.budgets ?? [];
  const traffic = loaded?.data?.traffic ?? [];
  return (
    <section aria-labelledby="h-usage">
      <h2 id="h-usage">Usage</h2>
      <ProblemBanner problem={loaded?.problem} />
      <div class="toolbar">
        <button type="button" onClick={reload}>
          Refresh
        </button>
        {loaded?.data && <span class="muted">as of {new Date(loaded.data.at).toLocaleTimeString()}</span>}
      </div>
      {loaded?.data && budgets.length === 0 && <p>Your plans set no limits or quotas.</p>}
      {budgets.length > 0 && (
        <div class="table-wrap">
          <table aria-label="Limits and quotas">
            <TableHead columns={['Product', 'Limit', 'Used', 'Remaining', 'Resets', 'Counted by']} />
            <tbody>
              {budgets.map((b) => {
                const what = `${b.limit} per ${b.per}${b.kind === 'quota' ? ' (quota)' : ''}${b.route ? ` on route ${b.route}` : ''}`;
                return (
                  <tr key={`${b.budget} ${b.group ?? ''}`} data-budget={b.budget}>
                    <th scope="row">
                      {b.product}
                      <span class="muted"> · {b.plan}</span>
                    </th>
                    <td>
                      {what}
                      {b.shadow ? ' (not enforced)' : ''}
                    </td>
                    <td>
                      {b.used === undefined ? (
                        '—'
                      ) : (
                        <>
                          <meter min={0} max={b.limit} value={b.used} aria-label={`${what}: ${b.used} used`} /> {b.used}
                        </>
                      )}
                    </td>
                    <td>{b.remaining ?? '—'}</td>
                    <td>{b.resetAt ? new Date(b.resetAt).toLocaleString() : '—'}</td>
                    <td>
                      {SOURCES[b.source] ?? b.source}
                      {b.group ? ` (${b.group})` : ''}
                      {b.note && <div class="help">{b.note}</div>}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <h3>Requests</h3>
      {traffic.length === 0 ? (
        <p class="muted">No requests through the gateway since this control-plane replica started.</p>
      ) : (
        <div class="table-wrap">
          <table aria-label="Requests per product">
            <TableHead columns={['Product', 'Requests', '2xx', '4xx', '5xx', 'Refused by limits']} />
            <tbody>
              {traffic.map((t) => (
                <tr key={t.product}>
                  <th scope="row">{t.product}</th>
                  <td>{t.requests}</td>
                  <td>{t.codeClasses['2xx'] ?? 0}</td>
                  <td>{t.codeClasses['4xx'] ?? 0}</td>
                  <td>{t.codeClasses['5xx'] ?? 0}</td>
                  <td>{t.outcomes.rate_limited ?? 0}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
