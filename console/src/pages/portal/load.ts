// Loading helper of the portal pages: runs a typed client call, again when reload() is called.
import { useEffect, useState } from 'preact/hooks';
import type { Problem } from '../../api.ts';

export type Loaded<T> = { data?: T; problem?: Problem };

export function useLoad<T>(load: () => Promise<Loaded<T>>): [Loaded<T> | undefined, () => void] {
  const [result, setResult] = useState<Loaded<T> | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then((r) => live && setResult(r));
    return () => {
      live = false;
    };
  }, [tick]);
  return [result, () => setTick((t) => t + 1)];
}
