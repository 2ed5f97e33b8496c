import { useCallback, useEffect, useRef, useState, type DragEvent } from 'react';
import type { Evidence } from '../api/client';
import { useSession } from '../context';
import { ErrorNote } from '../components/ErrorNote';
import { useAsync } from '../lib/useAsync';
import { putWithProgress, sha256Hex, uploadMultipart } from '../lib/upload';
import { formatTs, zoneName } from '../lib/time';

/** Files from this size on go through S3 multipart upload (the API recommends it from 100 MB). */
export const MULTIPART_FROM = 100 * 1000 * 1000;

interface Transfer {
  key: string;
  name: string;
  loaded: number;
  total: number;
  state: 'uploading' | 'starting' | 'done' | 'failed';
  error?: unknown;
}

const ACTIVE = new Set(['registered', 'uploaded', 'processing']);

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function EvidenceView({ caseId, multipartFrom = MULTIPART_FROM }: { caseId: string; multipartFrom?: number }) {
  const { api, user } = useSession();
  const list = useAsync(() => api.listEvidence(caseId), [api, caseId]);
  const [transfers, setTransfers] = useState<Transfer[]>([]);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  // Live processing state: poll while anything is on its way.
  const busy = (list.data ?? []).some((e) => ACTIVE.has(e.state)) || transfers.some((t) => t.state !== 'done' && t.state !== 'failed');
  useEffect(() => {
    if (!busy) return;
    const t = setInterval(list.reload, 1500);
    return () => clearInterval(t);
  }, [busy, list.reload]);

  const update = (key: string, patch: Partial<Transfer>) =>
    setTransfers((ts) => ts.map((t) => (t.key === key ? { ...t, ...patch } : t)));

  const upload = useCallback(
    async (file: File) => {
      const key = `${file.name}-${file.size}-${Date.now()}-${Math.random()}`;
      setTransfers((ts) => [...ts, { key, name: file.name, loaded: 0, total: file.size, state: 'uploading' }]);
      try {
        const multipart = file.size >= multipartFrom;
        // a single PUT is signed with the whole file's SHA-256 (storage verifies it); a
        // multipart upload's parts each carry their own
        const reg = await api.registerEvidence(
          caseId,
          multipart ? { file_name: file.name, size: file.size, multipart } : { file_name: file.name, sha256: await sha256Hex(file) },
        );
        list.reload();
        const id = reg.evidence.id;
        const up = reg.upload;
        if (up.method === 'MULTIPART') {
          try {
            const parts = await uploadMultipart(
              file,
              up.part_size,
              (parts) => api.partUrls(caseId, id, parts),
              (p) => update(key, { loaded: p.loaded }),
            );
            await api.completeUpload(caseId, id, parts);
          } catch (e) {
            // S3 keeps (and bills) the parts of an open upload: give it up, the file can be dropped again.
            await api.abortUpload(caseId, id).catch(() => undefined);
            throw e;
          }
        } else {
          await putWithProgress(up.url, file, (loaded) => update(key, { loaded }), undefined, up.headers);
        }
        update(key, { state: 'starting', loaded: file.size });
        await api.processEvidence(caseId, id);
        update(key, { state: 'done' });
      } catch (error) {
        update(key, { state: 'failed', error });
      } finally {
        list.reload();
      }
    },
    [api, caseId, list, multipartFrom],
  );

  const take = (files: FileList | null) => {
    for (const f of Array.from(files ?? [])) void upload(f);
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (user.isAdmin) take(e.dataTransfer.files);
  };

  return (
    <section aria-labelledby="evidence-title" className="evidence">
      <h2 id="evidence-title">Evidence</h2>
      {user.isAdmin ? (
        <div
          className={`dropzone${over ? ' over' : ''}`}
          onDragOver={(e) => {
            e.preventDefault();
            setOver(true);
          }}
          onDragLeave={() => setOver(false)}
          onDrop={onDrop}
          data-testid="dropzone"
        >
          <p>Drop evidence files here (EVTX, syslog, CloudTrail, Plaso/Timesketch exports, .gz or .zip)</p>
          <button type="button" onClick={() => input.current?.click()}>
            Choose files…
          </button>
          <input
            ref={input}
            type="file"
            multiple
            hidden
            aria-label="Evidence files"
            onChange={(e) => {
              take(e.target.files);
              e.target.value = '';
            }}
          />
        </div>
      ) : (
        <p className="muted">Analysts cannot upload evidence; an admin of this case can.</p>
      )}
      {transfers.length > 0 && (
        <ul className="transfers" aria-label="Uploads">
          {transfers.map((t) => (
            <li key={t.key}>
              <span className="name">{t.name}</span>
              <progress max={t.total || 1} value={t.loaded} aria-label={`Upload of ${t.name}`} />
              <span className="muted">
                {formatBytes(t.loaded)} / {formatBytes(t.total)}{' '}
                {t.state === 'starting' ? '· starting processing' : t.state === 'done' ? '· uploaded' : t.state === 'failed' ? '· failed' : ''}
              </span>
              {t.state === 'failed' && <ErrorNote error={t.error} />}
            </li>
          ))}
        </ul>
      )}
      {list.error !== null && <ErrorNote error={list.error} onRetry={list.reload} />}
      {list.loading && !list.data && <p role="status">Loading evidence…</p>}
      {list.data && list.data.length === 0 && <p className="empty">No evidence in this case yet.</p>}
      {list.data && list.data.length > 0 && <EvidenceTable rows={list.data} />}
    </section>
  );
}

function EvidenceTable({ rows }: { rows: Evidence[] }) {
  const zone = zoneName('local');
  return (
    <table className="evidence-table">
      <caption className="sr-only">Evidence files and their processing state</caption>
      <thead>
        <tr>
          <th scope="col">File</th>
          <th scope="col">State</th>
          <th scope="col">Events</th>
          <th scope="col">Bad records</th>
          <th scope="col">First errors</th>
          <th scope="col">Updated</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((e) => {
          const errors = Array.isArray(e.errors) ? (e.errors as Array<Record<string, unknown>>) : [];
          return (
            <tr key={e.id} data-state={e.state}>
              <td>{e.file_name}</td>
              <td>
                <span className={`state state-${e.state}`}>{e.state}</span>
              </td>
              <td className="num">{e.events_count.toLocaleString()}</td>
              <td className="num">{e.bad_records.toLocaleString()}</td>
              <td>
                {errors.length === 0 ? (
                  <span className="muted">none</span>
                ) : (
                  <ul className="errors">
                    {errors.slice(0, 3).map((err, i) => (
                      <li key={i}>{String(err.message ?? JSON.stringify(err))}{err.location ? ` (${String(err.location)})` : ''}</li>
                    ))}
                  </ul>
                )}
              </td>
              <td>{formatTs(e.updated_at, zone).slice(0, 19)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
