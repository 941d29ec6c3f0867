// The human's side of review before write, over `coditect ide` with Node's
// vscode-jsonrpc (the library VS Code's language client is built on). Run by
// TestReviewFlowEndToEnd:
//
//   node review_e2e.mjs VSCODE_DIR CODITECT_BINARY WORKSPACE accept|reject
//
// The store is CODITECT_STORE's. It initializes in WORKSPACE, prints
// "ready", waits for the coditect/event of kind review.proposed, lists and
// shows the proposal, prints "shown", waits for "decide" on stdin, then
// accepts it or rejects it with a reason, and
// prints one JSON line with what it saw before exiting 0 (non-zero on a
// failed assertion).
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [vscodeDir, bin, ws, mode] = process.argv.slice(2);
if (!mode) {
  console.error('usage: node review_e2e.mjs VSCODE_DIR CODITECT_BINARY WORKSPACE accept|reject');
  process.exit(2);
}
const rpc = createRequire(join(vscodeDir, 'package.json'))('vscode-jsonrpc/node');

let step = 'start';
let stderr = '';
const deadline = setTimeout(() => {
  console.error(`review e2e: timed out at step "${step}"\n${stderr}`);
  process.exit(3);
}, 90_000);

const child = spawn(bin, ['ide', '--tenant', 'default', '--user', 'bea'], { stdio: ['pipe', 'pipe', 'pipe'] });
child.stderr.on('data', (d) => (stderr += d));
const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
let proposed;
const proposedEvent = new Promise((resolve) => (proposed = resolve));
conn.onNotification('coditect/event', (ev) => {
  if (ev.kind === 'review.proposed') proposed(ev);
});
conn.onUnhandledNotification(() => {});
conn.listen();
const exec = (command, arg) => conn.sendRequest('workspace/executeCommand', { command, arguments: [arg] });

step = 'initialize';
const init = await conn.sendRequest('initialize', {
  processId: process.pid,
  clientInfo: { name: 'review-e2e', version: '1' },
  rootUri: pathToFileURL(ws).href,
  workspaceFolders: [{ uri: pathToFileURL(ws).href, name: 'ws' }],
  capabilities: {},
});
for (const c of ['coditect.review.list', 'coditect.review.show', 'coditect.review.accept', 'coditect.review.reject']) {
  assert.ok(init.capabilities.executeCommandProvider.commands.includes(c), c);
}
await conn.sendNotification('initialized', {});
await exec('coditect.status', {}); // answered after initialized applied: the feed follows the log
console.log('ready');

step = 'event';
const ev = await proposedEvent;
const id = ev.attrs.review;
assert.match(id, /^rv_/);
assert.equal(ev.path, 'src/auth/login.go');

step = 'list';
const list = await exec('coditect.review.list', {});
const item = list.find((r) => r.id === id);
assert.ok(item, JSON.stringify(list));
assert.equal(item.kind, 'edit');
assert.equal(item.path, 'src/auth/login.go');
assert.match(item.diff, /\+.*return true/);

step = 'show';
const shown = await exec('coditect.review.show', { id });
assert.equal(shown.uri, pathToFileURL(join(ws, 'src', 'auth', 'login.go')).href);
assert.match(shown.before, /return false/);
assert.match(shown.after, /return true/);

// The test checks what holds while the proposal is pending, then says
// "decide" on stdin.
console.log('shown');
step = 'waiting for "decide"';
await new Promise((resolve) => {
  let buf = '';
  process.stdin.on('data', (d) => {
    buf += d;
    if (buf.includes('decide\n')) resolve();
  });
});
process.stdin.pause();

step = mode;
let decided;
if (mode === 'accept') {
  decided = await exec('coditect.review.accept', { id });
  assert.equal(decided.state, 'accepted');
} else {
  await assert.rejects(exec('coditect.review.reject', { id }), (e) => e.code === -32602 || /reason/.test(e.message));
  decided = await exec('coditect.review.reject', { id, reason: 'use the session helper instead' });
  assert.equal(decided.state, 'rejected');
}
assert.equal(decided.decided_by, 'bea');
const after = await exec('coditect.review.list', {});
assert.ok(!after.some((r) => r.id === id), 'the decided proposal is still pending');

step = 'shutdown';
await conn.sendRequest('shutdown');
await conn.sendNotification('exit');
assert.equal(await exited, 0);
clearTimeout(deadline);
console.log(JSON.stringify({ id, state: decided.state, agent: item.agent, kind: item.kind }));
process.exit(0);
