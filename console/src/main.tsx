// The console's shell: sign-in, navigation (hash routes, so the server serves one page), the pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './styles.css';
import { currentSession, type Problem, type Session, signIn, signOut, whenSignedOut } from './api.ts';
import { KINDS, type KindId } from './kinds.ts';
import { Audit } from './pages/audit.tsx';
import { Declarative } from './pages/declarative.tsx';
import { FlowDesigner } from './pages/flows/designer.tsx';
import { NewApi } from './pages/newapi.tsx';
import { Overview } from './pages/overview.tsx';
import { Portal } from './pages/portal/portal.tsx';
import { Shell } from './shell.tsx';
import { ResourcePage } from './pages/resources.tsx';
import { Field, ProblemBanner, SessionContext } from './ui.tsx';

const RESOURCE_PAGES: KindId[] = ['services', 'products', 'partners', 'plans', 'jwtIssuers', 'certificates', 'gatewayGroups', 'adminTokens'];
const PAGES: { id: string; title: string; adminOnly?: boolean }[] = [
  { id: 'overview', title: 'Overview' },
  { id: 'new-api', title: 'New API' },
  ...RESOURCE_PAGES.map((k) => ({ id: k, title: KINDS[k].title, adminOnly: KINDS[k].adminOnly === true })),
  { id: 'flows', title: 'Flow designer' },
  { id: 'declarative', title: 'Declarative' },
  { id: 'audit', title: 'Audit log' },
];

function useHash(): [string, string | undefined] {
  const read = () => {
    const [page = 'overview', item] = location.hash.replace(/^#\/?/, '').split('/');
    return [page || 'overview', item ? decodeURIComponent(item) : undefined] as [string, string | undefined];
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function SignIn(props: { onSignedIn: (s: Session) => void; expired: boolean }) {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<Problem | undefined>(undefined);
  return (
    <main class="signin">
      <h1>Portico console</h1>
      <form
        aria-label="Sign in"
        onSubmit={async (e) => {
          e.preventDefault();
          const r = await signIn(token);
          if (r.session) props.onSignedIn(r.session);
          else setProblem(r.problem);
        }}
      >
        {props.expired && <p role="status">Your session ended. Sign in again.</p>}
        <Field
          spec={{ path: 'token', label: 'Admin or viewer token', help: 'a pta_… token: an admin or viewer token, the bootstrap token, or a partner token (opens the partner portal)' }}
          value={token || undefined}
          onChange={(v) => setToken(String(v ?? ''))}
          error={problem?.errors?.find((e) => e.field === 'token')?.message ?? (problem?.status === 401 ? problem.detail : undefined)}
        />
        <ProblemBanner problem={problem?.status === 401 ? undefined : problem} />
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | undefined | null>(undefined);
  const [expired, setExpired] = useState(false);
  const [page, item] = useHash();
  useEffect(() => {
    currentSession().then((s) => setSession(s ?? null));
    whenSignedOut(() => {
      setExpired(true);
      setSession(null);
    });
  }, []);
  useEffect(() => {
    if (session?.role === 'partner') return; // the portal titles its own pages
    const title = PAGES.find((p) => p.id === page)?.title ?? 'Portico';
    document.title = `${title} · Portico console`;
  }, [page, session]);
  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null)
    return (
      <SignIn
        expired={expired}
        onSignedIn={(s) => {
          setExpired(false);
          setSession(s);
        }}
      />
    );

  if (session.role === 'partner') return <Portal session={session} page={page} onSignedOut={() => setSession(null)} />;
  const resource = RESOURCE_PAGES.includes(page as KindId) ? (page as KindId) : undefined;
  return (
    <SessionContext.Provider value={session}>
      <Shell
        brand="Portico"
        who={`${session.name} (${session.role === 'viewer' ? 'viewer, read only' : 'admin'})`}
        navLabel="Console"
        pages={PAGES.filter((p) => !p.adminOnly || session.role === 'admin')}
        current={page}
        onSignOut={() => signOut().then(() => setSession(null))}
      >
        {page === 'overview' && <Overview />}
        {page === 'new-api' && <NewApi />}
        {page === 'declarative' && <Declarative />}
        {page === 'audit' && <Audit />}
        {page === 'flows' && <FlowDesigner selected={item} navigate={(key) => (location.hash = key ? `#/flows/${encodeURIComponent(key)}` : '#/flows')} />}
        {resource && <ResourcePage key={resource} kind={resource} selected={item} navigate={(key) => (location.hash = key ? `#/${resource}/${encodeURIComponent(key)}` : `#/${resource}`)} />}
        {!PAGES.some((p) => p.id === page) && <p>No such page.</p>}
      </Shell>
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById('app')!);
