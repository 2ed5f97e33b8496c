// Accessibility scan with axe-core inside the page: the violations of impact serious or
// critical (the bar the issue sets), each with the rule, help text and the first targets.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export async function axeScan(page) {
  const has = await page.evaluate(() => typeof window.axe !== 'undefined');
  // Evaluated through the DevTools protocol, not as a <script> tag, which the app's
  // Content-Security-Policy (script-src 'self') rightly refuses.
  if (!has) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.length,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    }));
  });
  return {
    all: result,
    blocking: result.filter((v) => v.impact === 'serious' || v.impact === 'critical'),
  };
}
