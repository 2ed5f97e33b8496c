// A logged-in session over a fake API: routes are matched by method and path pattern,
// every request is recorded.
import type { ReactNode } from 'react';
import { vi } from 'vitest';
import { Api } from '../api/client';
import { ChatClient } from '../api/chat';
import { SessionContext, type Session } from '../context';
import type { User } from '../auth/oidc';
import { parseConfig } from '../config';

export type Handler = (body: unknown, url: URL) => { status?: number; body?: unknown } | unknown;

export interface FakeApi {
  session: Session;
  calls: Array<{ method: string; path: string; body: unknown }>;
  wrap: (ui: ReactNode) => ReactNode;
}

export function fakeSession(routes: Record<string, Handler>, user: Partial<User> = {}): FakeApi {
  const calls: FakeApi['calls'] = [];
  const fetcher = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://app.test');
    const method = init?.method ?? 'GET';
    const body = init?.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path: url.pathname + url.search, body });
    for (const [key, handler] of Object.entries(routes)) {
      const [m, pattern] = key.split(' ');
      const re = new RegExp(`^${pattern!.replace(/:[a-z]+/g, '[^/]+')}$`);
      if (m === method && re.test(url.pathname)) {
        const r = handler(body, url) as { status?: number; body?: unknown } | undefined;
        const wrapped = r && typeof r === 'object' && 'status' in r ? r : { status: 200, body: r };
        return new Response(wrapped.body === undefined ? null : JSON.stringify(wrapped.body), { status: wrapped.status ?? 200 });
      }
    }
    return new Response(JSON.stringify({ error: { code: 'not_found', message: 'route not found' } }), { status: 404 });
  });
  const api = new Api({ base: '', token: () => 'token', fetcher: fetcher as unknown as typeof fetch });
  const config = parseConfig({ oidc: { issuer: 'http://issuer.test', client_id: 'app' } });
  const chat = new ChatClient({ api, wsUrl: '', token: () => 'token', socketFactory: () => {
    throw new Error('no WebSocket in tests');
  } });
  const session: Session = {
    config,
    api,
    chat,
    user: { sub: 'alice', name: 'Alice', roles: ['admin'], isAdmin: true, canRead: true, ...user },
    logout: () => {},
  };
  return {
    session,
    calls,
    wrap: (ui) => <SessionContext.Provider value={session}>{ui}</SessionContext.Provider>,
  };
}
