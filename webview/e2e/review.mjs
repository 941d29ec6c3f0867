// Browser test of the dashboard's Reviews view, run by
// webview/review_e2e_test.go (go test ./webview/ -run ReviewInBrowser),
// which starts `coditect serve` and an agent whose writes under a review
// policy became three proposals: an edit of src/auth/login.go and new
// versions of src/auth/token.go and src/auth/cookie.go. Like
// dashboard.mjs, it asks the Go test for what only it can do, one JSON
// line each way: {op: "file", path} (what the file holds), {op: "touch",
// path, text} (a person changes the file on disk), {op: "inbox"} (the
// agent's messages), {op: "viewer"} (a viewer's token).
//
// Environment: CODITECT_LOGIN_URL, CODITECT_CHROMIUM, CODITECT_SHOTS,
// CODITECT_PROJECT_ROOT, CODITECT_PROJECT (the project's id).

import { join } from 'node:path';
import { ask, check, run } from './lib.mjs';

const loginURL = process.env.CODITECT_LOGIN_URL;
const base = new URL(loginURL).origin;
const shots = process.env.CODITECT_SHOTS;
const projectRoot = process.env.CODITECT_PROJECT_ROOT;
const projectID = process.env.CODITECT_PROJECT;

// rest calls the API from a page with the token it holds.
const rest = (page, method, path, body) => page.evaluate(async ([method, path, body]) => {
  const headers = { Authorization: 'Bearer ' + localStorage.getItem('coditect.token') };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
}, [method, path, body]);

const result = { op: 'done' };
let refusing = false; // while a decision is refused on purpose, its failed request is expected
const errors = [];
const watch = (p, name) => {
  p.on('console', (m) => {
    // The dashboard reports a failed view as a warning.
    if (m.type() === 'warning' && m.text().startsWith('coditect:')) errors.push(`${name} console: ${m.text()}`);
    if (m.type() !== 'error') return;
    if (refusing && /Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) return;
    errors.push(`${name} console: ${m.text()}`);
  });
  p.on('pageerror', (e) => errors.push(`${name} page error: ${e.message}`));
  p.setDefaultTimeout(10_000);
};
await run('review.mjs', result, errors, async (context) => {
  const page = context.pages()[0] || await context.newPage();
  watch(page, 'first');
  await page.goto(loginURL);
  await page.locator('#views').waitFor({ state: 'visible' });
  await page.locator('#conn', { hasText: 'live' }).waitFor();
  const me = (await rest(page, 'GET', '/api/v1/whoami')).body;

  // ---- the three proposals, by path, from the REST list.
  const listed = await rest(page, 'GET', '/api/v1/reviews?project=' + encodeURIComponent(projectID));
  check(listed.status === 200, `GET /api/v1/reviews: ${JSON.stringify(listed)}`);
  const all = listed.body.reviews;
  const byPath = Object.fromEntries(all.map((p) => [p.path, p]));
  for (const f of ['src/auth/login.go', 'src/auth/token.go', 'src/auth/cookie.go']) {
    check(byPath[f] && /^rv_/.test(byPath[f].id), `no proposal of ${f} in ${JSON.stringify(listed.body)}`);
  }
  const login = byPath['src/auth/login.go'], token = byPath['src/auth/token.go'], cookie = byPath['src/auth/cookie.go'];
  const article = (p, id) => p.locator(`#reviews article.review[data-id="${id}"]`);

  // ---- the view lists them with who, what and the diff; the tab counts them.
  await page.locator('#review-count', { hasText: '3' }).waitFor();
  await page.click('#tabs [data-view=reviews]');
  for (const p of [login, token, cookie]) await article(page, p.id).waitFor();
  {
    const a = article(page, login.id);
    const head = await a.locator('h3').textContent();
    check(head === 'builder (qwen2.5-coder-7b-instruct) proposes an edit to src/auth/login.go', `the proposal's heading is ${head}`);
    check(await a.locator('h3 code').getAttribute('title') === projectRoot + '/src/auth/login.go', 'the full path is not on hover');
    check(/^proposed \d+ (s|min) ago$/.test(await a.locator('.age').textContent()), `its age shows as ${await a.locator('.age').textContent()}`);
    // Added and removed lines are styled; the diff's markup is text.
    await a.locator('pre span.add', { hasText: '+// Login checks a password and redirects to <b>next</b>, keeping the query.' }).waitFor();
    await a.locator('pre span.del', { hasText: '-func Login(user, pass string) string {' }).waitFor();
    check(await a.locator('pre b').count() === 0, 'the diff\'s <b> became markup');
    const [addBg, delBg] = await Promise.all(['span.add', 'span.del'].map((s) => a.locator('pre ' + s).first().evaluate((e) => getComputedStyle(e).backgroundColor)));
    check(addBg !== delBg && addBg !== 'rgba(0, 0, 0, 0)', `added and removed lines look alike: ${addBg} / ${delBg}`);
    check(await article(page, token.id).locator('h3').textContent() === 'builder (qwen2.5-coder-7b-instruct) proposes a new version of src/auth/token.go',
      `the write's heading is ${await article(page, token.id).locator('h3').textContent()}`);
    await a.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'review.png') });
  }

  // ---- at a VS Code panel's width the view fits; the diff scrolls inside.
  {
    await page.setViewportSize({ width: 480, height: 800 });
    const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(scroll <= inner, `at 480 px the reviews view is ${scroll} px wide, more than the ${inner} px window`);
    check(await article(page, login.id).locator('button.accept').isVisible(), 'at 480 px Accept is not visible');
    await page.screenshot({ path: join(shots, 'review-narrow.png') });
    await page.setViewportSize({ width: 1280, height: 800 });
  }

  // ---- a second dashboard on the Reviews view, its timers stopped: only
  // the feed can redraw it.
  const second = await context.newPage();
  watch(second, 'second');
  await second.clock.install();
  await second.goto(base + '/');
  await second.locator('#conn', { hasText: 'live' }).waitFor();
  await second.click('#tabs [data-view=reviews]');
  for (const p of [login, token, cookie]) await article(second, p.id).waitFor();
  await second.clock.pauseAt(Date.now() + 1000);

  // ---- accept login.go with the keyboard; the file is written, the
  // other dashboard drops it, the audit log names agent and person.
  {
    await article(page, login.id).locator('button.accept').focus();
    const t0 = Date.now();
    await page.keyboard.press('Enter');
    await page.locator('#review-status.ok', { hasText: 'Accepted builder (qwen2.5-coder-7b-instruct)\'s edit of src/auth/login.go' }).waitFor();
    await article(page, login.id).waitFor({ state: 'detached' });
    await article(second, login.id).waitFor({ state: 'detached' });
    result.accept_seen_by_other_ms = Date.now() - t0;
    check(await page.evaluate(() => document.activeElement && document.activeElement.classList.contains('accept')),
      'after the accept the focus is not on the next proposal\'s Accept');
    const { content } = await ask({ op: 'file', path: 'src/auth/login.go' });
    check(content.includes('func Login(user, pass, next string) string'), `after the accept login.go holds ${JSON.stringify(content)}`);
    const evs = (await rest(page, 'GET', '/api/v1/events?kind=review.accepted&order=newest&limit=10')).body.events;
    const acc = evs.find((e) => e.path === 'src/auth/login.go');
    check(acc && acc.agent && acc.attrs && acc.attrs.approved_by === me.user, `the accept's event is ${JSON.stringify(acc)}; want the agent and approved_by ${me.user}`);
    await second.locator('#review-count', { hasText: '2' }).waitFor();
  }

  // ---- a proposal whose file changed since is refused as a conflict,
  // said beside it; nothing is written.
  {
    await ask({ op: 'touch', path: 'src/auth/cookie.go', text: 'package auth // changed by a person\n' });
    refusing = true;
    await article(page, cookie.id).locator('button.accept').click();
    const status = article(page, cookie.id).locator('.review-actions .status.error');
    await status.waitFor();
    result.conflict = await status.textContent();
    check(/^conflict: /.test(result.conflict), `the stale accept shows ${result.conflict}`);
    refusing = false;
    const { content } = await ask({ op: 'file', path: 'src/auth/cookie.go' });
    check(content === 'package auth // changed by a person\n', `the stale accept wrote cookie.go: ${JSON.stringify(content)}`);
  }

  // ---- reject token.go: a reason is required; it reaches the agent.
  // The second dashboard now shows another view: its tab's count follows.
  {
    await second.click('#tabs [data-view=live]');
    await second.locator('#review-count', { hasText: /^2$/ }).waitFor();
    const a = article(page, token.id);
    await a.locator('button.reject').click();
    check(await a.locator('input[name=reason]').evaluate((i) => i.validity.valueMissing), 'an empty reason was not refused');
    check(await a.count() === 1, 'a reject without a reason went through');
    const reason = 'Keep the TTL at an hour until the security review';
    await a.locator('input[name=reason]').fill(reason);
    const t0 = Date.now();
    await a.locator('input[name=reason]').press('Enter');
    await page.locator('#review-status.ok', { hasText: 'Rejected' }).waitFor();
    await a.waitFor({ state: 'detached' });
    await second.locator('#review-count', { hasText: /^1$/ }).waitFor();
    result.reject_seen_by_other_ms = Date.now() - t0;
    const { messages } = await ask({ op: 'inbox' });
    check(messages.some((m) => (m.body || '').includes(reason)), `the builder's inbox lacks the reason: ${JSON.stringify(messages)}`);
    const { content } = await ask({ op: 'file', path: 'src/auth/token.go' });
    check(!content.includes('86400'), `the rejected change was written: ${JSON.stringify(content)}`);
  }
  await second.close();

  // ---- a viewer reads proposals but has no Accept or Reject, and the
  // server refuses a viewer's accept.
  {
    const left = (await rest(page, 'GET', '/api/v1/reviews')).body.reviews;
    check(left.length === 1 && left[0].id === cookie.id, `pending after the decisions: ${JSON.stringify(left)}; want the stale cookie.go`);
    const { token: viewer } = await ask({ op: 'viewer' });
    await page.goto('about:blank');
    await page.goto(base + '/#token=' + encodeURIComponent(viewer));
    await page.locator('#who', { hasText: 'viewer' }).waitFor();
    await page.click('#tabs [data-view=reviews]');
    await article(page, cookie.id).locator('pre span.add', { hasText: '+const cookieName = "sid"' }).waitFor();
    check(await page.locator('#review-readonly').isVisible(), 'a viewer is not told who decides');
    check(await page.locator('#reviews button.accept, #reviews form.reject').count() === 0, 'a viewer sees Accept or Reject');
    refusing = true;
    const r = await rest(page, 'POST', `/api/v1/reviews/${encodeURIComponent(cookie.id)}/accept`);
    refusing = false;
    check(r.status === 403 && r.body && r.body.error && r.body.error.class === 'forbidden', `a viewer's accept answered ${JSON.stringify(r)}`);
  }
});
