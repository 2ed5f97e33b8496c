import { useRef, useState, type PointerEvent } from 'react';
import type { FilterDocument } from '../api/client';
import { ErrorNote } from '../components/ErrorNote';
import { useSession } from '../context';
import { useAsync } from '../lib/useAsync';
import { axisLabel } from '../lib/time';

export interface Bucket {
  start: string;
  count: number;
}

/** The time range [from, to) of the buckets between fractions a and b of the width. */
export function rangeOf(buckets: Bucket[], end: number, a: number, b: number): [string, string] | null {
  if (buckets.length === 0) return null;
  const lo = Math.max(0, Math.min(a, b));
  const hi = Math.min(1, Math.max(a, b));
  const first = Math.min(buckets.length - 1, Math.floor(lo * buckets.length));
  const last = Math.min(buckets.length - 1, Math.max(first, Math.ceil(hi * buckets.length) - 1));
  const from = Date.parse(buckets[first]!.start);
  const to = last + 1 < buckets.length ? Date.parse(buckets[last + 1]!.start) : end;
  return [new Date(from).toISOString(), new Date(to - 1).toISOString()];
}

/** Bars across the chart. */
export const BUCKETS = 80;
const W = 1000;
const H = 80;

interface Props {
  caseId: string;
  doc: FilterDocument;
  tz: string;
  onRange: (from: string, to: string) => void;
}

/** Event counts over time for the current filter; dragging across it narrows the time filter. */
export function Histogram({ caseId, doc, tz, onRange }: Props) {
  const { api } = useSession();
  const key = JSON.stringify(doc);
  const hist = useAsync(
    () =>
      // The histogram covers the whole filter, not a page of it.
      api.histogram(caseId, { ...doc, limit: undefined, sort: undefined }, BUCKETS, tz),
    [api, caseId, key, tz],
  );
  const svg = useRef<SVGSVGElement>(null);
  const [drag, setDrag] = useState<{ a: number; b: number } | null>(null);

  const frac = (ev: PointerEvent) => {
    const r = svg.current!.getBoundingClientRect();
    return r.width ? Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)) : 0;
  };

  const data = hist.data;
  const buckets = data?.buckets ?? [];
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const total = data?.total ?? 0;
  const firstStart = buckets[0] ? Date.parse(buckets[0].start) : 0;
  const end = data?.to ? Date.parse(data.to) : firstStart + (data?.interval_seconds ?? 0) * 1000 * buckets.length;
  const span = end - firstStart;
  const bw = buckets.length ? W / buckets.length : W;

  return (
    <figure className="histogram" aria-labelledby="hist-caption">
      <figcaption id="hist-caption">
        Events over time{data ? ` (${total.toLocaleString()} in ${buckets.length} buckets of ${data.interval ?? '—'})` : ''}
        <span className="muted"> — drag across the bars to narrow the time range</span>
      </figcaption>
      {hist.error !== null && <ErrorNote error={hist.error} onRetry={hist.reload} />}
      {hist.loading && !data && <p role="status">Loading histogram…</p>}
      {data && buckets.length === 0 && <p className="empty">No events to chart.</p>}
      {buckets.length > 0 && (
        <>
          <svg
            ref={svg}
            viewBox={`0 0 ${W} ${H}`}
            preserveAspectRatio="none"
            role="img"
            aria-label={`Histogram of ${total} events; the busiest bucket has ${max}`}
            data-testid="histogram"
            onPointerDown={(ev) => {
              (ev.target as Element).setPointerCapture?.(ev.pointerId);
              const f = frac(ev);
              setDrag({ a: f, b: f });
            }}
            onPointerMove={(ev) => drag && setDrag({ a: drag.a, b: frac(ev) })}
            onPointerUp={(ev) => {
              if (!drag) return;
              const r = rangeOf(buckets, end, drag.a, frac(ev));
              setDrag(null);
              if (r) onRange(r[0], r[1]);
            }}
          >
            {buckets.map((b, i) => {
              const h = b.count === 0 ? 0 : Math.max(1.5, (b.count / max) * (H - 2));
              return (
                <rect key={b.start} x={i * bw + 0.5} y={H - h} width={Math.max(0.5, bw - 1)} height={h} className="bar">
                  <title>{`${b.start}: ${b.count}`}</title>
                </rect>
              );
            })}
            {drag && (
              <rect
                className="selection"
                x={Math.min(drag.a, drag.b) * W}
                y={0}
                width={Math.abs(drag.b - drag.a) * W}
                height={H}
              />
            )}
          </svg>
          <div className="axis" aria-hidden="true">
            <span>{axisLabel(buckets[0]!.start, tz, span)}</span>
            <span>{axisLabel(buckets[Math.floor(buckets.length / 2)]!.start, tz, span)}</span>
            <span>{axisLabel(new Date(end - 1).toISOString(), tz, span)}</span>
          </div>
        </>
      )}
    </figure>
  );
}
