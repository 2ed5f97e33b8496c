import { describe, expect, it, vi } from 'vitest';
import { Api, ApiError } from './client';

describe('Api', () => {
  it('sends the bearer token and JSON, and returns the parsed body', async () => {
    const fetcher = vi.fn(async () => new Response(JSON.stringify({ cases: [{ id: 'x' }] }), { status: 200 }));
    const api = new Api({ base: 'https://api.example', token: () => 't0k', fetcher: fetcher as unknown as typeof fetch });
    expect(await api.listCases()).toEqual([{ id: 'x' }]);
    const [url, init] = fetcher.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('https://api.example/api/v1/cases');
    expect((init.headers as Record<string, string>).authorization).toBe('Bearer t0k');
  });

  it("turns an error body into ApiError with the API's code, message and path", async () => {
    const body = { error: { code: 'invalid_filter', message: 'unknown field `actor`', path: '$.where.field' } };
    const fetcher = async () => new Response(JSON.stringify(body), { status: 400 });
    const api = new Api({ base: '', token: () => 't', fetcher });
    const err = await api.search('c', { where: { field: 'action', op: 'eq', value: 'x' } }, { tz: 'UTC' }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'invalid_filter', message: 'unknown field `actor`', path: '$.where.field' });
  });

  it('calls back on 401 so the app signs in again', async () => {
    const onUnauthenticated = vi.fn();
    const fetcher = async () => new Response(JSON.stringify({ error: { code: 'unauthenticated', message: 'invalid token: expired' } }), { status: 401 });
    const api = new Api({ base: '', token: () => 't', fetcher, onUnauthenticated });
    await expect(api.listCases()).rejects.toThrow('invalid token: expired');
    expect(onUnauthenticated).toHaveBeenCalledOnce();
  });

  it('reports an unreachable API as a network error', async () => {
    const fetcher = async () => {
      throw new TypeError('Failed to fetch');
    };
    const api = new Api({ base: '', token: () => null, fetcher });
    await expect(api.listCases()).rejects.toMatchObject({ code: 'network' });
  });

  it('puts cursor and zone in the query of a search', async () => {
    const fetcher = vi.fn(async (_url: string, _init?: RequestInit) => new Response(JSON.stringify({ events: [], next_cursor: null, range: {} })));
    const api = new Api({ base: '', token: () => 't', fetcher: fetcher as unknown as typeof fetch });
    await api.search('c1', { limit: 5 }, { cursor: 'abc', tz: 'Europe/Berlin' });
    expect(fetcher.mock.calls[0]![0]).toBe('/api/v1/cases/c1/events/search?cursor=abc&tz=Europe%2FBerlin');
  });
});
