// The partner portal: what the console shows a partner token, with its own layout and navigation
// (subscriptions, usage, keys) and nothing else reachable; the server refuses everything else anyway.
import { useEffect, useState } from 'preact/hooks';
import { type Session, signOut } from '../../api.ts';
import { Keys } from './keys.tsx';
import { Subscriptions } from './subscriptions.tsx';
import { Usage } from './usage.tsx';

const PAGES = [
  { id: 'subscriptions', title: 'Subscriptions' },
  { id: 'usage', title: 'Usage' },
  { id: 'keys', title: 'API keys' },
] as const;

export function Portal(props: { session: Session; page: string; onSignedOut: () => void }) {
  const { session } = props;
  // Any other address (an admin page's link, an old bookmark) lands on the first portal page.
  const page = PAGES.find((p) => p.id === props.page) ?? PAGES[0];
  const [navOpen, setNavOpen] = useState(false);
  useEffect(() => {
    document.title = `${page.title} · ${session.partner} · Portico partner portal`;
    setNavOpen(false);
    document.getElementById('main')?.focus();
  }, [page.id]);
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top portal">
        <span class="brand">Portico partner portal</span>
        <button type="button" class="nav-toggle" aria-expanded={navOpen} aria-controls="nav" onClick={() => setNavOpen(!navOpen)}>
          Menu
        </button>
        <span class="who">
          {session.partner} (token {session.name})
        </span>
        <button type="button" onClick={() => signOut().then(props.onSignedOut)}>
          Sign out
        </button>
      </header>
      <div class="layout">
        <nav id="nav" aria-label="Partner portal" class={navOpen ? 'open' : ''}>
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} aria-current={p.id === page.id ? 'page' : undefined} onClick={() => setNavOpen(false)}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          {page.id === 'subscriptions' && <Subscriptions />}
          {page.id === 'usage' && <Usage />}
          {page.id === 'keys' && <Keys />}
        </main>
      </div>
    </>
  );
}
