import { useCallback, useMemo, useState } from 'react';
import type { FilterDocument } from '../api/client';
import { useSession } from '../context';
import { ErrorNote } from '../components/ErrorNote';
import { navigate } from '../lib/router';
import { useAsync } from '../lib/useAsync';
import { EvidenceView } from './EvidenceView';
import { TimelineView } from './TimelineView';

/** Events per page of the timeline (the API allows up to 1000). */
export const PAGE_SIZE = 500;

export function CaseView({ caseId, tab }: { caseId: string; tab: 'evidence' | 'timeline' }) {
  const { api } = useSession();
  const c = useAsync(() => api.getCase(caseId), [api, caseId]);
  const [doc, setDoc] = useState<FilterDocument>({ sort: 'ts_asc', limit: PAGE_SIZE });
  const apply = useCallback((d: FilterDocument) => setDoc({ ...d, limit: PAGE_SIZE, sort: d.sort ?? 'ts_asc' }), []);
  const tabs = useMemo(
    () => [
      { id: 'timeline' as const, label: 'Timeline' },
      { id: 'evidence' as const, label: 'Evidence' },
    ],
    [],
  );

  return (
    <main id="main" className="page case">
      {c.error !== null ? (
        <>
          <h1>Case</h1>
          <ErrorNote error={c.error} onRetry={c.reload} />
        </>
      ) : (
        <h1>{c.data ? c.data.name : 'Loading case…'}</h1>
      )}
      <nav aria-label="Case sections" className="tabs">
        {tabs.map((t) => (
          <a
            key={t.id}
            href={`/cases/${caseId}/${t.id}`}
            aria-current={tab === t.id ? 'page' : undefined}
            onClick={(e) => {
              e.preventDefault();
              navigate(`/cases/${caseId}/${t.id}`);
            }}
          >
            {t.label}
          </a>
        ))}
      </nav>
      {tab === 'evidence' ? <EvidenceView caseId={caseId} /> : <TimelineView caseId={caseId} doc={doc} onDoc={apply} />}
    </main>
  );
}
