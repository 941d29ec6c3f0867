// Test of the VS Code extension's review UI (src/review.ts), run from
// cmd/coditect's Go test (TestReviewExtension) after `tsc` compiled the
// extension:
//
//   node review_handlers.mjs OUT_DIR CODITECT_BINARY STORE_URL WORKSPACE
//
// No VS Code runs here (VS Code's test harness downloads VS Code, which this
// machine cannot reach), so this file supplies the part of the `vscode` API
// review.ts uses: URIs, the content-provider registry, commands (recording
// vscode.diff, and opening its tabs as VS Code would), quick picks, input
// boxes and notifications answered by the script, and the tab groups. The
// review commands are the compiled ones, registered by the same
// registerReview call the extension makes, and they talk to a real
// `coditect ide` over vscode-jsonrpc; its coditect/event notifications go to
// reviewEvent as the extension's handler hands them.
//
// The Go test made two proposals under a review policy on src/auth/**
// (an edit of login.go, a new version of token.go) before starting this.
// Asked on stdout, one line each, it makes more: "propose" (the agent
// proposes src/auth/cookie.go) and "reject-elsewhere ID" (a person rejects
// that proposal with the CLI); it answers "ok" on stdin. The last stdout line
// is the JSON of the results.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import * as rpc from 'vscode-jsonrpc/node.js';

const [outDir, bin, store, ws] = process.argv.slice(2);
if (!ws) {
  console.error('usage: node review_handlers.mjs OUT_DIR CODITECT_BINARY STORE_URL WORKSPACE');
  process.exit(2);
}
let step = 'start';
const deadline = setTimeout(() => {
  console.error(`review_handlers: timed out at step "${step}"\n${stderr}`);
  process.exit(3);
}, 60_000);

// ---- the vscode API review.ts uses ----

class Uri {
  constructor(scheme, path, query) {
    this.scheme = scheme;
    this.authority = '';
    this.path = path;
    this.query = query;
    this.fragment = '';
  }
  static from(c) { return new Uri(c.scheme, c.path ?? '', c.query ?? ''); }
  toString() { return `${this.scheme}:${this.path}${this.query ? '?' + this.query : ''}`; }
}
class EventEmitter {
  listeners = [];
  event = (fn) => { this.listeners.push(fn); return { dispose() {} }; };
  fire(v) { for (const fn of this.listeners) fn(v); }
}
class TabInputText { constructor(uri) { this.uri = uri; } }
class TabInputTextDiff { constructor(original, modified) { this.original = original; this.modified = modified; } }

const providers = new Map();   // scheme -> TextDocumentContentProvider
const commands = new Map();    // id -> handler
const diffs = [];              // vscode.diff calls: {left, right, title}
const messages = [];           // {type, text, items}
const group = { tabs: [] };
let closed = [];
let messageWaiters = [];
let diffWaiters = [];
// waitDiff waits until the nth vscode.diff was opened.
function waitDiff(n) {
  return new Promise((resolveWait) => {
    const check = () => { if (diffs.length > n) { diffWaiters = diffWaiters.filter((w) => w !== check); resolveWait(diffs[n]); } };
    diffWaiters.push(check);
    check();
  });
}
// The script's answers to what the UI asks.
const answers = { pick: undefined, input: undefined, info: () => undefined };

function message(type, text, items) {
  const m = { type, text, items };
  messages.push(m);
  for (const w of messageWaiters) w();
  return Promise.resolve(type === 'info' ? answers.info(text, items) : undefined);
}
// waitMessage waits until a message of type matching re was shown.
function waitMessage(type, re) {
  return new Promise((resolveWait) => {
    const check = () => {
      const m = messages.find((x) => x.type === type && re.test(x.text));
      if (m) { messageWaiters = messageWaiters.filter((w) => w !== check); resolveWait(m); }
    };
    messageWaiters.push(check);
    check();
  });
}

const vscode = {
  Uri, EventEmitter, TabInputText, TabInputTextDiff,
  workspace: {
    registerTextDocumentContentProvider: (scheme, p) => { providers.set(scheme, p); return { dispose() {} }; },
  },
  commands: {
    registerCommand: (id, fn) => { commands.set(id, fn); return { dispose() {} }; },
    executeCommand: async (id, ...args) => {
      assert.equal(id, 'vscode.diff', `review.ts ran ${id}`);
      const [left, right, title] = args;
      diffs.push({ left, right, title });
      for (const w of diffWaiters) w();
      // VS Code opens the diff as a tab and makes its right side active.
      group.tabs.push({ label: title, input: new TabInputTextDiff(left, right) });
      vscode.window.activeTextEditor = { document: { uri: right } };
    },
  },
  window: {
    activeTextEditor: undefined,
    tabGroups: {
      get all() { return [group]; },
      close: async (tabs) => {
        closed.push(...tabs);
        group.tabs = group.tabs.filter((t) => !tabs.includes(t));
        vscode.window.activeTextEditor = undefined;
        return true;
      },
    },
    showInformationMessage: (text, ...items) => message('info', text, items),
    showErrorMessage: (text, ...items) => message('error', text, items),
    showQuickPick: async (items, opts) => answers.pick(await items, opts),
    showInputBox: async (opts) => answers.input(opts),
  },
};
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === 'vscode' ? vscode : load.call(this, request, ...rest);
};
const require = createRequire(import.meta.url);
const review = require(resolve(outDir, 'review.js'));

// ---- coditect ide, as the extension starts it ----

let stderr = '';
const child = spawn(bin, ['ide', '--store', store, '--tenant', 'rv', '--user', 'ada'], { stdio: ['pipe', 'pipe', 'pipe'] });
child.stderr.on('data', (d) => (stderr += d));
const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
conn.onNotification('coditect/event', (ev) => review.reviewEvent(ev));
conn.onNotification('window/showMessage', () => {});
conn.listen();
const execute = (command, arg) => conn.sendRequest('workspace/executeCommand', { command, arguments: arg ? [arg] : [] });
const context = { subscriptions: [] };
review.registerReview(context, execute);
for (const id of ['coditect.reviewChange', 'coditect.acceptChange', 'coditect.rejectChange']) assert.ok(commands.has(id), `${id} is not registered`);
const provider = providers.get(review.scheme);
assert.ok(provider, 'no content provider for the coditect-review scheme');

step = 'initialize';
await conn.sendRequest('initialize', { processId: process.pid, rootUri: pathToFileURL(ws).href, workspaceFolders: [{ uri: pathToFileURL(ws).href, name: 'ws' }], capabilities: {} });
await conn.sendNotification('initialized', {});

const replies = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(line) {
  process.stdout.write(line + '\n');
  const { value, done } = await replies.next();
  assert.ok(!done && value === 'ok', `the Go test answered ${value} to ${line}`);
}
const read = (rel) => readFileSync(join(ws, rel), 'utf8');
const result = {};

// ---- the pure helpers.
step = 'helpers';
assert.equal(review.diffTitle({ path: 'src/auth/login.go' }, 'builder (qwen2.5-coder-7b)'), 'login.go: builder (qwen2.5-coder-7b) proposes — Review');
assert.deepEqual(review.parseQuery('id=rv_1&side=after'), { id: 'rv_1', side: 'after' });
assert.equal(review.parseQuery('id=rv_1&side=sideways'), undefined);
assert.equal(review.reviewIdOf({ kind: 'review.proposed', attrs: { review: 'rv_9' } }), 'rv_9');
assert.deepEqual(review.pendingOf([{ id: 'rv_1', path: 'a', state: 'pending' }, { id: 'rv_2', path: 'b', state: 'accepted' }]).map((p) => p.id), ['rv_1']);

// ---- "Review Proposed Change…": a pick of the pending proposals, then the diff.
step = 'pick';
const loginBefore = read('src/auth/login.go');
let picked;
answers.pick = (items, opts) => {
  result.pick = { placeHolder: opts.placeHolder, items: items.map((i) => `${i.label} · ${i.description}`) };
  picked = items.find((i) => i.p.path === 'src/auth/login.go');
  return picked;
};
await commands.get('coditect.reviewChange')();
assert.deepEqual(result.pick.items, ['$(diff) src/auth/login.go · builder (qwen2.5-coder-7b) · edit', '$(diff) src/auth/token.go · builder (qwen2.5-coder-7b) · write']);
assert.equal(result.pick.placeHolder, '2 proposed changes wait for review');
const loginId = picked.p.id;
assert.equal(diffs.length, 1);
const d0 = diffs[0];
assert.equal(d0.title, 'login.go: builder (qwen2.5-coder-7b) proposes — Review');
assert.equal(d0.left.scheme, 'coditect-review');
assert.equal(d0.right.path, '/src/auth/login.go', 'the diff\'s path gives VS Code the language');
assert.equal(await provider.provideTextDocumentContent(d0.left), loginBefore);
const loginAfter = await provider.provideTextDocumentContent(d0.right);
assert.ok(loginAfter.includes('func Login(user, pass, next string) string'), `the after side is ${loginAfter}`);
assert.equal(read('src/auth/login.go'), loginBefore, 'showing a proposal wrote it');

// ---- Accept in the diff's title bar: written, the diff closed, said so.
step = 'accept';
await commands.get('coditect.acceptChange')(d0.right);
const accepted = await waitMessage('info', /^Coditect: accepted /);
assert.equal(accepted.text, 'Coditect: accepted builder\'s change to src/auth/login.go; it is written.');
assert.equal(read('src/auth/login.go'), loginAfter);
assert.equal(group.tabs.length, 0, 'the diff stayed open after the accept');
assert.equal(closed.length, 1);

// ---- a proposal whose file changed since: the conflict is said plainly.
step = 'conflict';
const tokenId = (await execute('coditect.review.list', {})).find((p) => p.path === 'src/auth/token.go').id;
writeFileSync(join(ws, 'src/auth/token.go'), 'package auth // changed by the person\n');
await commands.get('coditect.acceptChange')({ id: tokenId });
const conflict = await waitMessage('error', /^Coditect: cannot accept /);
assert.match(conflict.text, /^Coditect: cannot accept builder's change to src\/auth\/token\.go: the file changed since the agent proposed this \(conflict\)\./);
assert.equal(read('src/auth/token.go'), 'package auth // changed by the person\n');
result.conflict = conflict.text;

// ---- Reject: a reason is required; the agent is told.
step = 'reject';
answers.input = (opts) => {
  assert.equal(typeof opts.validateInput('  '), 'string', 'an empty reason was accepted');
  assert.equal(opts.validateInput('because'), undefined);
  assert.match(opts.prompt, /^Why reject builder's change to src\/auth\/token\.go\?/);
  return 'The person changed token.go meanwhile; redo it on top';
};
await commands.get('coditect.rejectChange')({ id: tokenId });
await waitMessage('info', /^Coditect: rejected builder's change to src\/auth\/token\.go; the agent was told why\.$/);
// Cancelling the input box rejects nothing.
answers.input = () => undefined;

// ---- a new proposal: a notification (no editor opens by itself); its
// Review button opens the diff.
step = 'proposed';
let review_clicked = false;
answers.info = (text, items) => {
  if (/ proposes a change to /.test(text)) { assert.deepEqual(items, ['Review']); review_clicked = true; return 'Review'; }
  return undefined;
};
const before = diffs.length;
await ask('propose');
const note = await waitMessage('info', /proposes a change to/);
assert.equal(note.text, 'Coditect: builder proposes a change to src/auth/cookie.go');
assert.ok(review_clicked);
step = 'proposed diff';
const d1 = await waitDiff(before);
assert.equal(d1.title, 'cookie.go: builder (qwen2.5-coder-7b) proposes — Review');
assert.equal(await provider.provideTextDocumentContent(d1.right), 'package auth\n\nconst cookieName = "sid"\n');
const cookieId = new URLSearchParams(d1.right.query).get('id');

// ---- decided elsewhere (the CLI): the open diff closes, and the human is told.
step = 'decided elsewhere';
await ask('reject-elsewhere ' + cookieId);
const elsewhere = await waitMessage('info', /elsewhere\.$/);
assert.equal(elsewhere.text, 'Coditect: the proposed change to src/auth/cookie.go was rejected by ada elsewhere.');
assert.equal(group.tabs.length, 0, 'the diff of a proposal decided elsewhere stayed open');

// ---- nothing left: the pick says so.
step = 'empty';
answers.pick = () => assert.fail('a pick was offered with nothing pending');
await commands.get('coditect.reviewChange')();
await waitMessage('info', /^Coditect: no proposed changes wait for review\.$/);

step = 'shutdown';
await conn.sendRequest('shutdown');
await conn.sendNotification('exit');
result.errors = messages.filter((m) => m.type === 'error').map((m) => m.text);
assert.deepEqual(result.errors, [conflict.text], 'errors other than the conflict were shown');
result.ids = { login: loginId, token: tokenId, cookie: cookieId };
clearTimeout(deadline);
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
