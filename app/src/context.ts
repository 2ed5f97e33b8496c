import { createContext, useContext } from 'react';
import type { Api } from './api/client';
import type { ChatClient } from './api/chat';
import type { User } from './auth/oidc';
import type { AppConfig } from './config';

export interface Session {
  config: AppConfig;
  api: Api;
  chat: ChatClient;
  user: User;
  logout: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a logged-in session');
  return s;
}
