import { useCallback, useEffect, useMemo, useState } from 'react';
import { Api } from './api/client';
import { ChatClient } from './api/chat';
import {
  authorizationUrl,
  completeLogin,
  discover,
  forgetTokens,
  storedTokens,
  userOf,
  type Tokens,
} from './auth/oidc';
import type { AppConfig } from './config';
import { SessionContext, type Session } from './context';
import { navigate, parseRoute, useLocation } from './lib/router';
import { CasesView } from './views/CasesView';
import { CaseView } from './views/CaseView';
import { ErrorNote } from './components/ErrorNote';

export function App({ config }: { config: AppConfig }) {
  const location = useLocation();
  const route = parseRoute(location);
  const [tokens, setTokens] = useState<Tokens | null>(() => storedTokens());
  const [loginError, setLoginError] = useState<string | null>(null);
  const [expired, setExpired] = useState(false);

  // The authorization server sent the browser back with a code.
  useEffect(() => {
    if (route.name !== 'callback') return;
    let cancelled = false;
    discover(config.oidc)
      .then((disc) => completeLogin(config.oidc, disc, window.location.search))
      .then(({ tokens: t, returnTo }) => {
        if (cancelled) return;
        setTokens(t);
        setExpired(false);
        navigate(returnTo, true);
      })
      .catch((e: unknown) => {
        if (!cancelled) setLoginError(e instanceof Error ? e.message : String(e));
      });
    return () => {
      cancelled = true;
    };
    // only when the route becomes the callback
  }, [route.name]);

  const login = useCallback(async () => {
    setLoginError(null);
    try {
      const disc = await discover(config.oidc);
      const back = route.name === 'callback' ? '/' : location;
      window.location.assign(await authorizationUrl(config.oidc, disc, back));
    } catch (e) {
      setLoginError(e instanceof Error ? e.message : String(e));
    }
  }, [config.oidc, location, route.name]);

  const logout = useCallback(() => {
    forgetTokens();
    setTokens(null);
  }, []);

  const session = useMemo<Session | null>(() => {
    if (!tokens) return null;
    const token = () => tokens.access_token;
    const api = new Api({
      base: config.api_url,
      token,
      onUnauthenticated: () => {
        forgetTokens();
        setExpired(true);
        setTokens(null);
      },
    });
    const chat = new ChatClient({ api, wsUrl: config.ws_url, token });
    return { config, api, chat, user: userOf(tokens, config.roles_claim), logout };
  }, [tokens, config, logout]);

  useEffect(() => () => session?.chat.close(), [session]);

  if (!session || route.name === 'callback') {
    return (
      <main id="main" className="login">
        <h1>ChronoTracer</h1>
        {route.name === 'callback' && !loginError ? (
          <p role="status">Signing you in…</p>
        ) : (
          <>
            <p>{expired ? 'Your session has ended. Sign in again to continue.' : 'Forensic timelines of your cases.'}</p>
            <button type="button" className="primary" onClick={() => void login()}>
              Sign in
            </button>
            <p className="muted">with {new URL(config.oidc.issuer).host}</p>
          </>
        )}
        {loginError && <ErrorNote message={loginError} />}
      </main>
    );
  }

  return (
    <SessionContext.Provider value={session}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <a
          className="brand"
          href="/cases"
          onClick={(e) => {
            e.preventDefault();
            navigate('/cases');
          }}
        >
          ChronoTracer
        </a>
        <span className="who">
          {session.user.name} <span className="role">({session.user.roles.join(', ') || 'no role'})</span>
        </span>
        <button type="button" onClick={logout}>
          Sign out
        </button>
      </header>
      {route.name === 'cases' && <CasesView />}
      {route.name === 'case' && <CaseView key={route.caseId} caseId={route.caseId} tab={route.tab} />}
      {route.name === 'not_found' && (
        <main id="main">
          <h1>Not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. <a href="/cases">Go to the cases.</a>
          </p>
        </main>
      )}
    </SessionContext.Provider>
  );
}
