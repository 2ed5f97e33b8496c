import { describe, expect, it } from 'vitest';
import { parseConfig } from './config';

describe('config.json', () => {
  it('reads the format chronoctl writes (provisioner/src/webapp.rs)', () => {
    const c = parseConfig({
      api_url: 'https://abc.execute-api.eu-west-1.amazonaws.com/',
      ws_url: 'wss://def.execute-api.eu-west-1.amazonaws.com/live',
      oidc: {
        issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X/',
        client_id: 'client',
        scopes: ['openid', 'profile', 'email'],
        redirect_uri: 'https://app.example/callback',
        audience: 'https://api.example',
        roles_claim: 'custom:roles',
        cases_claim: 'custom:cases',
      },
    });
    expect(c.api_url).toBe('https://abc.execute-api.eu-west-1.amazonaws.com');
    expect(c.oidc).toEqual({
      issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X',
      client_id: 'client',
      scopes: 'openid profile email',
      redirect_uri: 'https://app.example/callback',
      audience: 'https://api.example',
    });
    expect(c.roles_claim).toBe('custom:roles');
    expect(c.cases_claim).toBe('custom:cases');
  });

  it('fills defaults', () => {
    const c = parseConfig({ oidc: { issuer: 'http://127.0.0.1:9/', client_id: 'app' } });
    expect(c).toEqual({
      api_url: '',
      ws_url: '',
      oidc: { issuer: 'http://127.0.0.1:9', client_id: 'app', scopes: 'openid', redirect_uri: null, audience: null },
      roles_claim: 'https://chronotracer.io/roles',
      cases_claim: 'https://chronotracer.io/cases',
    });
  });

  it('keeps ws_url null (no WebSocket API: HTTP only) apart from absent (this origin)', () => {
    expect(parseConfig({ ws_url: null, oidc: { issuer: 'x', client_id: 'y' } }).ws_url).toBeNull();
    expect(parseConfig({ oidc: { issuer: 'x', client_id: 'y' } }).ws_url).toBe('');
  });

  it('names the missing or mistyped field', () => {
    expect(() => parseConfig({ oidc: { client_id: 'abc' } })).toThrow(/oidc.issuer/);
    expect(() => parseConfig({ oidc: { issuer: 'x', client_id: '' } })).toThrow(/oidc.client_id is empty/);
    expect(() => parseConfig({ api_url: 3, oidc: { issuer: 'x', client_id: 'y' } })).toThrow(/api_url must be a string/);
    expect(() => parseConfig({ oidc: { issuer: 'x', client_id: 'y', scopes: [1] } })).toThrow(/oidc.scopes/);
    expect(() => parseConfig({})).toThrow(/oidc must be an object/);
    expect(() => parseConfig(null)).toThrow(/not an object/);
  });
});
