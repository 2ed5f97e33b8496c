import { describe, expect, it, vi } from 'vitest';
import { ApiError, Api } from './client';
import { ChatClient, socketUrl } from './chat';

/** A WebSocket double: opens (or fails) on the next tick, echoes replies given by the test. */
class FakeSocket {
  static OPEN = 1;
  readyState = 0;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(
    readonly url: string,
    fail = false,
  ) {
    setTimeout(() => {
      if (fail) this.onerror?.();
      else {
        this.readyState = 1;
        this.onopen?.();
      }
    }, 0);
  }
  send(text: string) {
    this.sent.push(text);
  }
  reply(obj: unknown) {
    this.onmessage?.({ data: JSON.stringify(obj) });
  }
  close() {
    this.readyState = 3;
    this.onclose?.();
  }
}

const reply = (session: string, message: string) => ({ session_id: session, kind: 'filter', message, filter: { where: { field: 'action', op: 'eq', value: 'logon' } }, summary: 's', count: 3 });

function client(opts: { fail?: boolean; fetcher?: typeof fetch; wsUrl?: string | null; token?: () => string } = {}) {
  const sockets: FakeSocket[] = [];
  const token = opts.token ?? (() => 'tok');
  const api = new Api({ base: '', token, fetcher: opts.fetcher ?? (vi.fn() as unknown as typeof fetch) });
  const chat = new ChatClient({
    api,
    wsUrl: opts.wsUrl === undefined ? 'ws://127.0.0.1:1/api/v1/ai/ws' : opts.wsUrl,
    token,
    socketFactory: (u) => {
      const s = new FakeSocket(u, opts.fail);
      sockets.push(s);
      return s as unknown as WebSocket;
    },
  });
  vi.stubGlobal('WebSocket', FakeSocket);
  return { chat, sockets };
}

describe('ChatClient', () => {
  it('puts the token in ?token= (as API Gateway and the local WebSocket read it)', () => {
    expect(socketUrl('wss://x.example/live', 'a.b.c')).toBe('wss://x.example/live?token=a.b.c');
    expect(socketUrl('', 't', { protocol: 'https:', host: 'app.example' } as Location)).toBe('wss://app.example/api/v1/ai/ws?token=t');
  });

  it('asks over one WebSocket and matches replies to questions in order', async () => {
    const { chat, sockets } = client();
    const a = chat.ask({ case_id: 'c', question: 'one' });
    await new Promise((r) => setTimeout(r, 5));
    const b = chat.ask({ case_id: 'c', question: 'two', session_id: 's1' });
    await new Promise((r) => setTimeout(r, 5));
    expect(sockets).toHaveLength(1);
    expect(sockets[0]!.url).toContain('token=tok');
    expect(sockets[0]!.sent.map((t) => JSON.parse(t).question)).toEqual(['one', 'two']);
    sockets[0]!.reply(reply('s1', 'first'));
    sockets[0]!.reply(reply('s1', 'second'));
    expect((await a).message).toBe('first');
    expect((await b).message).toBe('second');
    expect(chat.transport).toBe('websocket');
  });

  it('asks over HTTP only, opening no socket, where the deployment has no WebSocket API (ws_url null)', async () => {
    const fetcher = vi.fn(async () => new Response(JSON.stringify(reply('s7', 'http only')), { status: 200 }));
    const { chat, sockets } = client({ fetcher: fetcher as unknown as typeof fetch, wsUrl: null });
    const r = await chat.ask({ case_id: 'c', question: 'q' });
    expect(r.message).toBe('http only');
    expect(sockets).toHaveLength(0);
    expect(chat.transport).toBe('http');
    expect(fetcher).toHaveBeenCalledTimes(1);
  });

  it('falls back to POST /api/v1/ai/chat when the socket cannot open', async () => {
    const fetcher = vi.fn(async () => new Response(JSON.stringify(reply('s9', 'over http')), { status: 200 }));
    const { chat } = client({ fail: true, fetcher: fetcher as unknown as typeof fetch });
    const r = await chat.ask({ case_id: 'c', question: 'q' });
    expect(r.message).toBe('over http');
    expect(chat.transport).toBe('http');
    expect(fetcher).toHaveBeenCalledWith('/api/v1/ai/chat', expect.objectContaining({ method: 'POST' }));
  });

  it('gives an error reply as the API error, without asking again over HTTP', async () => {
    const fetcher = vi.fn();
    const { chat, sockets } = client({ fetcher: fetcher as unknown as typeof fetch });
    const a = chat.ask({ case_id: 'c', question: 'q' });
    await new Promise((r) => setTimeout(r, 5));
    sockets[0]!.reply({ error: { code: 'not_found', message: 'case not found' } });
    await expect(a).rejects.toBeInstanceOf(ApiError);
    await expect(a).rejects.toThrow('case not found');
    expect(fetcher).not.toHaveBeenCalled();
  });

  it('opens a new socket when the token was refreshed (AWS checks each message against it)', async () => {
    let current = 'tok-1';
    const { chat, sockets } = client({ token: () => current });
    const a = chat.ask({ case_id: 'c', question: 'one' });
    await new Promise((r) => setTimeout(r, 5));
    sockets[0]!.reply(reply('s1', 'first'));
    expect((await a).message).toBe('first');
    current = 'tok-2';
    const b = chat.ask({ case_id: 'c', question: 'two' });
    await new Promise((r) => setTimeout(r, 5));
    expect(sockets).toHaveLength(2);
    expect(sockets[0]!.readyState).toBe(3);
    expect(sockets[1]!.url).toContain('token=tok-2');
    sockets[1]!.reply(reply('s1', 'second'));
    expect((await b).message).toBe('second');
  });
});
