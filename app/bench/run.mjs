#!/usr/bin/env node
// Front-end benchmarks (run by `make bench`; numbers, not pass/fail tests):
//   1. initial JavaScript: the scripts index.html loads, gzipped (budget 300 KB);
//   2. with --url and --case (a case holding many events, e.g. 1,000,000 seeded with
//      `chronoctl local seed`): time from navigation to the first timeline page on screen,
//      over --runs page loads (budget 1 s);
//   3. scrolling that case's timeline for --scroll-seconds at --speed px/s: frame times
//      (requestAnimationFrame deltas), frames over 25 ms (a dropped frame at 60 Hz), the
//      main thread's long tasks (> 50 ms) and the keyset pages fetched meanwhile.
// Frame times depend on the machine's load: note `uptime` with the numbers.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { arg, launch } from '../e2e/browser.mjs';
import { signIn } from '../e2e/login.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../dist');

const KB = 1024;
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (x) => x.toFixed(1);
const { loadavg } = await import('node:os');
console.log(`load average: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

// 1. bundle
const html = readFileSync(resolve(dist, 'index.html'), 'utf8');
const initial = [...html.matchAll(/<(?:script[^>]*src|link[^>]*rel="modulepreload"[^>]*href)="([^"]+\.js)"/g)].map((m) => m[1]);
let raw = 0;
let gz = 0;
for (const src of initial) {
  const bytes = readFileSync(resolve(dist, `.${src}`));
  raw += bytes.length;
  gz += gzipSync(bytes, { level: 9 }).length;
}
console.log(`bundle: initial JavaScript ${initial.length} file(s), ${fmt(raw / KB)} KB raw, ${fmt(gz / KB)} KB gzipped (budget 300 KB: ${gz <= 300 * KB ? 'within' : 'OVER'})`);

const url = (arg('url', process.env.CHRONO_APP_URL) ?? '').replace(/\/+$/, '');
const caseId = arg('case', process.env.CHRONO_BENCH_CASE);
if (!url || !caseId) {
  console.log('timeline: skipped (pass --url and --case of a case with many events)');
  process.exit(0);
}
const runs = Number(arg('runs', '5'));
const scrollSeconds = Number(arg('scroll-seconds', '15'));
const speed = Number(arg('speed', '10000'));

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  // When the first event row appears, relative to the navigation's start.
  await context.addInitScript(() => {
    const seen = () => document.querySelector('[data-testid=timeline] [role=row][id^=ev-]');
    new MutationObserver((_m, obs) => {
      if (seen()) {
        window.__firstRowAt = performance.now();
        obs.disconnect();
      }
    }).observe(document, { childList: true, subtree: true });
  });
  await signIn(page, url, 'admin');
  const target = `${url}/cases/${caseId}/timeline`;
  const times = [];
  for (let i = 0; i < runs + 1; i++) {
    await page.goto(target);
    await page.waitForFunction(() => window.__firstRowAt !== undefined, null, { timeout: 30_000 });
    const t = await page.evaluate(() => window.__firstRowAt);
    if (i > 0) times.push(t); // the first load warms the HTTP cache and the API's pools
  }
  const rowsShown = await page.locator('[data-testid=timeline] [role=row][id^=ev-]').count();
  console.log(
    `timeline: first page on screen after navigation, ${runs} loads: median ${fmt(pct(times, 50))} ms, max ${fmt(Math.max(...times))} ms (budget 1000 ms: ${Math.max(...times) <= 1000 ? 'within' : 'OVER'}); ${rowsShown} rows in the DOM`,
  );

  // 3. scrolling
  let pages = 0;
  page.on('request', (r) => r.url().includes('/events/search') && r.url().includes('cursor=') && pages++);
  const result = await page.evaluate(
    ({ seconds, pxPerSecond }) =>
      new Promise((done) => {
        const grid = document.querySelector('[data-testid=timeline]');
        const deltas = [];
        // Main-thread tasks over 50 ms (the app's own work) while scrolling.
        const longTasks = [];
        const obs = new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration)));
        obs.observe({ type: 'longtask' });
        let last = performance.now();
        const start = last;
        const step = (now) => {
          deltas.push(now - last);
          grid.scrollTop += (pxPerSecond * (now - last)) / 1000;
          last = now;
          if (now - start < seconds * 1000) requestAnimationFrame(step);
          else {
            obs.disconnect();
            done({ deltas, longTasks, scrolled: grid.scrollTop });
          }
        };
        requestAnimationFrame(step);
      }),
    { seconds: scrollSeconds, pxPerSecond: speed },
  );
  const d = result.deltas.slice(1);
  const dropped = d.filter((x) => x > 1.5 * (1000 / 60)).length;
  const loaded = await page.evaluate(() => document.querySelector('.timeline-status')?.textContent ?? '');
  console.log(
    `scroll: ${scrollSeconds} s at ${speed} px/s, ${d.length} frames: frame time median ${fmt(pct(d, 50))} ms, p95 ${fmt(pct(d, 95))} ms, p99 ${fmt(pct(d, 99))} ms, max ${fmt(Math.max(...d))} ms; ${dropped} frames over 25 ms; ${result.longTasks.length} main-thread tasks over 50 ms${result.longTasks.length ? ` (longest ${fmt(Math.max(...result.longTasks))} ms)` : ''}; ${pages} pages fetched; ${loaded}`,
  );
} finally {
  await browser.close();
}
