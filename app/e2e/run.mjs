#!/usr/bin/env node
// End-to-end test of the web app in real headless Chromium against a running
// `chronoctl local` (one origin: the app, /api/v1/*, the AI chat and its WebSocket):
// sign in through the OIDC code flow of the local issuer, create a case, upload a real
// EVTX by drag and drop, watch it finish, filter the timeline (builder chip and histogram
// drag), open an event and star it, ask the AI and apply its filter; axe-core scans each
// main view. A screenshot of every step goes to --shots (default .chrono/e2e-screenshots).
//
//   node e2e/run.mjs --url http://127.0.0.1:PORT [--evidence FILE] [--shots DIR]
//
// Prints `e2e: N passed, M failed` and exits 1 on any failure.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { axeScan } from './axe.mjs';
import { arg, launch } from './browser.mjs';
import { devLogin } from './login.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const url = (arg('url', process.env.CHRONO_APP_URL) ?? '').replace(/\/+$/, '');
const evidence = resolve(arg('evidence', resolve(repo, 'runtime/testdata/evidence/security.evtx')));
const shots = resolve(arg('shots', resolve(repo, '.chrono/e2e-screenshots')));
const timeoutMs = Number(arg('timeout', '240')) * 1000;
if (!url) {
  console.error('e2e: pass --url (the app URL `chronoctl local up` prints)');
  process.exit(2);
}

rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });

let passed = 0;
let failed = 0;
let shotNo = 0;
const axeReport = [];

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: 'Europe/Berlin' });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const consoleErrors = [];
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('response', (r) => r.status() >= 400 && consoleErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`));

async function shot(name) {
  shotNo += 1;
  const file = resolve(shots, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    await shot(name);
    passed += 1;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e instanceof Error ? e.message : e}`);
    await shot(`${name}-FAILED`).catch(() => {});
    throw e;
  }
}

async function axe(view) {
  const r = await axeScan(page);
  axeReport.push({ view, violations: r.all });
  if (r.blocking.length) {
    throw new Error(`axe: serious/critical violations on ${view}: ${JSON.stringify(r.blocking, null, 1)}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** The visible timeline rows as arrays of cell texts (Time, Source, Host, User, Action, Outcome, Event, Message). */
async function rows() {
  return page.$$eval('[data-testid=timeline] [role=row][id^=ev-]', (rs) =>
    rs.map((r) => Array.from(r.querySelectorAll('[role=gridcell]')).map((c) => c.textContent ?? '')),
  );
}

async function waitRows(pred, what) {
  const deadline = Date.now() + 30_000;
  let last = [];
  while (Date.now() < deadline) {
    last = await rows();
    if (last.length > 0 && pred(last)) return last;
    await page.waitForTimeout(200);
  }
  throw new Error(`timeline never showed ${what}; last rows: ${JSON.stringify(last.slice(0, 3))}`);
}

try {
  await step('sign-in-page', async () => {
    await page.goto(url);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await axe('sign-in');
  });

  await step('issuer-login-page', async () => {
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((u) => !u.toString().startsWith(`${url}/cases`) && u.pathname !== '/', { timeout: 15_000 });
  });

  await step('signed-in-cases', async () => {
    await devLogin(page, 'admin', 'e2e-admin');
    await page.waitForURL(`${url}/**`);
    await page.getByRole('heading', { name: 'Cases', exact: true }).waitFor();
    const who = await page.locator('.top .who').textContent();
    assert(/admin/.test(who ?? ''), `the header should show the admin role, shows ${who}`);
    await axe('cases');
  });

  const caseName = `E2E ${new Date().toISOString()}`;
  await step('case-created', async () => {
    await page.getByLabel('Name', { exact: true }).fill(caseName);
    await page.getByLabel('Description').fill('created by app/e2e/run.mjs');
    await page.getByRole('button', { name: 'Create case' }).click();
    await page.getByRole('heading', { name: caseName, exact: true }).waitFor();
    await page.getByRole('heading', { name: 'Evidence', exact: true }).waitFor();
  });

  await step('evidence-dropped-uploading', async () => {
    // A real drag and drop: a DataTransfer holding the EVTX's bytes, dropped on the zone.
    const bytes = readFileSync(evidence).toString('base64');
    const dt = await page.evaluateHandle(
      ({ b64, name }) => {
        const bin = atob(b64);
        const arr = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) arr[i] = bin.charCodeAt(i);
        const d = new DataTransfer();
        d.items.add(new File([arr], name, { type: 'application/octet-stream' }));
        return d;
      },
      { b64: bytes, name: basename(evidence) },
    );
    await page.dispatchEvent('[data-testid=dropzone]', 'dragover', { dataTransfer: dt });
    await page.dispatchEvent('[data-testid=dropzone]', 'drop', { dataTransfer: dt });
    await page.getByRole('progressbar', { name: `Upload of ${basename(evidence)}` }).waitFor();
  });

  let eventsCount = 0;
  await step('evidence-processed', async () => {
    const row = page.locator('.evidence-table tbody tr', { hasText: basename(evidence) });
    await row.waitFor();
    const deadline = Date.now() + timeoutMs;
    let state = '';
    while (Date.now() < deadline) {
      state = (await row.getAttribute('data-state')) ?? '';
      if (state === 'done' || state === 'failed') break;
      await page.waitForTimeout(500);
    }
    assert(state === 'done', `evidence should finish processing, state is ${state}`);
    eventsCount = Number(((await row.locator('td').nth(2).textContent()) ?? '0').replace(/[^0-9]/g, ''));
    assert(eventsCount > 0, 'the processed EVTX should have produced events');
    await axe('evidence');
  });

  await step('timeline', async () => {
    await page.getByRole('link', { name: 'Timeline' }).click();
    const r = await waitRows((rs) => rs.length >= 10, 'events');
    assert(r[0][0].match(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/), `time cell format: ${r[0][0]}`);
    await page.getByTestId('histogram').waitFor();
  });

  await step('timeline-filtered-by-chip', async () => {
    await page.getByLabel('Field').selectOption('action');
    await page.getByLabel('Operator').selectOption('eq');
    await page.getByLabel('Value', { exact: true }).fill('logon');
    await page.getByRole('button', { name: 'Add condition' }).click();
    await page.locator('.filters .chip', { hasText: 'action = logon' }).waitFor();
    await waitRows((rs) => rs.every((c) => c[4] === 'logon'), 'only logon rows');
    await axe('timeline');
  });

  await step('timeline-narrowed-by-histogram-drag', async () => {
    const box = await page.getByTestId('histogram').boundingBox();
    assert(box, 'histogram has a box');
    // drag across the two busiest neighbouring bars (the chart's viewBox is 1000 wide)
    const bars = await page.$$eval('[data-testid=histogram] rect.bar', (rs) =>
      rs.map((r) => ({ x: Number(r.getAttribute('x')), w: Number(r.getAttribute('width')), h: Number(r.getAttribute('height')) })),
    );
    let best = 0;
    for (let i = 1; i < bars.length; i++) if (bars[i].h + (bars[i + 1]?.h ?? 0) > bars[best].h + (bars[best + 1]?.h ?? 0)) best = i;
    const x0 = box.x + ((bars[best].x + 1) / 1000) * box.width;
    const x1 = box.x + ((bars[Math.min(best + 1, bars.length - 1)].x + bars[best].w - 1) / 1000) * box.width;
    await page.mouse.move(x0, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(x1, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.locator('.filters .chip.time').waitFor();
    const chip = (await page.locator('.filters .chip.time span').textContent()) ?? '';
    const m = /from (\S+)\s+to (\S+)/.exec(chip);
    assert(m, `time chip: ${chip}`);
    const [from, to] = [Date.parse(m[1]), Date.parse(m[2])];
    assert(from < to, `the dragged range should be ordered: ${chip}`);
    // the rows shown are inside the dragged range (times are in UTC in the table)
    await waitRows(
      (rs) => rs.every((c) => {
        const t = Date.parse(`${c[0].replace(' ', 'T')}Z`);
        return t >= from - 1 && t <= to + 1;
      }),
      `only events between ${m[1]} and ${m[2]}`,
    );
  });

  await step('keyboard-and-event-detail', async () => {
    await page.getByRole('button', { name: 'Remove the time range' }).click();
    await page.locator('.filters .chip.time').waitFor({ state: 'detached' });
    await waitRows((rs) => rs.length >= 10, 'the logons again');
    await page.getByTestId('timeline').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await page.getByRole('complementary', { name: /./ }).first().waitFor();
    await page.locator('.detail h3', { hasText: 'Provenance' }).waitFor();
    const prov = await page.locator('.detail').textContent();
    assert(prov.includes(basename(evidence)), 'provenance names the evidence file');
  });

  await step('event-starred', async () => {
    const star = page.locator('.detail').getByRole('button', { name: /Star/ });
    await star.click();
    await page.locator('.detail').getByRole('button', { name: '★ Starred' }).waitFor();
    // the star is stored: close and open the event again
    await page.getByRole('button', { name: 'Close the event detail' }).click();
    await page.getByTestId('timeline').focus();
    await page.keyboard.press('Enter');
    const pressed = await page.locator('.detail').getByRole('button', { name: /Star/ }).getAttribute('aria-pressed');
    assert(pressed === 'true', 'the star survives reopening the event');
    await axe('event-detail');
  });

  await step('ai-answer', async () => {
    // back to every event, so the answer's filter visibly narrows the timeline
    await page.getByRole('button', { name: 'Remove condition: action = logon' }).click();
    await waitRows((rs) => rs.some((c) => c[4] !== 'logon'), 'events other than logons');
    await page.getByLabel('Question').fill('show me successful logons');
    await page.getByRole('button', { name: 'Ask' }).click();
    const reply = page.locator('.chat .reply').last();
    await reply.waitFor({ timeout: 30_000 });
    const kind = await reply.getAttribute('data-kind');
    assert(kind === 'filter', `the AI should answer with a filter, answered ${kind}: ${await reply.textContent()}`);
    await reply.locator('.count').waitFor();
  });

  await step('ai-filter-applied', async () => {
    await page.locator('.chat .reply').last().getByRole('button', { name: 'Apply to timeline' }).click();
    await page.locator('.filters .chip', { hasText: 'outcome = success' }).waitFor();
    await waitRows((rs) => rs.every((c) => c[4] === 'logon' && c[5] === 'success'), 'only successful logons');
    await axe('timeline-with-ai');
  });

  await step('analyst-cannot-upload', async () => {
    const caseUrl = page.url().replace(/\/timeline$/, '/evidence');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).click();
    await devLogin(page, 'analyst', 'e2e-analyst');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const who = await page.locator('.top .who').textContent();
    assert(/e2e-analyst.*analyst/.test(who ?? ''), `signed in as the analyst, header shows ${who}`);
    await page.getByRole('link', { name: 'ChronoTracer' }).click();
    await page.getByRole('heading', { name: 'Cases', exact: true }).waitFor();
    await page.getByRole('link', { name: caseName }).waitFor();
    assert((await page.getByRole('button', { name: 'Create case' }).count()) === 0, 'analysts get no case form');
    await page.goto(caseUrl);
    await page.getByRole('heading', { name: caseName, exact: true }).waitFor();
    await page.getByText('Analysts cannot upload evidence').waitFor();
    assert((await page.getByTestId('dropzone').count()) === 0, 'analysts get no drop zone');
    await page.locator('.evidence-table tbody tr', { hasText: basename(evidence) }).waitFor();
  });
} catch {
  // reported by step()
} finally {
  await browser.close();
  for (const v of axeReport) {
    const minor = v.violations.filter((x) => x.impact !== 'serious' && x.impact !== 'critical');
    if (minor.length) console.log(`axe ${v.view}: ${minor.map((x) => `${x.id} (${x.impact})`).join(', ')}`);
    else console.log(`axe ${v.view}: no violations`);
  }
  if (consoleErrors.length) console.log(`browser console errors:\n  ${consoleErrors.slice(0, 10).join('\n  ')}`);
  console.log(`screenshots: ${shots}`);
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
