// Coditect dashboard: plain ES module, no build step, no remote code.
// The token arrives once in the URL fragment (#token=…), is kept in
// localStorage and removed from the address bar at once.

const TOKEN_KEY = 'coditect.token';
const PROJECT_KEY = 'coditect.project';
const ROW_CAP = 5000;       // events kept in the live list
const HISTORY = 200;        // events loaded when the tail starts
const ROW_H = 28;           // px, matches --row

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
};

// ---- auth -------------------------------------------------------------

function takeTokenFromURL() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
}
const token = () => localStorage.getItem(TOKEN_KEY) || '';

// apiURL resolves an API path against the page's own location, so the
// dashboard works under any path prefix (a secret path, a /proxy/PORT/
// of code-server).
const apiURL = (path) => new URL(path.replace(/^\//, ''), location.href);

class AuthError extends Error {}

async function api(path) {
  const r = await fetch(apiURL(path), { headers: { Authorization: 'Bearer ' + token() }, cache: 'no-store' });
  if (r.status === 401) throw new AuthError('unauthorized');
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
  return body;
}

// ApiError is a refused write: the JSON error's class (invalid,
// not-found, conflict, forbidden, unavailable) and message.
class ApiError extends Error {
  constructor(status, e) {
    super(e.message || String(status));
    this.status = status;
    this.cls = e.class || e.code || String(status);
  }
}

// send makes a write: method, path and an optional JSON body.
async function send(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(apiURL(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  if (r.status === 401) throw new AuthError('unauthorized');
  const out = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, out.error || { message: r.statusText });
  return out;
}

// me is whoami's answer; viewers see no write actions (the server refuses
// them anyway).
let me = { role: '' };
const canWrite = () => me.role !== '' && me.role !== 'viewer';

// act runs a write and shows its outcome in status (an element): the
// error's class and message, or done. It returns the result, or null.
async function act(status, done, fn) {
  status.textContent = '';
  status.className = 'status';
  try {
    const out = await fn();
    status.textContent = done;
    status.classList.add('ok');
    return out;
  } catch (err) {
    if (err instanceof AuthError) { report(err); return null; }
    status.textContent = err instanceof ApiError ? `${err.cls}: ${err.message}` : String(err.message || err);
    status.classList.add('error');
    return null;
  }
}

function showLogin(message) {
  $('views').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-token').focus();
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  localStorage.setItem(TOKEN_KEY, $('login-token').value.trim());
  $('login-token').value = '';
  start();
});

// ---- formatting ---------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, '0');
function clock(t) {
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
function ago(t, now = Date.now()) {
  const s = Math.max(0, Math.round((now - new Date(t).getTime()) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
// Agents are named by their hosts; events, sessions and tasks carry only
// their ids. People read "name (model)"; the id is on hover.
const agentLabels = new Map();
let namesLoading = null;
const labelOf = (a) => a.model ? `${a.name} (${a.model})` : a.name;
function refreshAgentNames() {
  if (!namesLoading) {
    namesLoading = api('/api/v1/agents').then(({ agents }) => {
      let changed = false;
      for (const a of agents) if (agentLabels.get(a.id) !== labelOf(a)) { agentLabels.set(a.id, labelOf(a)); changed = true; }
      if (changed) { for (const r of [...$('events').querySelectorAll('.row')]) r.remove(); render(); }
    }).catch(report).finally(() => { namesLoading = null; });
  }
  return namesLoading;
}
// agentName renders agent id for people: "name (model)", the id while the
// agent is unknown.
const agentName = (id) => agentLabels.get(id) || id;
const who = (ev) => ev.agent ? agentName(ev.agent) : (ev.user || '');

// ---- projects -------------------------------------------------------------
// Events, sessions and tasks name their project by id and their files by
// the path relative to its root: people read the name and the relative
// path, and the full path on this server's machine on hover.

const projects = { list: [], byId: new Map(), machine: '', selected: localStorage.getItem(PROJECT_KEY) || '' };

async function refreshProjects() {
  const { projects: list, machine } = await api('/api/v1/projects');
  projects.list = list;
  projects.machine = machine;
  projects.byId = new Map(list.map((p) => [p.id, p]));
  const sel = $('project');
  const want = [''].concat(list.map((p) => p.id)).join('\n');
  const have = [...sel.options].map((o) => o.value).join('\n');
  const names = [...sel.options].slice(1).map((o) => o.textContent).join('\n');
  if (want !== have || names !== list.map((p) => p.name).join('\n')) {
    sel.replaceChildren(el('option', { value: '' }, 'All projects'),
      ...list.map((p) => el('option', { value: p.id, title: rootOf(p) || p.name }, p.name)));
  }
  // A project that is gone (or another tenant's, from an old session)
  // falls back to all projects.
  if (projects.selected && !projects.byId.has(projects.selected)) selectProject('');
  sel.value = projects.selected;
}

const projectName = (id) => (projects.byId.get(id) || {}).name || id || '';

// rootOf returns a project's root on this server's machine, else its first.
function rootOf(p) {
  if (!p || !p.roots || !p.roots.length) return '';
  return (p.roots.find((r) => r.machine === projects.machine) || p.roots[0]).path;
}

// fullPath is the absolute path of a project's file, for a tooltip: the
// one the event recorded (attrs.abs: the watcher's, the IDE's), else the
// file under the project's root.
function fullPath(projectID, rel, attrs) {
  if (attrs && typeof attrs.abs === 'string' && attrs.abs) return attrs.abs;
  if (!projectID) return rel || '';
  const root = rootOf(projects.byId.get(projectID));
  if (!root) return `${projectName(projectID)}: ${rel}`;
  return !rel || rel === '.' ? root : root.replace(/\/$/, '') + '/' + rel;
}

// place renders a project and a directory in it: "web", "web/src/auth".
const place = (projectID, dir) => projectID ? projectName(projectID) + (dir && dir !== '.' ? '/' + dir : '') : '';

// A lease resource of a file is "@<project>/<rel>": show rel.
function resource(res) {
  const m = /^@(pr_[^/]+)(?:\/(.*))?$/.exec(res);
  if (!m) return { text: res, title: res };
  const rel = m[2] || '.';
  return { text: (projects.selected ? '' : projectName(m[1]) + ': ') + rel, title: fullPath(m[1], rel) };
}

function selectProject(id) {
  projects.selected = id;
  if (id) localStorage.setItem(PROJECT_KEY, id); else localStorage.removeItem(PROJECT_KEY);
  $('project').value = id;
}

// withProject adds the selected project to a REST query.
function withProject(path) {
  if (!projects.selected) return path;
  return path + (path.includes('?') ? '&' : '?') + 'project=' + encodeURIComponent(projects.selected);
}

$('project').addEventListener('change', (e) => {
  selectProject(e.target.value);
  const f = { ...live.filter };
  delete f.path; // a path is relative to the project it was chosen in
  applyFilter(f);
  show(current);
});

// ---- tabs ---------------------------------------------------------------

const views = {};
let current = 'live';
const tabs = [...document.querySelectorAll('#tabs [role=tab]')];
function show(name) {
  current = name;
  for (const t of tabs) {
    const on = t.dataset.view === name;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $('view-' + t.dataset.view).hidden = !on;
  }
  if (views[name]) views[name]().catch(report);
}
for (const t of tabs) {
  t.addEventListener('click', () => show(t.dataset.view));
  t.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(t);
    const j = e.key === 'ArrowRight' ? (i + 1) % tabs.length : e.key === 'ArrowLeft' ? (i + tabs.length - 1) % tabs.length : -1;
    if (j >= 0) { tabs[j].focus(); show(tabs[j].dataset.view); }
  });
}

function report(err) {
  if (err instanceof AuthError) { showLogin('That token was refused (unknown, revoked or expired).'); return; }
  console.warn('coditect:', err.message || err);
}

// ---- live tail ------------------------------------------------------------

const live = {
  events: [],        // newest first
  pending: [],       // arrived while paused, oldest first
  filter: {},
  cursor: '',        // id of the newest event received
  paused: false,
  capped: false,
  ws: null,
  gen: 0,            // subscription generation: stale sockets are ignored
  backoff: 500,
};

function filterQuery(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  return q;
}

function setConn(state) {
  const c = $('conn');
  c.textContent = state;
  c.className = 'pill ' + (state === 'live' ? 'ok' : state === 'offline' ? 'bad' : '');
}

// subscribe (re)opens the feed. With a cursor it resumes after it; without
// one it follows from the head and then loads the history up to that head,
// so that nothing falls between the two.
function subscribe(resume) {
  const gen = ++live.gen;
  if (live.ws) live.ws.close(1000);
  const u = apiURL('/api/v1/feed');
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(u);
  live.ws = ws;
  ws.addEventListener('open', () => {
    ws.send(JSON.stringify({ type: 'subscribe', token: token(), cursor: resume ? live.cursor : 'head', filter: live.filter }));
  });
  ws.addEventListener('message', (m) => {
    if (gen !== live.gen) return;
    const msg = JSON.parse(m.data);
    if (msg.type === 'subscribed') {
      setConn('live');
      live.backoff = 500;
      $('filter-error').textContent = '';
      if (!resume) { live.cursor = msg.cursor; loadHistory(msg.cursor, gen).catch(report); }
    } else if (msg.type === 'events') {
      for (const ev of msg.events) arrive(ev);
      render();
      follow(msg.events);
    }
  });
  ws.addEventListener('close', (e) => {
    if (gen !== live.gen) return;
    if (e.code === 4401) { showLogin('The server refused the token: ' + e.reason); setConn('offline'); return; }
    // A subscription the server refuses (a bad filter) fails the same way
    // every time: say why instead of retrying.
    if (e.code === 4400) { $('filter-error').textContent = e.reason; setConn('offline'); return; }
    setConn('reconnecting');
    const wait = live.backoff;
    live.backoff = Math.min(live.backoff * 2, 5000);
    setTimeout(() => { if (gen === live.gen) subscribe(live.cursor !== ''); }, wait);
  });
}

async function loadHistory(head, gen) {
  if (!head) { render(); return; }
  const q = filterQuery(live.filter);
  q.set('limit', String(HISTORY));
  q.set('order', 'newest');
  let page = await api('/api/v1/events?' + q);
  if (gen !== live.gen) return;
  // Only what is at or before the head: the feed brings the rest.
  const older = page.events.filter((e) => e.id <= head);
  const seen = new Set(live.events.map((e) => e.id));
  live.events.push(...older.filter((e) => !seen.has(e.id)));
  live.events.sort((a, b) => (a.id < b.id ? 1 : -1));
  render();
}

function arrive(ev) {
  if (live.cursor && ev.id <= live.cursor) return; // never twice
  live.cursor = ev.id;
  if (ev.agent && !agentLabels.has(ev.agent)) refreshAgentNames();
  if (live.paused) { live.pending.push(ev); return; }
  live.events.unshift(ev);
  cap();
}

function cap() {
  if (live.events.length > ROW_CAP) { live.events.length = ROW_CAP; live.capped = true; }
}

function setPaused(p) {
  live.paused = p;
  $('pause').setAttribute('aria-pressed', String(p));
  $('pause').hidden = p;
  $('resume').hidden = !p;
  if (!p && live.pending.length) {
    live.events.unshift(...live.pending.reverse());
    live.pending = [];
    cap();
    $('events').scrollTop = 0;
  }
  render();
}
$('pause').addEventListener('click', () => setPaused(true));
$('resume').addEventListener('click', () => { setPaused(false); $('events').scrollTop = 0; });

// Scrolling away from the newest events pauses; scrolling back resumes.
$('events').addEventListener('scroll', () => {
  const top = $('events').scrollTop;
  if (top > ROW_H && !live.paused) setPaused(true);
  else if (top === 0 && live.paused && live.scrollPaused) setPaused(false);
  live.scrollPaused = live.paused && top > 0;
  render();
});

function applyFilter(f) {
  f = { ...f };
  if (projects.selected) f.project = projects.selected; else delete f.project;
  live.filter = f;
  const form = $('filters');
  for (const k of ['user', 'session', 'agent', 'kind', 'path']) form.elements[k].value = f[k] || '';
  live.events = [];
  live.pending = [];
  live.cursor = '';
  live.capped = false;
  setPaused(false);
  subscribe(false);
}
$('filters').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = {};
  for (const k of ['user', 'session', 'agent', 'kind', 'path']) {
    const v = e.target.elements[k].value.trim();
    if (v) f[k] = v;
  }
  applyFilter(f);
});
$('clear-filters').addEventListener('click', () => applyFilter({})); // the project switcher stays

// A value in a row filters by it.
function valueButton(field, value, label) {
  if (!value) return el('span');
  return el('button', {
    type: 'button', class: 'v', title: `Show only ${field} ${value}`, 'data-filter': field,
    onclick: () => { applyFilter({ ...live.filter, [field]: value }); show('live'); },
  }, label || value);
}

// pathButton shows an event's path relative to its project (after the
// project's name when all projects show, unless bare), the full path on
// hover; clicking it follows that file, in its project.
function pathButton(ev, bare) {
  if (!ev.path) return el('span');
  return el('button', {
    type: 'button', class: 'v', title: fullPath(ev.project, ev.path, ev.attrs), 'data-filter': 'path',
    'aria-label': `Show only ${ev.path}`,
    onclick: () => {
      if (ev.project && ev.project !== projects.selected) selectProject(ev.project);
      applyFilter({ ...live.filter, path: ev.path });
      show('live');
    },
  }, (ev.project && !projects.selected && !bare ? projectName(ev.project) + ': ' : '') + ev.path);
}

// render draws only the rows in view (virtualised list).
function render() {
  const box = $('events');
  const spacer = box.firstElementChild;
  const rows = live.events;
  spacer.style.height = rows.length * ROW_H + 'px';
  const first = Math.max(0, Math.floor(box.scrollTop / ROW_H) - 10);
  const last = Math.min(rows.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW_H) + 10);
  const keep = new Map();
  for (const r of [...box.querySelectorAll('.row')]) keep.set(r.dataset.id, r);
  const want = new Set();
  for (let i = first; i < last; i++) {
    const ev = rows[i];
    want.add(ev.id);
    let r = keep.get(ev.id);
    if (!r) {
      r = el('div', { class: 'row', 'data-id': ev.id, 'data-kind': ev.kind, 'data-project': ev.project || '' },
        el('span', { class: 't', title: ev.time, text: clock(ev.time) }),
        el('span', { class: 'k' }, valueButton('kind', ev.kind)),
        el('span', { class: 'w' }, ev.agent ? valueButton('agent', ev.agent, agentName(ev.agent)) : valueButton('user', ev.user)),
        el('span', { class: 'p' }, pathButton(ev)),
        el('span', { class: 's', text: ev.summary || '' }),
        ev.session ? el('span', { class: 'w' }, valueButton('session', ev.session, 'session ' + ev.session.slice(-6))) : null);
      box.append(r);
    }
    r.style.transform = `translateY(${i * ROW_H}px)`;
  }
  for (const [id, r] of keep) if (!want.has(id)) r.remove();
  $('events-empty').hidden = rows.length > 0 || live.pending.length > 0;
  const n = live.pending.length;
  $('newcount').hidden = n === 0;
  $('newcount').textContent = `${n} new`;
  $('capnotice').hidden = !live.capped;
  $('capnotice').textContent = `Showing the newest ${ROW_CAP} events; filter or use the REST API for older ones.`;
  $('count').textContent = `${rows.length} events`;
}
new ResizeObserver(() => render()).observe($('events'));
$('events').addEventListener('keydown', (e) => {
  const box = $('events');
  if (e.key === 'ArrowDown') box.scrollTop += ROW_H;
  else if (e.key === 'ArrowUp') box.scrollTop -= ROW_H;
  else if (e.key === 'Home') box.scrollTop = 0;
  else return;
  e.preventDefault();
});

views.live = async () => render();

// Views other than Live follow the feed: an event about what the shown
// view lists redraws it, so what one person does shows in every open
// dashboard without a reload. Events arriving during a redraw cause one
// more, after it.
const FOLLOWS = { tasks: /^task\./, agents: /^(agent|lease|message)\./, sessions: /^session\./ };
// feedHooks are told of every batch of feed events, whatever view shows
// (review.js keeps its tab's count of pending proposals with one).
const feedHooks = [];
const redraw = { running: false, again: false };
function follow(evs) {
  for (const fn of feedHooks) fn(evs);
  const re = FOLLOWS[current];
  if (re && evs.some((e) => re.test(e.kind))) redrawView();
}
function redrawView() {
  if (redraw.running) { redraw.again = true; return; }
  redraw.running = true;
  views[current]().catch(report).finally(() => {
    redraw.running = false;
    if (redraw.again) { redraw.again = false; redrawView(); }
  });
}

// redrawing replaces a view's children: focus stays on the control with
// the same data-key, so a keyboard user keeps their place.
function keepFocus(fn) {
  const key = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : undefined;
  fn();
  if (!key) return;
  const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (again) again.focus();
}

// ---- sessions -------------------------------------------------------------

views.sessions = async () => {
  const [{ sessions }] = await Promise.all([api(withProject('/api/v1/sessions?limit=100')), refreshAgentNames()]);
  const body = $('sessions');
  body.replaceChildren(...sessions.map((s) => el('tr', { class: 'clickable', tabindex: '0', 'data-id': s.id,
    onclick: () => timeline(s), onkeydown: (e) => { if (e.key === 'Enter') timeline(s); } },
  el('td', { text: s.title }), el('td', { class: 'proj', title: s.workspace || '', text: place(s.project, s.dir) || s.workspace }),
  el('td', { class: s.state === 'open' ? 'alive' : s.state === 'abandoned' ? 'stale' : '', text: s.state }),
  el('td', { text: s.user }), el('td', { title: s.agent || '', text: s.agent ? agentName(s.agent) : '' }), el('td', { title: s.started, text: ago(s.started) }))));
  $('sessions-empty').hidden = sessions.length > 0;
};

async function timeline(s) {
  const [rep, page] = await Promise.all([
    api(`/api/v1/sessions/${encodeURIComponent(s.id)}/summary`),
    api(`/api/v1/events?session=${encodeURIComponent(s.id)}&order=oldest&limit=500`),
  ]);
  const mins = Math.round(rep.duration_ns / 6e10);
  $('timeline').replaceChildren(
    el('h2', { text: s.title }),
    el('p', { class: 'muted', title: s.workspace || '', text: `${place(s.project, s.dir) || s.workspace} · ${s.state} · ${rep.events} events · ${mins} min · ${rep.files.length} files · agents: ${rep.agents.map((a) => agentName(a.id)).join(', ') || 'none'}` }),
    el('button', { type: 'button', onclick: () => { applyFilter({ session: s.id }); show('live'); } }, 'Follow live'),
    s.state === 'open' && canWrite() ? endForm(s) : null,
    el('ol', {}, ...page.events.map((ev) => el('li', {},
      el('span', { class: 'muted', text: clock(ev.time) + ' ' }), el('strong', { text: ev.kind }), ' ',
      el('span', { text: who(ev) }),
      ev.path ? el('span', { title: fullPath(ev.project, ev.path, ev.attrs), text: ' · ' + ev.path }) : null,
      ev.summary ? el('span', { text: ' — ' + ev.summary }) : null,
      diffView(ev)))));
}

// endForm ends an open session with an outcome and a summary.
function endForm(s) {
  const status = el('span', { class: 'status', role: 'alert' });
  const outcome = el('select', { name: 'status', 'aria-label': 'Outcome' },
    ...['completed', 'failed', 'cancelled'].map((o) => el('option', { value: o }, o)));
  const summary = el('input', { name: 'summary', placeholder: 'summary (optional)', 'aria-label': 'Summary' });
  return el('form', { class: 'act end-session', 'aria-label': 'End this session',
    onsubmit: async (e) => {
      e.preventDefault();
      const out = await act(status, 'ended', () => send('POST', `/api/v1/sessions/${encodeURIComponent(s.id)}/end`,
        { status: outcome.value, summary: summary.value.trim() }));
      if (out) { timeline(out).catch(report); views.sessions().catch(report); }
    } }, outcome, summary, el('button', { type: 'submit' }, 'End session'), status);
}

// diffView renders the diff an agent's change through the files tools
// recorded (attrs.diff), folded until clicked; null for other events.
function diffView(ev) {
  const d = ev.attrs && ev.attrs.diff;
  if (typeof d !== 'string' || d === '') return null;
  const stat = ev.attrs.diff_binary ? 'binary' : `+${ev.attrs.diff_added || 0} −${ev.attrs.diff_removed || 0}`;
  // The first two lines name the files; a removed "-- x" is not a header.
  const kind = (line, i) => i < 2 && /^(---|\+\+\+) /.test(line) ? 'fh'
    : line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : line[0] === '@' ? 'hunk' : line[0] === ' ' ? '' : 'muted';
  return el('details', { class: 'diff' }, el('summary', { text: `diff ${stat}` }),
    el('pre', {}, ...d.replace(/\n$/, '').split('\n').map((line, i) => el('span', { class: kind(line, i), text: line + '\n' }))));
}

// ---- agents -----------------------------------------------------------------

views.agents = async () => {
  const { agents, now } = await api('/api/v1/agents');
  const t = new Date(now).getTime();
  $('agents').replaceChildren(...agents.map((a) => el('tr', { 'data-id': a.id },
    el('td', {}, valueButton('agent', a.id, a.name + ' (' + a.client + ')')),
    el('td', { class: a.liveness, text: a.retired ? 'retired' : a.liveness }),
    el('td', { title: a.last_seen, text: 'last seen ' + ago(a.last_seen, t) }),
    el('td', { text: a.model || '' }), el('td', { text: a.cohort || '' }),
    el('td', {}, ...(a.leases.length ? a.leases.flatMap((l, i) => {
      const r = resource(l.resource);
      return [i ? ', ' : null, el('span', { class: 'lease', title: r.title, text: r.text }),
        canWrite() ? el('button', { type: 'button', class: 'release', 'data-key': 'release ' + l.resource,
          'aria-label': `Release ${r.text} (held by ${a.name})`, title: 'Force-release: the holder is told, its next write is refused',
          onclick: () => releaseLease(l.resource, a.name) }, 'release') : null];
    }) : ['—'])),
    el('td', { text: a.inbox < 0 ? '—' : String(a.inbox) }))));
  $('agents-empty').hidden = agents.length > 0;
  const cohorts = [...new Set(agents.map((a) => a.cohort).filter(Boolean))];
  $('recipients').replaceChildren(el('option', { value: 'all' }, 'everyone'),
    ...agents.filter((a) => !a.retired).map((a) => el('option', { value: a.name }, labelOf(a))),
    ...cohorts.map((c) => el('option', { value: 'cohort:' + c }, 'cohort ' + c)));
};

// releaseLease force-releases a resource's lease (admins; others see the
// refusal), naming the person in the reason the holder is told.
async function releaseLease(res, holder) {
  const reason = `released from the dashboard by ${me.user || 'a person'}`;
  const out = await act($('lease-status'), `released ${resource(res).text} (held by ${holder})`,
    () => send('DELETE', `/api/v1/leases/${encodeURIComponent(res)}?reason=${encodeURIComponent(reason)}`));
  if (out) views.agents().catch(report);
}

$('compose').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const msg = { to: f.to.value.trim(), body: f.body.value };
  if (f.subject.value.trim()) msg.subject = f.subject.value.trim();
  const out = await act($('compose-status'), `sent to ${msg.to}`, () => send('POST', '/api/v1/messages', msg));
  if (out) { f.body.value = ''; f.subject.value = ''; }
});

// ---- your inbox ------------------------------------------------------------------

// A person's inbox (messages to user:NAME, GET /api/v1/inbox), shown on
// the agents view under the compose box: the unread messages with their
// sender's name, a Reply action (the reply joins the thread and goes to
// the sender) and Mark read. Only the logged-in user's own inbox is read.
function inboxSection() {
  let sec = $('inbox');
  if (sec) return sec;
  sec = el('section', { id: 'inbox', class: 'inbox', 'aria-label': 'Your inbox' },
    el('h3', {}, 'Your inbox ', el('span', { id: 'inbox-unread', class: 'count' })),
    el('span', { id: 'inbox-status', class: 'status', role: 'alert' }),
    el('ul', { id: 'inbox-list', class: 'inbox-list' }),
    el('p', { id: 'inbox-empty', class: 'empty', hidden: '' }, 'No unread messages. Agents reach you with user:' + (me.user || 'NAME') + '.'));
  $('compose').after(sec);
  return sec;
}

function inboxItem(m) {
  const from = m.from ? (agentLabels.get(m.from) || m.from_name || m.from) : m.from_user + ' (human)';
  const li = el('li', { 'data-id': m.id },
    el('div', { class: 'meta' }, el('strong', { text: from }), ' · ', el('span', { title: m.sent, text: ago(m.sent) }),
      m.subject ? el('span', { class: 'subject', text: ' · ' + m.subject }) : null),
    el('div', { class: 'body', text: m.body }));
  if (!canWrite()) return li;
  const form = el('form', { class: 'reply', hidden: '', 'aria-label': 'Reply to ' + from },
    el('label', {}, 'Reply ', el('textarea', { name: 'body', rows: '2', required: '' })),
    el('button', { type: 'submit' }, 'Send reply'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = form.elements.body.value;
    const out = await act($('inbox-status'), `replied to ${from}`, () => send('POST', '/api/v1/messages', { reply_to: m.id, body }));
    if (out) { form.elements.body.value = ''; form.hidden = true; }
  });
  li.append(el('div', { class: 'actions' },
    el('button', { type: 'button', 'data-key': 'reply ' + m.id, onclick: () => { form.hidden = !form.hidden; if (!form.hidden) form.elements.body.focus(); } }, 'Reply'),
    el('button', { type: 'button', 'data-key': 'read ' + m.id, onclick: () => markRead(m.id) }, 'Mark read')), form);
  return li;
}

async function markRead(id) {
  const out = await act($('inbox-status'), 'marked read', () => send('POST', '/api/v1/inbox/ack', { ids: [id] }));
  if (out) inboxView().catch(report);
}

async function inboxView() {
  inboxSection();
  const open = new Set([...document.querySelectorAll('#inbox-list form.reply:not([hidden])')].map((f) => f.closest('li').dataset.id));
  const { messages, unread } = await api('/api/v1/inbox?limit=50');
  $('inbox-unread').textContent = `· ${unread} unread`;
  // A reply being typed survives a redraw of the list.
  const keep = new Map([...document.querySelectorAll('#inbox-list li')].filter((li) => open.has(li.dataset.id)).map((li) => [li.dataset.id, li]));
  keepFocus(() => $('inbox-list').replaceChildren(...messages.map((m) => keep.get(m.id) || inboxItem(m))));
  $('inbox-empty').hidden = messages.length > 0;
}

// The agents view shows the inbox too, and offers people as recipients.
{
  const agentsView = views.agents;
  views.agents = async () => {
    await Promise.all([agentsView(), inboxView()]);
    $('compose').elements.to.placeholder = 'agent, user:NAME, cohort:NAME or all';
    const users = await api('/api/v1/users').then((r) => r.users, () => []);
    $('recipients').append(...users.filter((u) => !u.disabled && u.id !== me.user).map((u) => el('option', { value: 'user:' + u.id }, u.name ? `${u.name} (person)` : 'person')));
  };
}

// ---- files --------------------------------------------------------------------

// author renders who changed a file: an agent as "name (model)" with its
// id on hover, a human by user name, else "unknown".
function author(ev) {
  const a = ev.attribution || {};
  const id = a.agent_id || (a.actor === 'agent' ? ev.agent : '');
  if (id) return el('td', { class: 'who', title: id, text: agentName(id) });
  if (a.actor === 'human' && ev.user) return el('td', { class: 'who', text: ev.user + ' (human)' });
  return el('td', { class: 'who', text: a.actor || 'unknown' });
}

views.files = async () => {
  const [{ events }] = await Promise.all([api(withProject('/api/v1/files?limit=200')), refreshAgentNames()]);
  $('files').replaceChildren(...events.map((ev) => {
    const a = ev.attribution || {};
    return el('tr', { 'data-id': ev.id },
      el('td', { title: ev.time, text: ago(ev.time) }), el('td', { text: ev.kind.replace('file.', '') }),
      el('td', { class: 'proj', text: projectName(ev.project) }),
      el('td', { class: 'path' }, pathButton(ev, true)),
      author(ev),
      el('td', { text: (a.evidence || 'none').split(':')[0] + (a.confidence ? ` (${Math.round(a.confidence * 100)}%)` : '') }));
  }));
  $('files-empty').hidden = events.length > 0;
};

// ---- tasks ----------------------------------------------------------------------

// taskGraph shows a task's place in the graph: its priority, a "ready"
// badge when it is open with every blocker done, and the titles of the
// blockers not done yet (titles of the tasks on the board, else ids).
const taskGraph = (t, titles) => {
  const parts = [];
  if (t.priority) parts.push(el('span', { class: 'prio', text: 'priority ' + t.priority }));
  if (t.ready) parts.push(el('span', { class: 'badge ready', text: 'ready' }));
  if (t.waiting && t.waiting.length) {
    parts.push(el('span', { class: 'blocked-by', text: 'blocked by ' + t.waiting.map((id) => titles.get(id) || id).join(', ') }));
  }
  return parts.length ? [el('div', { class: 'graph' }, ...parts)] : [];
};

const stateName = (st) => st.replace('_', ' ');

// moveTask moves a task to another column, sending the version the card
// showed: a task changed meanwhile is refused (conflict), not overwritten.
async function moveTask(t, to) {
  const out = await act($('task-status'), `moved "${t.title}" to ${stateName(to)}`,
    () => send('PATCH', `/api/v1/tasks/${encodeURIComponent(t.id)}`, { version: t.version, state: to }));
  views.tasks().catch(report); // the moved card, or the current one after a conflict
  return out;
}

// moveControl is a card's keyboard way to move it: a select of the other
// columns. Dragging a card onto a column does the same.
function moveControl(t, states) {
  return el('select', { class: 'move', 'data-key': 'move ' + t.id, 'aria-label': `Move "${t.title}" to`,
    onchange: (e) => { if (e.target.value) moveTask(t, e.target.value); } },
  el('option', { value: '' }, 'move to…'),
  ...states.filter((st) => st !== t.state).map((st) => el('option', { value: st }, '→ ' + stateName(st))));
}

let dragged = null; // the task a card being dragged shows

function column(st, cards) {
  const col = el('div', { class: 'col', 'data-state': st }, el('h3', { text: stateName(st) }), ...cards);
  if (!canWrite()) return col;
  col.addEventListener('dragover', (e) => { if (dragged && dragged.state !== st) { e.preventDefault(); col.classList.add('drop'); } });
  col.addEventListener('dragleave', () => col.classList.remove('drop'));
  col.addEventListener('drop', (e) => {
    e.preventDefault();
    col.classList.remove('drop');
    if (dragged && dragged.state !== st) moveTask(dragged, st);
    dragged = null;
  });
  return col;
}

function card(t, titles, states) {
  const c = el('div', { class: 'card' + (t.ready ? ' is-ready' : t.waiting && t.waiting.length ? ' is-blocked' : ''), tabindex: '0',
    'data-id': t.id, 'data-version': String(t.version), draggable: canWrite() ? 'true' : null },
  el('div', { class: 'title', text: t.title }),
  ...taskGraph(t, titles),
  el('div', { class: 'muted', title: t.assignee || '', text: (t.project && !projects.selected ? projectName(t.project) + ' · ' : '') + (t.assignee ? 'assigned to ' + agentName(t.assignee) : 'unassigned') }),
  canWrite() ? moveControl(t, states) : null);
  c.addEventListener('dragstart', (e) => { dragged = t; e.dataTransfer.setData('text/plain', t.id); });
  c.addEventListener('dragend', () => { dragged = null; });
  return c;
}

views.tasks = async () => {
  const [{ tasks, states }] = await Promise.all([api(withProject('/api/v1/tasks?limit=1000')), refreshAgentNames()]);
  const titles = new Map(tasks.map((t) => [t.id, t.title]));
  $('new-task').hidden = !canWrite();
  keepFocus(() => $('board').replaceChildren(...states.map((st) =>
    column(st, tasks.filter((t) => t.state === st).map((t) => card(t, titles, states))))));
  $('tasks-empty').hidden = tasks.length > 0;
};

$('new-task').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const t = { title: f.title.value.trim() };
  if (f.description.value.trim()) t.description = f.description.value.trim();
  if (projects.selected) t.project = projects.selected;
  const out = await act($('task-status'), `created "${t.title}"`, () => send('POST', '/api/v1/tasks', t));
  if (out) { f.title.value = ''; f.description.value = ''; views.tasks().catch(report); }
});

// ---- activity swimlanes ------------------------------------------------------------

const KIND_COLOURS = { file: '#2da44e', session: '#8250df', agent: '#bf8700', lease: '#0969da', message: '#e16f24', task: '#cf222e', tool: '#6e7781', note: '#1f883d', decision: '#a475f9' };
views.activity = async () => {
  const since = new Date(Date.now() - 3600e3);
  await refreshAgentNames();
  let evs = [];
  let cursor = '';
  for (let i = 0; i < 10; i++) {
    const page = await api(withProject(`/api/v1/events?order=oldest&limit=1000&since=${since.toISOString()}` + (cursor ? '&cursor=' + cursor : '')));
    evs.push(...page.events);
    if (!page.next) break;
    cursor = page.next;
  }
  // The shortest of 5 min, 15 min and 1 h that holds the hour's events.
  const oldest = evs.length ? new Date(evs[0].time).getTime() : Date.now();
  const span = [5, 15, 60].find((m) => Date.now() - oldest <= m * 60e3) || 60;
  const from = Date.now() - span * 60e3;
  const lanes = new Map();
  for (const ev of evs) {
    const id = ev.agent || (ev.attribution && ev.attribution.agent_id);
    const k = id ? agentName(id) : ev.user ? 'user ' + ev.user : '';
    if (!k) continue;
    if (!lanes.has(k)) lanes.set(k, []);
    lanes.get(k).push(ev);
  }
  const NS = 'http://www.w3.org/2000/svg';
  const W = 900, L = 180, H = 26;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${lanes.size * H + 24}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `Activity of ${lanes.size} agents and users over the last ${span} minutes`);
  const x = (t) => L + ((new Date(t) - from) / (span * 60e3)) * (W - L - 10);
  let y = 0;
  for (const [name, list] of lanes) {
    const label = document.createElementNS(NS, 'text');
    label.setAttribute('x', '4'); label.setAttribute('y', String(y + 17));
    label.textContent = name.length > 26 ? name.slice(0, 25) + '…' : name;
    const line = document.createElementNS(NS, 'line');
    for (const [a, v] of [['x1', L], ['x2', W - 10], ['y1', y + H / 2], ['y2', y + H / 2], ['class', 'axis']]) line.setAttribute(a, String(v));
    svg.append(label, line);
    for (const ev of list) {
      const r = document.createElementNS(NS, 'rect');
      for (const [a, v] of [['x', x(ev.time)], ['y', y + 5], ['width', 3], ['height', H - 10], ['fill', KIND_COLOURS[ev.kind.split('.')[0]] || '#6e7781']]) r.setAttribute(a, String(v));
      const tip = document.createElementNS(NS, 'title');
      tip.textContent = `${clock(ev.time)} ${ev.kind} ${ev.path || ev.summary || ''}`;
      r.append(tip);
      svg.append(r);
    }
    y += H;
  }
  for (let q = 0; q <= 4; q++) {
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', String(L + (q / 4) * (W - L - 10) - (q === 4 ? 26 : 12))); t.setAttribute('y', String(y + 18));
    t.textContent = q === 4 ? 'now' : `-${(span * (4 - q)) / 4} min`;
    svg.append(t);
  }
  $('activity-span').textContent = `${span} minutes`;
  $('lanes').replaceChildren(activityLegend(evs), svg);
  $('activity-empty').hidden = lanes.size > 0;
};

// activityLegend names the colour of each event kind the chart shows
// (every kind when it shows none).
function activityLegend(evs) {
  const shown = new Set(evs.map((ev) => ev.kind.split('.')[0]));
  const kinds = Object.keys(KIND_COLOURS).filter((k) => !shown.size || shown.has(k));
  if ([...shown].some((k) => !KIND_COLOURS[k])) kinds.push('other');
  const NS = 'http://www.w3.org/2000/svg';
  return el('ul', { id: 'activity-legend', class: 'legend', 'aria-label': 'Event kinds' }, ...kinds.map((k) => {
    const sw = document.createElementNS(NS, 'svg');
    sw.setAttribute('viewBox', '0 0 10 10'); sw.setAttribute('aria-hidden', 'true');
    const r = document.createElementNS(NS, 'rect');
    for (const [a, v] of [['width', 10], ['height', 10], ['rx', 2], ['fill', KIND_COLOURS[k] || '#6e7781']]) r.setAttribute(a, String(v));
    sw.append(r);
    return el('li', {}, sw, k);
  }));
}

// Views other than Live refresh while shown.
setInterval(() => {
  if (document.hidden) return;
  refreshProjects().catch(report);
  if (current !== 'live' && views[current]) views[current]().catch(report);
}, 5000);

// ---- start -------------------------------------------------------------------------------

async function start() {
  if (!token()) { showLogin(); return; }
  try {
    me = await api('/api/v1/whoami');
    for (const f of document.querySelectorAll('form.act')) f.hidden = !canWrite();
    $('who').textContent = `${me.user} · ${me.tenant} · ${me.role}`;
    const { kinds } = await api('/api/v1/kinds');
    $('kinds').replaceChildren(...kinds.map((k) => el('option', { value: k })));
    await Promise.all([refreshAgentNames(), refreshProjects()]);
  } catch (err) {
    if (err instanceof AuthError) { showLogin(token() ? 'That token was refused (unknown, revoked or expired).' : ''); return; }
    showLogin('Cannot reach the server: ' + err.message);
    return;
  }
  $('login').hidden = true;
  $('views').hidden = false;
  show(current);
  applyFilter(live.filter); // subscribes, in the selected project
}

// Opening the login link in a tab that shows the dashboard already only
// changes the fragment: no reload, so take the token from here too.
window.addEventListener('hashchange', () => {
  if (/(?:^#|&)token=/.test(location.hash)) { takeTokenFromURL(); start(); }
});

// For the views in their own modules (review.js).
export { api, send, act, el, ago, canWrite, views, FOLLOWS, feedHooks, agentName, refreshAgentNames, projectName, fullPath, projects, withProject, report };

takeTokenFromURL();
start();
