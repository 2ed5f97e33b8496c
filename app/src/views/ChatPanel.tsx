import { useState, type FormEvent } from 'react';
import type { ChatReply } from '../api/chat';
import type { FilterDocument } from '../api/client';
import { useSession } from '../context';
import { ErrorNote } from '../components/ErrorNote';
import { chipsOf, describe } from '../lib/filter';

interface Turn {
  question: string;
  reply?: ChatReply;
  error?: unknown;
}

const KIND_TEXT: Record<string, string> = {
  filter: 'Filter',
  clarification: 'Question back',
  refusal: 'Declined',
  no_filter: 'No filter',
};

interface Props {
  caseId: string;
  tz: string;
  onApply: (doc: FilterDocument) => void;
}

/** Questions in plain language → a filter; follow-ups continue the same session. */
export function ChatPanel({ caseId, tz, onApply }: Props) {
  const { chat } = useSession();
  const [turns, setTurns] = useState<Turn[]>([]);
  const [session, setSession] = useState<string | undefined>(undefined);
  const [question, setQuestion] = useState('');
  const [busy, setBusy] = useState(false);

  const ask = async (e: FormEvent) => {
    e.preventDefault();
    const q = question.trim();
    if (!q || busy) return;
    setBusy(true);
    setQuestion('');
    setTurns((t) => [...t, { question: q }]);
    const done = (patch: Partial<Turn>) => setTurns((t) => t.map((x, i) => (i === t.length - 1 ? { ...x, ...patch } : x)));
    try {
      const reply = await chat.ask({ case_id: caseId, question: q, tz, ...(session ? { session_id: session } : {}) });
      setSession(reply.session_id);
      done({ reply });
    } catch (error) {
      done({ error });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="chat" aria-labelledby="chat-title">
      <div className="chat-head">
        <h2 id="chat-title">Ask the timeline</h2>
        {session && (
          <button
            type="button"
            onClick={() => {
              setSession(undefined);
              setTurns([]);
            }}
          >
            New conversation
          </button>
        )}
      </div>
      <div className="chat-log" role="log" aria-live="polite" aria-label="Conversation">
      <ol>
        {turns.length === 0 && <li className="muted">Ask e.g. “failed logons for bob yesterday” or “processes started on WS01 after 10:00”.</li>}
        {turns.map((t, i) => (
          <li key={i} className="turn">
            <p className="q">
              <span className="sr-only">You asked: </span>
              {t.question}
            </p>
            {!t.reply && !t.error && <p role="status">Thinking…</p>}
            {t.error !== undefined && <ErrorNote error={t.error} />}
            {t.reply && <Reply reply={t.reply} onApply={onApply} />}
          </li>
        ))}
      </ol>
      </div>
      <form onSubmit={(e) => void ask(e)} className="chat-form">
        <label htmlFor="chat-question">{session ? 'Follow-up question' : 'Question'}</label>
        <input id="chat-question" value={question} onChange={(e) => setQuestion(e.target.value)} maxLength={2000} autoComplete="off" />
        <button type="submit" className="primary" disabled={busy || !question.trim()}>
          Ask
        </button>
      </form>
    </section>
  );
}

function Reply({ reply, onApply }: { reply: ChatReply; onApply: (doc: FilterDocument) => void }) {
  const filter = reply.filter;
  return (
    <div className={`reply reply-${reply.kind}`} data-kind={reply.kind}>
      <p>
        <strong>{KIND_TEXT[reply.kind] ?? reply.kind}:</strong> {reply.message}
      </p>
      {filter && (
        <>
          {reply.summary && !reply.message.includes(reply.summary) && <p className="summary">{reply.summary}</p>}
          {typeof reply.count === 'number' && (
            <p className="count">
              {reply.count.toLocaleString()} matching event{reply.count === 1 ? '' : 's'}
            </p>
          )}
          <ul className="chips" aria-label="Conditions of the answer">
            {filter.time && <li className="chip time">time {JSON.stringify(filter.time)}</li>}
            {chipsOf(filter).map((c, i) => (
              <li className="chip" key={i}>
                {describe(c)}
              </li>
            ))}
          </ul>
          <button type="button" className="primary" onClick={() => onApply(filter)}>
            Apply to timeline
          </button>
        </>
      )}
    </div>
  );
}
