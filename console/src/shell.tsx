// The frame every signed-in view shares: skip link, top bar (who is signed in, sign out), the
// navigation that folds into a menu on narrow screens, and the main region pages render into.
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export interface ShellProps {
  brand: string;
  who: string;
  /** The navigation's accessible name. */
  navLabel: string;
  pages: readonly { id: string; title: string }[];
  current: string;
  onSignOut: () => void;
  children: ComponentChildren;
}

export function Shell(props: ShellProps) {
  const [navOpen, setNavOpen] = useState(false);
  // A page change closes the folded menu and moves focus to the page (screen readers hear it).
  useEffect(() => {
    setNavOpen(false);
    document.getElementById('main')?.focus();
  }, [props.current]);
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById('main')?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">{props.brand}</span>
        <button type="button" class="nav-toggle" aria-expanded={navOpen} aria-controls="nav" onClick={() => setNavOpen(!navOpen)}>
          Menu
        </button>
        <span class="who">{props.who}</span>
        <button type="button" onClick={props.onSignOut}>
          Sign out
        </button>
      </header>
      <div class="layout">
        <nav id="nav" aria-label={props.navLabel} class={navOpen ? 'open' : ''}>
          <ul>
            {props.pages.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} aria-current={p.id === props.current ? 'page' : undefined} onClick={() => setNavOpen(false)}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          {props.children}
        </main>
      </div>
    </>
  );
}
