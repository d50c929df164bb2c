// The operator's console: reads the REST API with the session cookie, every change carries the
// page's CSRF token, and the view in front is fetched again every POLL_MS.
'use strict';

const POLL_MS = 2000;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
let skewMs = 0; // the manager's clock minus ours, from each answer's Date header
let lastOk = 0;
let timer = null;
let busy = false;
const picks = {}; // thread index -> the state chosen in its picker, kept across refreshes
let choices = null; // /ui/states: each plan's states, every stage

// ---- helpers -------------------------------------------------------------------------------

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function dur(secs) {
  if (secs == null) return '';
  secs = Math.max(0, Math.round(secs));
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24, m = Math.floor(secs / 60) % 60, s = secs % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

// A database time (UTC, no zone) as "3m 12s ago", its absolute time on hover.
function ago(naive) {
  if (!naive) return '<span class="muted">–</span>';
  const t = new Date(naive.endsWith('Z') ? naive : naive + 'Z');
  const secs = (Date.now() + skewMs - t.getTime()) / 1000;
  const abs = t.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `<span title="${esc(abs)}">${esc(dur(secs))} ago</span>`;
}

function badge(word, cls) {
  return `<span class="badge st-${esc(cls ?? word)}">${esc(word)}</span>`;
}

function num(n) {
  return `<td class="num${n === 0 ? ' count-0' : ''}">${esc(n ?? '')}</td>`;
}

function notice(text, ok) {
  const el = document.getElementById('notice');
  if (!text) { el.hidden = true; return; }
  el.textContent = text;
  el.className = ok ? 'ok' : 'err';
  el.hidden = false;
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = CSRF;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const date = res.headers.get('Date');
  if (date) skewMs = new Date(date).getTime() - Date.now();
  if (res.status === 401) {
    // The session ended (or the token changed): the page itself now shows the login.
    location.reload();
    throw new Error('logged out');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!res.ok) {
    const why = data && data.error ? data.error : `${res.status} ${res.statusText}`;
    throw new Error(why);
  }
  return data;
}

// Runs an operator's change, says what happened (`said` words the answer), and refreshes.
async function act(what, method, path, body, said) {
  try {
    const r = await api(method, path, body);
    const outcome = said ? said(r) : (r && r.result) || 'done';
    notice(`${what}: ${outcome}`, true);
  } catch (e) {
    notice(`${what} failed: ${e.message}`, false);
  }
  refresh();
}

// ---- views ---------------------------------------------------------------------------------

const views = {
  async workers() {
    const ws = await api('GET', '/workers');
    ws.sort((a, b) => a.name.localeCompare(b.name));
    const sum = (k) => ws.reduce((n, w) => n + w[k], 0);
    const stale = ws.filter((w) => w.last_ping_age_secs > 90).length;
    const cards = [
      ['workers', ws.length], ['threads', sum('threads')], ['running', sum('running_threads')],
      ['waiting', sum('waiting_threads')], ['paused', sum('paused_threads')],
      ['with errors', sum('error_threads')], ['no ping for 90s', stale],
    ].map(([l, n]) => `<div class="card"><div class="n">${n}</div><div class="l">${l}</div></div>`).join('');
    const rows = ws.map((w) => `<tr class="click" data-worker="${esc(w.name)}">
      <td><a href="#/workers/${encodeURIComponent(w.name)}">${esc(w.name)}</a></td>
      <td>${badge(w.mode)}</td>
      ${num(w.threads)}${num(w.running_threads)}${num(w.waiting_threads)}${num(w.paused_threads)}${num(w.error_threads)}${num(w.empty_threads)}
      <td class="num">${w.last_ping_age_secs > 90 ? badge(dur(w.last_ping_age_secs) + ' ago', 'error') : `<span title="${esc(w.last_ping_at)} UTC">${dur(w.last_ping_age_secs)} ago</span>`}</td>
      <td class="mono">${esc(w.dest)}</td><td class="muted">${esc(w.version)}</td></tr>`).join('');
    return `<div class="cards">${cards}</div>
      <table id="workers"><thead><tr><th>Worker</th><th>Mode</th><th class="num">Threads</th><th class="num">Running</th>
      <th class="num">Waiting</th><th class="num">Paused</th><th class="num">Errors</th><th class="num">Empty</th>
      <th class="num">Last ping</th><th>Address</th><th>Version</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="11" class="empty">No worker has pinged this manager yet.</td></tr>'}</tbody></table>`;
  },

  async worker(name) {
    const enc = encodeURIComponent(name);
    if (!choices) choices = await api('GET', '/ui/states');
    const [info, list, limits] = await Promise.all([
      api('GET', `/workers/${enc}`),
      api('GET', '/workers'),
      api('GET', `/workers/${enc}/limits`).catch(() => null),
    ]);
    const row = list.find((w) => w.name === info.name);
    const mode = row ? row.mode : 'unknown';
    const drainBtn = mode === 'active'
      ? `<button data-act="drain" title="Take no new work; finish what is held">Drain</button>`
      : `<button data-act="undrain">Undrain</button>`;
    const threads = info.threads.map((t) => {
      const st = t.thread_state;
      const shown = t.pausing ? 'pausing' : st.state.toLowerCase();
      const what = st.state === 'Running' ? (st.proc || '') : (st.reason || '');
      const states = choices.plans[t.plan] || [];
      const pick = picks[t.index] ?? '';
      const options = ['<option value="">(where it stopped)</option>']
        .concat(states.map((s) => `<option${s === pick ? ' selected' : ''}>${esc(s)}</option>`)).join('');
      const paused = st.state === 'Paused';
      const actions = paused
        ? `<select data-pick="${t.index}" title="Resume into this state">${options}</select>
           <button data-act="resume" class="primary">Resume</button>`
        : `<button data-act="pause"${t.pausing ? ' disabled' : ''}>Pause</button>`;
      return `<tr data-thread="${t.index}">
        <td class="num">${t.index}</td><td>${esc(t.plan)}</td>
        <td class="tstate">${badge(t.pausing ? 'pausing' : st.state, shown)}</td>
        <td class="num">${esc(dur(st.elapsed))}</td>
        <td class="mono">${esc(t.job_id ?? '')}</td><td>${esc(t.job_state)}</td><td>${esc(t.job_stage ?? '')}</td>
        <td class="wrap muted">${esc(what)}</td>
        <td class="wrap">${t.last_error ? `<span class="badge st-error">error</span> ${esc(t.last_error)}` : ''}</td>
        <td><div class="act">${actions}</div></td></tr>`;
    }).join('');
    let lim = '<p class="muted">The worker did not answer for its stage limits.</p>';
    if (limits) {
      // Every stage, with what the worker says of those it limits or runs.
      const rows = choices.stages.map((stage) => {
        const u = limits.limits[stage] || { limit: null, running: 0 };
        return `<tr data-stage="${esc(stage)}"><td>${esc(stage)}</td>${num(u.running)}
        <td class="num">${u.limit ?? '<span class="muted">none</span>'}</td>
        <td><div class="act"><input class="limit" type="number" min="1" placeholder="none" value="${u.limit ?? ''}">
        <button data-act="limit">Set</button></div></td></tr>`;
      }).join('');
      lim = `<table id="limits" class="narrow"><thead><tr><th>Stage</th><th class="num">Running</th><th class="num">Limit</th><th>Change (empty lifts it)</th></tr></thead><tbody>${rows}</tbody></table>`;
    }
    return `<div class="bar"><a href="#/workers">← Workers</a><h1>${esc(info.name)}</h1>${badge(mode)}
      <span class="mono muted">${esc(info.dest)}</span>${row ? `<span class="muted">last ping ${dur(row.last_ping_age_secs)} ago</span>` : ''}
      ${drainBtn}</div>
      <table id="threads" data-worker="${esc(info.name)}"><thead><tr><th class="num">#</th><th>Plan</th><th>State</th><th class="num">Elapsed</th>
      <th>Sector / job</th><th>Job state</th><th>Next stage</th><th>Activity</th><th>Last error</th><th>Actions</th></tr></thead>
      <tbody>${threads || '<tr><td colspan="10" class="empty">No threads.</td></tr>'}</tbody></table>
      <h2>Stage limits</h2>${lim}`;
  },

  async wdpost() {
    const all = document.getElementById('show-all')?.checked ?? false;
    const jobs = await api('GET', `/wdpost/jobs${all ? '?all=true' : ''}`);
    const counts = {};
    jobs.forEach((j) => { counts[j.state] = (counts[j.state] || 0) + 1; });
    const cards = Object.entries(counts).map(([s, n]) => `<div class="card"><div class="n">${n}</div><div class="l">${badge(s)}</div></div>`).join('');
    const rows = jobs.map((j) => `<tr data-job="${esc(j.id)}">
      <td class="mono">${esc(j.id)}</td><td class="num">${j.miner_id}</td><td class="num">${j.deadline_idx}</td>
      <td class="mono">${esc(j.partitions)}</td><td class="num">${j.sectors}</td>
      <td class="jstate">${badge(j.state)}</td><td class="num">${j.try_num}/${j.max_retry}</td><td>${esc(j.worker_name ?? '')}</td>
      <td>${ago(j.created_at)}</td><td class="num">${esc(dur(j.elapsed_secs))}</td>
      <td class="num">${j.heartbeat_age_secs == null ? '' : dur(j.heartbeat_age_secs) + ' ago'}</td>
      <td class="wrap">${esc(j.error_reason ?? '')}</td>
      <td><div class="act">${j.state === 'Failed' || j.state === 'Running' ? '<button data-act="reset">Reset</button>' : ''}
      <button data-act="remove" class="danger">Remove</button></div></td></tr>`).join('');
    return `<div class="bar"><h1>WindowPoSt jobs</h1>
      <label><input type="checkbox" id="show-all"${all ? ' checked' : ''}> show finished</label></div>
      <div class="cards">${cards}</div>
      <table id="jobs"><thead><tr><th>Job</th><th class="num">Miner</th><th class="num">Deadline</th><th>Partitions</th>
      <th class="num">Sectors</th><th>State</th><th class="num">Try</th><th>Worker</th><th>Created</th><th class="num">Elapsed</th>
      <th class="num">Heartbeat</th><th>Error</th><th>Actions</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="13" class="empty">No jobs.</td></tr>'}</tbody></table>`;
  },

  async sectors() {
    const ss = await api('GET', '/sectors');
    ss.sort((a, b) => (b.updated_at || '').localeCompare(a.updated_at || ''));
    const shown = ss.slice(0, 500);
    const rows = shown.map((s) => `<tr><td class="num">${s.miner_id}</td><td class="num">${s.sector_number}</td>
      <td>${esc(s.kind)}</td><td>${badge(s.state, s.abort_reason ? 'Aborted' : s.state)}</td><td>${esc(s.worker_name ?? '')}</td>
      <td>${esc(s.precommit_state ?? '')}</td><td>${esc(s.proof_state ?? '')}</td>
      <td class="num">${s.deadline_idx ?? ''}</td><td class="num">${esc(s.deals.join(', '))}</td>
      <td>${ago(s.updated_at)}</td><td class="wrap">${esc(s.abort_reason ?? '')}</td></tr>`).join('');
    return `<div class="bar"><h1>Sectors</h1><span class="muted">${ss.length} in all${ss.length > shown.length ? `, the ${shown.length} changed last shown` : ''}</span></div>
      <table id="sectors"><thead><tr><th class="num">Miner</th><th class="num">Number</th><th>Kind</th><th>State</th><th>Worker</th>
      <th>PreCommit</th><th>Proof</th><th class="num">Deadline</th><th class="num">Deals</th><th>Updated</th><th>Abort reason</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="11" class="empty">No sectors.</td></tr>'}</tbody></table>`;
  },

  async decisions() {
    const rows = await api('GET', '/sched/log?since_secs=3600&limit=500');
    rows.sort((a, b) => b.id - a.id);
    const body = rows.map((d) => `<tr><td>${ago(d.at)}</td><td>${esc(d.worker_name)}</td><td class="num">${d.thread_index ?? ''}</td>
      <td>${badge(d.decision)}</td><td class="mono">${esc(d.work)}</td><td class="wrap">${esc(d.reason)}</td></tr>`).join('');
    return `<div class="bar"><h1>Scheduling decisions</h1><span class="muted">the last hour, newest first</span></div>
      <table id="decisions"><thead><tr><th>When</th><th>Worker</th><th class="num">Thread</th><th>Decision</th><th>Work</th><th>Reason</th></tr></thead>
      <tbody>${body || '<tr><td colspan="6" class="empty">No decisions in the last hour.</td></tr>'}</tbody></table>`;
  },

  async audit() {
    const rows = await api('GET', '/audit?limit=200');
    const body = rows.map((a) => `<tr><td>${ago(a.at)}</td><td>${esc(a.actor)}</td><td>${esc(a.action)}</td>
      <td class="mono">${esc(a.target)}</td><td class="wrap mono">${esc(a.detail ?? '')}</td><td>${esc(a.result)}</td></tr>`).join('');
    return `<div class="bar"><h1>Audit log</h1><span class="muted">every change operators made, newest first</span></div>
      <table id="audit"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th><th>Detail</th><th>Result</th></tr></thead>
      <tbody>${body || '<tr><td colspan="6" class="empty">Nothing changed yet.</td></tr>'}</tbody></table>`;
  },
};

// ---- routing, refresh, actions --------------------------------------------------------------

function route() {
  const parts = (location.hash || '#/workers').slice(2).split('/');
  if (parts[0] === 'workers' && parts[1]) return { tab: 'workers', view: 'worker', arg: decodeURIComponent(parts[1]) };
  const tab = views[parts[0]] ? parts[0] : 'workers';
  return { tab, view: tab, arg: null };
}

async function refresh() {
  if (busy) return;
  // Typing a limit is not interrupted by the next refresh.
  if (document.activeElement && document.activeElement.matches('input.limit, select')) return;
  busy = true;
  const r = route();
  document.querySelectorAll('#tabs a').forEach((a) => a.classList.toggle('active', a.dataset.tab === r.tab));
  try {
    const html = await views[r.view](r.arg);
    if (route().view === r.view) document.getElementById('view').innerHTML = html;
    lastOk = Date.now();
    document.getElementById('status').textContent = 'live';
  } catch (e) {
    document.getElementById('status').textContent = `not updated: ${e.message}`;
    if (!lastOk) document.getElementById('view').innerHTML = `<p class="error">${esc(e.message)}</p>`;
  } finally {
    busy = false;
  }
}

document.addEventListener('change', (ev) => {
  const t = ev.target;
  if (t.matches('select[data-pick]')) picks[t.dataset.pick] = t.value;
  if (t.id === 'show-all') refresh();
});

document.addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-act]');
  if (!b) {
    const tr = ev.target.closest('tr.click');
    if (tr && !ev.target.closest('a')) location.hash = `#/workers/${encodeURIComponent(tr.dataset.worker)}`;
    return;
  }
  const r = route();
  const enc = r.arg ? encodeURIComponent(r.arg) : '';
  const tr = b.closest('tr');
  switch (b.dataset.act) {
    case 'pause':
      act(`pause thread ${tr.dataset.thread}`, 'POST', `/workers/${enc}/threads/${tr.dataset.thread}/pause`);
      break;
    case 'resume': {
      const state = picks[tr.dataset.thread] || null;
      let force = false;
      if (state === 'Finished' || state === 'Aborted') {
        if (!confirm(`Resume thread ${tr.dataset.thread} into ${state}? This drops the work it holds.`)) return;
        force = true;
      }
      delete picks[tr.dataset.thread];
      act(`resume thread ${tr.dataset.thread}`, 'POST', `/workers/${enc}/threads/${tr.dataset.thread}/resume`, state ? { state, force } : {});
      break;
    }
    case 'drain':
    case 'undrain':
      act(`${b.dataset.act} ${r.arg}`, 'POST', `/workers/${enc}/${b.dataset.act}`, undefined,
        (d) => (d.draining ? 'takes no new work' : 'takes new work'));
      break;
    case 'limit': {
      const v = tr.querySelector('input.limit').value.trim();
      const limit = v === '' ? null : Number(v);
      if (limit !== null && !(Number.isInteger(limit) && limit >= 1)) {
        notice(`${tr.dataset.stage}: a limit is a whole number of at least 1, or empty to lift it`, false);
        return;
      }
      document.activeElement.blur();
      act(`limit of ${tr.dataset.stage}`, 'POST', `/workers/${enc}/limits`, { [tr.dataset.stage]: limit },
        () => (limit === null ? 'lifted' : `set to ${limit}`));
      break;
    }
    case 'reset':
      act(`reset job ${tr.dataset.job}`, 'POST', `/wdpost/jobs/${encodeURIComponent(tr.dataset.job)}/reset`, undefined,
        () => 'ready to run again');
      break;
    case 'remove':
      if (!confirm(`Remove WindowPoSt job ${tr.dataset.job}? The deadline clock makes it again while its window is open.`)) return;
      act(`remove job ${tr.dataset.job}`, 'DELETE', `/wdpost/jobs/${encodeURIComponent(tr.dataset.job)}`, undefined,
        () => 'removed');
      break;
  }
});

window.addEventListener('hashchange', () => {
  // A state picked on one worker's page is not carried to another's thread of the same index.
  Object.keys(picks).forEach((k) => delete picks[k]);
  notice(null);
  document.getElementById('view').innerHTML = '';
  lastOk = 0;
  refresh();
});
refresh();
timer = setInterval(refresh, POLL_MS);
