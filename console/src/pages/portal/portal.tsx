// The partner portal: what the console shows a partner token, with its own layout and navigation
// (subscriptions, usage, keys) and nothing else reachable; the server refuses everything else anyway.
import { useEffect } from 'preact/hooks';
import { type Session, signOut } from '../../api.ts';
import { Shell } from '../../shell.tsx';
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
  useEffect(() => {
    document.title = `${page.title} · ${session.partner} · Portico partner portal`;
  }, [page.id]);
  return (
    <Shell
      brand="Portico partner portal"
      who={`${session.partner} (token ${session.name})`}
      navLabel="Partner portal"
      pages={PAGES}
      current={page.id}
      onSignOut={() => signOut().then(props.onSignedOut)}
    >
      {page.id === 'subscriptions' && <Subscriptions />}
      {page.id === 'usage' && <Usage />}
      {page.id === 'keys' && <Keys />}
    </Shell>
  );
}
