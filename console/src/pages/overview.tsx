// Overview: every gateway group and its Envoys (what each ACKed per resource type, the last NACK
// and its error) and traffic per product and partner, polled every few seconds.
import { useEffect, useRef, useState } from 'preact/hooks';
import { call, type Problem } from '../api.ts';
import { ms, type TrafficSeries, trafficRows } from '../traffic.ts';
import { ProblemBanner, TableHead } from '../ui.tsx';

const REFRESH_MS = 3000;

// GET /api/v1/fleet declares no response schema in the OpenAPI document yet (src/xds/fleet.ts FleetView).
interface FleetType {
  type: string;
  ackedVersion?: string;
  ackedAt?: string;
  pushedVersion?: string;
  pending: boolean;
  lastNack?: { version: string; message: string; at: string };
}
interface FleetNode {
  nodeId: string;
  group: string;
  peer?: string;
  protocol?: string;
  connectedSince: string;
  types: FleetType[];
}
interface Fleet {
  groups: { group: string; snapshotVersion?: string; connected: number }[];
  nodes: FleetNode[];
  pipeline?: { servedRevision?: number; lastError?: string };
}

function short(v: string | undefined): string {
  return v ? (v.length > 12 ? `${v.slice(0, 12)}…` : v) : '–';
}

export function Overview() {
  const [fleet, setFleet] = useState<Fleet | undefined>(undefined);
  const [traffic, setTraffic] = useState<{ at: string; series: TrafficSeries[] }[]>([]);
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  const [updated, setUpdated] = useState<string>('');
  const timer = useRef<number | undefined>(undefined);

  useEffect(() => {
    let live = true;
    const poll = async () => {
      const [f, t] = await Promise.all([call<Fleet>('GET', '/api/v1/fleet'), call<{ at: string; series: TrafficSeries[] }>('GET', '/console/api/traffic')]);
      if (!live) return;
      setProblem(f.problem ?? t.problem);
      if (f.data) setFleet(f.data);
      if (t.data) setTraffic((prev) => [...prev.slice(-1), t.data!]);
      setUpdated(new Date().toLocaleTimeString());
      timer.current = window.setTimeout(poll, REFRESH_MS);
    };
    poll();
    return () => {
      live = false;
      clearTimeout(timer.current);
    };
  }, []);

  const rows = traffic.length ? trafficRows(traffic[traffic.length - 1]!, traffic.length > 1 ? traffic[0] : undefined) : [];
  return (
    <section aria-labelledby="h-overview">
      <h2 id="h-overview">Overview</h2>
      <p class="muted" aria-live="polite">
        Refreshes every {REFRESH_MS / 1000} s{updated ? `; last at ${updated}` : ''}.{fleet?.pipeline?.servedRevision !== undefined ? ` Model revision served: ${fleet.pipeline.servedRevision}.` : ''}
      </p>
      <ProblemBanner problem={problem} />
      {fleet?.pipeline?.lastError && (
        <p class="problem" role="alert">
          The last model could not be translated: {fleet.pipeline.lastError}
        </p>
      )}
      <h3>Gateway groups</h3>
      <div class="table-wrap">
        <table>
          <TableHead columns={['Group', 'Snapshot version', 'Connected Envoys']} />
          <tbody>
            {(fleet?.groups ?? []).map((g) => (
              <tr key={g.group}>
                <th scope="row">{g.group}</th>
                <td>
                  <code>{short(g.snapshotVersion)}</code>
                </td>
                <td>{g.connected}</td>
              </tr>
            ))}
            {fleet && fleet.groups.length === 0 && (
              <tr>
                <td colSpan={3}>No gateway groups yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <h3>Envoys</h3>
      {fleet && fleet.nodes.length === 0 && <p>No Envoy is connected.</p>}
      {(fleet?.nodes ?? []).map((n) => {
        const nacks = n.types.filter((t) => t.lastNack);
        return (
          <article class={`node${nacks.length ? ' nacked' : ''}`} key={`${n.nodeId}${n.connectedSince}`} aria-label={`Envoy ${n.nodeId}`}>
            <h4>
              {n.nodeId} <span class="muted">in {n.group}</span>
            </h4>
            <p class="muted">
              {n.peer} · {n.protocol} · connected since {new Date(n.connectedSince).toLocaleString()}
            </p>
            <div class="table-wrap">
              <table>
                <TableHead columns={['Type', 'ACKed version', 'State']} />
                <tbody>
                  {n.types.map((t) => (
                    <tr key={t.type}>
                      <th scope="row">{t.type}</th>
                      <td>
                        <code>{short(t.ackedVersion)}</code>
                      </td>
                      <td>{t.lastNack ? 'NACKed' : t.pending ? 'pending' : 'in sync'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {nacks.map((t) => (
              <div class="nack" role="alert" key={t.type}>
                <strong>
                  Last NACK ({t.type}, version {short(t.lastNack!.version)}, {new Date(t.lastNack!.at).toLocaleTimeString()}):
                </strong>{' '}
                <span class="nack-message">{t.lastNack!.message}</span>
              </div>
            ))}
          </article>
        );
      })}
      <h3>Traffic per product and partner</h3>
      <p class="muted">Since this control-plane replica started, from the access logs Envoys stream to it.</p>
      <div class="table-wrap">
        <table>
          <TableHead columns={['Product', 'Partner', 'Requests', 'Rate', '5xx', 'Rate-limited', 'Denied', 'p50', 'p99']} />
          <tbody>
            {rows.map((r) => (
              <tr key={`${r.product}/${r.partner}`}>
                <th scope="row">{r.product || '(none)'}</th>
                <td>{r.partner}</td>
                <td>{r.requests}</td>
                <td>{r.rate === undefined ? '–' : `${r.rate.toFixed(1)}/s`}</td>
                <td>{r.errors}</td>
                <td>{r.rateLimited}</td>
                <td>{r.denied}</td>
                <td>{ms(r.p50)}</td>
                <td>{ms(r.p99)}</td>
              </tr>
            ))}
            {rows.length === 0 && (
              <tr>
                <td colSpan={9}>No requests yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
