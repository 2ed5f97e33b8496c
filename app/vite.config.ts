/// <reference types="vitest/config" />
// Vite: the production build (app/dist, served by `chronoctl local` and by CloudFront) and,
// for `npm run dev`, a dev server that forwards the API to a running `chronoctl local`
// (ports read from its state file) so the app can be edited with hot reload.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import react from '@vitejs/plugin-react';
import { defineConfig, type ProxyOptions } from 'vite';

/** The one origin `chronoctl local` serves (app + API + chat), if it is running. */
function localOrigin(): string | undefined {
  const dir = process.env.CHRONO_LOCAL_DIR ?? resolve(import.meta.dirname, '../.chrono/local');
  try {
    const state = JSON.parse(readFileSync(resolve(dir, 'state.json'), 'utf8')) as {
      components?: Record<string, { endpoint?: string }>;
    };
    const c = state.components ?? {};
    return c.web?.endpoint ?? c.app?.endpoint ?? c.gateway?.endpoint;
  } catch {
    return undefined;
  }
}

function devProxy(): Record<string, ProxyOptions> {
  const target = process.env.CHRONO_APP_ORIGIN ?? localOrigin();
  if (!target) return {};
  const opts = { target, changeOrigin: false, ws: true };
  return { '/api': opts, '/config.json': opts, '/oidc': opts, '/.well-known': opts };
}

export default defineConfig({
  plugins: [react()],
  build: {
    target: 'es2022',
    sourcemap: false,
    // One chunk per route-independent vendor set keeps caching stable across releases.
    chunkSizeWarningLimit: 600,
  },
  server: { proxy: devProxy() },
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
  },
});
