// OpenID Connect authorization code flow with PKCE (RFC 7636, S256) for a public client:
// the same code against Cognito, Auth0 or the local issuer of `chronoctl local`. The
// tokens stay in this tab's sessionStorage; nothing is sent anywhere but the issuer's
// token endpoint and the API.

import type { OidcConfig } from '../config';

export interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  end_session_endpoint?: string;
}

export interface Tokens {
  access_token: string;
  id_token?: string;
  /** Epoch seconds. */
  expires_at: number;
}

export class LoginError extends Error {}

const PENDING = 'chrono.oidc.pending';
const TOKENS = 'chrono.oidc.tokens';

export function base64url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A PKCE code verifier: 32 random bytes, base64url (43 characters, RFC 7636 §4.1). */
export function newVerifier(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** The S256 challenge of a verifier (RFC 7636 §4.2). */
export async function challengeOf(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

export async function discover(oidc: OidcConfig, fetcher: typeof fetch = fetch): Promise<Discovery> {
  const url = `${oidc.issuer}/.well-known/openid-configuration`;
  let resp: Response;
  try {
    resp = await fetcher(url);
  } catch (e) {
    throw new LoginError(`cannot reach the identity provider at ${url}: ${String(e)}`);
  }
  if (!resp.ok) throw new LoginError(`the identity provider's discovery document answered ${resp.status} (${url})`);
  const doc = (await resp.json()) as Partial<Discovery>;
  if (!doc.authorization_endpoint || !doc.token_endpoint) {
    throw new LoginError(`${url} names no authorization_endpoint/token_endpoint; it does not support the code flow`);
  }
  return doc as Discovery;
}

/** The configured redirect URI, or this origin's `/callback`. */
export function redirectUri(oidc: OidcConfig): string {
  return oidc.redirect_uri ?? `${window.location.origin}/callback`;
}

interface Pending {
  state: string;
  verifier: string;
  nonce: string;
  returnTo: string;
}

/** The authorization request URL; remembers state and verifier for the callback. */
export async function authorizationUrl(oidc: OidcConfig, disc: Discovery, returnTo: string): Promise<string> {
  const pending: Pending = {
    state: newVerifier(),
    verifier: newVerifier(),
    nonce: newVerifier(),
    returnTo,
  };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const u = new URL(disc.authorization_endpoint);
  u.searchParams.set('response_type', 'code');
  u.searchParams.set('client_id', oidc.client_id);
  u.searchParams.set('redirect_uri', redirectUri(oidc));
  u.searchParams.set('scope', oidc.scopes);
  u.searchParams.set('state', pending.state);
  u.searchParams.set('nonce', pending.nonce);
  u.searchParams.set('code_challenge', await challengeOf(pending.verifier));
  u.searchParams.set('code_challenge_method', 'S256');
  if (oidc.audience) u.searchParams.set('audience', oidc.audience);
  return u.toString();
}

/** Handles `/callback?code=…&state=…`: checks state, redeems the code; returns where to go. */
export async function completeLogin(
  oidc: OidcConfig,
  disc: Discovery,
  search: string,
  fetcher: typeof fetch = fetch,
): Promise<{ tokens: Tokens; returnTo: string }> {
  const params = new URLSearchParams(search);
  const error = params.get('error');
  if (error) {
    throw new LoginError(`the identity provider refused the login: ${params.get('error_description') ?? error}`);
  }
  const raw = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  if (!raw) throw new LoginError('no login was started in this tab; start again');
  const pending = JSON.parse(raw) as Pending;
  const code = params.get('code');
  if (!code) throw new LoginError('the callback carries no code');
  if (params.get('state') !== pending.state) throw new LoginError('the callback state does not match this login; start again');
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri(oidc),
    client_id: oidc.client_id,
    code_verifier: pending.verifier,
  });
  const resp = await fetcher(disc.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  const json = (await resp.json().catch(() => ({}))) as Record<string, unknown>;
  if (!resp.ok || typeof json.access_token !== 'string') {
    const why = typeof json.error_description === 'string' ? json.error_description : (json.error ?? resp.status);
    throw new LoginError(`the token endpoint refused the code: ${String(why)}`);
  }
  const idToken = typeof json.id_token === 'string' ? json.id_token : undefined;
  if (idToken) {
    const nonce = decodeJwt(idToken).nonce;
    if (nonce !== undefined && nonce !== pending.nonce) throw new LoginError('the ID token was not issued for this login (nonce)');
  }
  const expiresIn = typeof json.expires_in === 'number' ? json.expires_in : 3600;
  const tokens: Tokens = {
    access_token: json.access_token,
    id_token: idToken,
    expires_at: Math.floor(Date.now() / 1000) + expiresIn,
  };
  sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
  return { tokens, returnTo: pending.returnTo || '/' };
}

/** Tokens of this tab, unless expired (with a minute's margin). */
export function storedTokens(now = Date.now() / 1000): Tokens | null {
  const raw = sessionStorage.getItem(TOKENS);
  if (!raw) return null;
  try {
    const t = JSON.parse(raw) as Tokens;
    return t.expires_at - 60 > now ? t : null;
  } catch {
    return null;
  }
}

export function forgetTokens(): void {
  sessionStorage.removeItem(TOKENS);
}

/** The payload of a JWT (not verified: the API verifies; the app only reads roles). */
export function decodeJwt(token: string): Record<string, unknown> {
  const part = token.split('.')[1];
  if (!part) return {};
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

export interface User {
  sub: string;
  name: string;
  roles: string[];
  isAdmin: boolean;
  canRead: boolean;
}

/** Who the tokens say the user is (roles from the configured claim of either token). */
export function userOf(tokens: Tokens, rolesClaim: string): User {
  const access = decodeJwt(tokens.access_token);
  const id = tokens.id_token ? decodeJwt(tokens.id_token) : {};
  const list = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? v.split(/[ ,]+/) : [];
  const roles = [...new Set([...list(access[rolesClaim]), ...list(id[rolesClaim])])].filter(Boolean);
  const sub = String(access.sub ?? id.sub ?? '');
  const name = String(id.name ?? id.preferred_username ?? id.email ?? access.username ?? sub);
  const isAdmin = roles.includes('admin');
  return { sub, name, roles, isAdmin, canRead: isAdmin || roles.includes('analyst') };
}
