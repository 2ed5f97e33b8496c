import { memo, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { ChronoEvent, FilterDocument } from '../api/client';
import { useSession } from '../context';
import { seenValues } from '../lib/events';
import { withTime } from '../lib/filter';
import { TimelinePager } from '../lib/pager';
import { useAsync } from '../lib/useAsync';
import { zoneName, type ZoneChoice } from '../lib/time';
import { ChatPanel } from './ChatPanel';
import { EventDetail } from './EventDetail';
import { FilterBar } from './FilterBar';
import { Histogram } from './Histogram';
import { TimelineTable } from './TimelineTable';

const MemoHistogram = memo(Histogram);

interface Props {
  caseId: string;
  doc: FilterDocument;
  onDoc: (d: FilterDocument) => void;
}

export function TimelineView({ caseId, doc, onDoc }: Props) {
  const { api } = useSession();
  const [zoneChoice, setZoneChoice] = useState<ZoneChoice>('utc');
  const zone = zoneName(zoneChoice);
  const [selected, setSelected] = useState<number | null>(null);
  const [chatOpen, setChatOpen] = useState(true);
  const key = JSON.stringify(doc);

  const pager = useMemo(
    () => new TimelinePager((cursor, signal) => api.search(caseId, doc, { cursor, tz: zone }, signal)),
    // a new pager per filter (by value) and zone
    [api, caseId, key, zone],
  );
  useEffect(() => {
    void pager.loadMore();
    return () => pager.dispose();
  }, [pager]);

  const labels = useAsync(() => api.labels(caseId), [api, caseId, selected]);
  const knownTags = useMemo(() => (labels.data ?? []).map((l) => l.label), [labels.data]);

  // The loaded rows, for the builder's suggestions: kept in a ref, so a new page re-renders
  // only the grid (not the filter bar or the histogram) while scrolling.
  const rowsRef = useRef<readonly ChronoEvent[]>([]);
  const takeRows = useCallback((r: readonly ChronoEvent[]) => {
    rowsRef.current = r;
  }, []);
  const suggest = useCallback(
    (field: string) => (field === 'label' ? knownTags : seenValues(rowsRef.current, field)),
    [knownTags],
  );
  const onRange = useCallback((from: string, to: string) => onDoc(withTime(doc, from, to)), [onDoc, doc]);
  const onOpen = useCallback((e: ChronoEvent) => setSelected(e.id), []);

  return (
    <div className={`workspace${selected !== null ? ' with-detail' : ''}`}>
      <div className="main-col">
        <FilterBar caseId={caseId} doc={doc} onChange={onDoc} suggest={suggest} />
        <div className="view-tools">
          <fieldset className="zone">
            <legend>Times in</legend>
            <label>
              <input type="radio" name="zone" checked={zoneChoice === 'utc'} onChange={() => setZoneChoice('utc')} /> UTC
            </label>
            <label>
              <input type="radio" name="zone" checked={zoneChoice === 'local'} onChange={() => setZoneChoice('local')} /> my time zone ({zoneName('local')})
            </label>
          </fieldset>
          <button type="button" aria-expanded={chatOpen} onClick={() => setChatOpen(!chatOpen)}>
            {chatOpen ? 'Hide AI assistant' : 'Ask the AI'}
          </button>
        </div>
        <MemoHistogram caseId={caseId} doc={doc} tz={zone} onRange={onRange} />
        <TimelineTable pager={pager} zone={zone} selectedId={selected} onOpen={onOpen} onRows={takeRows} />
      </div>
      <div className="side-col">
        {selected !== null && (
          <EventDetail key={selected} caseId={caseId} eventId={selected} knownTags={knownTags} onClose={() => setSelected(null)} />
        )}
        {chatOpen && <ChatPanel caseId={caseId} tz={zone} onApply={onDoc} />}
      </div>
    </div>
  );
}
