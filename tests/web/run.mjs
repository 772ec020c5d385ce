// Browser tests of the knx-echarge device website in headless Chromium (playwright-core with
// the Debian chromium), against the running gateway binary. Started by tests/web_browser.rs,
// which runs `knx-echarge run` with five simulated charging points (Modbus TCP) and a smart
// meter on its KNX tunnelling server, and passes:
//   BASE_URL, PASSWORD (the initial password the gateway printed at its first start),
//   NEW_PASSWORD, WRONG_PASSWORD, DNS and NTP_SERVERS (settings to save), OLD_FIRMWARE (a
//   firmware file older than installed), ARTEFACTS (directory for screenshots and the
//   downloaded ZIP), CHROMIUM (executable).
// The script changes the charging points through the test: it prints `SIM <verb> <cp> [arg]`
// (plug, unplug, error <hex code>, offline, clear) and waits for `OK <same>` on its stdin, then
// waits for the page to show the change.
// Prints "N passed, M failed" and exits non-zero on any failure.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import readline from 'node:readline';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} not set`); return v; };
const BASE = env('BASE_URL');
const PASSWORD = env('PASSWORD');
const NEW_PASSWORD = env('NEW_PASSWORD');
const WRONG_PASSWORD = env('WRONG_PASSWORD');
const DNS = env('DNS');
const NTP_SERVERS = env('NTP_SERVERS');
const OLD_FIRMWARE = env('OLD_FIRMWARE');
const ARTEFACTS = env('ARTEFACTS');
fs.mkdirSync(ARTEFACTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
context.setDefaultTimeout(15000);
const page = await context.newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
const notFound = [];
page.on('response', (r) => { if (r.status() === 404) notFound.push(r.url()); });

// The test's answers to `SIM …` lines, in order.
const answers = readline.createInterface({ input: process.stdin });
const waiting = [];
answers.on('line', (line) => { const w = waiting.shift(); if (w) w(line); });
async function sim(...args) {
  const command = args.join(' ');
  const answer = new Promise((resolve) => { waiting.push(resolve); });
  console.log(`SIM ${command}`);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer to SIM ${command}`)), 10000);
  });
  const line = await Promise.race([answer, timeout]).finally(() => clearTimeout(timer));
  assert.equal(line, `OK ${command}`);
}
// How long a change at a charging point may take to reach the page (polls, retries, SSE).
const SIM_WAIT = { timeout: 45000 };
const text = (id) => page.evaluate((i) => document.getElementById(i).textContent, id);

let passed = 0;
let failed = 0;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    await page.screenshot({ path: path.join(ARTEFACTS, `failure-${passed + failed}.png`), fullPage: true }).catch(() => {});
  }
}

async function login(password) {
  await page.goto(`${BASE}/login`);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(`${BASE}/`), page.click('#login-button')]);
  await page.waitForSelector('body[data-ready="true"]');
}

await step('an unauthenticated visit is redirected to the login page', async () => {
  await page.goto(`${BASE}/`);
  assert.equal(new URL(page.url()).pathname, '/login');
  const api = await page.request.get(`${BASE}/api/v1/status`);
  assert.equal(api.status(), 401);
});

await step('a wrong password is refused, the right one logs in', async () => {
  await page.fill('#password', WRONG_PASSWORD);
  await page.click('#login-button');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
  assert.equal(new URL(page.url()).pathname, '/login');
  await login(PASSWORD);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'kec_session');
  assert.ok(session, 'session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie.includes('kec_session')), false, 'not readable by scripts');
});

await step('status page shows device, DLM and five charging points', async () => {
  await page.waitForSelector('#cp-5');
  assert.equal(await page.locator('section[id^="cp-"]').count(), 5);
  assert.match(await page.textContent('#dev-ia'), /^1\.1\.10$/);
  assert.match(await page.textContent('#fw-version'), /^\d+\.\d+\.\d+/);
  // The ETS application program version of etsdb/parameters.toml, compatible with the
  // firmware (same main version, spec 8.4.2: no "differs" note).
  assert.equal(await text('dev-app'), '0.1');
  await page.waitForFunction(() => /Charge/.test(document.getElementById('cp-1-state').textContent));
  assert.match(await page.textContent('#cp-1-model'), /\S/);
  // What the simulators report: vehicles at 1 and 2, none at 3, no fault.
  assert.equal(await text('cp-2-connected'), 'yes');
  assert.equal(await text('cp-3-connected'), 'no');
  // The big figure is per phase: "3 × 8.9 A" for a three-phase vehicle, "0.0 A" without one.
  assert.match(await text('cp-1-current'), /^3 × \d+\.\d A$/);
  assert.equal(await text('cp-3-current'), '0.0 A');
  assert.equal(await text('fault-general'), 'No fault present');
  assert.equal(await page.locator('#fault-list li').count(), 0);
  assert.equal(await text('cp-1-fault'), 'No error');
  // Why each point gets its current, as the DLM recorded it: no vehicle at 3; a reason of the
  // DLM's (not the placeholder) for the charging point 1.
  assert.equal(await text('cp-3-limited'), 'no vehicle connected');
  assert.notEqual(await text('cp-1-limited'), '–');
  assert.notEqual(await text('cp-1-limited'), 'no vehicle connected');
});

await step('live values change without reload (server-sent events)', async () => {
  await page.evaluate(() => { window.__noReload = 'still here'; });
  const read = () => page.evaluate(() => [
    document.getElementById('cp-1-currents').textContent,
    document.getElementById('dlm-load-1').textContent,
  ]);
  const before = await read();
  const seen = new Set([before.join('|')]);
  const deadline = Date.now() + 10000;
  while (seen.size < 3 && Date.now() < deadline) {
    await page.waitForTimeout(300);
    seen.add((await read()).join('|'));
  }
  assert.ok(seen.size >= 3, `values changed ${seen.size - 1} times: ${[...seen].join(' ; ')}`);
  assert.equal(await page.evaluate(() => window.__noReload), 'still here', 'the page was not reloaded');
  assert.match(before[1], /A$/, 'DLM load per phase in amperes');
});

await step('the per-phase load-vs-budget chart draws and grows live', async () => {
  await page.waitForSelector('#chart-load-1');
  const points = () => page.evaluate(() => document.getElementById('chart-load-1').getAttribute('points').split(' ').length);
  const n0 = await points();
  await page.waitForFunction((n) => document.getElementById('chart-load-1').getAttribute('points').split(' ').length > n, n0);
  assert.equal(await page.locator('#chart-svg polyline.budget').count(), 3);
  await page.screenshot({ path: path.join(ARTEFACTS, 'status.png'), fullPage: true });
});

const amps = (id) => page.evaluate((i) => document.getElementById(i).textContent.split('/')
  .map((x) => Number.parseFloat(x)).filter((x) => Number.isFinite(x)), id);

await step('a vehicle plugged in at charging point 3 shows live, and so does its leaving', async () => {
  await sim('plug', 3);
  await page.waitForFunction(() => document.getElementById('cp-3-connected').textContent === 'yes', null, SIM_WAIT);
  await page.waitForFunction(() => /Charg/.test(document.getElementById('cp-3-state').textContent)
    && document.getElementById('cp-3-currents').textContent.split('/').some((x) => Number.parseFloat(x) > 0), null, SIM_WAIT);
  assert.ok((await amps('cp-3-currents')).every((a) => a >= 6), 'at least the minimum current on every phase');
  await sim('unplug', 3);
  await page.waitForFunction(() => document.getElementById('cp-3-connected').textContent === 'no'
    && document.getElementById('cp-3-charging').textContent === 'no', null, SIM_WAIT);
  assert.doesNotMatch(await text('cp-3-state'), /Charg/);
  assert.equal(await page.evaluate(() => window.__noReload), 'still here', 'the page was not reloaded');
});

await step('faults of charging points show in their areas and in the fault list', async () => {
  await sim('error', 2, '0x0A05');
  await sim('offline', 4);
  // The ABB's error register is a bit field: one fault info per bit set.
  await page.waitForFunction(() => document.getElementById('cp-2-fault').className === 'badge bad', null, SIM_WAIT);
  assert.equal(await text('cp-2-fault'), 'ChargerError (50): The charging point reports an internal fault (see fault info 1-4). '
    + '[0x00000001 0x00000004 0x00000200 0x00000800]');
  // A box that reports an error stops charging.
  await page.waitForFunction(() => document.getElementById('cp-2-charging').textContent === 'no', null, SIM_WAIT);
  await page.waitForFunction(() => document.getElementById('cp-4-fault').className === 'badge bad', null, SIM_WAIT);
  assert.match(await text('cp-4-fault'), /^NotReachable \(80\): The charging point cannot be reached\./);
  // What it reported before ("Available") no longer holds.
  assert.equal(await text('cp-4-state'), 'Not available');
  // The general fault is the device's own (objects 8/9): it has none, but says so differently.
  assert.equal(await text('fault-general'), 'None (charging-point faults below)');
  assert.equal(await page.getAttribute('#fault-general', 'class'), 'badge warn');
  const list = await page.locator('#fault-list li').allTextContents();
  assert.ok(list.some((f) => /^ChargerError \(50\) CP2: /.test(f)), list.join(' | '));
  assert.ok(list.some((f) => /^NotReachable \(80\) CP4: /.test(f)), list.join(' | '));
  // The others go on: charging point 1 still charges, 3 and 5 show no fault.
  assert.match(await text('cp-1-state'), /Charg/);
  for (const n of [1, 3, 5]) assert.notEqual(await page.getAttribute(`#cp-${n}-fault`, 'class'), 'badge bad', `CP${n}`);
});

await step('German and English switch', async () => {
  await page.click('#lang');
  await page.waitForFunction(() => document.getElementById('nav-settings').textContent === 'Einstellungen');
  assert.equal(await page.getAttribute('html', 'lang'), 'de');
  assert.match(await page.textContent('#dlm h2'), /Lastmanagement/);
  // Fault descriptions come in German by fault code; the server's English is the fallback.
  assert.equal(await text('cp-2-fault'), 'ChargerError (50): Der Ladepunkt meldet einen internen Fehler (siehe Fehlerinfo 1–4). '
    + '[0x00000001 0x00000004 0x00000200 0x00000800]');
  assert.match(await text('cp-4-fault'), /^NotReachable \(80\): Der Ladepunkt ist nicht erreichbar\./);
  assert.equal(await text('fault-general'), 'Keine (Störungen der Ladepunkte unten)');
  assert.equal(await text('cp-1-fault'), 'Keine Störung');
  assert.equal(await page.evaluate(() => faultDescription({ code: 'Unknown', description: 'en' })), 'en');
  await page.screenshot({ path: path.join(ARTEFACTS, 'status-de.png'), fullPage: true });
  await page.click('#lang');
  await page.waitForFunction(() => document.getElementById('nav-settings').textContent === 'Settings');
  assert.match(await text('cp-4-fault'), /^NotReachable \(80\): The charging point cannot be reached\./);
});

await step('faults clear when the charging points recover', async () => {
  await sim('clear', 2);
  await sim('clear', 4);
  await page.waitForFunction(() => document.querySelectorAll('#fault-list li').length === 0, null, SIM_WAIT);
  assert.equal(await text('fault-general'), 'No fault present');
  for (const n of [2, 4]) {
    assert.notEqual(await page.getAttribute(`#cp-${n}-fault`, 'class'), 'badge bad', `CP${n}`);
  }
  // The last fault stays shown (object 95: last or current fault).
  assert.match(await text('cp-2-fault'), /ChargerError/);
  await page.waitForFunction(() => document.getElementById('cp-4-state').textContent === 'Available', null, SIM_WAIT);
  await page.waitForFunction(() => /Charg/.test(document.getElementById('cp-2-state').textContent), null, SIM_WAIT);
});

await step('programming mode on and off from the settings page', async () => {
  await page.click('#nav-settings');
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#prog-toggle[data-on="false"]');
  await page.click('#prog-toggle');
  await page.waitForSelector('#prog-toggle[data-on="true"]');
  await page.click('#nav-status');
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForFunction(() => document.getElementById('dev-prog').textContent === 'on');
  await page.click('#nav-settings');
  await page.waitForSelector('#prog-toggle[data-on="true"]');
  await page.click('#prog-toggle');
  await page.waitForSelector('#prog-toggle[data-on="false"]');
});

await step('extended logging and the log ZIP download', async () => {
  await page.click('#log-extended');
  await page.waitForSelector('#log-extended.on');
  // A few poll cycles (1 s each) in extended logging, so the ZIP holds their debug lines.
  await page.waitForTimeout(3000);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#log-download button')]);
  assert.match(download.suggestedFilename(), /^knx-echarge-logs-.*\.zip$/);
  const file = path.join(ARTEFACTS, 'logs.zip');
  await download.saveAs(file);
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.readUInt32LE(0), 0x04034b50, 'ZIP signature');
  for (const name of ['knx-echarge.log', 'status.json', 'faults.json', 'system.txt']) {
    assert.ok(bytes.includes(Buffer.from(name)), `${name} in the ZIP`);
  }
  await page.click('#log-simple');
  await page.waitForSelector('#log-simple.on');
});

await step('a firmware file older than the installed version is refused', async () => {
  await page.setInputFiles('#fw-file', OLD_FIRMWARE);
  await page.click('#fw-upload');
  await page.waitForSelector('#fw-msg.error');
  assert.match(await page.textContent('#fw-msg'), /not newer than the installed version/);
  assert.equal(await page.textContent('#fw-staged'), '–');
  await page.screenshot({ path: path.join(ARTEFACTS, 'settings.png'), fullPage: true });
});

await step('the German page shows the refusal of the server in German', async () => {
  // A language switch relabels the page in place: what the user typed stays.
  await page.fill('#dns', '192.0.2.53');
  await page.click('#lang');
  await page.waitForFunction(() => document.getElementById('nav-settings').textContent === 'Einstellungen');
  assert.equal(await page.inputValue('#dns'), '192.0.2.53');
  assert.equal(await page.textContent('#fw-upload'), 'Firmware hochladen');
  await page.setInputFiles('#fw-file', OLD_FIRMWARE);
  await page.click('#fw-upload');
  await page.waitForFunction(() => document.getElementById('fw-msg').textContent !== 'Firmware wird hochgeladen und geprüft …');
  assert.equal(await page.getAttribute('#fw-msg', 'class'), 'error');
  assert.equal(await page.textContent('#fw-msg'), 'Die Firmware ist nicht neuer als die installierte Version.');
  await page.click('#lang');
  await page.waitForFunction(() => document.getElementById('nav-settings').textContent === 'Settings');
  await page.waitForSelector('#fw-upload');
});

await step('DNS and NTP settings are saved', async () => {
  await page.fill('#dns', DNS);
  await page.click('#dns-save');
  await page.waitForFunction(() => document.getElementById('net-msg').textContent === 'Saved.');
  await page.fill('#ntp-servers', NTP_SERVERS);
  await page.click('#ntp-save');
  await page.waitForFunction(() => document.getElementById('net-msg').className === 'notice');
});

await step('password change, then log in with the new password only', async () => {
  await page.fill('#pw-current', PASSWORD);
  await page.fill('#pw-new', 'weakpassword');
  await page.fill('#pw-repeat', 'weakpassword');
  await page.click('#pw-save');
  await page.waitForSelector('#pw-msg.error');
  await page.fill('#pw-new', NEW_PASSWORD);
  await page.fill('#pw-repeat', NEW_PASSWORD);
  await page.click('#pw-save');
  await page.waitForURL(`${BASE}/login`);
  await page.fill('#password', PASSWORD);
  await page.click('#login-button');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
  await login(NEW_PASSWORD);
});

await step('open-source licences page from the status bar', async () => {
  await page.click('#licences-link');
  await page.waitForSelector('#licence-table tbody tr');
  const rows = await page.locator('#licence-table tbody tr').count();
  assert.ok(rows > 20, `${rows} packages`);
  assert.ok(await page.locator('#licence-table td', { hasText: 'axum' }).count() >= 1);
  await page.screenshot({ path: path.join(ARTEFACTS, 'licences.png'), fullPage: true });
});

await step('no script errors in the pages', async () => {
  const real = consoleErrors.filter((e) => !/401|403|422|Unauthorized|Forbidden|Unprocessable/.test(e));
  assert.deepEqual(notFound, [], 'no missing resources');
  assert.deepEqual(real, []);
});

await browser.close();
answers.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
