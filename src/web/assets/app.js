// The device website: status (live by server-sent events), settings, licences.
// Everything is built with DOM calls and textContent: no data is ever parsed as HTML.
'use strict';
let CSRF = '';
let lastView = null;
const samples = [];            // {t, load[3], budget[3]}
const HOUR = 3600 * 1000;

async function api(method, path, body, raw) {
  const headers = { 'X-CSRF-Token': CSRF };
  let data = body;
  if (body !== undefined && !raw) { headers['Content-Type'] = 'application/json'; data = JSON.stringify(body); }
  if (raw) headers['Content-Type'] = 'application/octet-stream';
  const res = await fetch(path, { method, headers, body: data, credentials: 'same-origin' });
  if (res.status === 401) { location.href = '/login'; throw new Error('login required'); }
  let json = null;
  try { json = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error(errorText(json, res.statusText));
  return json;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'i18n') { e.dataset.i18n = v; e.textContent = t(v); }
    else if (k === 'onclick') e.addEventListener('click', v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
function card(titleKey, id, ...children) {
  return el('section', { class: 'card', id }, el('h2', { i18n: titleKey }), ...children);
}
function dl(rows) {
  const d = el('dl');
  for (const [key, id] of rows) { d.append(el('dt', { i18n: key }), el('dd', { id })); }
  return d;
}
function set(id, text, cls) {
  const e = document.getElementById(id);
  if (!e) return;
  e.textContent = text;
  if (cls !== undefined) e.className = cls;
}
const num = (v, unit, digits = 1) => (v == null ? '–' : `${Number(v).toFixed(digits)} ${unit}`);
function duration(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return `${h} h ${String(m).padStart(2, '0')} min ${String(sec).padStart(2, '0')} s`;
}
function stateText(cp) {
  if (cp.state == null) return '–';
  return lang() === 'de' ? (STATE_DE[cp.state] || cp.state_text) : cp.state_text;
}

// ---------- status page ----------
function buildStatus(view) {
  const main = document.getElementById('main');
  main.replaceChildren();
  const grid = el('div', { class: 'grid' });
  grid.append(card('dev.title', 'device', dl([
    ['dev.firmware', 'dev-firmware'], ['dev.app', 'dev-app'], ['dev.uptime', 'dev-uptime'],
    ['dev.ip', 'dev-ip'], ['dev.ip_configured', 'dev-ip-configured'], ['dev.mac', 'dev-mac'], ['dev.ia', 'dev-ia'], ['dev.prog', 'dev-prog'],
    ['dev.link', 'dev-link'], ['dev.telegrams', 'dev-telegrams']])));
  grid.append(card('fault.title', 'faults', dl([['fault.general', 'fault-general']]), el('ul', { id: 'fault-list' })));
  const phases = el('div', { class: 'phases', id: 'dlm-phases' });
  for (let i = 0; i < 3; i++) {
    phases.append(el('div', {}, el('div', { class: 'muted', text: `L${i + 1}` }),
      el('div', { class: 'big', id: `dlm-load-${i + 1}` }), el('div', { class: 'muted', id: `dlm-budget-${i + 1}` })));
  }
  grid.append(card('dlm.title', 'dlm', dl([['dlm.mode', 'dlm-mode'], ['dlm.fuse', 'dlm-fuse'], ['dlm.grid', 'dlm-grid']]),
    phases, el('p', { id: 'dlm-state', class: 'muted' })));
  main.append(grid);
  main.append(el('section', { class: 'card chart', id: 'chart-card' }, el('h2', { i18n: 'dlm.chart' }),
    el('p', { class: 'legend' }, el('span', { class: 'l', text: '— ' }, el('span', { i18n: 'dlm.load' })),
      el('span', { class: 'b', text: '- - ' }, el('span', { i18n: 'dlm.budget' }))),
    el('div', { id: 'chart' })));
  const cps = el('div', { class: 'grid', id: 'charging-points' });
  for (const cp of view.charging_points) {
    const n = cp.id;
    cps.append(el('section', { class: 'card', id: `cp-${n}` },
      el('h2', {}, el('span', { i18n: 'cp.title' }), ` ${n}`),
      el('div', { class: 'row' }, el('span', { class: 'badge', id: `cp-${n}-state` }),
        el('span', { class: 'big', id: `cp-${n}-current` })),
      dl([['cp.model', `cp-${n}-model`], ['cp.address', `cp-${n}-address`], ['cp.connected', `cp-${n}-connected`],
        ['cp.charging', `cp-${n}-charging`], ['cp.setpoint', `cp-${n}-setpoint`], ['cp.currents', `cp-${n}-currents`],
        ['cp.power', `cp-${n}-power`], ['cp.energy_last', `cp-${n}-energy-last`], ['cp.energy_total', `cp-${n}-energy-total`],
        ['cp.session', `cp-${n}-session`], ['cp.limited', `cp-${n}-limited`], ['cp.fault', `cp-${n}-fault`]])));
  }
  main.append(el('h2', {}), cps);
}

// Object 95's "no fault" text (the server's `faults::NO_ERROR`) in the page's language; a
// fault code stays as it is.
const lastFault = (text) => (text === 'No error' ? t('fault.no_error') : text || '–');

// The big figure of a charging point: the current per phase as an electrician reads it —
// "3 × 16.0 A" when the phases that draw carry the same current, else the largest phase.
function headlineCurrent(currents) {
  const known = currents.filter((a) => a != null);
  if (!known.length) return '';
  const drawing = known.filter((a) => a >= 0.05);
  const max = Math.max(...known);
  const even = drawing.length > 1 && drawing.every((a) => Math.abs(a - max) < 0.15);
  return even ? `${drawing.length} × ${num(max, 'A')}` : num(max, 'A');
}

function renderStatus(view) {
  lastView = view;
  if (!document.getElementById('device')) buildStatus(view);
  const d = view.device;
  set('dev-firmware', d.firmware);
  // Spec 8.4.2: compatible when firmware and application program share the main version.
  set('dev-app', d.application_compatible ? d.application_version
    : `${d.application_version} (${t('dev.app_incompatible')})`);
  set('dev-uptime', duration(d.uptime_s));
  // The address the gateway uses (its interface's), and the one configured in the ETS only
  // where it differs.
  // How it was obtained: DHCP, the link-local fallback (no DHCP server), static.
  const obtained = { dhcp: 'dhcp', 'link-local': 'ip.link_local', static: 'ip.static' }[d.ip_obtained];
  set('dev-ip', obtained ? `${d.ip} (${t(obtained)})` : d.ip);
  const configured = document.getElementById('dev-ip-configured');
  if (configured) {
    configured.hidden = !d.configured_ip;
    if (configured.previousElementSibling) configured.previousElementSibling.hidden = !d.configured_ip;
    set('dev-ip-configured', d.configured_ip || '');
  }
  set('dev-mac', d.mac ? (d.interface ? `${d.mac} (${d.interface})` : d.mac) : '–');
  set('dev-ia', d.individual_address);
  set('dev-prog', d.programming_mode ? t('on') : t('off'), d.programming_mode ? 'badge bad' : 'badge');
  const linkBadge = { down: 'badge bad', reconnecting: 'badge warn' }[d.knx_link] || 'badge ok';
  set('dev-link', t(`link.${d.knx_link}`), linkBadge);
  set('dev-telegrams', `${d.telegrams_sent} / ${d.telegrams_rejected}`);
  const f = view.faults;
  // The general fault (objects 8/9) is the device's; charging points have their own (94/95).
  // With none of its own but faults of charging points, it does not say "no fault".
  if (f.present) set('fault-general', f.last, 'badge bad');
  else if (f.list.length) set('fault-general', t('fault.none_device'), 'badge warn');
  else set('fault-general', t('fault.none'), 'badge ok');
  const list = document.getElementById('fault-list');
  list.replaceChildren(...f.list.map((x) => el('li', {},
    el('strong', { text: x.code }), ` (${x.severity})${x.charging_point ? ` CP${x.charging_point}` : ''}: `,
    el('span', { text: faultDescription(x) }), el('div', { class: 'muted', text: x.message }))));
  const dlm = view.dlm;
  set('dlm-mode', dlm.enabled ? t(`dlm.${dlm.mode}`) : t('dlm.off'));
  set('dlm-fuse', num(dlm.fuse, 'A', 0));
  set('dlm-grid', dlm.grid_control ? t('on') : t('off'), dlm.grid_control ? 'badge warn' : 'badge');
  const c = dlm.cycle;
  for (let i = 0; i < 3; i++) {
    set(`dlm-load-${i + 1}`, c ? num(c.meter[i], 'A') : '–');
    set(`dlm-budget-${i + 1}`, c ? `${t('dlm.budget')} ${num(c.budget[i], 'A')} · ${t('dlm.available')} ${num(c.available[i], 'A')}` : '');
  }
  set('dlm-state', !dlm.enabled ? '' : !c ? t('dlm.nocycle') : c.emergency ? t('dlm.emergency') : '', c && c.emergency ? 'error' : 'muted');
  for (const cp of view.charging_points) {
    const n = cp.id;
    if (!document.getElementById(`cp-${n}`)) { buildStatus(view); return renderStatus(view); }
    set(`cp-${n}-state`, stateText(cp), cp.charging ? 'badge ok' : cp.fault_present ? 'badge bad' : 'badge');
    set(`cp-${n}-current`, headlineCurrent(cp.currents));
    set(`cp-${n}-model`, cp.model);
    set(`cp-${n}-address`, cp.address);
    set(`cp-${n}-connected`, cp.connected ? t('yes') : t('no'));
    set(`cp-${n}-charging`, cp.charging ? t('yes') : t('no'));
    set(`cp-${n}-setpoint`, num(cp.setpoint, 'A'));
    set(`cp-${n}-currents`, cp.currents.map((a) => (a == null ? '–' : a.toFixed(1))).join(' / ') + ' A');
    set(`cp-${n}-power`, cp.power == null ? '–' : num(cp.power / 1000, 'kW', 2));
    set(`cp-${n}-energy-last`, cp.energy_last == null ? '–' : num(cp.energy_last / 1000, 'kWh', 2));
    set(`cp-${n}-energy-total`, cp.energy_total == null ? '–' : num(cp.energy_total / 1000, 'kWh', 1));
    const sess = [cp.session_start, cp.session_end].filter(Boolean).join(' – ');
    set(`cp-${n}-session`, (sess || '–') + (cp.session_duration_s != null ? ` (${duration(cp.session_duration_s)})` : ''));
    // Why it gets this current, as the gateway's DLM decided it (not guessed here).
    set(`cp-${n}-limited`, cp.limited_by ? t(`lim.${cp.limited_by}`) : '–', cp.limited ? 'badge warn' : 'badge');
    const fault = cp.fault ? `${cp.fault.code} (${cp.fault.severity}): ${faultDescription(cp.fault)}` : lastFault(cp.last_fault);
    set(`cp-${n}-fault`, fault + (cp.fault_info.length ? ` [${cp.fault_info.join(' ')}]` : ''), cp.fault_present ? 'badge bad' : '');
  }
  if (c) addSample({ t: Date.now(), load: c.meter, budget: c.budget });
  drawChart();
}

function addSample(s) {
  const last = samples[samples.length - 1];
  // One point per second at most: a newer value within the second replaces the values only.
  if (last && s.t - last.t < 1000) samples[samples.length - 1] = { ...s, t: last.t }; else samples.push(s);
  while (samples.length && samples[0].t < Date.now() - HOUR) samples.shift();
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function drawChart() {
  const host = document.getElementById('chart');
  if (!host) return;
  const W = 900, H = 110, P = 34, now = Date.now();
  const root = svg('svg', { viewBox: `0 0 ${W} ${3 * H + 20}`, id: 'chart-svg', role: 'img' });
  let max = 10;
  for (const s of samples) for (let i = 0; i < 3; i++) max = Math.max(max, s.load[i], s.budget[i]);
  max = Math.ceil(max / 10) * 10;
  const x = (tm) => P + ((tm - (now - HOUR)) / HOUR) * (W - P - 8);
  for (let i = 0; i < 3; i++) {
    const top = i * H + 8, h = H - 22;
    const y = (v) => top + h - (v / max) * h;
    root.append(svg('line', { class: 'axis', x1: P, y1: top + h, x2: W - 8, y2: top + h }));
    root.append(svg('line', { class: 'axis', x1: P, y1: top, x2: P, y2: top + h }));
    const label = svg('text', { x: 2, y: top + 12 }); label.textContent = `L${i + 1}`; root.append(label);
    const mx = svg('text', { x: 2, y: top + 26 }); mx.textContent = `${max} A`; root.append(mx);
    const pts = (k) => samples.map((s) => `${x(s.t).toFixed(1)},${y(s[k][i]).toFixed(1)}`).join(' ');
    if (samples.length) {
      root.append(svg('polyline', { class: 'budget', points: pts('budget'), 'data-phase': i + 1 }));
      root.append(svg('polyline', { class: 'load', points: pts('load'), 'data-phase': i + 1, id: `chart-load-${i + 1}` }));
    }
  }
  const tl = svg('text', { x: P, y: 3 * H + 14 }); tl.textContent = '−60 min'; root.append(tl);
  const tr = svg('text', { x: W - 40, y: 3 * H + 14 }); tr.textContent = lang() === 'de' ? 'jetzt' : 'now'; root.append(tr);
  host.replaceChildren(root);
}

async function statusPage() {
  const view = await api('GET', '/api/v1/status');
  const hist = await api('GET', '/api/v1/dlm/history');
  for (const s of hist.samples) samples.push(s);
  renderStatus(view);
  const es = new EventSource('/api/v1/events');
  es.addEventListener('status', (ev) => renderStatus(JSON.parse(ev.data)));
  es.onerror = () => { fetch('/api/v1/session').then((r) => { if (r.status === 401) location.href = '/login'; }); };
}

// ---------- settings page ----------
function notice(id, text, isError) { set(id, text, isError ? 'error' : 'notice'); }

async function settingsPage() {
  const s = await api('GET', '/api/v1/settings');
  const main = document.getElementById('main');
  main.replaceChildren();
  const grid = el('div', { class: 'grid' });
  // General: logging mode and log download.
  const simple = el('button', { id: 'log-simple', i18n: 'set.simple' });
  const extended = el('button', { id: 'log-extended', i18n: 'set.extended' });
  const showMode = (m) => { simple.className = m === 'simple' ? 'on' : ''; extended.className = m === 'extended' ? 'on' : ''; };
  showMode(s.logging);
  const setMode = async (m) => { try { const r = await api('PUT', '/api/v1/settings/logging', { mode: m }); showMode(r.logging); } catch (e) { notice('log-msg', e.message, true); } };
  simple.addEventListener('click', () => setMode('simple'));
  extended.addEventListener('click', () => setMode('extended'));
  grid.append(card('set.general', 'general',
    el('div', { class: 'muted', i18n: 'set.logging' }), el('div', { class: 'row' }, simple, extended),
    el('p', { class: 'muted', i18n: 'set.extended_hint' }),
    el('a', { href: '/api/v1/logs.zip', id: 'log-download', download: '' }, el('button', { type: 'button', class: 'primary', i18n: 'set.download' })),
    el('p', { id: 'log-msg' })));
  // Password.
  const form = el('form', { id: 'password-form' },
    el('label', { for: 'pw-current', i18n: 'set.current' }), el('input', { type: 'password', id: 'pw-current', autocomplete: 'current-password' }),
    el('label', { for: 'pw-new', i18n: 'set.new' }), el('input', { type: 'password', id: 'pw-new', autocomplete: 'new-password' }),
    el('label', { for: 'pw-repeat', i18n: 'set.repeat' }), el('input', { type: 'password', id: 'pw-repeat', autocomplete: 'new-password' }),
    el('p', { class: 'muted', i18n: 'set.rule' }),
    el('button', { type: 'submit', class: 'primary', id: 'pw-save', i18n: 'set.save' }), el('p', { id: 'pw-msg' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const cur = document.getElementById('pw-current').value, nw = document.getElementById('pw-new').value;
    if (nw !== document.getElementById('pw-repeat').value) { notice('pw-msg', t('set.mismatch'), true); return; }
    try {
      await api('POST', '/api/v1/password', { current: cur, new: nw });
      notice('pw-msg', t('set.changed'));
      setTimeout(() => { location.href = '/login'; }, 1200);
    } catch (e) { notice('pw-msg', e.message, true); }
  });
  grid.append(card('set.password', 'password', form));
  // Device: programming mode, restart, reset.
  const prog = el('button', { id: 'prog-toggle' });
  let progOn = s.programming_mode;
  const showProg = () => { prog.textContent = `${t('set.prog')}: ${progOn ? t('on') : t('off')}`; prog.className = progOn ? 'on' : ''; prog.dataset.on = String(progOn); };
  showProg();
  prog.addEventListener('click', async () => { try { const r = await api('POST', '/api/v1/programming-mode', { on: !progOn }); progOn = r.programming_mode; showProg(); } catch (e) { notice('dev-msg', e.message, true); } });
  grid.append(card('set.device', 'device-settings',
    el('div', { class: 'row' }, prog),
    el('div', { class: 'row' },
      el('button', { id: 'restart', i18n: 'set.restart', onclick: async () => { if (confirm(t('set.restart_confirm'))) { await api('POST', '/api/v1/restart'); notice('dev-msg', t('set.restarting')); setTimeout(() => { location.href = '/login'; }, 4000); } } }),
      el('button', { id: 'factory-reset', class: 'danger', i18n: 'set.reset', onclick: async () => { if (confirm(t('set.reset_confirm'))) { await api('POST', '/api/v1/factory-reset', { confirm: 'RESET' }); notice('dev-msg', t('set.restarting')); setTimeout(() => { location.href = '/login'; }, 4000); } } })),
    el('p', { id: 'dev-msg' })));
  // Network and NTP.
  const dns = el('input', { type: 'text', id: 'dns', value: s.network.dns });
  const ntpOn = el('input', { type: 'checkbox', id: 'ntp-enabled' });
  ntpOn.checked = s.ntp.enabled;
  const ntpServers = el('input', { type: 'text', id: 'ntp-servers', value: s.ntp.servers.join(', ') });
  grid.append(card('set.network', 'network',
    el('label', { for: 'dns', i18n: 'set.dns' }), dns,
    el('div', { class: 'row' }, el('button', { id: 'dns-save', i18n: 'set.save', onclick: async () => { try { await api('PUT', '/api/v1/settings/network', { dns: dns.value }); notice('net-msg', t('set.saved')); } catch (e) { notice('net-msg', e.message, true); } } })),
    el('h2', { i18n: 'set.ntp' }),
    el('div', { class: 'row' }, ntpOn, el('label', { for: 'ntp-enabled', i18n: 'set.ntp_enabled' })),
    el('label', { for: 'ntp-servers', i18n: 'set.ntp_servers' }), ntpServers,
    el('div', { class: 'row' }, el('button', { id: 'ntp-save', i18n: 'set.save', onclick: async () => {
      const servers = ntpServers.value.split(',').map((x) => x.trim()).filter(Boolean);
      try { await api('PUT', '/api/v1/settings/ntp', { enabled: ntpOn.checked, servers }); notice('net-msg', t('set.saved')); } catch (e) { notice('net-msg', e.message, true); }
    } })),
    el('p', { id: 'net-msg' })));
  // Firmware.
  const file = el('input', { type: 'file', id: 'fw-file' });
  grid.append(card('set.firmware', 'firmware',
    dl([['set.installed', 'fw-installed'], ['set.staged', 'fw-staged']]),
    el('div', { class: 'row' }, file, el('button', { id: 'fw-upload', class: 'primary', i18n: 'set.upload', onclick: async () => {
      const f = file.files[0];
      if (!f) return;
      notice('fw-msg', t('set.uploading'));
      try {
        const r = await api('POST', '/api/v1/firmware', await f.arrayBuffer(), true);
        notice('fw-msg', `${t('set.upload_ok')} ${r.staged.version} (SHA-256 ${r.staged.sha256.slice(0, 16)}…)`);
        set('fw-staged', r.staged.version);
      } catch (e) { notice('fw-msg', e.message, true); }
    } })),
    el('p', { id: 'fw-msg', role: 'status' })));
  main.append(grid);
  set('fw-installed', s.firmware.installed);
  set('fw-staged', s.firmware.staged ? s.firmware.staged.version : '–');
}

// ---------- licences page ----------
// Each package with its licence expression (every licence linked to its text below) and the
// copyright notices of its licence files; then every licence text once, expandable.
function openLicence(id) {
  const d = document.getElementById(`licence-${id}`);
  if (!d) return;
  d.open = true;
  d.scrollIntoView({ block: 'start' });
}
async function licencesPage() {
  const lic = await api('GET', '/api/v1/licences');
  const texts = new Set((lic.texts || []).map((x) => x.id));
  const users = {};
  const body = el('tbody');
  for (const p of lic.packages) {
    const licence = el('td', {});
    const ids = p.spdx || [];
    // The expression as the package states it, with each licence that has a text as a link.
    for (const part of (p.license || '–').split(/([A-Za-z0-9.+-]+)/)) {
      if (ids.includes(part) && texts.has(part)) {
        licence.append(el('a', { href: `#licence-${part}`, class: 'licence-link', 'data-licence': part,
          onclick: (ev) => { ev.preventDefault(); openLicence(part); } }, part));
      } else if (part) licence.append(part);
    }
    for (const id of ids) (users[id] = users[id] || []).push(p.name);
    const notices = el('td', { class: 'notice-cell' });
    for (const n of p.notices || []) notices.append(el('div', { text: n }));
    body.append(el('tr', { id: `package-${p.name}-${p.version}` }, el('td', { text: p.name }), el('td', { text: p.version }),
      licence, notices, el('td', { text: p.repository || '' })));
  }
  const textList = el('div', { id: 'licence-texts' });
  for (const x of lic.texts || []) {
    const count = (users[x.id] || []).length;
    textList.append(el('details', { id: `licence-${x.id}`, class: 'licence-text' },
      el('summary', {}, el('strong', { text: x.id }), ` · ${count} `, el('span', { i18n: count === 1 ? 'lic.package' : 'lic.packages' })),
      el('pre', { text: x.text })));
  }
  const main = document.getElementById('main');
  main.replaceChildren(card('lic.title', 'licences', el('p', { i18n: 'lic.intro' }),
    el('table', { id: 'licence-table' }, el('thead', {}, el('tr', {}, el('th', { i18n: 'lic.name' }), el('th', { i18n: 'lic.version' }),
      el('th', { i18n: 'lic.license' }), el('th', { i18n: 'lic.notice' }), el('th', { i18n: 'lic.repo' }))), body)),
  card('lic.texts', 'licence-texts-card', el('p', { class: 'muted', i18n: 'lic.texts_intro' }), textList));
  if (location.hash.startsWith('#licence-')) openLicence(location.hash.slice('#licence-'.length));
}

document.addEventListener('DOMContentLoaded', async () => {
  const page = document.body.dataset.page;
  setupLang(() => {
    if (page === 'status' && lastView) { applyI18n(); renderStatus(lastView); }
    // The settings page is relabelled in place: a re-render would fetch the settings again and
    // drop what the user has typed or chosen (a firmware file, a DNS entry).
    else applyI18n();
  });
  const nav = document.getElementById(`nav-${page}`);
  if (nav) nav.classList.add('active');
  const s = await api('GET', '/api/v1/session');
  CSRF = s.csrf_token;
  document.getElementById('logout').addEventListener('click', async () => { await api('POST', '/api/v1/logout'); location.href = '/login'; });
  if (page === 'status') await statusPage();
  else if (page === 'settings') await settingsPage();
  else if (page === 'licences') await licencesPage();
  document.body.dataset.ready = 'true';
});
