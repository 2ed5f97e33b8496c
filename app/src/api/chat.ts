// The AI chat: questions over the WebSocket (local: `/api/v1/ai/ws`; AWS: the WebSocket
// API), falling back to `POST /api/v1/ai/chat` when the socket cannot be opened or drops.
// One question at a time per socket: the server answers each message with one reply, in
// order, so replies are matched to questions first-in first-out.

import { ApiError, type Api, type FilterDocument, type Schemas } from './client';

// The request and reply types come from the OpenAPI document (`POST /api/v1/ai/chat`);
// the reply's filter is typed there as a plain object (its JSON Schema is the filter
// language's), so it is narrowed to the generated FilterDocument here.
export type ChatRequest = Schemas['ChatRequest'];
export type ReplyKind = Schemas['ReplyKind'];
export type Resolution = Schemas['Resolution'];
export type ChatReply = Omit<Schemas['ChatReply'], 'filter'> & { filter?: FilterDocument | null };

export interface ChatOptions {
  api: Api;
  /** WebSocket URL ('' = this origin's `/api/v1/ai/ws`; null = none, HTTP only). */
  wsUrl: string | null;
  token: () => string | null;
  connectTimeoutMs?: number;
  replyTimeoutMs?: number;
  socketFactory?: (url: string) => WebSocket;
}

type Waiter = { resolve: (r: ChatReply) => void; reject: (e: unknown) => void; timer: ReturnType<typeof setTimeout> };

/** The socket's URL with the token in `?token=` (browsers cannot set headers on a WebSocket). */
export function socketUrl(wsUrl: string, token: string, location: Location = window.location): string {
  const base = wsUrl || `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/ai/ws`;
  const u = new URL(base);
  u.searchParams.set('token', token);
  return u.toString();
}

/** An error reply (`{"error": {...}}`) as an ApiError. */
function replyOrError(text: string): ChatReply {
  const v = JSON.parse(text) as ChatReply | { error: { code: string; message: string } };
  if ('error' in v) throw new ApiError(400, v.error.code, v.error.message);
  return v;
}

export class ChatClient {
  private socket: WebSocket | null = null;
  /** The token `socket` was opened with. */
  private socketToken: string | null = null;
  private opening: Promise<WebSocket> | null = null;
  private waiting: Waiter[] = [];
  /** How the last question went: 'websocket' or 'http'. */
  transport: 'websocket' | 'http' | null = null;

  constructor(private readonly opts: ChatOptions) {}

  private open(): Promise<WebSocket> {
    const token = this.opts.token();
    // In AWS every message is checked against the token the socket was opened with (its
    // expiry too), so a refreshed token means a new socket.
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      if (token === this.socketToken) return Promise.resolve(this.socket);
      this.socket.close();
      this.socket = null;
    }
    if (this.opening) return this.opening;
    if (!token) return Promise.reject(new Error('not logged in'));
    const url = socketUrl(this.opts.wsUrl ?? '', token);
    this.opening = new Promise<WebSocket>((resolve, reject) => {
      const ws = (this.opts.socketFactory ?? ((u) => new WebSocket(u)))(url);
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error('WebSocket did not open in time'));
      }, this.opts.connectTimeoutMs ?? 4000);
      ws.onopen = () => {
        clearTimeout(timer);
        this.socket = ws;
        this.socketToken = token;
        resolve(ws);
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error('WebSocket failed'));
      };
      ws.onmessage = (ev) => {
        const w = this.waiting.shift();
        if (!w) return;
        clearTimeout(w.timer);
        try {
          w.resolve(replyOrError(String(ev.data)));
        } catch (e) {
          w.reject(e);
        }
      };
      ws.onclose = () => {
        if (this.socket === ws) this.socket = null;
        for (const w of this.waiting.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error('WebSocket closed'));
        }
      };
    }).finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private viaSocket(req: ChatRequest): Promise<ChatReply> {
    return this.open().then(
      (ws) =>
        new Promise<ChatReply>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.waiting = this.waiting.filter((w) => w.timer !== timer);
            reject(new Error('no answer over the WebSocket in time'));
          }, this.opts.replyTimeoutMs ?? 30000);
          this.waiting.push({ resolve, reject, timer });
          ws.send(JSON.stringify(req));
        }),
    );
  }

  /** Asks one question; API errors (bad request, unknown case) are not retried over HTTP. */
  async ask(req: ChatRequest): Promise<ChatReply> {
    if (this.opts.wsUrl === null) {
      // No WebSocket API in this deployment (a preview): straight to HTTP, no failed attempt.
      const reply = await this.opts.api.request<ChatReply>('POST', '/api/v1/ai/chat', req);
      this.transport = 'http';
      return reply;
    }
    try {
      const reply = await this.viaSocket(req);
      this.transport = 'websocket';
      return reply;
    } catch (e) {
      if (e instanceof ApiError) throw e;
    }
    const reply = await this.opts.api.request<ChatReply>('POST', '/api/v1/ai/chat', req);
    this.transport = 'http';
    return reply;
  }

  close(): void {
    this.socket?.close();
    this.socket = null;
  }
}
