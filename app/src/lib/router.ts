// A small history-API router: the app has four routes, which does not warrant a routing
// library in the initial bundle. CloudFront and `chronoctl local` answer every unknown
// path with index.html, so deep links work.

import { useSyncExternalStore } from 'react';

const listeners = new Set<() => void>();

function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  window.addEventListener('popstate', fn);
  return () => {
    listeners.delete(fn);
    window.removeEventListener('popstate', fn);
  };
}

const current = () => window.location.pathname + window.location.search;

export function navigate(to: string, replace = false): void {
  if (to === current()) return;
  if (replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  for (const fn of listeners) fn();
}

export function useLocation(): string {
  return useSyncExternalStore(subscribe, current, () => '/');
}

export type Route =
  | { name: 'cases' }
  | { name: 'callback' }
  | { name: 'case'; caseId: string; tab: 'evidence' | 'timeline' }
  | { name: 'not_found'; path: string };

const UUID = '[0-9a-fA-F-]{36}';

export function parseRoute(location: string): Route {
  const path = location.split('?')[0]!.replace(/\/+$/, '') || '/';
  if (path === '/' || path === '/cases') return { name: 'cases' };
  if (path === '/callback') return { name: 'callback' };
  const m = new RegExp(`^/cases/(${UUID})(?:/(evidence|timeline))?$`).exec(path);
  if (m) return { name: 'case', caseId: m[1]!.toLowerCase(), tab: (m[2] as 'evidence' | 'timeline' | undefined) ?? 'timeline' };
  return { name: 'not_found', path };
}
