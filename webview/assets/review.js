// The Reviews view: agents' writes that a project's review policy turned
// into proposals, each with its unified diff, waiting for a person to
// accept (the write is applied through the fenced write path, attributed
// to the agent and approved by the person) or reject with a reason (which
// goes to the agent's inbox). Members and admins act; viewers read. The
// tab counts the pending proposals and follows review.* events on the
// feed, so every open dashboard shows a decision made in another.

import {
  api, send, act, el, ago, canWrite, views, FOLLOWS, feedHooks, agentName, refreshAgentNames,
  projectName, fullPath, projects, withProject, report,
} from './app.js';

const $ = (id) => document.getElementById(id);

// A proposal's kind, as a phrase: "builder proposes an edit to a.go".
const KIND = { write: 'a new version of', edit: 'an edit to', move: 'a move of', delete: 'the deletion of' };
const kindPhrase = (p) => p.kind === 'write' && !p.base_hash ? 'a new file' : KIND[p.kind] || 'a change to';

// Sessions are shown by title; a title, once read, does not change.
const sessionTitles = new Map();
function sessionTitle(id) {
  if (!sessionTitles.has(id)) {
    sessionTitles.set(id, api(`/api/v1/sessions/${encodeURIComponent(id)}`).then((s) => s.title || '', () => {
      sessionTitles.delete(id);
      return '';
    }));
  }
  return sessionTitles.get(id);
}

// pending is the proposals of GET /api/v1/reviews ({reviews}) still
// waiting (without all=1 the server lists only those).
const pending = (out) => (out.reviews || []).filter((p) => p.state === 'pending');

// proposer names a proposal's agent for people: "name (model)", as the
// agent list has it, else as the proposal recorded it.
function proposer(p) {
  const known = p.agent ? agentName(p.agent) : '';
  if (known && known !== p.agent) return known;
  if (p.agent_name) return p.model ? `${p.agent_name} (${p.model})` : p.agent_name;
  return known || 'an agent';
}

// diffLines renders a unified diff as text spans (never as HTML): the
// first two lines name the files, then added, removed and hunk lines.
// The lines sit in one box as wide as the longest, so that a scrolled
// line keeps its colour to the end.
function diffLines(d) {
  const kind = (line, i) => i < 2 && /^(---|\+\+\+) /.test(line) ? 'fh'
    : line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : line[0] === '@' ? 'hunk' : line[0] === ' ' ? '' : 'muted';
  return el('div', { class: 'lines' }, ...d.replace(/\n$/, '').split('\n').map((line, i) => el('span', { class: kind(line, i), text: line + '\n' })));
}

// count shows the number of pending proposals on the tab.
function count(n) {
  const c = $('review-count');
  c.textContent = String(n);
  c.hidden = n === 0;
  c.setAttribute('aria-label', `${n} pending`);
}

// refreshCount asks for the pending proposals of the selected project
// and shows how many wait.
async function refreshCount() {
  try {
    count(pending(await api(withProject('/api/v1/reviews'))).length);
  } catch (err) {
    report(err);
  }
}

// proposal renders one pending proposal: who proposes what, its diff, and
// for members and admins Accept and Reject (with a required reason).
function proposal(p, now, titles) {
  const title = el('h3', { id: 'rvh-' + p.id },
    el('span', { class: 'who', title: p.agent || '', text: proposer(p) }), ' proposes ',
    kindPhrase(p), ' ',
    el('code', { class: 'path', title: fullPath(p.project, p.path), text: p.path || '' }),
    p.to ? el('span', {}, ' to ', el('code', { class: 'path', title: fullPath(p.project, p.to), text: p.to })) : null);
  const stat = p.binary ? 'binary' : p.added || p.removed ? `+${p.added || 0} −${p.removed || 0}` : '';
  const meta = el('p', { class: 'muted' },
    el('span', { class: 'age', title: p.created || '', text: p.created ? 'proposed ' + ago(p.created, now) : '' }),
    titles.get(p.session) ? el('span', { title: p.session, text: ` · in session “${titles.get(p.session)}”` }) : null,
    stat ? el('span', { class: 'stat', text: ' · ' + stat }) : null);
  const d = typeof p.diff === 'string' && p.diff !== '' ? p.diff : '';
  const diff = el('div', { class: 'diff review-diff' },
    d ? el('pre', { tabindex: '0', 'aria-label': `Diff of ${p.path}` }, diffLines(d))
      : el('p', { class: 'muted', text: p.kind === 'delete' ? 'The file would be deleted.' : 'No textual diff (binary or empty).' }));
  const box = el('article', { class: 'review', 'data-id': p.id, 'aria-labelledby': 'rvh-' + p.id }, title, meta, diff);
  if (canWrite()) box.append(actions(p));
  return box;
}

// actions are a proposal's Accept button and Reject form. A refusal
// (conflict: the file changed since the proposal; forbidden; gone) shows
// beside them with its class; a decision redraws the list.
function actions(p) {
  const status = el('span', { class: 'status', role: 'alert' });
  const what = `${proposer(p)}'s ${p.kind || 'change'} of ${p.path}`;
  const decided = (text) => {
    $('review-status').textContent = text;
    $('review-status').className = 'status ok';
    const before = order.slice();
    draw().then(() => focusAfter(p.id, before)).catch(report);
  };
  const accept = el('button', { type: 'button', class: 'accept', 'data-key': 'accept ' + p.id, 'aria-label': `Accept ${what}`,
    onclick: async () => {
      const out = await act(status, 'accepted', () => send('POST', `/api/v1/reviews/${encodeURIComponent(p.id)}/accept`));
      if (out) decided(`Accepted ${what}: written.`);
    } }, 'Accept');
  const reason = el('input', { name: 'reason', required: '', autocomplete: 'off', placeholder: 'why (the agent is told)',
    'aria-label': `Reason for rejecting ${what}` });
  const reject = el('form', { class: 'reject', 'aria-label': `Reject ${what}`,
    onsubmit: async (e) => {
      e.preventDefault();
      const why = reason.value.trim();
      if (!why) { status.textContent = 'a reason is required: the agent is told why'; status.className = 'status error'; reason.focus(); return; }
      const out = await act(status, 'rejected', () => send('POST', `/api/v1/reviews/${encodeURIComponent(p.id)}/reject`, { reason: why }));
      if (out) decided(`Rejected ${what}; the agent was told: ${why}`);
    } }, reason, el('button', { type: 'submit', class: 'reject' }, 'Reject'));
  return el('div', { class: 'review-actions' }, accept, reject, status);
}

// order is the ids of the proposals shown, in order; drawn what they
// were drawn from.
let order = [];
let drawn = '';

// focusAfter keeps a keyboard user's place after a decision on id: the
// Accept button of the proposal that followed it in before (the list as
// it was), else of the one before it, else the view's status.
function focusAfter(id, before) {
  const i = before.indexOf(id);
  const accept = (x) => document.querySelector(`#reviews [data-key="${CSS.escape('accept ' + x)}"]`);
  const next = before.slice(i + 1).concat(before.slice(0, Math.max(i, 0)).reverse()).map(accept).find(Boolean);
  (next || $('review-status')).focus();
}

// draw lists the pending proposals, grouped by project when all projects
// show, oldest first (the longest-waiting on top). Focus and unsent
// reasons survive a redraw.
async function draw() {
  const [out] = await Promise.all([api(withProject('/api/v1/reviews')), refreshAgentNames()]);
  const list = pending(out).sort((a, b) => String(a.created).localeCompare(String(b.created)));
  const titles = new Map(await Promise.all([...new Set(list.map((p) => p.session).filter(Boolean))].map(async (id) => [id, await sessionTitle(id)])));
  const now = Date.now();
  // Pending proposals do not change: when the same ones show as drawn,
  // only their ages move (a redraw would reset a diff scrolled by hand).
  const sig = JSON.stringify([projects.selected, canWrite(), list.map((p) => [p.id, proposer(p), titles.get(p.session) || '', projectName(p.project)])]);
  if (sig === drawn && $('reviews').childElementCount === new Set(list.map((p) => p.project || '')).size) {
    for (const p of list) {
      const age = document.querySelector(`#reviews article.review[data-id="${CSS.escape(p.id)}"] .age`);
      if (age && p.created) age.textContent = 'proposed ' + ago(p.created, now);
    }
    return;
  }
  drawn = sig;
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.key : undefined;
  // What a person typed or was told stays across a redraw.
  const kept = new Map([...document.querySelectorAll('#reviews article.review')].map((a) => {
    const input = a.querySelector('input[name=reason]'), st = a.querySelector('.review-actions .status');
    return [a.dataset.id, { reason: input ? input.value : '', text: st ? st.textContent : '', cls: st ? st.className : '' }];
  }));
  const focusedReason = active && active.name === 'reason' ? active.closest('article.review').dataset.id : '';
  const groups = new Map();
  for (const p of list) {
    const g = p.project || '';
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(p);
  }
  order = list.map((p) => p.id);
  $('reviews').replaceChildren(...[...groups].map(([proj, ps]) => el('section', { class: 'review-group', 'data-project': proj },
    projects.selected ? null : el('h2', { text: projectName(proj) || 'No project' }),
    ...ps.map((p) => proposal(p, now, titles)))));
  for (const [id, k] of kept) {
    const a = document.querySelector(`#reviews article.review[data-id="${CSS.escape(id)}"]`);
    const input = a && a.querySelector('input[name=reason]'), st = a && a.querySelector('.review-actions .status');
    if (input) { input.value = k.reason; if (id === focusedReason) input.focus(); }
    if (st && k.text) { st.textContent = k.text; st.className = k.cls; }
  }
  if (key) { const again = document.querySelector(`#reviews [data-key="${CSS.escape(key)}"]`); if (again) again.focus(); }
  $('reviews-empty').hidden = list.length > 0;
  $('review-readonly').hidden = canWrite() || list.length === 0;
  count(list.length);
}

views.reviews = draw;
FOLLOWS.reviews = /^review\./;
// Whatever view shows, a review.* event updates the tab's count (the
// Reviews view itself redraws through FOLLOWS).
feedHooks.push((evs) => {
  if ($('view-reviews').hidden && evs.some((e) => /^review\./.test(e.kind))) refreshCount();
});
$('project').addEventListener('change', () => refreshCount());
// The count is first asked for once the dashboard shows (after login).
new MutationObserver(() => { if (!$('views').hidden) refreshCount(); }).observe($('views'), { attributes: true, attributeFilter: ['hidden'] });
