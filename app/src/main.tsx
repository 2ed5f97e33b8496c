import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { loadConfig } from './config';
import './styles.css';

const root = createRoot(document.getElementById('root')!);
loadConfig().then(
  (config) =>
    root.render(
      <StrictMode>
        <App config={config} />
      </StrictMode>,
    ),
  (e: unknown) =>
    root.render(
      <main id="main" className="login">
        <h1>ChronoTracer</h1>
        <p role="alert">The app is not configured: {e instanceof Error ? e.message : String(e)}</p>
      </main>,
    ),
);
