import { useState, type FormEvent } from 'react';
import { useSession } from '../context';
import { navigate } from '../lib/router';
import { useAsync } from '../lib/useAsync';
import { ErrorNote } from '../components/ErrorNote';
import { formatTs, zoneName } from '../lib/time';

export function CasesView() {
  const { api, user } = useSession();
  const cases = useAsync(() => api.listCases(), [api]);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<unknown>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setCreating(true);
    setCreateError(null);
    try {
      const c = await api.createCase(name, description);
      navigate(`/cases/${c.id}/evidence`);
    } catch (err) {
      setCreateError(err);
    } finally {
      setCreating(false);
    }
  };

  return (
    <main id="main" className="page">
      <h1>Cases</h1>
      {user.isAdmin ? (
        <form className="card create-case" onSubmit={(e) => void create(e)} aria-labelledby="new-case-title">
          <h2 id="new-case-title">New case</h2>
          <label>
            Name
            <input required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            Description
            <textarea maxLength={10000} rows={2} value={description} onChange={(e) => setDescription(e.target.value)} />
          </label>
          <button type="submit" className="primary" disabled={creating || !name.trim()}>
            {creating ? 'Creating…' : 'Create case'}
          </button>
          {createError !== null && <ErrorNote error={createError} />}
        </form>
      ) : (
        <p className="muted">Analysts open the cases they were given; admins create cases and upload evidence.</p>
      )}
      <section aria-labelledby="case-list-title">
        <h2 id="case-list-title">Your cases</h2>
        {cases.loading && !cases.data && <p role="status">Loading cases…</p>}
        {cases.error !== null && <ErrorNote error={cases.error} onRetry={cases.reload} />}
        {cases.data && cases.data.length === 0 && (
          <p className="empty">No cases yet.{user.isAdmin ? ' Create one above.' : ' Ask an admin to give you access to one.'}</p>
        )}
        {cases.data && cases.data.length > 0 && (
          <ul className="case-list">
            {cases.data.map((c) => (
              <li key={c.id}>
                <a
                  href={`/cases/${c.id}`}
                  onClick={(e) => {
                    e.preventDefault();
                    navigate(`/cases/${c.id}`);
                  }}
                >
                  {c.name}
                </a>
                <span className="muted">
                  {' '}
                  created {formatTs(c.created_at, zoneName('local')).slice(0, 16)} by {c.created_by}
                </span>
                {c.description && <p>{c.description}</p>}
              </li>
            ))}
          </ul>
        )}
      </section>
    </main>
  );
}
