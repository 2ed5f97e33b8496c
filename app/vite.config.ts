/// <reference types="vitest/config" />
// Vite: the production build into app/dist (served by `chronoctl local`'s front door and by
// CloudFront); `npm run watch` rebuilds it on every change while the front door serves it.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  build: {
    target: 'es2022',
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
  },
});
