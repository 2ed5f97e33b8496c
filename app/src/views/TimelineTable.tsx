import { useVirtualizer } from '@tanstack/react-virtual';
import { memo, useEffect, useRef, useState, useSyncExternalStore, type KeyboardEvent } from 'react';
import type { ChronoEvent } from '../api/client';
import { ErrorNote } from '../components/ErrorNote';
import { eventLabel, hostOf, userOf } from '../lib/events';
import type { TimelinePager } from '../lib/pager';
import { formatTs } from '../lib/time';

export const ROW_HEIGHT = 28;
/** Fetch the next page when the last rendered row is this close to the end of what is loaded. */
export const PREFETCH_ROWS = 150;

const COLUMNS = ['Time', 'Source', 'Host', 'User', 'Action', 'Outcome', 'Event', 'Message'] as const;

function cells(e: ChronoEvent, zone: string): string[] {
  return [formatTs(e.ts, zone), e.source, hostOf(e), userOf(e), e.action ?? '', e.outcome ?? '', eventLabel(e), e.message ?? ''];
}

interface RowProps {
  row: ChronoEvent;
  index: number;
  top: number;
  zone: string;
  active: boolean;
  selected: boolean;
  onClick: (index: number, row: ChronoEvent) => void;
}

/** One event row; memoized, so scrolling renders only the rows that come into view. */
const Row = memo(function Row({ row, index, top, zone, active, selected, onClick }: RowProps) {
  const values = cells(row, zone);
  return (
    <div
      role="row"
      id={`ev-${row.id}`}
      className={`row${active ? ' active' : ''}${selected ? ' selected' : ''}`}
      aria-rowindex={index + 2}
      aria-selected={selected}
      style={{ transform: `translateY(${top}px)` }}
      onClick={() => onClick(index, row)}
    >
      {values.map((v, i) => (
        <div role="gridcell" className={`c${i}`} key={i} aria-colindex={i + 1} title={i >= 6 ? v : undefined}>
          {v}
        </div>
      ))}
    </div>
  );
});

interface Props {
  pager: TimelinePager;
  zone: string;
  selectedId: number | null;
  onOpen: (e: ChronoEvent) => void;
  onRows?: (rows: readonly ChronoEvent[]) => void;
}

/**
 * The timeline as an ARIA grid: only the rows in view are in the DOM; pages are fetched as
 * the end of the loaded rows comes into view. Keys: ↑/↓ move, PageUp/PageDown by a screen,
 * Home/End, Enter opens the event.
 */
export function TimelineTable({ pager, zone, selectedId, onOpen, onRows }: Props) {
  const snap = useSyncExternalStore(pager.subscribe, pager.getSnapshot);
  const scroller = useRef<HTMLDivElement>(null);
  const header = useRef<HTMLDivElement>(null);
  const [active, setActive] = useState(0);
  const count = snap.rows.length + (snap.hasMore ? 1 : 0);

  const virt = useVirtualizer({
    count,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    scrollMargin: ROW_HEIGHT,
    // jsdom and the first paint have no layout; start with a screenful of rows.
    initialRect: { width: 1000, height: 600 },
  });
  const items = virt.getVirtualItems();
  const lastIndex = items.length ? items[items.length - 1]!.index : 0;

  useEffect(() => {
    if (snap.hasMore && !snap.loading && !snap.error && lastIndex >= snap.rows.length - PREFETCH_ROWS) {
      void pager.loadMore();
    }
  }, [lastIndex, snap.hasMore, snap.loading, snap.error, snap.rows.length, pager]);

  useEffect(() => onRows?.(snap.rows), [snap.rows, onRows]);
  useEffect(() => setActive(0), [pager]);

  const move = (to: number) => {
    const max = Math.max(0, snap.rows.length - 1);
    const next = Math.min(max, Math.max(0, to));
    setActive(next);
    virt.scrollToIndex(next, { align: 'auto' });
  };

  const onKey = (ev: KeyboardEvent) => {
    const page = Math.max(1, Math.floor((scroller.current?.clientHeight ?? 600) / ROW_HEIGHT) - 2);
    const keys: Record<string, () => void> = {
      ArrowDown: () => move(active + 1),
      ArrowUp: () => move(active - 1),
      PageDown: () => move(active + page),
      PageUp: () => move(active - page),
      Home: () => move(0),
      End: () => move(snap.rows.length - 1),
      Enter: () => {
        const row = snap.rows[active];
        if (row) onOpen(row);
      },
    };
    const fn = keys[ev.key];
    if (fn) {
      ev.preventDefault();
      fn();
    }
  };

  const openRef = useRef(onOpen);
  openRef.current = onOpen;
  const [openAt] = useState(() => (index: number, row: ChronoEvent) => {
    setActive(index);
    openRef.current(row);
  });

  const activeRow = snap.rows[active];
  const empty = !snap.hasMore && snap.rows.length === 0 && !snap.error;

  return (
    <div className="timeline">
      <div
        ref={scroller}
        className="grid"
        role="grid"
        aria-label="Timeline"
        aria-rowcount={snap.hasMore ? -1 : snap.rows.length + 1}
        aria-colcount={COLUMNS.length}
        aria-activedescendant={activeRow ? `ev-${activeRow.id}` : undefined}
        aria-busy={snap.loading}
        tabIndex={0}
        onKeyDown={onKey}
        data-testid="timeline"
      >
        <div role="rowgroup" className="thead" ref={header}>
          <div role="row" className="row head" aria-rowindex={1}>
            {COLUMNS.map((c, i) => (
              <div role="columnheader" className={`c${i}`} key={c} aria-colindex={i + 1}>
                {c === 'Time' ? `Time (${zone})` : c}
              </div>
            ))}
          </div>
        </div>
        <div role="rowgroup" className="tbody" style={{ height: virt.getTotalSize() }}>
          {items.map((vi) => {
            const row = snap.rows[vi.index];
            const top = vi.start - ROW_HEIGHT;
            if (!row) {
              return (
                <div role="row" key="more" className="row more" aria-rowindex={vi.index + 2} style={{ transform: `translateY(${top}px)` }}>
                  <div role="gridcell" aria-colindex={1}>
                    {snap.error ? '' : 'Loading more events…'}
                  </div>
                </div>
              );
            }
            return (
              <Row
                key={row.id}
                row={row}
                index={vi.index}
                top={top}
                zone={zone}
                active={vi.index === active}
                selected={row.id === selectedId}
                onClick={openAt}
              />
            );
          })}
        </div>
      </div>
      <p className="timeline-status" role="status" aria-live="polite">
        {snap.loading && snap.rows.length === 0
          ? 'Loading events…'
          : empty
            ? 'No events match this filter.'
            : `${snap.rows.length.toLocaleString()}${snap.hasMore ? '+' : ''} events${snap.hasMore ? ' (more load as you scroll)' : ''}`}
      </p>
      {snap.error && <ErrorNote error={snap.error} onRetry={() => void pager.retry()} />}
    </div>
  );
}
