#!/usr/bin/env node
// The one closing line of `make test`: tests passed and failed across cargo's test binaries
// (`test result:` lines of its log), the app's unit tests (vitest's JSON report) and the
// app's end-to-end steps (`e2e: N passed, M failed`).
import { existsSync, readFileSync } from 'node:fs';

const [cargoLog, vitestJson, e2eLog] = process.argv.slice(2);
let passed = 0;
let failed = 0;
const parts = [];
if (cargoLog && existsSync(cargoLog)) {
  let p = 0;
  let f = 0;
  for (const m of readFileSync(cargoLog, 'utf8').matchAll(/^test result: \w+\. (\d+) passed; (\d+) failed/gm)) {
    p += Number(m[1]);
    f += Number(m[2]);
  }
  parts.push(`rust ${p}/${p + f}`);
  passed += p;
  failed += f;
}
if (vitestJson && existsSync(vitestJson)) {
  const v = JSON.parse(readFileSync(vitestJson, 'utf8'));
  parts.push(`app unit ${v.numPassedTests}/${v.numTotalTests}`);
  passed += v.numPassedTests;
  failed += v.numFailedTests;
}
if (e2eLog && existsSync(e2eLog)) {
  const m = /^e2e: (\d+) passed, (\d+) failed$/m.exec(readFileSync(e2eLog, 'utf8'));
  if (m) {
    parts.push(`app e2e ${m[1]}/${Number(m[1]) + Number(m[2])}`);
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
}
console.log(`(${parts.join(', ')})`);
console.log(`summary: ${passed} passed, ${failed} failed`);
