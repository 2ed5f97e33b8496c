import { useCallback, useEffect, useMemo, useState } from 'react';
import type { ChronoEvent, FilterDocument } from '../api/client';
import { useSession } from '../context';
import { distinct, hostOf, userOf } from '../lib/events';
import { withTime } from '../lib/filter';
import { TimelinePager } from '../lib/pager';
import { useAsync } from '../lib/useAsync';
import { zoneName, type ZoneChoice } from '../lib/time';
import { ChatPanel } from './ChatPanel';
import { EventDetail } from './EventDetail';
import { FilterBar } from './FilterBar';
import { Histogram } from './Histogram';
import { TimelineTable } from './TimelineTable';

interface Props {
  caseId: string;
  doc: FilterDocument;
  onDoc: (d: FilterDocument) => void;
  onRows?: (rows: readonly ChronoEvent[]) => void;
}

export function TimelineView({ caseId, doc, onDoc, onRows }: Props) {
  const { api } = useSession();
  const [zoneChoice, setZoneChoice] = useState<ZoneChoice>('utc');
  const zone = zoneName(zoneChoice);
  const [selected, setSelected] = useState<number | null>(null);
  const [rows, setRows] = useState<readonly ChronoEvent[]>([]);
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

  const takeRows = useCallback(
    (r: readonly ChronoEvent[]) => {
      setRows(r);
      onRows?.(r);
    },
    [onRows],
  );
  // Values seen so far, suggested in the filter builder (devices and identities come from the API).
  const seen = useMemo(
    () => ({
      action: distinct(rows, (e) => e.action),
      outcome: distinct(rows, (e) => e.outcome),
      source: distinct(rows, (e) => e.source),
      data_type: distinct(rows, (e) => e.data_type),
      tag: distinct(rows.flatMap((e) => e.tags), (t) => t),
      label: knownTags,
      event_code: distinct(rows, (e) => e.event_code),
      device: distinct(rows, hostOf),
      identity: distinct(rows, userOf),
    }),
    [rows, knownTags],
  );

  return (
    <div className={`workspace${selected !== null ? ' with-detail' : ''}`}>
      <div className="main-col">
        <FilterBar caseId={caseId} doc={doc} onChange={onDoc} seen={seen} />
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
        <Histogram caseId={caseId} doc={doc} tz={zone} onRange={(from, to) => onDoc(withTime(doc, from, to))} />
        <TimelineTable pager={pager} zone={zone} selectedId={selected} onOpen={(e) => setSelected(e.id)} onRows={takeRows} />
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
