import { describe, expect, it } from 'vitest';
import { ApiError, type ChronoEvent, type SearchPage } from '../api/client';
import { TimelinePager } from './pager';

const ev = (id: number) => ({ id, ts: new Date(1_700_000_000_000 + id * 1000).toISOString() }) as unknown as ChronoEvent;
const page = (ids: number[], next: string | null): SearchPage => ({ events: ids.map(ev), next_cursor: next, range: { from: null, to: null } });

describe('TimelinePager', () => {
  it('fetches keyset pages one after another with the previous cursor, and stops at the last', async () => {
    const asked: Array<string | null> = [];
    const pages: Record<string, SearchPage> = { first: page([1, 2], 'c1'), c1: page([3, 4], 'c2'), c2: page([5], null) };
    const pager = new TimelinePager(async (cursor) => {
      asked.push(cursor);
      return pages[cursor ?? 'first']!;
    });
    let notified = 0;
    pager.subscribe(() => notified++);
    await pager.loadMore();
    await pager.loadMore();
    await pager.loadMore();
    await pager.loadMore(); // nothing more
    expect(asked).toEqual([null, 'c1', 'c2']);
    const s = pager.getSnapshot();
    expect(s.rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
    expect(s.hasMore).toBe(false);
    expect(s.pages).toBe(3);
    expect(notified).toBeGreaterThanOrEqual(6);
  });

  it('asks for one page at a time', async () => {
    let calls = 0;
    let release!: () => void;
    const pager = new TimelinePager(
      () =>
        new Promise((resolve) => {
          calls++;
          release = () => resolve(page([1], 'c'));
        }),
    );
    const a = pager.loadMore();
    void pager.loadMore();
    expect(pager.getSnapshot().loading).toBe(true);
    expect(calls).toBe(1);
    release();
    await a;
    expect(pager.getSnapshot().loading).toBe(false);
  });

  it('drops the answer of a disposed pager (an old filter)', async () => {
    let release!: () => void;
    let aborted = false;
    const pager = new TimelinePager(
      (_c, signal) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => (aborted = true));
          release = () => resolve(page([99], null));
        }),
    );
    const p = pager.loadMore();
    pager.dispose();
    release();
    await p;
    expect(aborted).toBe(true);
    expect(pager.getSnapshot().rows).toEqual([]);
  });

  it('keeps the API error and retries on request', async () => {
    let fail = true;
    const pager = new TimelinePager(async () => {
      if (fail) throw new ApiError(400, 'invalid_filter', 'unknown field', '$.where.field');
      return page([1], null);
    });
    await pager.loadMore();
    expect(pager.getSnapshot().error?.code).toBe('invalid_filter');
    await pager.loadMore(); // no retry without asking
    expect(pager.getSnapshot().rows).toEqual([]);
    fail = false;
    await pager.retry();
    expect(pager.getSnapshot().error).toBeNull();
    expect(pager.getSnapshot().rows.map((r) => r.id)).toEqual([1]);
  });
});
