import { afterEach, describe, expect, it, vi } from 'vitest';
import { authorizationUrl, challengeOf, completeLogin, decodeJwt, storedTokens, userOf, type Discovery } from './oidc';

const oidc = { issuer: 'http://127.0.0.1:9000', client_id: 'chrono-app', scopes: 'openid profile', redirect_uri: null, audience: null };
const disc: Discovery = {
  issuer: oidc.issuer,
  authorization_endpoint: 'http://127.0.0.1:9000/oauth2/authorize',
  token_endpoint: 'http://127.0.0.1:9000/oauth2/token',
};

function jwt(payload: Record<string, unknown>): string {
  const enc = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  return `${enc({ alg: 'RS256' })}.${enc(payload)}.sig`;
}

afterEach(() => sessionStorage.clear());

describe('PKCE', () => {
  it('computes the S256 challenge of RFC 7636 appendix B', async () => {
    expect(await challengeOf('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });

  it('sends code, S256 challenge, state and redirect uri, and redeems the code with the verifier', async () => {
    const url = new URL(await authorizationUrl(oidc, disc, '/cases/x'));
    expect(url.origin + url.pathname).toBe(disc.authorization_endpoint);
    const p = url.searchParams;
    expect(p.get('response_type')).toBe('code');
    expect(p.get('client_id')).toBe('chrono-app');
    expect(p.get('code_challenge_method')).toBe('S256');
    expect(p.get('redirect_uri')).toBe(`${window.location.origin}/callback`);
    expect(p.get('scope')).toBe('openid profile');
    const state = p.get('state')!;
    const challenge = p.get('code_challenge')!;

    const fetcher = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
      const body = new URLSearchParams(String(init!.body));
      // the verifier sent must be the one the challenge was made from
      expect(await challengeOf(body.get('code_verifier')!)).toBe(challenge);
      expect(body.get('grant_type')).toBe('authorization_code');
      expect(body.get('code')).toBe('the-code');
      return new Response(JSON.stringify({ access_token: jwt({ sub: 'alice' }), expires_in: 600, token_type: 'Bearer' }), { status: 200 });
    });
    const { tokens, returnTo } = await completeLogin(oidc, disc, `?code=the-code&state=${state}`, fetcher as typeof fetch);
    expect(fetcher).toHaveBeenCalledWith(disc.token_endpoint, expect.objectContaining({ method: 'POST' }));
    expect(returnTo).toBe('/cases/x');
    expect(decodeJwt(tokens.access_token).sub).toBe('alice');
    expect(storedTokens()?.access_token).toBe(tokens.access_token);
  });

  it('uses the configured redirect URI and audience', async () => {
    const url = new URL(await authorizationUrl({ ...oidc, redirect_uri: 'https://app.example/callback', audience: 'https://api.example' }, disc, '/'));
    expect(url.searchParams.get('redirect_uri')).toBe('https://app.example/callback');
    expect(url.searchParams.get('audience')).toBe('https://api.example');
  });

  it('refuses a callback whose state is not the one sent', async () => {
    await authorizationUrl(oidc, disc, '/');
    const fetcher = vi.fn();
    await expect(completeLogin(oidc, disc, '?code=c&state=forged', fetcher as unknown as typeof fetch)).rejects.toThrow(/state does not match/);
    expect(fetcher).not.toHaveBeenCalled();
  });

  it('refuses a second use of the same callback (nothing pending)', async () => {
    await expect(completeLogin(oidc, disc, '?code=c&state=s')).rejects.toThrow(/no login was started/);
  });

  it("shows the provider's error and the token endpoint's refusal", async () => {
    await expect(completeLogin(oidc, disc, '?error=access_denied&error_description=user+said+no')).rejects.toThrow(/user said no/);
    const url = new URL(await authorizationUrl(oidc, disc, '/'));
    const refuse = async () => new Response(JSON.stringify({ error: 'invalid_grant', error_description: 'PKCE verification failed' }), { status: 400 });
    await expect(completeLogin(oidc, disc, `?code=c&state=${url.searchParams.get('state')}`, refuse as typeof fetch)).rejects.toThrow(/PKCE verification failed/);
  });

  it('refuses an ID token issued for another login (nonce)', async () => {
    const url = new URL(await authorizationUrl(oidc, disc, '/'));
    const answer = async () => new Response(JSON.stringify({ access_token: jwt({ sub: 'a' }), id_token: jwt({ sub: 'a', nonce: 'other' }) }));
    await expect(completeLogin(oidc, disc, `?code=c&state=${url.searchParams.get('state')}`, answer as typeof fetch)).rejects.toThrow(/nonce/);
  });
});

describe('tokens', () => {
  it('forgets expired tokens', () => {
    sessionStorage.setItem('chrono.oidc.tokens', JSON.stringify({ access_token: 'x', expires_at: 1000 }));
    expect(storedTokens(900)).not.toBeNull();
    expect(storedTokens(990)).toBeNull();
  });

  it('reads roles from the configured claim of either token', () => {
    const claim = 'https://chronotracer.io/roles';
    const u = userOf({ access_token: jwt({ sub: 's1', [claim]: ['analyst'] }), id_token: jwt({ sub: 's1', name: 'Ann', [claim]: ['admin'] }), expires_at: 0 }, claim);
    expect(u).toEqual({ sub: 's1', name: 'Ann', roles: ['analyst', 'admin'], isAdmin: true, canRead: true });
    const none = userOf({ access_token: jwt({ sub: 's2' }), expires_at: 0 }, claim);
    expect(none.isAdmin).toBe(false);
    expect(none.canRead).toBe(false);
  });
});
