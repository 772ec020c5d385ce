// The running `knx-echarge demo` seen in headless Chromium (playwright-core with the Debian
// chromium). Started by tests/demo.rs, which runs the demo process and passes:
//   BASE_URL, PASSWORD (the demo password), ARTEFACTS (directory for the screenshot),
//   CHROMIUM (executable), POINTS (how many charging points the demo runs).
// Logs in, waits for live values from the simulated charging points and the simulated house,
// sees them change without a reload and saves `demo-status.png`. Exits non-zero on failure.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };
const BASE = env('BASE_URL');
const ARTEFACTS = env('ARTEFACTS');
const POINTS = Number(env('POINTS'));
fs.mkdirSync(ARTEFACTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
page.setDefaultTimeout(30000);
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));

// Everything the test reads off the status page at one instant.
const snapshot = () => page.evaluate((n) => {
  const text = (id) => document.getElementById(id)?.textContent ?? '';
  const cps = [];
  for (let i = 1; i <= n; i += 1) {
    cps.push({ state: text(`cp-${i}-state`), currents: text(`cp-${i}-currents`), fault: text(`cp-${i}-fault`) });
  }
  return { load: [1, 2, 3].map((p) => text(`dlm-load-${p}`)), cps };
}, POINTS);
const amps = (s) => s.split('/').map((x) => Number.parseFloat(x)).filter((x) => Number.isFinite(x));

let code = 0;
try {
  await page.goto(`${BASE}/login`);
  await page.fill('#password', env('PASSWORD'));
  await Promise.all([page.waitForURL(`${BASE}/`), page.click('#login-button')]);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector(`#cp-${POINTS}`);
  assert.equal(await page.locator('section[id^="cp-"]').count(), POINTS, 'one area per charging point');

  // A vehicle charges with a measured current, and the house meter has reported a load.
  await page.waitForFunction((n) => {
    let charging = false;
    for (let i = 1; i <= n; i += 1) {
      const c = document.getElementById(`cp-${i}-currents`)?.textContent ?? '';
      if (c.split('/').some((x) => Number.parseFloat(x) > 0)) charging = true;
    }
    const load = Number.parseFloat(document.getElementById('dlm-load-1')?.textContent ?? '');
    return charging && load > 0;
  }, POINTS);
  const first = await snapshot();
  console.log('first:', JSON.stringify(first));
  assert.ok(first.cps.some((cp) => /Charg|Lad/.test(cp.state)), 'a charging point reports charging');

  // Live: the values change without a reload (the demo's meter sends every 5 s).
  await page.evaluate(() => { window.__noReload = 'still here'; });
  const seen = new Set([JSON.stringify(first)]);
  const deadline = Date.now() + 25000;
  while (seen.size < 3 && Date.now() < deadline) {
    await page.waitForTimeout(500);
    seen.add(JSON.stringify(await snapshot()));
  }
  assert.ok(seen.size >= 3, `the status page changed ${seen.size - 1} times in 25 s`);
  assert.equal(await page.evaluate(() => window.__noReload), 'still here', 'the page was not reloaded');

  // The chart has points, then the screenshot with live values.
  await page.waitForFunction(() => (document.getElementById('chart-load-1')?.getAttribute('points') ?? '').split(' ').length > 2);
  const last = await snapshot();
  console.log('last:', JSON.stringify(last));
  assert.ok(last.cps.some((cp) => amps(cp.currents).some((a) => a > 0)), 'a current in the screenshot');
  await page.screenshot({ path: path.join(ARTEFACTS, 'demo-status.png'), fullPage: true });
  assert.deepEqual(errors, [], 'no script errors');
  console.log('demo status page ok');
} catch (e) {
  code = 1;
  console.log(`FAIL ${e.stack || e}`);
  await page.screenshot({ path: path.join(ARTEFACTS, 'demo-failure.png'), fullPage: true }).catch(() => {});
}
await browser.close();
process.exit(code);
