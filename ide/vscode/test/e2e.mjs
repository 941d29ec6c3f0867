// End-to-end test of `coditect ide` with Node's vscode-jsonrpc, the
// JSON-RPC library VS Code's language client is built on. Run from
// cmd/coditect's Go test:
//
//   node e2e.mjs CODITECT_BINARY STORE_URL WORKSPACE
//
// It spawns the server as an editor does, drives the lifecycle, incremental
// sync, commands, hover, code lens, the coditect/event notifications,
// cancellation, a 20 MB message and malformed frames written straight to
// the server's stdin, then shuts down and checks the exit status. It prints
// one JSON line of results on success and exits non-zero on a failure.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as rpc from 'vscode-jsonrpc/node.js';

const [bin, store, ws] = process.argv.slice(2);
if (!ws) {
  console.error('usage: node e2e.mjs CODITECT_BINARY STORE_URL WORKSPACE');
  process.exit(2);
}
let step = 'start';
const deadline = setTimeout(() => {
  console.error(`e2e: timed out at step "${step}"\n${stderr}`);
  process.exit(3);
}, 60_000);

const child = spawn(bin, ['ide', '--store', store, '--tenant', 'node', '--user', 'ada', '--max-message', String(32 << 20)], {
  stdio: ['pipe', 'pipe', 'pipe'],
});
let stderr = '';
child.stderr.on('data', (d) => (stderr += d));
const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));

const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
const events = [];
let eventWaiters = [];
conn.onNotification('coditect/event', (ev) => {
  events.push(ev);
  eventWaiters = eventWaiters.filter((w) => !w(ev));
});
// Errors answering malformed frames carry id null: vscode-jsonrpc reports
// them here.
const nullIdErrors = [];
conn.onUnhandledNotification(() => {});
conn.onError(([err]) => nullIdErrors.push(String(err && err.message)));
conn.listen();

const waitEvent = (pred) =>
  new Promise((resolve) => {
    const hit = events.find(pred);
    if (hit) return resolve(hit);
    eventWaiters.push((ev) => (pred(ev) ? (resolve(ev), true) : false));
  });

const uri = (p) => pathToFileURL(p).href;
const sha = (s) => 'sha256:' + createHash('sha256').update(s).digest('hex');
const results = {};

step = 'lifecycle';
// Lifecycle: a request before initialize is refused.
await assert.rejects(conn.sendRequest('textDocument/hover', {}), (e) => e.code === -32002);
const init = await conn.sendRequest('initialize', {
  processId: process.pid,
  clientInfo: { name: 'vscode-jsonrpc-e2e', version: '8' },
  rootUri: uri(ws),
  workspaceFolders: [{ uri: uri(ws), name: 'ws' }],
  capabilities: {},
});
assert.equal(init.capabilities.textDocumentSync.change, 2);
assert.ok(init.capabilities.executeCommandProvider.commands.includes('coditect.dashboard'));
await conn.sendNotification('initialized', {});
results.initialized = true;

step = 'sync';
// Incremental sync; the opened event comes back for this workspace.
const file = join(ws, 'src', 'app.ts');
mkdirSync(join(ws, 'src'), { recursive: true });
writeFileSync(file, 'const a = 1;\n');
await conn.sendNotification('textDocument/didOpen', { textDocument: { uri: uri(file), languageId: 'typescript', version: 1, text: 'const a = 1;\n' } });
// Events name the workspace's project and the path relative to its root
// (the absolute path in attrs.abs).
const opened = await waitEvent((ev) => ev.kind === 'ide.opened' && ev.attrs?.abs === file);
assert.equal(opened.path, 'src/app.ts');
assert.match(opened.project, /^pr_/);
let version = 1;
const typed = 'export ';
for (const [i, ch] of [...typed].entries()) {
  await conn.sendNotification('textDocument/didChange', {
    textDocument: { uri: uri(file), version: ++version },
    contentChanges: [{ range: { start: { line: 0, character: i }, end: { line: 0, character: i } }, text: ch }],
  });
}
await conn.sendNotification('textDocument/didChange', {
  textDocument: { uri: uri(file), version: ++version },
  contentChanges: [{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, text: '// ✓ 😀\n' }],
});
let status = await conn.sendRequest('workspace/executeCommand', { command: 'coditect.status' });
assert.equal(status.unsaved, 1, 'one dirty buffer');
const text = 'export const a = 1;\n// ✓ 😀\n';
await conn.sendNotification('textDocument/willSave', { textDocument: { uri: uri(file) }, reason: 1 });
writeFileSync(file, text);
await conn.sendNotification('textDocument/didSave', { textDocument: { uri: uri(file) } });
const saved = await waitEvent((ev) => ev.kind === 'ide.saved' && ev.attrs?.abs === file);
assert.equal(saved.attrs.hash, sha(text), 'the server tracked the buffer exactly');
status = await conn.sendRequest('workspace/executeCommand', { command: 'coditect.status' });
assert.equal(status.unsaved, 0);
results.sync = true;

step = 'commands';
// Commands, hover, code lens.
const session = await conn.sendRequest('workspace/executeCommand', { command: 'coditect.session.start', arguments: [{ title: 'node e2e' }] });
assert.equal(session.workspace, ws);
assert.equal(session.project, opened.project, 'the session is in the workspace\'s project');
const history = await conn.sendRequest('workspace/executeCommand', { command: 'coditect.file.history', arguments: [{ uri: uri(file) }] });
assert.equal(history.events[0].kind, 'ide.saved');
const hover = await conn.sendRequest('textDocument/hover', { textDocument: { uri: uri(file) }, position: { line: 0, character: 0 } });
assert.match(hover.contents.value, /last changed by \*\*ada\*\* \(human\)/);
const lenses = await conn.sendRequest('textDocument/codeLens', { textDocument: { uri: uri(file) } });
assert.match(lenses[0].command.title, /ada \(human\)/);
// A task from a selection quotes path:lines and the selected text.
const created = await conn.sendRequest('workspace/executeCommand', {
  command: 'coditect.task.create',
  arguments: [{ title: 'Check the export', uri: uri(file), range: { start: { line: 0, character: 0 }, end: { line: 0, character: 6 } } }],
});
assert.equal(created.title, 'Check the export');
assert.equal(created.project, opened.project, 'the task is in the file\'s project');
assert.match(created.description, /^src\/app\.ts:1\n```\nexport\n```$/);
const agents = await conn.sendRequest('workspace/executeCommand', { command: 'coditect.agents' });
assert.ok(Array.isArray(agents.agents));
const dash = await conn.sendRequest('workspace/executeCommand', { command: 'coditect.dashboard' });
assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{24}\/#token=cdt_/);
results.dashboard = dash.url.replace(/#token=.*/, '#token=…');
const page = await fetch(dash.url.replace(/#.*/, ''));
assert.equal(page.status, 200);
assert.equal((await fetch(new URL('/', dash.url))).status, 404, 'the page is only behind its secret path');
results.commands = true;

step = 'errors';
// Errors: unknown method, bad params.
await assert.rejects(conn.sendRequest('textDocument/definition', {}), (e) => e.code === -32601);
await assert.rejects(conn.sendRequest('textDocument/hover', { textDocument: 'x' }), (e) => e.code === -32602);
await assert.rejects(conn.sendRequest('workspace/executeCommand', { command: 42 }), (e) => e.code === -32602);

step = 'cancellation';
// Cancellation: the request ends either answered or RequestCancelled, and
// the server goes on.
const source = new rpc.CancellationTokenSource();
const pending = conn.sendRequest('workspace/executeCommand', { command: 'coditect.file.history', arguments: [{ uri: uri(file) }] }, source.token);
source.cancel();
try {
  await pending;
  results.cancel = 'answered first';
} catch (e) {
  assert.equal(e.code, -32800);
  results.cancel = 'cancelled';
}

step = '20 MB message';
// A 20 MB message.
const big = join(ws, 'big.txt');
const line = 'x'.repeat(99) + '\n';
const bigText = line.repeat(200_000);
writeFileSync(big, bigText);
await conn.sendNotification('textDocument/didOpen', { textDocument: { uri: uri(big), languageId: 'plaintext', version: 1, text: bigText } });
await conn.sendNotification('textDocument/didChange', {
  textDocument: { uri: uri(big), version: 2 },
  contentChanges: [{ range: { start: { line: 199_999, character: 99 }, end: { line: 199_999, character: 99 } }, text: '!' }],
});
await conn.sendNotification('textDocument/didSave', { textDocument: { uri: uri(big) } });
const bigSaved = await waitEvent((ev) => ev.kind === 'ide.saved' && ev.attrs?.abs === big);
assert.equal(bigSaved.attrs.hash, sha(bigText.slice(0, -1) + '!\n'));
assert.equal(bigSaved.attrs.bytes, bigText.length + 1);
await conn.sendNotification('textDocument/didClose', { textDocument: { uri: uri(big) } });
results.bigMessage = bigText.length;

step = 'malformed frames';
// Malformed frames straight onto the server's stdin, between messages.
for (const junk of [
  'Content-Length: 5\r\n\r\n{oops',
  'Content-Length: nope\r\n\r\n',
  'Content-Length: 2\r\n\r\n[]',
  'Content-Length: 38\r\n\r\n{"jsonrpc":"2.0","id":{},"method":"x"}',
]) {
  await new Promise((resolve) => child.stdin.write(junk, resolve));
}
status = await conn.sendRequest('workspace/executeCommand', { command: 'coditect.status' });
assert.equal(status.user, 'ada', 'the server survived malformed frames');
results.malformed = nullIdErrors.length;

step = 'shutdown';
// Shutdown (twice: idempotent), exit, status 0.
await conn.sendRequest('shutdown');
await conn.sendRequest('shutdown');
await assert.rejects(conn.sendRequest('textDocument/hover', {}), (e) => e.code === -32600);
await conn.sendNotification('exit');
const code = await exited;
assert.equal(code, 0, 'exit status after shutdown\n' + stderr);
results.exit = code;
results.events = events.length;
clearTimeout(deadline);
conn.dispose();
console.log(JSON.stringify(results));
