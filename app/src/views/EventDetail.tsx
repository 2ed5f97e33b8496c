import { useState, type FormEvent } from 'react';
import type { EventDetail as Detail, Label } from '../api/client';
import { useSession } from '../context';
import { ErrorNote } from '../components/ErrorNote';
import { categoryOf, eventLabel, titleOf } from '../lib/events';
import { useAction, useAsync } from '../lib/useAsync';
import { formatTs, zoneName } from '../lib/time';

export const STAR = 'star';


/** Nested record fields as a tree of description lists, every key and value shown. */
export function AttributeTree({ value, depth = 0 }: { value: unknown; depth?: number }) {
  if (value === null || typeof value !== 'object') return <span className="value">{value === null ? 'null' : String(value)}</span>;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return <span className="muted">{Array.isArray(value) ? '[]' : '{}'}</span>;
  return (
    <dl className={`tree depth-${Math.min(depth, 4)}`}>
      {entries.map(([k, v]) => (
        <div key={k} className="tree-entry">
          <dt>{k}</dt>
          <dd>
            {v !== null && typeof v === 'object' ? (
              <details open={depth < 2}>
                <summary>{Array.isArray(v) ? `${v.length} items` : `${Object.keys(v).length} fields`}</summary>
                <AttributeTree value={v} depth={depth + 1} />
              </details>
            ) : (
              <AttributeTree value={v} depth={depth + 1} />
            )}
          </dd>
        </div>
      ))}
    </dl>
  );
}

interface Props {
  caseId: string;
  eventId: number;
  /** Tags used in the case (suggested when adding one). */
  knownTags?: string[];
  onClose: () => void;
}

export function EventDetail({ caseId, eventId, knownTags = [], onClose }: Props) {
  const { api, user } = useSession();
  const ev = useAsync(() => api.getEvent(caseId, eventId), [api, caseId, eventId]);
  const { run: act, busy, error } = useAction(ev.reload);
  const [tag, setTag] = useState('');
  const [comment, setComment] = useState('');

  const d: Detail | undefined = ev.data;
  const mine = (d?.labels ?? []).filter((l: Label) => l.user_sub === user.sub);
  const starred = mine.some((l) => l.label === STAR);
  const tags = [...new Set((d?.labels ?? []).filter((l) => l.label !== STAR).map((l) => l.label))];
  const comments = d?.comments ?? [];

  return (
    <aside className="detail" aria-labelledby="detail-title">
      <div className="detail-head">
        <h2 id="detail-title">{d ? eventLabel(d) || d.data_type : `Event ${eventId}`}</h2>
        <button type="button" onClick={onClose} aria-label="Close the event detail">
          ×
        </button>
      </div>
      {ev.loading && !d && <p role="status">Loading event…</p>}
      {ev.error !== null && <ErrorNote error={ev.error} onRetry={ev.reload} />}
      {d && (
        <>
          <div className="label-actions">
            <button type="button" aria-pressed={starred} disabled={busy} onClick={() => void act(() => (starred ? api.deleteLabel(caseId, eventId, STAR) : api.putLabel(caseId, eventId, STAR)))}>
              {starred ? '★ Starred' : '☆ Star'}
            </button>
          </div>
          {error !== null && <ErrorNote error={error} />}
          <dl className="fields">
            <dt>Time (UTC)</dt>
            <dd>{formatTs(d.ts, 'UTC')}</dd>
            <dt>Time ({zoneName('local')})</dt>
            <dd>{formatTs(d.ts, zoneName('local'))}</dd>
            <dt>Meaning</dt>
            <dd>{d.timestamp_desc}</dd>
            {titleOf(d) && (
              <>
                <dt>Title</dt>
                <dd>{titleOf(d)}</dd>
              </>
            )}
            {categoryOf(d) && (
              <>
                <dt>Category</dt>
                <dd>{categoryOf(d)}</dd>
              </>
            )}
            <dt>Data type</dt>
            <dd>{d.data_type}</dd>
            <dt>Source</dt>
            <dd>{d.source}</dd>
            <dt>Event code</dt>
            <dd>{d.event_code ?? '—'}</dd>
            <dt>Action / outcome</dt>
            <dd>
              {d.action ?? '—'} / {d.outcome ?? '—'}
            </dd>
            <dt>Host</dt>
            <dd>{d.device?.name ?? '—'}</dd>
            <dt>User</dt>
            <dd>{d.identity ? `${d.identity.value ?? ''} (${d.identity.kind ?? ''})` : '—'}</dd>
            <dt>Source / destination IP</dt>
            <dd>
              {d.src_ip ?? '—'} → {d.dst_ip ?? '—'}
            </dd>
            <dt>Message</dt>
            <dd className="message">{d.message ?? '—'}</dd>
            <dt>Parser tags</dt>
            <dd>{d.tags.length ? d.tags.join(', ') : '—'}</dd>
          </dl>
          <h3>Provenance</h3>
          <dl className="fields">
            <dt>Evidence file</dt>
            <dd>{d.evidence.file_name}</dd>
            {d.provenance.source_file && (
              <>
                <dt>File inside it</dt>
                <dd>{d.provenance.source_file}</dd>
              </>
            )}
            <dt>Record</dt>
            <dd>{d.provenance.record_ref}</dd>
          </dl>
          <h3>Tags</h3>
          <ul className="chips" aria-label="Tags">
            {tags.length === 0 && <li className="muted">No tags.</li>}
            {tags.map((t) => (
              <li className="chip" key={t}>
                <span>{t}</span>
                {mine.some((l) => l.label === t) && (
                  <button type="button" aria-label={`Remove tag ${t}`} disabled={busy} onClick={() => void act(() => api.deleteLabel(caseId, eventId, t))}>
                    ×
                  </button>
                )}
              </li>
            ))}
          </ul>
          <form
            className="inline"
            onSubmit={(e: FormEvent) => {
              e.preventDefault();
              const t = tag.trim();
              if (t) void act(() => api.putLabel(caseId, eventId, t).then(() => setTag('')));
            }}
          >
            <label>
              Add tag
              <input value={tag} onChange={(e) => setTag(e.target.value)} list="known-tags" pattern="[A-Za-z0-9_.:\-]{1,64}" title="1 to 64 letters, digits or _ - . :" />
            </label>
            <datalist id="known-tags">
              {knownTags.filter((t) => t !== STAR).map((t) => (
                <option key={t} value={t} />
              ))}
            </datalist>
            <button type="submit" disabled={busy || !tag.trim()}>
              Add
            </button>
          </form>
          <h3>Comments</h3>
          {comments.length === 0 && <p className="muted">No comments.</p>}
          <ol className="comments">
            {comments.map((c) => (
              <li key={c.id}>
                <span className="who">{c.author}</span> <span className="muted">{formatTs(c.created_at, zoneName('local')).slice(0, 16)}</span>
                <p>{c.body}</p>
              </li>
            ))}
          </ol>
          <form
            className="comment-form"
            onSubmit={(e: FormEvent) => {
              e.preventDefault();
              const text = comment.trim();
              if (text)
                void act(() => api.addComment(caseId, eventId, text).then(() => setComment('')));
            }}
          >
            <label htmlFor="comment-text">Add a comment</label>
            <textarea id="comment-text" rows={2} maxLength={4000} value={comment} onChange={(e) => setComment(e.target.value)} />
            <button type="submit" disabled={busy || !comment.trim()}>
              Comment
            </button>
          </form>
          <h3>All attributes</h3>
          <AttributeTree value={d.attributes} />
        </>
      )}
    </aside>
  );
}
