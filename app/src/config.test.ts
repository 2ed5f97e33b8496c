import { describe, expect, it } from 'vitest';
import { parseConfig } from './config';

describe('config.json', () => {
  it('fills defaults and trims trailing slashes', () => {
    const c = parseConfig({ api_url: 'https://api.example/', oidc: { issuer: 'https://idp.example/', client_id: 'abc' } });
    expect(c.api_url).toBe('https://api.example');
    expect(c.oidc).toEqual({ issuer: 'https://idp.example', client_id: 'abc', scopes: 'openid' });
    expect(c.ws_token_param).toBe('access_token');
    expect(c.roles_claim).toBe('https://chronotracer.io/roles');
  });

  it('names the missing or mistyped field', () => {
    expect(() => parseConfig({ oidc: { client_id: 'abc' } })).toThrow(/oidc.issuer/);
    expect(() => parseConfig({ oidc: { issuer: 'x', client_id: '' } })).toThrow(/oidc.client_id is empty/);
    expect(() => parseConfig({ api_url: 3, oidc: { issuer: 'x', client_id: 'y' } })).toThrow(/api_url must be a string/);
    expect(() => parseConfig(null)).toThrow(/not an object/);
  });
});
