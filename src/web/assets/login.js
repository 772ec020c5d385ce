// Login page of the device website.
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  setupLang();
  const form = document.getElementById('login-form');
  const err = document.getElementById('login-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const password = document.getElementById('password').value;
    const res = await fetch('/api/v1/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ password }), credentials: 'same-origin',
    });
    if (res.ok) { location.href = '/'; return; }
    let json = null;
    try { json = await res.json(); } catch (_) { /* not JSON */ }
    err.textContent = res.status === 429 ? t('login.locked') : res.status === 401 ? t('login.wrong') : errorText(json, res.statusText);
  });
});
