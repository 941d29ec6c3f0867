// Browser test of the Coditect dashboard, run by webview/e2e_test.go
// (go test ./webview/ -run Browser), which starts `coditect serve` and the
// agents. This script drives Debian's Chromium through playwright-core and
// asks the Go test, one JSON line on stdout each, for what only it can do
// (an agent in another process writes an event; the daemon is killed; it
// is started again), reading one JSON line reply on stdin.
//
// Environment: CODITECT_LOGIN_URL (the URL `coditect serve` printed),
// CODITECT_CHROMIUM (the browser), CODITECT_SHOTS (screenshot directory),
// CODITECT_PROJECT_ROOT and CODITECT_OTHER_ROOT (the roots of the two
// projects, as the daemon resolves them).

import { join } from 'node:path';
import { ask, check, run } from './lib.mjs';

const loginURL = process.env.CODITECT_LOGIN_URL;
const base = new URL(loginURL).origin;
const shots = process.env.CODITECT_SHOTS;
const projectRoot = process.env.CODITECT_PROJECT_ROOT;
const otherRoot = process.env.CODITECT_OTHER_ROOT;
const log = (...a) => console.error('[dashboard.mjs]', ...a);

const result = { op: 'done' };
let downSince = 0; // while the daemon is deliberately down, refused connections are expected
let refusing = false; // while a write is refused on purpose, its failed request is expected
const errors = [];
await run('dashboard.mjs', result, errors, async (context) => {
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (downSince && /ERR_CONNECTION_REFUSED|WebSocket connection to .* failed/.test(text)) return;
    if (refusing && /Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    errors.push('console: ' + text);
  });
  page.on('pageerror', (e) => errors.push('page error: ' + e.message));
  page.setDefaultTimeout(10_000);

  // ---- log in: no token shows the login form; the printed URL logs in.
  await page.goto(base + '/');
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.goto(loginURL);
  await page.locator('#views').waitFor({ state: 'visible' });
  await page.locator('#conn', { hasText: 'live' }).waitFor();
  check(!page.url().includes('token'), `the token stayed in the address bar: ${page.url()}`);
  check((await page.locator('#who').textContent()).includes('admin'), 'whoami does not say admin');
  const stored = await page.evaluate(() => localStorage.getItem('coditect.token'));
  check(stored && loginURL.endsWith(stored), 'the token was not kept in localStorage');

  // ---- the project switcher starts on all projects and lists both.
  const projects = await page.evaluate(async () => {
    const r = await fetch('/api/v1/projects', { headers: { Authorization: 'Bearer ' + localStorage.getItem('coditect.token') } });
    return (await r.json()).projects;
  });
  const byRoot = (root) => projects.find((p) => p.roots.some((r) => r.path === root));
  const main = byRoot(projectRoot), other = byRoot(otherRoot);
  check(main && other && main.id !== other.id, `projects ${JSON.stringify(projects)} lack the roots ${projectRoot} and ${otherRoot}`);
  check(await page.inputValue('#project') === '', 'the switcher does not start on all projects');
  await page.locator(`#project option[value="${other.id}"]`, { hasText: other.name }).waitFor({ state: 'attached' });
  await page.locator(`#project option[value="${main.id}"]`, { hasText: main.name }).waitFor({ state: 'attached' });

  const row = (id) => page.locator(`#events .row[data-id="${id}"]`);
  const rowCount = async () => Number((await page.locator('#count').textContent()).split(' ')[0]);

  // ---- an event written by another process appears within a second.
  {
    const t0 = Date.now();
    const { id } = await ask({ op: 'note', text: 'hello from another process' });
    const t1 = Date.now();
    await row(id).waitFor({ timeout: 1000 });
    result.appear_ms = Date.now() - t1;
    result.call_and_appear_ms = Date.now() - t0;
    check(await row(id).locator('.s').textContent() === 'hello from another process', 'the row shows another summary');
  }

  // ---- filter: kind=decision.recorded shows decisions only, live.
  {
    await page.fill('#filters input[name=kind]', 'decision.recorded');
    await page.click('#filters button[type=submit]');
    await page.locator('#conn', { hasText: 'live' }).waitFor();
    const note = await ask({ op: 'note', text: 'a note the filter hides' });
    const dec = await ask({ op: 'note', kind: 'decision', text: 'use sqlite for the embedded store' });
    await row(dec.id).waitFor({ timeout: 1000 });
    check(await row(note.id).count() === 0, 'the kind filter let a note through');
    const kinds = await page.locator('#events .row').evaluateAll((rs) => rs.map((r) => r.dataset.kind));
    check(kinds.length > 0 && kinds.every((k) => k === 'decision.recorded'), `filtered rows: ${kinds}`);
    // A value in a row filters by it: the agent of the decision.
    await row(dec.id).locator('button[data-filter=agent]').click();
    check(await page.inputValue('#filters input[name=agent]') !== '', 'clicking an agent did not filter by it');
    check(await page.inputValue('#filters input[name=kind]') === 'decision.recorded', 'clicking a value dropped the other filters');
    await row(dec.id).waitFor();
    await page.click('#clear-filters');
    await row(note.id).waitFor();
  }

  // ---- pause: new events wait behind an "N new" counter; resume shows them.
  {
    await page.click('#pause');
    check(await page.getAttribute('#pause', 'aria-pressed') === 'true', 'pause is not pressed');
    const a = await ask({ op: 'note', text: 'arrived while paused 1' });
    const b = await ask({ op: 'note', text: 'arrived while paused 2' });
    // Both notes, and whatever else the agent's calls recorded, wait.
    await page.waitForFunction(() => parseInt(document.getElementById('newcount').textContent, 10) >= 2, null, { timeout: 1000 });
    result.paused_new = await page.locator('#newcount').textContent();
    check(await row(a.id).count() === 0 && await row(b.id).count() === 0, 'rows were added while paused');
    await page.click('#resume');
    await row(b.id).waitFor();
    await row(a.id).waitFor();
    check(await page.locator('#newcount').isHidden(), 'the counter stayed after resuming');
    const top = await page.locator('#events .row').evaluateAll((rs) =>
      rs.map((r) => [r.dataset.id, new DOMMatrix(getComputedStyle(r).transform).m42]).sort((x, y) => x[1] - y[1]).map((x) => x[0]));
    // Newest first (each call may also record a tool event beside its note).
    const ia = top.indexOf(a.id), ib = top.indexOf(b.id);
    check(ib >= 0 && ib < 3 && ib < ia && ia < 6, `after resume the newest rows are ${top.slice(0, 6)}; want ${b.id} above ${a.id} at the top`);
  }

  // ---- kill the daemon; events written meanwhile arrive after its restart,
  // with no gap and no duplicate, on the same token.
  {
    const before = await rowCount();
    downSince = Date.now();
    await ask({ op: 'kill' });
    await page.locator('#conn', { hasText: 'reconnecting' }).waitFor();
    const down1 = await ask({ op: 'note', text: 'written while the daemon was down 1' });
    const down2 = await ask({ op: 'note', text: 'written while the daemon was down 2' });
    await ask({ op: 'start' });
    const up = Date.now();
    await row(down2.id).waitFor({ timeout: 10_000 });
    await page.locator('#conn', { hasText: 'live' }).waitFor();
    result.resume_after_restart_ms = Date.now() - up;
    downSince = 0;
    const after = await ask({ op: 'note', text: 'after the restart' });
    await row(after.id).waitFor({ timeout: 1000 });
    await row(down1.id).waitFor();
    check(await rowCount() >= before + 3, `${await rowCount()} rows after the restart, want at least ${before} + 3`);
    // The list is the log: same count, same newest rows, in order.
    const log = await page.evaluate(async () => {
      const r = await fetch('/api/v1/events?order=newest&limit=1000', { headers: { Authorization: 'Bearer ' + localStorage.getItem('coditect.token') } });
      return (await r.json()).events.map((e) => e.id);
    });
    check(log.length === await rowCount(), `the list shows ${await rowCount()} events, the log has ${log.length}`);
    const shown = await page.locator('#events .row').evaluateAll((rs) =>
      rs.map((r) => [r.dataset.id, new DOMMatrix(getComputedStyle(r).transform).m42]).sort((x, y) => x[1] - y[1]).map((x) => x[0]));
    check(shown.length >= 10, `only ${shown.length} rows rendered`);
    check(shown.every((id, i) => id === log[i]), `rendered rows ${shown.slice(0, 5)}… differ from the log's newest ${log.slice(0, 5)}…`);
    result.events = log.length;
  }

  // ---- every view renders its data; a screenshot of each.
  await page.screenshot({ path: join(shots, 'live.png') });
  const views = {
    sessions: async () => {
      await page.locator('#sessions tr', { hasText: 'Fix the login redirect' }).click();
      await page.locator('#timeline li').first().waitFor();
      // The builder's fs_write shows its diff, folded until clicked.
      const diff = page.locator('#timeline details.diff').first();
      await diff.locator('summary').click();
      await diff.locator('pre span.add', { hasText: '+package auth' }).waitFor();
      check(await diff.locator('summary').textContent() === 'diff +1 −0', `the diff's summary is ${await diff.locator('summary').textContent()}`);
      check(await diff.locator('pre span.fh').first().textContent() === '--- /dev/null\n', `the diff's first line is ${await diff.locator('pre span.fh').first().textContent()}`);
    },
    agents: async () => {
      await page.locator('#agents tr', { hasText: 'qwen2.5-coder-7b-instruct' }).waitFor();
      await page.locator('#agents tr', { hasText: 'llama-3.1-8b-instruct' }).waitFor();
      check(await page.locator('#agents td.alive').count() === 2, 'the agents are not shown alive');
      const lease = page.locator('#agents tr', { hasText: 'builder' }).locator('.lease');
      check(await lease.textContent() === `${main.name}: src/auth/login.go`, `the builder's lease shows as ${await lease.textContent()}`);
      check(await lease.getAttribute('title') === projectRoot + '/src/auth/login.go', `the lease's full path on hover is ${await lease.getAttribute('title')}`);
    },
    files: async () => {
      // Repository-relative paths, the full path on hover, the project named.
      const tr = page.locator('#files tr', { hasText: 'login_test.go' }).first();
      await tr.waitFor();
      const path = tr.locator('td.path button');
      check(await path.textContent() === 'src/auth/login_test.go', `the file shows as ${await path.textContent()}`);
      check(await path.getAttribute('title') === projectRoot + '/src/auth/login_test.go', `its full path on hover is ${await path.getAttribute('title')}`);
      check(await tr.locator('td.proj').textContent() === main.name, `its project shows as ${await tr.locator('td.proj').textContent()}`);
      // The file under the builder's lease is the builder's: its name and
      // model, its id on hover.
      const leased = page.locator('#files tr').filter({ has: page.locator('td.path button', { hasText: /^src\/auth\/login\.go$/ }) }).first();
      await leased.waitFor();
      const who = leased.locator('td.who');
      check(await who.textContent() === 'builder (qwen2.5-coder-7b-instruct)', `the leased file's author shows as ${await who.textContent()}`);
      check(/^ag_/.test(await who.getAttribute('title') || ''), `the author's id on hover is ${await who.getAttribute('title')}`);
    },
    tasks: async () => {
      const card = page.locator('#board .col[data-state=in_progress] .card', { hasText: 'Add a test for the login redirect' });
      await card.waitFor();
      const ready = page.locator('#board .col[data-state=open] .card', { hasText: /^Rotate the signing key/ });
      await ready.waitFor();
      check(await ready.locator('.badge.ready').count() === 1, 'the unblocked open task shows no ready badge');
      const blocked = page.locator('#board .col[data-state=open] .card', { hasText: 'Ship the release' });
      await blocked.waitFor();
      check(await blocked.locator('.badge.ready').count() === 0, 'the blocked task shows a ready badge');
      check(await blocked.locator('.blocked-by').textContent() === 'blocked by Rotate the signing key', `the blocked task shows ${await blocked.locator('.graph').textContent()}`);
      check(await blocked.locator('.prio').textContent() === 'priority 3', 'the blocked task shows no priority');
      const assignee = card.locator('.muted');
      check((await assignee.textContent()).endsWith('assigned to reviewer (llama-3.1-8b-instruct)'), `the claimed task shows ${await assignee.textContent()}`);
      check(/^ag_/.test(await assignee.getAttribute('title') || ''), `the assignee's id on hover is ${await assignee.getAttribute('title')}`);
    },
    activity: async () => {
      await page.locator('#lanes svg rect').first().waitFor();
      check(await page.locator('#lanes svg text', { hasText: 'builder' }).count() > 0, 'no swimlane for builder');
      const legend = await page.locator('#activity-legend li').allTextContents();
      check(legend.includes('file') && legend.includes('session'), `the Activity legend shows ${legend}`);
    },
  };
  for (const [name, ready] of Object.entries(views)) {
    await page.click(`#tabs [data-view=${name}]`);
    await ready();
    await page.screenshot({ path: join(shots, `${name}.png`) });
  }

  // ---- at a VS Code panel's width (480 px) no view is wider than the
  // window: tables wrap, the live list narrows its columns.
  await page.setViewportSize({ width: 480, height: 800 });
  for (const name of ['live', ...Object.keys(views)]) {
    await page.click(`#tabs [data-view=${name}]`);
    await page.locator(`#view-${name}`).waitFor();
    const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    log(`480 px: ${name} is ${scroll} px wide`);
    check(scroll <= inner, `at 480 px the ${name} view is ${scroll} px wide, more than the ${inner} px window`);
    if (name === 'agents') await page.screenshot({ path: join(shots, 'narrow.png') });
  }
  check(await page.locator('#activity-legend li').count() > 0, 'at 480 px the Activity legend is missing');
  await page.setViewportSize({ width: 1280, height: 800 });

  // ---- the switcher filters every view by project, live included.
  {
    const sessionRow = (title) => page.locator('#sessions tr', { hasText: title });
    await page.click('#tabs [data-view=sessions]');
    await sessionRow('Review the billing service').waitFor();
    check(await sessionRow('Fix the login redirect').locator('td.proj').textContent() === main.name, 'a session does not show its project');
    await page.selectOption('#project', other.id);
    await sessionRow('Fix the login redirect').waitFor({ state: 'detached' });
    await sessionRow('Review the billing service').waitFor();
    await page.click('#tabs [data-view=tasks]');
    // The tasks the agents made belong to no project of the other's.
    await page.locator('#board .card', { hasText: /^Rotate the signing key/ }).waitFor({ state: 'detached' });
    await page.locator('#tasks-empty').waitFor();
    await page.click('#tabs [data-view=live]');
    await page.locator('#conn', { hasText: 'live' }).waitFor();
    await page.locator(`#events .row[data-project="${other.id}"]`).first().waitFor();
    const shown = await page.locator('#events .row').evaluateAll((rs) => rs.map((r) => r.dataset.project));
    check(shown.length > 0 && shown.every((p) => p === other.id), `with ${other.name} selected the live list shows projects ${shown}`);
    result.other_project_events = shown.length;
    // Events of the selected project arrive live; others' do not.
    const mine = await ask({ op: 'note', text: 'a note in the billing service', project: other.id });
    const theirs = await ask({ op: 'note', text: 'a note in the login project', project: main.id });
    await row(mine.id).waitFor({ timeout: 2000 });
    check(await row(theirs.id).count() === 0, 'the live list shows another project\'s event');
    await page.screenshot({ path: join(shots, 'project.png') });
    await page.selectOption('#project', main.id);
    await row(theirs.id).waitFor();
    check(await row(mine.id).count() === 0, 'switching projects kept the other project\'s rows');
    await page.selectOption('#project', '');
    await row(mine.id).waitFor();
    await row(theirs.id).waitFor();
    await page.click('#tabs [data-view=sessions]');
    await sessionRow('Fix the login redirect').waitFor();
    await sessionRow('Review the billing service').waitFor();
  }
  // ---- write actions: a person messages an agent from the compose box,
  // and the agent's inbox has it.
  {
    await page.click('#tabs [data-view=agents]');
    await page.locator('#recipients option[value=builder]').waitFor({ state: 'attached' });
    await page.fill('#compose input[name=to]', 'builder');
    await page.fill('#compose input[name=subject]', 'auth');
    await page.fill('#compose textarea[name=body]', 'Hands off auth.go until I say so');
    const t0 = Date.now();
    await page.click('#compose button[type=submit]');
    await page.locator('#compose-status.ok', { hasText: 'sent to builder' }).waitFor();
    result.compose_ms = Date.now() - t0;
    const { messages } = await ask({ op: 'inbox' });
    const got = messages.find((m) => m.body === 'Hands off auth.go until I say so');
    check(got && got.subject === 'auth' && got.from_user, `the builder's inbox lacks the person's message: ${JSON.stringify(messages)}`);
    // A refused write says why, inline: no recipient by that name.
    refusing = true;
    await page.fill('#compose input[name=to]', 'nobody-by-that-name');
    await page.fill('#compose textarea[name=body]', 'hello?');
    await page.click('#compose button[type=submit]');
    await page.locator('#compose-status.error').waitFor();
    result.refused_write = await page.locator('#compose-status').textContent();
    check(/^[a-z_ -]+: .*nobody-by-that-name/.test(result.refused_write), `the refused write shows ${result.refused_write}`);
    refusing = false;
  }
  // ---- the person's inbox: an agent's message to user:ME shows live under
  // "Your inbox", by the agent's name; the person replies in the thread
  // (the agent reads the reply there) and marks the message read.
  {
    const user = (await page.locator('#who').textContent()).split(' · ')[0];
    const { id } = await ask({ op: 'tell', text: 'user:' + user });
    const item = page.locator(`#inbox-list li[data-id="${id}"]`);
    await item.waitFor();
    await page.locator('#inbox-unread', { hasText: '1 unread' }).waitFor();
    const shown = await item.textContent();
    check(shown.includes('builder') && shown.includes('May I refactor auth.go?') && !shown.includes('ag_'), `the inbox shows ${shown}`);
    await item.locator(`button[data-key="reply ${id}"]`).click();
    await item.locator('form.reply textarea').fill('Not yet: I am in auth.go');
    await item.locator('form.reply button[type=submit]').click();
    await page.locator('#inbox-status.ok', { hasText: 'replied' }).waitFor();
    const { messages } = await ask({ op: 'inbox' });
    const re = messages.find((m) => m.body === 'Not yet: I am in auth.go');
    check(re && re.reply_to === id && re.thread === id && re.from_user === user, `the builder's thread lacks the reply: ${JSON.stringify(messages)}`);
    await page.screenshot({ path: join(shots, 'inbox.png') });
    await item.locator(`button[data-key="read ${id}"]`).click();
    await page.locator(`#inbox-list li[data-id="${id}"]`).waitFor({ state: 'detached' });
    await page.locator('#inbox-unread', { hasText: '0 unread' }).waitFor();
  }

  // ---- a task created on the board and moved with the keyboard moves
  // live on a second dashboard, which follows the feed (its clock is
  // paused: its 5 s refresh never runs, so only the feed can redraw it).
  {
    const second = await context.newPage();
    second.on('pageerror', (e) => errors.push('second page error: ' + e.message));
    second.setDefaultTimeout(10_000);
    await second.clock.install();
    await second.goto(base + '/');
    await second.locator('#conn', { hasText: 'live' }).waitFor();
    await second.click('#tabs [data-view=tasks]');
    await second.locator('#board .col').first().waitFor();
    // From here the second page's timers stand still.
    await second.clock.pauseAt(Date.now() + 1000);

    await page.click('#tabs [data-view=tasks]');
    await page.fill('#new-task input[name=title]', 'Triage the flaky login test');
    await page.fill('#new-task input[name=description]', 'It fails one run in ten');
    await page.press('#new-task input[name=title]', 'Enter');
    const mine = page.locator('#board .col[data-state=open] .card', { hasText: 'Triage the flaky login test' });
    await mine.waitFor();
    const theirs = (st) => second.locator(`#board .col[data-state=${st}] .card`, { hasText: 'Triage the flaky login test' });
    await theirs('open').waitFor();

    // Keyboard only: focus the card's move control, pick "blocked".
    const move = mine.locator('select.move');
    await move.focus();
    const t0 = Date.now();
    await move.selectOption('blocked');
    await page.locator('#board .col[data-state=blocked] .card', { hasText: 'Triage the flaky login test' }).waitFor();
    await theirs('blocked').waitFor();
    result.move_seen_by_other_ms = Date.now() - t0;
    check(await theirs('open').count() === 0, 'the second dashboard still shows the task open');
    // The moved card keeps the keyboard focus across the redraw.
    check(await page.evaluate(() => document.activeElement && document.activeElement.classList.contains('move')), 'the move control lost focus');
    await page.screenshot({ path: join(shots, 'board-actions.png') });
    await second.close();
  }
  // ---- an admin force-releases the builder's lease from the Agents view;
  // a session ends from the Sessions view.
  {
    await page.click('#tabs [data-view=agents]');
    const builderRow = page.locator('#agents tr', { hasText: 'builder' });
    await builderRow.locator('button.release').click();
    await page.locator('#lease-status.ok', { hasText: 'released' }).waitFor();
    await builderRow.locator('.lease').waitFor({ state: 'detached' });
    await page.click('#tabs [data-view=sessions]');
    await page.locator('#sessions tr', { hasText: 'Review the billing service' }).click();
    const end = page.locator('#timeline form.end-session');
    await end.locator('select').selectOption('completed');
    await end.locator('input[name=summary]').fill('reviewed by a person');
    await end.locator('button[type=submit]').click();
    await page.locator('#sessions tr', { hasText: 'Review the billing service' }).locator('td', { hasText: /^ended$/ }).waitFor();
    await page.locator('#timeline form.end-session').waitFor({ state: 'detached' });
  }

  // ---- a viewer's dashboard offers no write action.
  {
    const { token: viewer } = await ask({ op: 'viewer' });
    await page.goto('about:blank'); // a fresh document: nothing drawn for the admin stays
    await page.goto(base + '/#token=' + encodeURIComponent(viewer));
    await page.locator('#who', { hasText: 'viewer' }).waitFor();
    await page.click('#tabs [data-view=agents]');
    await page.locator('#agents tr').first().waitFor();
    check(await page.locator('#compose').isHidden(), 'a viewer sees the compose box');
    check(await page.locator('#agents button.release').count() === 0, 'a viewer sees release buttons');
    await page.click('#tabs [data-view=tasks]');
    await page.locator('#board .card').first().waitFor();
    check(await page.locator('#new-task').isHidden(), 'a viewer sees the new task form');
    check(await page.locator('#board select.move').count() === 0, 'a viewer sees move controls');
  }
});
