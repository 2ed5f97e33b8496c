#!/usr/bin/env node
// Prints the app's URL of the `chronoctl local` platform whose directory is given (its
// state file records every component's endpoint; the app is served on the one origin).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const dir = process.argv[2] ?? '.chrono/local';
let state;
try {
  state = JSON.parse(readFileSync(resolve(dir, 'state.json'), 'utf8'));
} catch (e) {
  console.error(`local-url: cannot read ${dir}/state.json (${e.message}); is \`chronoctl local up\` done?`);
  process.exit(1);
}
const c = state.components ?? {};
const origin = c.web?.endpoint ?? c.app?.endpoint ?? c.gateway?.endpoint;
if (!origin) {
  console.error(`local-url: ${dir}/state.json records no app origin (components: ${Object.keys(c).join(', ')})`);
  process.exit(1);
}
console.log(origin.replace(/\/+$/, ''));
