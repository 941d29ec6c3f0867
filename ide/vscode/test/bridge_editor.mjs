// The editor side of the IDE bridge's end-to-end test: a real LSP client
// on Node's vscode-jsonrpc that spawns `coditect ide`, declares the
// bridge capability and answers `coditect/ide` requests from a small
// fixture workspace. Its answers come from plain text search over the
// workspace's files: it stands in for the editor's language providers,
// which are not Coditect's. Run from cmd/coditect's Go test:
//
//   node bridge_editor.mjs CODITECT_BINARY STORE_URL TENANT USER WORKSPACE SHARE
//
// It prints one line "ready" on stdout once the editor is announced, and
// one JSON line per request it answered; it shuts the server down and
// exits when its stdin closes. A request for the symbol "hang" is never
// answered (the deadline test): when the server cancels it
// ($/cancelRequest, which vscode-jsonrpc turns into the handler's
// cancellation token, as VS Code's language client does), it prints
// {"cancelled":KIND,"afterMs":MS} and fails the request.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as rpc from 'vscode-jsonrpc/node.js';

const [bin, store, tenant, user, ws, share] = process.argv.slice(2);
if (!ws) {
  console.error('usage: node bridge_editor.mjs CODITECT_BINARY STORE_URL TENANT USER WORKSPACE SHARE');
  process.exit(2);
}
const child = spawn(bin, ['ide', '--store', store, '--tenant', tenant, '--user', user], { stdio: ['pipe', 'pipe', 'pipe'] });
let stderr = '';
child.stderr.on('data', (d) => (stderr += d));
child.on('exit', (code) => {
  if (!shuttingDown) {
    console.error(`coditect ide exited (${code}) before the test ended\n${stderr}`);
    process.exit(1);
  }
});
let shuttingDown = false;

const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
conn.onUnhandledNotification(() => {});

const uri = (p) => pathToFileURL(p).href;
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const goFiles = () =>
  readdirSync(ws, { recursive: true })
    .map((f) => join(ws, f))
    .filter((f) => f.endsWith('.go') && statSync(f).isFile());
const lines = (f) => readFileSync(f, 'utf8').split('\n');
// Columns here are UTF-16 code units, as LSP's: JavaScript strings count them.
const range = (line, start, len) => ({ start: { line, character: start }, end: { line, character: start + len } });

// wordAt returns the identifier at an LSP position.
function wordAt(u, pos) {
  const text = lines(fileURLToPath(u))[pos.line] ?? '';
  let s = pos.character;
  let e = pos.character;
  while (s > 0 && /\w/.test(text[s - 1])) s--;
  while (e < text.length && /\w/.test(text[e])) e++;
  return text.slice(s, e);
}

// occurrences returns every whole-word occurrence of name.
function occurrences(name, files = goFiles()) {
  const out = [];
  const re = new RegExp(`\\b${name}\\b`, 'g');
  for (const f of files) {
    lines(f).forEach((text, i) => {
      for (const m of text.matchAll(re)) out.push({ uri: uri(f), range: range(i, m.index, name.length), text });
    });
  }
  return out;
}

const declared = (o, name) => new RegExp(`^(func|type|var|const)\\s+(\\(.*?\\)\\s*)?${name}\\b`).test(o.text.trim());

// waitFor waits until the files on disk hold the contents asked for (a
// real editor waits until its documents do).
async function waitFor(waits, deadline) {
  for (const w of waits ?? []) {
    for (;;) {
      let got = '';
      try {
        got = sha256(readFileSync(fileURLToPath(w.uri)));
      } catch {}
      if (got === w.sha256) break;
      if (Date.now() > deadline) throw new rpc.ResponseError(-32803, `${w.uri} never had the content asked for`, { class: 'unavailable' });
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const answered = [];
conn.onRequest('coditect/ide', async (p, token) => {
  const name = p.symbol || (p.uri && p.position ? wordAt(p.uri, p.position) : '');
  if (name === 'hang') {
    // Never answered, until the server cancels it.
    const asked = Date.now();
    return new Promise((_, reject) => {
      token.onCancellationRequested(() => {
        process.stdout.write(JSON.stringify({ cancelled: p.kind, afterMs: Date.now() - asked, timeoutMs: p.timeoutMs }) + '\n');
        reject(new rpc.ResponseError(-32800, 'cancelled', { class: 'unavailable' }));
      });
    });
  }
  let res;
  switch (p.kind) {
    case 'diagnostics': {
      await waitFor(p.waitFor, Date.now() + p.timeoutMs);
      const files = p.uri ? [fileURLToPath(p.uri)] : goFiles();
      const items = occurrences('undefinedThing', files).map((o) => ({ uri: o.uri, range: o.range, severity: 1, message: 'undefined: undefinedThing', source: 'compiler', code: 'UndeclaredName' }));
      res = { items };
      break;
    }
    case 'definition':
      res = { locations: occurrences(name).filter((o) => declared(o, name)).map(({ uri, range }) => ({ uri, range })) };
      break;
    case 'references': {
      const all = occurrences(name).map(({ uri, range }) => ({ uri, range }));
      res = { locations: all.slice(0, p.limit), more: Math.max(0, all.length - p.limit) };
      break;
    }
    case 'hover': {
      const d = occurrences(name).find((o) => declared(o, name));
      res = { contents: d ? '```go\n' + d.text.trim() + '\n```' : '' };
      break;
    }
    case 'symbols': {
      const files = p.uri ? [fileURLToPath(p.uri)] : goFiles();
      const symbols = [];
      for (const f of files) {
        lines(f).forEach((text, i) => {
          const m = /^(func|type)\s+(\w+)/.exec(text);
          if (m && (!p.query || m[2].toLowerCase().includes(p.query.toLowerCase()))) {
            symbols.push({ name: m[2], kind: m[1] === 'func' ? 12 : 23, uri: uri(f), range: range(i, 0, text.length) });
          }
        });
      }
      res = { symbols };
      break;
    }
    case 'context': {
      const main = join(ws, 'main.go');
      res = { editors: [{ uri: uri(main), visibleRanges: [range(0, 0, 0), range(9, 0, 0)] }], active: { uri: uri(main), selection: range(2, 5, 4), text: 'main' } };
      break;
    }
    case 'open':
      res = { shown: true };
      break;
    default:
      throw new rpc.ResponseError(-32602, `unknown kind ${p.kind}`, { class: 'invalid' });
  }
  answered.push(p.kind);
  process.stdout.write(JSON.stringify({ kind: p.kind, agent: p.agent, user: p.user, project: p.project, uri: p.uri ? relative(ws, fileURLToPath(p.uri)) : undefined, position: p.position, waitFor: p.waitFor?.length ?? 0 }) + '\n');
  return res;
});
conn.listen();

await conn.sendRequest('initialize', {
  processId: process.pid,
  clientInfo: { name: 'Visual Studio Code', version: '1.96-bridge-e2e' },
  rootUri: uri(ws),
  workspaceFolders: [{ uri: uri(ws), name: 'ws' }],
  capabilities: { experimental: { coditect: { bridge: { kinds: ['diagnostics', 'definition', 'references', 'symbols', 'hover', 'context', 'open'], share: share === 'share' } } } },
});
await conn.sendNotification('initialized', {});
await conn.sendRequest('workspace/executeCommand', { command: 'coditect.status' }); // initialized has applied
process.stdout.write('ready\n');

process.stdin.resume();
process.stdin.on('end', async () => {
  shuttingDown = true;
  try {
    await conn.sendRequest('shutdown');
    await conn.sendNotification('exit');
  } catch {}
  setTimeout(() => process.exit(0), 2000).unref();
  child.on('exit', () => process.exit(0));
});
