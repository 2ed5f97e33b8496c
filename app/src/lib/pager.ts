// The timeline's rows, fetched through the API's keyset pages one after another as the
// table scrolls. One pager per (case, filter, zone): a new filter makes a new pager, and
// the old one's request is aborted so a late answer never mixes into the new rows.

import { ApiError, type ChronoEvent, type SearchPage } from '../api/client';

export type PageFetcher = (cursor: string | null, signal: AbortSignal) => Promise<SearchPage>;

export interface PagerSnapshot {
  rows: readonly ChronoEvent[];
  /** More pages exist (or the first has not been fetched). */
  hasMore: boolean;
  loading: boolean;
  error: ApiError | null;
  pages: number;
  range: SearchPage['range'] | null;
}

export class TimelinePager {
  private rows: ChronoEvent[] = [];
  private cursor: string | null = null;
  private done = false;
  private inflight: AbortController | null = null;
  private error: ApiError | null = null;
  private pages = 0;
  private range: SearchPage['range'] | null = null;
  private snapshot: PagerSnapshot;
  private listeners = new Set<() => void>();

  constructor(private readonly fetchPage: PageFetcher) {
    this.snapshot = this.makeSnapshot();
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getSnapshot = (): PagerSnapshot => this.snapshot;

  private makeSnapshot(): PagerSnapshot {
    return {
      rows: this.rows,
      hasMore: !this.done,
      loading: this.inflight !== null,
      error: this.error,
      pages: this.pages,
      range: this.range,
    };
  }

  private changed(): void {
    this.snapshot = this.makeSnapshot();
    for (const fn of this.listeners) fn();
  }

  /** Fetches the next page unless one is on its way, the end was reached or the last failed. */
  loadMore(): Promise<void> {
    if (this.inflight || this.done || this.error) return Promise.resolve();
    const ctrl = new AbortController();
    this.inflight = ctrl;
    this.changed();
    return this.fetchPage(this.cursor, ctrl.signal).then(
      (page) => {
        if (ctrl.signal.aborted) return;
        this.inflight = null;
        // A new array, so React sees the change; pages are appended, never reordered.
        this.rows = this.rows.concat(page.events);
        this.cursor = page.next_cursor ?? null;
        this.done = !page.next_cursor;
        this.pages += 1;
        this.range = page.range;
        this.changed();
      },
      (e: unknown) => {
        if (ctrl.signal.aborted) return;
        this.inflight = null;
        this.error = e instanceof ApiError ? e : new ApiError(0, 'network', String(e));
        this.changed();
      },
    );
  }

  /** Clears a failure so loadMore tries again. */
  retry(): Promise<void> {
    this.error = null;
    this.changed();
    return this.loadMore();
  }

  /** Stops the request under way; the pager is not used afterwards. */
  dispose(): void {
    this.inflight?.abort();
    this.inflight = null;
    this.listeners.clear();
  }
}
