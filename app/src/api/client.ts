// The REST API client: one `request` that adds the bearer token and turns every failure
// into an ApiError carrying the API's stable code and message (and JSON path for invalid
// filters), plus one typed function per route. Types come from schema.gen.ts, generated
// from the OpenAPI document.

import type { components } from './schema.gen';
import type { components as filterComponents } from './filter.gen';

export type Schemas = components['schemas'];
export type Case = Schemas['Case'];
export type Evidence = Schemas['Evidence'];
export type EvidenceUpload = Schemas['EvidenceUpload'];
export type ChronoEvent = Schemas['Event'];
export type EventDetail = Schemas['EventDetail'];
export type Label = Schemas['Label'];
export type SearchPage = Schemas['SearchPage'];
export type Device = Schemas['Device'];
export type Identity = Schemas['Identity'];
export type FilterDocument = filterComponents['schemas']['FilterDocument'];
export type FilterNode = filterComponents['schemas']['Node'];
export type FilterLeaf = filterComponents['schemas']['Leaf'];
export type FilterField = filterComponents['schemas']['Field'];
export type FilterOp = filterComponents['schemas']['Op'];
export type TimeRange = filterComponents['schemas']['TimeRange'];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly path?: string,
  ) {
    super(message);
  }
}

export type TokenSource = () => string | null;

export interface ApiOptions {
  base: string;
  token: TokenSource;
  /** Called on 401 (expired or revoked token): the app logs in again. */
  onUnauthenticated?: () => void;
  fetcher?: typeof fetch;
}

export class Api {
  constructor(readonly opts: ApiOptions) {}

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.opts.token();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let resp: Response;
    try {
      resp = await (this.opts.fetcher ?? fetch)(`${this.opts.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', `the API cannot be reached (${String(e)})`);
    }
    if (resp.status === 204) return undefined as T;
    const text = await resp.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!resp.ok) {
      const err = (json as { error?: { code?: string; message?: string; path?: string } } | undefined)?.error;
      if (resp.status === 401) this.opts.onUnauthenticated?.();
      throw new ApiError(
        resp.status,
        err?.code ?? `http_${resp.status}`,
        err?.message ?? (text.slice(0, 200) || `${method} ${path} answered ${resp.status}`),
        err?.path,
      );
    }
    return json as T;
  }

  // cases
  listCases = () => this.request<Schemas['CaseList']>('GET', '/api/v1/cases').then((r) => r.cases);
  getCase = (id: string) => this.request<Case>('GET', `/api/v1/cases/${id}`);
  createCase = (name: string, description: string) =>
    this.request<Case>('POST', '/api/v1/cases', { name, description });

  // evidence
  listEvidence = (caseId: string) =>
    this.request<Schemas['EvidenceList']>('GET', `/api/v1/cases/${caseId}/evidence`).then((r) => r.evidence);
  registerEvidence = (caseId: string, body: Schemas['NewEvidence']) =>
    this.request<EvidenceUpload>('POST', `/api/v1/cases/${caseId}/evidence`, body);
  partUrls = (caseId: string, id: string, parts: Schemas['PartRequest'][]) =>
    this.request<Schemas['PartUrls']>('POST', `/api/v1/cases/${caseId}/evidence/${id}/upload/parts`, { parts }).then((r) => r.parts);
  abortUpload = (caseId: string, id: string) =>
    this.request<Evidence>('DELETE', `/api/v1/cases/${caseId}/evidence/${id}/upload`);
  completeUpload = (caseId: string, id: string, parts: Schemas['CompleteUpload']['parts']) =>
    this.request<Evidence>('POST', `/api/v1/cases/${caseId}/evidence/${id}/upload/complete`, { parts });
  processEvidence = (caseId: string, id: string) =>
    this.request<Evidence>('POST', `/api/v1/cases/${caseId}/evidence/${id}/process`);

  // events
  search = (caseId: string, doc: FilterDocument, opts: { cursor?: string | null; tz?: string }, signal?: AbortSignal) => {
    const q = new URLSearchParams();
    if (opts.cursor) q.set('cursor', opts.cursor);
    if (opts.tz) q.set('tz', opts.tz);
    const qs = q.toString();
    return this.request<SearchPage>('POST', `/api/v1/cases/${caseId}/events/search${qs ? `?${qs}` : ''}`, doc, signal);
  };
  getEvent = (caseId: string, id: number) => this.request<EventDetail>('GET', `/api/v1/cases/${caseId}/events/${id}`);
  putLabel = (caseId: string, id: number, label: string, note?: string) =>
    this.request<Label>('PUT', `/api/v1/cases/${caseId}/events/${id}/labels/${encodeURIComponent(label)}`, note === undefined ? undefined : { note });
  deleteLabel = (caseId: string, id: number, label: string) =>
    this.request<void>('DELETE', `/api/v1/cases/${caseId}/events/${id}/labels/${encodeURIComponent(label)}`);
  histogram = (caseId: string, doc: FilterDocument, buckets: number, tz: string, signal?: AbortSignal) =>
    this.request<Schemas['Histogram']>('POST', `/api/v1/cases/${caseId}/events/histogram?buckets=${buckets}&tz=${encodeURIComponent(tz)}`, doc, signal);
  comments = (caseId: string, id: number) =>
    this.request<Schemas['CommentList']>('GET', `/api/v1/cases/${caseId}/events/${id}/comments`).then((r) => r.comments);
  addComment = (caseId: string, id: number, body: string) =>
    this.request<Schemas['Comment']>('POST', `/api/v1/cases/${caseId}/events/${id}/comments`, { body });
  labels = (caseId: string) =>
    this.request<Schemas['LabelList']>('GET', `/api/v1/cases/${caseId}/labels`).then((r) => r.labels);
  savedFilters = (caseId: string) =>
    this.request<Schemas['SavedFilterList']>('GET', `/api/v1/cases/${caseId}/filters`).then((r) => r.filters);
  saveFilter = (caseId: string, name: string, document: FilterDocument) =>
    this.request<Schemas['SavedFilter']>('POST', `/api/v1/cases/${caseId}/filters`, { name, document });
  deleteFilter = (caseId: string, id: string) => this.request<void>('DELETE', `/api/v1/cases/${caseId}/filters/${id}`);
  devices = (caseId: string) =>
    this.request<Schemas['DeviceList']>('GET', `/api/v1/cases/${caseId}/devices`).then((r) => r.devices);
  identities = (caseId: string) =>
    this.request<Schemas['IdentityList']>('GET', `/api/v1/cases/${caseId}/identities`).then((r) => r.identities);
  filterSchema = () => this.request<Record<string, unknown>>('GET', '/api/v1/filter.schema.json');
}
