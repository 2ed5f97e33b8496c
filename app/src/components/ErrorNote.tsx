import { ApiError } from '../api/client';

/** An error as the user should see it: the API's own message, its code for support. */
export function ErrorNote({ error, message, onRetry }: { error?: unknown; message?: string; onRetry?: () => void }) {
  const text = message ?? (error instanceof Error ? error.message : String(error));
  const code = error instanceof ApiError ? error.code : null;
  return (
    <div className="error" role="alert">
      <span>{text}</span>
      {code && <span className="code"> ({code})</span>}
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}
