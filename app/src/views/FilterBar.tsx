import { useEffect, useId, useMemo, useState, type FormEvent } from 'react';
import type { FilterDocument } from '../api/client';
import { useSession } from '../context';
import { ErrorNote } from '../components/ErrorNote';
import { chipsOf, describe, fieldProblem, parseDocument, parseValue, schemaInfo, withChips, withTime, type SchemaInfo } from '../lib/filter';
import { useAction, useAsync } from '../lib/useAsync';

interface Props {
  caseId: string;
  doc: FilterDocument;
  onChange: (doc: FilterDocument) => void;
  /** Values of a field seen in the case so far (suggestions), asked for when needed. */
  suggest: (field: string) => string[];
}

const ATTR = 'attr.…';

export function FilterBar({ caseId, doc, onChange, suggest }: Props) {
  const { api } = useSession();
  const schema = useAsync(() => api.filterSchema(), [api]);
  const info: SchemaInfo | null = useMemo(() => (schema.data ? schemaInfo(schema.data) : null), [schema.data]);
  const devices = useAsync(() => api.devices(caseId), [api, caseId]);
  const identities = useAsync(() => api.identities(caseId), [api, caseId]);
  const [field, setField] = useState('action');
  const [attrKey, setAttrKey] = useState('');
  const [op, setOp] = useState('eq');
  const [value, setValue] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [jsonOpen, setJsonOpen] = useState(false);
  const [jsonText, setJsonText] = useState('');
  const listId = useId();

  const chips = chipsOf(doc);
  const realField = field === ATTR ? `attr.${attrKey.trim()}` : field;

  const [seenNow, setSeenNow] = useState<string[]>([]);
  useEffect(() => setSeenNow(suggest(field)), [field, suggest]);
  const suggestions = useMemo(() => {
    if (field === 'device') return (devices.data ?? []).map((d) => d.name);
    if (field === 'identity') return (identities.data ?? []).map((i) => i.value);
    return seenNow;
  }, [field, devices.data, identities.data, seenNow]);

  const add = (e: FormEvent) => {
    e.preventDefault();
    if (!info) return;
    const p = fieldProblem(info, realField);
    if (p) return setProblem(p);
    if (op !== 'exists' && !value.trim()) return setProblem('enter a value');
    setProblem(null);
    onChange(withChips(doc, [...chips, { field: realField, op, value: parseValue(realField, op, value) } as never]));
    setValue('');
  };

  const time = doc.time as { from?: string; to?: string } | undefined;

  return (
    <section className="filters" aria-labelledby="filters-title">
      <h2 id="filters-title" className="sr-only">
        Filter
      </h2>
      <ul className="chips" aria-label="Active filter conditions">
        {time && (time.from || time.to) && (
          <li className="chip time">
            <span>
              time {time.from ? `from ${time.from}` : ''} {time.to ? `to ${time.to}` : ''}
            </span>
            <button type="button" aria-label="Remove the time range" onClick={() => onChange(withTime(doc, null, null))}>
              ×
            </button>
          </li>
        )}
        {chips.map((c, i) => (
          <li className="chip" key={`${i}-${JSON.stringify(c)}`}>
            <span>{describe(c)}</span>
            <button
              type="button"
              aria-label={`Remove condition: ${describe(c)}`}
              onClick={() => onChange(withChips(doc, chips.filter((_, j) => j !== i)))}
            >
              ×
            </button>
          </li>
        ))}
        {chips.length === 0 && !time && <li className="muted">No conditions: every event of the case.</li>}
      </ul>
      {schema.error !== null && <ErrorNote error={schema.error} onRetry={schema.reload} />}
      {info && (
        <form className="add-chip" onSubmit={add} aria-label="Add a condition">
          <label>
            Field
            <select value={field} onChange={(e) => setField(e.target.value)}>
              {info.fields.map((f) => (
                <option key={f}>{f}</option>
              ))}
              {info.attrPattern && <option value={ATTR}>attribute (attr.…)</option>}
            </select>
          </label>
          {field === ATTR && (
            <label>
              Attribute key
              <input value={attrKey} onChange={(e) => setAttrKey(e.target.value)} placeholder="Event.EventData.LogonType" />
            </label>
          )}
          <label>
            Operator
            <select value={op} onChange={(e) => setOp(e.target.value)}>
              {info.ops.map((o) => (
                <option key={o.op} value={o.op} title={o.description}>
                  {o.op}
                </option>
              ))}
            </select>
          </label>
          <label>
            Value
            <input
              value={value}
              onChange={(e) => setValue(e.target.value)}
              onFocus={() => setSeenNow(suggest(field))}
              list={listId}
              placeholder={op === 'in' || op === 'nin' ? 'a, b, c' : op === 'exists' ? 'true or false' : ''}
            />
            <datalist id={listId}>
              {suggestions.slice(0, 200).map((s) => (
                <option key={s} value={s} />
              ))}
            </datalist>
          </label>
          <button type="submit">Add condition</button>
          {problem && (
            <p role="alert" className="error">
              {problem}
            </p>
          )}
        </form>
      )}
      <div className="filter-tools">
        <TimeInputs key={JSON.stringify(doc.time ?? null)} doc={doc} onChange={onChange} />
        <button
          type="button"
          aria-expanded={jsonOpen}
          onClick={() => {
            setJsonText(JSON.stringify(doc, null, 2));
            setJsonOpen(!jsonOpen);
          }}
        >
          {jsonOpen ? 'Close JSON' : 'Edit as JSON'}
        </button>
        <SavedFilters caseId={caseId} doc={doc} onApply={onChange} />
      </div>
      {jsonOpen && (
        <JsonEditor
          text={jsonText}
          setText={setJsonText}
          onApply={(d) => {
            onChange(d);
            setJsonOpen(false);
          }}
        />
      )}
    </section>
  );
}

function TimeInputs({ doc, onChange }: { doc: FilterDocument; onChange: (d: FilterDocument) => void }) {
  const t = (doc.time ?? {}) as { from?: string; to?: string };
  const [from, setFrom] = useState(t.from ?? '');
  const [to, setTo] = useState(t.to ?? '');
  return (
    <form
      className="time-inputs"
      aria-label="Time range"
      onSubmit={(e) => {
        e.preventDefault();
        onChange(withTime(doc, from.trim() || null, to.trim() || null));
      }}
    >
      <label>
        From
        <input value={from} onChange={(e) => setFrom(e.target.value)} placeholder="2024-03-01T10:00" size={22} />
      </label>
      <label>
        To
        <input value={to} onChange={(e) => setTo(e.target.value)} placeholder="2024-03-02" size={22} />
      </label>
      <button type="submit">Set time</button>
    </form>
  );
}

function JsonEditor({ text, setText, onApply }: { text: string; setText: (s: string) => void; onApply: (d: FilterDocument) => void }) {
  const [error, setError] = useState<string | null>(null);
  return (
    <div className="json-editor">
      <label htmlFor="filter-json">Filter document (JSON)</label>
      <textarea id="filter-json" rows={12} spellCheck={false} value={text} onChange={(e) => setText(e.target.value)} />
      <button
        type="button"
        className="primary"
        onClick={() => {
          const r = parseDocument(text);
          if ('error' in r) setError(r.error);
          else {
            setError(null);
            onApply(r.doc);
          }
        }}
      >
        Apply JSON
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </div>
  );
}

function SavedFilters({ caseId, doc, onApply }: { caseId: string; doc: FilterDocument; onApply: (d: FilterDocument) => void }) {
  const { api } = useSession();
  const saved = useAsync(() => api.savedFilters(caseId), [api, caseId]);
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState('');
  const { run, error } = useAction(saved.reload);
  const list = saved.data ?? [];
  return (
    <div className="saved-filters">
      <form
        aria-label="Save this filter"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            await api.saveFilter(caseId, name.trim(), doc);
            setName('');
          });
        }}
      >
        <label>
          Save as
          <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
        </label>
        <button type="submit" disabled={!name.trim()}>
          Save filter
        </button>
      </form>
      {list.length > 0 && (
        <form
          aria-label="Apply a saved filter"
          onSubmit={(e) => {
            e.preventDefault();
            const f = list.find((x) => x.id === chosen);
            if (f) onApply(f.document as FilterDocument);
          }}
        >
          <label>
            Saved filters
            <select value={chosen} onChange={(e) => setChosen(e.target.value)}>
              <option value="">choose…</option>
              {list.map((f) => (
                <option key={f.id} value={f.id}>
                  {f.name}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" disabled={!chosen}>
            Apply
          </button>
          <button
            type="button"
            disabled={!chosen}
            onClick={() => void run(() => api.deleteFilter(caseId, chosen).then(() => setChosen('')))}
          >
            Delete
          </button>
        </form>
      )}
      {error !== null && <ErrorNote error={error} />}
    </div>
  );
}
