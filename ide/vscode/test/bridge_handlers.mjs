// Test of the VS Code extension's IDE-bridge handlers (src/bridge.ts), run
// from cmd/coditect's Go test after `tsc` compiled the extension:
//
//   node bridge_handlers.mjs OUT_DIR [CODITECT_BINARY STORE_URL]
//
// No VS Code runs here: VS Code's own test harness downloads VS Code, which
// this machine cannot reach. So this file supplies the `vscode` API the
// handlers use (URIs, positions, documents, editors, notifications, settings,
// diagnostics, file watchers on the real file system) and language providers
// that answer from a fixture workspace (test/fixtures/bridge, a small Go
// module, copied to a temporary directory), the way a language server would
// through `vscode.execute…Provider`. The handlers are the compiled ones;
// they answer `coditect/ide` requests over a real vscode-jsonrpc connection,
// registered by the same registerBridge call the extension makes.
//
// With a coditect binary and store it then starts `coditect ide`, declares
// the capability in `initialize` as the extension does and answers the
// server's requests until its stdin closes (the Go test drives the agent
// side); it prints "ready <workspace>" once initialized.
//
// It prints one JSON line of results on success and exits non-zero on a failure.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import * as rpc from 'vscode-jsonrpc/node.js';

const [outDir, bin, store] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: node bridge_handlers.mjs OUT_DIR [CODITECT_BINARY STORE_URL]');
  process.exit(2);
}
const require = createRequire(import.meta.url);
const bridge = require(resolve(outDir, 'bridge.js'));
let step = 'start';
const deadline = setTimeout(() => {
  console.error(`bridge_handlers: timed out at step "${step}"`);
  process.exit(3);
}, 60_000);

// ---- the vscode API ----

class Emitter {
  listeners = new Set();
  added = [];
  event = (fn) => {
    this.listeners.add(fn);
    for (const w of this.added.splice(0)) w();
    return { dispose: () => this.listeners.delete(fn) };
  };
  fire(e) {
    for (const fn of [...this.listeners]) fn(e);
  }
  /** Resolves when the next listener subscribes. */
  nextListener() {
    return new Promise((r) => this.added.push(r));
  }
  /** Resolves with the next event that satisfies ok. */
  next(ok = () => true) {
    return new Promise((r) => {
      const d = this.event((e) => ok(e) && (d.dispose(), r(e)));
    });
  }
}

// vscode.Uri: file URIs only need what the handlers use; like VS Code's,
// parse does not resolve `..`.
class Uri {
  constructor(scheme, path) {
    this.scheme = scheme;
    this.path = path;
  }
  get fsPath() {
    return this.path;
  }
  static file(p) {
    return new Uri('file', p);
  }
  static parse(s, strict) {
    const m = /^([a-zA-Z][\w+.-]*):(?:\/\/([^/?#]*))?([^?#]*)/.exec(s);
    if (!m) {
      if (strict) throw new Error(`[UriError]: Scheme is missing: {scheme: "", path: "${s}"}`);
      return new Uri('file', s);
    }
    return new Uri(m[1], decodeURIComponent(m[3] || '/'));
  }
  toString() {
    return `${this.scheme}://${this.path.split('/').map(encodeURIComponent).join('/')}`;
  }
}
class Position {
  constructor(line, character) {
    this.line = line;
    this.character = character;
  }
}
class Range {
  constructor(a, b, c, d) {
    [this.start, this.end] = typeof a === 'number' ? [new Position(a, b), new Position(c, d)] : [a, b];
  }
  get isEmpty() {
    return this.start.line === this.end.line && this.start.character === this.end.character;
  }
}
class Location {
  constructor(uri, range) {
    this.uri = uri;
    this.range = range;
  }
}
class RelativePattern {
  constructor(base, pattern) {
    this.baseUri = base instanceof Uri ? base : base.uri;
    this.pattern = pattern;
  }
}
class MarkdownString {
  constructor(value) {
    this.value = value;
  }
}

class TextDocument {
  constructor(uri, text) {
    this.uri = uri;
    this.text = text;
    this.version = 1;
  }
  getText(range) {
    return range ? this.text.slice(this.offsetAt(range.start), this.offsetAt(range.end)) : this.text;
  }
  offsetAt(p) {
    const lines = this.text.split('\n');
    let off = 0;
    for (let i = 0; i < p.line && i < lines.length; i++) off += lines[i].length + 1;
    return off + Math.min(p.character, (lines[p.line] ?? '').length);
  }
  positionAt(off) {
    const before = this.text.slice(0, off).split('\n');
    return new Position(before.length - 1, before[before.length - 1].length);
  }
}

// vscode.SymbolKind and DiagnosticSeverity as VS Code numbers them (LSP's less one).
const SK = { Method: 5, Function: 11, Struct: 22 };
const DS = { Error: 0, Warning: 1, Information: 2, Hint: 3 };

/** The API over workspace folder ws, with a fixture language server for its .go files. */
function makeVscode(ws, elsewhere) {
  const ev = {
    config: new Emitter(),
    change: new Emitter(),
    open: new Emitter(),
    close: new Emitter(),
    save: new Emitter(),
    diagnostics: new Emitter(),
    watch: new Emitter(),
    read: new Emitter(), // the handlers looked at the documents or read a file
  };
  const settings = new Map([
    ['coditect.bridge.enabled', true],
    ['coditect.bridge.share', false],
    ['coditect.bridge.shareContext', true],
  ]);
  const docs = [];
  const diags = new Map(); // uri string -> [Uri, Diagnostic[]]
  const shown = []; // notifications: {text, items, click}
  const opened = []; // showTextDocument calls
  const h = { ev, settings, docs, diags, shown, opened, hang: false, watchers: 0 };

  const readDoc = (uri) => docs.find((d) => d.uri.toString() === uri.toString()) ?? new TextDocument(uri, fs.readFileSync(uri.fsPath, 'utf8'));
  const goFiles = () =>
    fs
      .readdirSync(ws, { recursive: true })
      .filter((f) => f.endsWith('.go'))
      .sort()
      .map((f) => Uri.file(join(ws, f)));

  // The fixture language server: declarations by regular expression.
  const decls = (uri) => {
    const doc = readDoc(uri);
    const lines = doc.text.split('\n');
    const out = [];
    lines.forEach((line, i) => {
      let m;
      let name, kind, container, col;
      if ((m = /^type (\w+) struct/.exec(line))) [name, kind, col] = [m[1], SK.Struct, 5];
      else if ((m = /^func \((\w+) (\w+)\) (\w+)\(/.exec(line))) [name, kind, container, col] = [m[3], SK.Method, m[2], line.indexOf(m[3] + '(')];
      else if ((m = /^func (\w+)\(/.exec(line))) [name, kind, col] = [m[1], SK.Function, 5];
      else return;
      let end = i;
      while (end < lines.length && lines[end] !== '}') end++;
      out.push({
        name,
        kind,
        container,
        uri,
        line: lines[i],
        range: new Range(i, 0, end, 1),
        selectionRange: new Range(i, col, i, col + name.length),
      });
    });
    return out;
  };
  const wordAt = (uri, p) => {
    const line = readDoc(uri).text.split('\n')[p.line] ?? '';
    for (const m of line.matchAll(/\w+/g)) if (m.index <= p.character && p.character <= m.index + m[0].length) return m[0];
    return '';
  };
  const allDecls = () => goFiles().flatMap(decls);
  const providers = {
    'vscode.executeDefinitionProvider': (uri, p) => {
      const w = wordAt(uri, p);
      // The standard library's files are outside the workspace.
      if (w === 'Println') return [new Location(Uri.file(join(elsewhere, 'fmt', 'print.go')), new Range(272, 5, 272, 12))];
      return allDecls()
        .filter((d) => d.name === w)
        .map((d) =>
          // Declarations in the same file as Locations, others as LocationLinks.
          d.uri.toString() === uri.toString()
            ? new Location(d.uri, d.selectionRange)
            : { originSelectionRange: new Range(p, p), targetUri: d.uri, targetRange: d.range, targetSelectionRange: d.selectionRange },
        );
    },
    'vscode.executeReferenceProvider': (uri, p) => {
      const w = wordAt(uri, p);
      if (!w) return [];
      return goFiles().flatMap((u) =>
        readDoc(u)
          .text.split('\n')
          .flatMap((line, i) => [...line.matchAll(new RegExp(`\\b${w}\\b`, 'g'))].map((m) => new Location(u, new Range(i, m.index, i, m.index + w.length)))),
      );
    },
    'vscode.executeWorkspaceSymbolProvider': (query) =>
      allDecls()
        .filter((d) => d.name.toLowerCase().includes(String(query).toLowerCase()))
        .map((d) => ({ name: d.name, kind: d.kind, containerName: d.container ?? '', location: new Location(d.uri, d.range) })),
    'vscode.executeDocumentSymbolProvider': (uri) => {
      const ds = decls(uri);
      const sym = (d) => ({ name: d.name, detail: '', kind: d.kind, range: d.range, selectionRange: d.selectionRange, children: [] });
      const types = new Map(ds.filter((d) => d.kind === SK.Struct).map((d) => [d.name, sym(d)]));
      const top = [...types.values()];
      for (const d of ds) {
        if (d.kind === SK.Method && types.has(d.container)) types.get(d.container).children.push(sym(d));
        else if (d.kind !== SK.Struct) top.push(sym(d));
      }
      return top;
    },
    'vscode.executeHoverProvider': (uri, p) => {
      if (h.hang) return new Promise(() => {});
      const d = allDecls().find((x) => x.name === wordAt(uri, p));
      if (!d) return [];
      return [{ contents: [new MarkdownString('```go\n' + d.line.replace(/ \{$/, '') + '\n```'), { language: 'go', value: `// ${d.name} is declared in ${basename(d.uri.fsPath)}` }, ''] }];
    },
  };

  // Diagnostics as the fixture language server publishes them, a little
  // after each change (as real servers debounce).
  const analyse = (uri) => {
    const ds = [];
    readDoc(uri)
      .text.split('\n')
      .forEach((line, i) => {
        for (const m of line.matchAll(/\bundef\w*/g)) {
          ds.push({ range: new Range(i, m.index, i, m.index + m[0].length), severity: DS.Error, message: `undefined: ${m[0]}`, source: 'compiler', code: { value: 'UndeclaredName', target: Uri.parse('https://pkg.go.dev/x') } });
        }
        const t = line.indexOf('TODO');
        if (t >= 0) ds.push({ range: new Range(i, t, i, t + 4), severity: DS.Information, message: 'a TODO', source: 'lint', code: 'todo' });
      });
    diags.set(uri.toString(), [uri, ds]);
    ev.diagnostics.fire({ uris: [uri] });
  };
  const publishSoon = (uri) => setTimeout(() => analyse(uri), 150);

  const watcher = (pattern, ignoreCreate, ignoreChange) => {
    const change = new Emitter();
    const create = new Emitter();
    const base = pattern.baseUri.fsPath;
    const w = fs.watch(base, { recursive: pattern.pattern.includes('**') }, (kind, name) => {
      if (!name) return;
      const full = join(base, name);
      const ok = pattern.pattern === '**/*.go' ? full.endsWith('.go') : name === pattern.pattern;
      if (!ok) return;
      const e = Uri.file(full);
      if (kind === 'rename' && fs.existsSync(full)) !ignoreCreate && create.fire(e);
      else if (kind === 'change') !ignoreChange && change.fire(e);
    });
    h.watchers++;
    ev.watch.fire(pattern);
    return {
      onDidChange: change.event,
      onDidCreate: create.event,
      onDidDelete: new Emitter().event,
      dispose: () => {
        w.close();
        h.watchers--;
      },
    };
  };

  const window = {
    visibleTextEditors: [],
    activeTextEditor: undefined,
    showInformationMessage(text, ...items) {
      return new Promise((resolve) => shown.push({ text, items, click: resolve }));
    },
    showErrorMessage(text) {
      shown.push({ text, error: true });
      return Promise.resolve(undefined);
    },
    async showTextDocument(uri, options) {
      opened.push({ uri: uri.toString(), options });
      return {};
    },
  };
  const vscode = {
    Uri,
    Position,
    Range,
    RelativePattern,
    window,
    commands: {
      async executeCommand(cmd, ...args) {
        const p = providers[cmd];
        if (!p) throw new Error(`command '${cmd}' not found`);
        return p(...args);
      },
    },
    languages: {
      onDidChangeDiagnostics: ev.diagnostics.event,
      getDiagnostics(uri) {
        if (uri) return diags.get(uri.toString())?.[1] ?? [];
        return [...diags.values()];
      },
    },
    workspace: {
      workspaceFolders: [{ uri: Uri.file(ws), name: basename(ws), index: 0 }],
      get textDocuments() {
        setImmediate(() => ev.read.fire('documents'));
        return docs;
      },
      getConfiguration(section) {
        return { get: (key, dflt) => (settings.has(`${section}.${key}`) ? settings.get(`${section}.${key}`) : dflt) };
      },
      onDidChangeConfiguration: ev.config.event,
      onDidChangeTextDocument: ev.change.event,
      onDidOpenTextDocument: ev.open.event,
      onDidCloseTextDocument: ev.close.event,
      onDidSaveTextDocument: ev.save.event,
      createFileSystemWatcher: watcher,
      asRelativePath(u) {
        const p = typeof u === 'string' ? u : u.fsPath;
        const rel = relative(ws, p);
        return rel.startsWith('..') ? p : rel.split(sep).join('/');
      },
      async openTextDocument(uri) {
        return readDoc(uri);
      },
      fs: {
        async readFile(uri) {
          try {
            return await fs.promises.readFile(uri.fsPath);
          } finally {
            setImmediate(() => ev.read.fire(uri.toString()));
          }
        },
        async stat(uri) {
          const st = await fs.promises.stat(uri.fsPath);
          return { type: 1, ctime: st.ctimeMs, mtime: st.mtimeMs, size: st.size };
        },
      },
    },
  };

  // Harness controls: what the human and the language server do.
  Object.assign(h, {
    vscode,
    setSetting(key, value) {
      settings.set(key, value);
      ev.config.fire({ affectsConfiguration: (s) => key === s || key.startsWith(s + '.') });
    },
    openDoc(uri, { active = false, selection } = {}) {
      const doc = readDoc(uri);
      if (!docs.includes(doc)) docs.push(doc);
      const editor = { document: doc, selection: selection ?? new Range(0, 0, 0, 0), visibleRanges: [new Range(0, 0, 20, 0)] };
      window.visibleTextEditors.push(editor);
      if (active) window.activeTextEditor = editor;
      ev.open.fire(doc);
      return doc;
    },
    // The human types (or the editor reloads the file): the text changes, the server re-analyses.
    editDoc(doc, text) {
      doc.text = text;
      doc.version++;
      ev.change.fire({ document: doc, contentChanges: [{ text }] });
      publishSoon(doc.uri);
    },
    analyseAll() {
      for (const u of goFiles()) analyse(u);
    },
    publishSoon,
  });
  // The server also sees files change on disk.
  const serverWatch = watcher(new RelativePattern(Uri.file(ws), '**/*.go'), false, false);
  serverWatch.onDidChange((u) => publishSoon(u));
  serverWatch.onDidCreate((u) => publishSoon(u));
  h.watchers = 0;
  return h;
}

// ---- the fixture workspace ----

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'bridge');
const root = fs.realpathSync(fs.mkdtempSync(join(tmpdir(), 'bridge-')));
const ws = join(root, 'ws');
const elsewhere = join(root, 'elsewhere');
fs.cpSync(fixture, ws, { recursive: true });
fs.mkdirSync(join(elsewhere, 'fmt'), { recursive: true });
fs.writeFileSync(join(elsewhere, 'fmt', 'print.go'), 'package fmt\n');
fs.writeFileSync(join(elsewhere, 'secret.go'), 'package secret\n');
fs.symlinkSync(join(elsewhere, 'secret.go'), join(ws, 'link.go'));
const file = (rel) => Uri.file(join(ws, rel));
const uri = (rel) => file(rel).toString();
const sha = (s) => createHash('sha256').update(s).digest('hex');

const h = makeVscode(ws, elsewhere);
const { vscode } = h;
h.analyseAll();
// A diagnostic of a file outside the workspace (another folder's server).
h.diags.set(Uri.file(join(elsewhere, 'secret.go')).toString(), [Uri.file(join(elsewhere, 'secret.go')), [{ range: new Range(0, 0, 0, 1), severity: DS.Error, message: 'secret' }]]);
const main = h.openDoc(file('main.go'), { active: true, selection: new Range(9, 1, 10, 22) });

// The editor's side and the "server's" side of one vscode-jsonrpc connection.
const a = new PassThrough();
const b = new PassThrough();
const editor = rpc.createMessageConnection(new rpc.StreamMessageReader(a), new rpc.StreamMessageWriter(b));
const server = rpc.createMessageConnection(new rpc.StreamMessageReader(b), new rpc.StreamMessageWriter(a));
const context = { subscriptions: [] };
const timing = { quietMs: 100, firstDiagnosticsMs: 5000, marginMs: 100 };
const reg = bridge.registerBridge(vscode, editor, context, { ResponseError: rpc.ResponseError, timing });
editor.listen();
server.listen();

const base = { id: 'rq_1', agent: 'builder (qwen2.5-coder-7b)', user: 'ada', project: 'pr_1', limit: 50, timeoutMs: 10_000 };
const ask = (p) => server.sendRequest('coditect/ide', { ...base, ...p });
const refused = (p, code, cls, re) =>
  assert.rejects(ask(p), (e) => {
    assert.equal(e.code, code, e.message);
    if (cls) assert.equal(e.data?.class, cls, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
const results = {};

step = 'capability';
assert.deepEqual(bridge.bridgeCapability(vscode), { kinds: ['diagnostics', 'definition', 'references', 'symbols', 'hover', 'context', 'open'], share: false });
const sent = new Promise((r) => server.onNotification('coditect/bridgeSettings', r));
h.setSetting('coditect.bridge.share', true);
assert.deepEqual(await sent, { share: true });
assert.equal(bridge.bridgeCapability(vscode).share, true);
// Off: no kinds (no capability would make the server answer some kinds itself, as for Neovim).
h.settings.set('coditect.bridge.enabled', false);
assert.deepEqual(bridge.bridgeCapability(vscode), { kinds: [], share: false });
const offFeatures = [];
let offHandlers = 0;
bridge.registerBridge(vscode, { registerFeature: (f) => offFeatures.push(f), onRequest: () => (offHandlers++, { dispose() {} }), sendNotification: async () => {} }, { subscriptions: [] });
const offCaps = {};
offFeatures[0].fillClientCapabilities(offCaps);
assert.deepEqual(offCaps, { experimental: { coditect: { bridge: { kinds: [], share: false } } } });
assert.equal(offHandlers, 0, 'off: no request handler');
h.settings.set('coditect.bridge.enabled', true);
// The extension's restart-or-not decision.
assert.equal(bridge.bridgeSettingsOnly({ affectsConfiguration: (s) => s === 'coditect.bridge.share' }), true);
assert.equal(bridge.bridgeSettingsOnly({ affectsConfiguration: (s) => s === 'coditect.path' }), false);
// A LanguageClient gets the capability through its static feature.
const features = [];
const fakeClient = { registerFeature: (f) => features.push(f), onRequest: () => ({ dispose() {} }), sendNotification: async () => {} };
const reg2 = bridge.registerBridge(vscode, fakeClient, { subscriptions: [] }, { ResponseError: rpc.ResponseError });
const caps = { experimental: { other: 1 } };
features[0].fillClientCapabilities(caps);
assert.deepEqual(caps.experimental, { other: 1, coditect: { bridge: { kinds: bridge.bridgeKinds.slice(), share: true } } });
reg2.dispose();
// registerBridge replaced the first registration: register the connection's again.
const reg3 = bridge.registerBridge(vscode, editor, context, { ResponseError: rpc.ResponseError, timing });
results.capability = true;

step = 'diagnostics';
let r = await ask({ kind: 'diagnostics' });
assert.deepEqual(r, {
  items: [{ uri: uri('main.go'), range: { start: { line: 11, character: 4 }, end: { line: 11, character: 8 } }, severity: 3, message: 'a TODO', source: 'lint', code: 'todo' }],
});
// An error, then the project's diagnostics bounded, errors first.
h.editDoc(main, main.text.replace('c.Area()', 'undefA(undefB)'));
await new Promise((r) => h.ev.diagnostics.event(r));
r = await ask({ kind: 'diagnostics', limit: 2 });
assert.deepEqual(
  r.items.map((d) => [d.severity, d.message, d.code]),
  [
    [1, 'undefined: undefA', 'UndeclaredName'],
    [1, 'undefined: undefB', 'UndeclaredName'],
  ],
);
assert.equal(r.more, 1);
r = await ask({ kind: 'diagnostics', uri: uri('shapes/shapes.go') });
assert.deepEqual(r, { items: [] });
results.diagnostics = true;

step = 'waitFor: the open document';
// The agent wrote main.go; the editor's copy changes later. The answer
// waits for that content, then for the server's diagnostics of it.
let fixed = main.text.replace('undefA(undefB)', 'c.Area()');
let answered = false;
let edited = false;
// The edit comes once the handler has looked at the document (and found
// the old text) and is waiting.
let looked = h.ev.read.next();
let pending = ask({ kind: 'diagnostics', uri: uri('main.go'), waitFor: [{ uri: uri('main.go'), sha256: 'sha256:' + sha(fixed) }] }).then((x) => {
  answered = true;
  assert.ok(edited, 'answered before the editor saw the write');
  return x;
});
await looked;
assert.equal(answered, false);
edited = true;
h.editDoc(main, fixed);
r = await pending;
assert.deepEqual(
  r.items.map((d) => d.message),
  ['a TODO'],
  'the diagnostics of the new content, not the old',
);
results.waitForDocument = true;

step = 'waitFor: the file on disk';
// shapes.go is not open: the file on disk counts.
const shapes = join(ws, 'shapes', 'shapes.go');
const broken = fs.readFileSync(shapes, 'utf8').replace('return Circle{R: 1}', 'return undefUnit');
looked = h.ev.read.next((e) => e === uri('shapes/shapes.go'));
answered = false;
pending = ask({ kind: 'diagnostics', uri: uri('shapes/shapes.go'), waitFor: [{ uri: uri('shapes/shapes.go'), sha256: sha(broken) }] }).then((x) => ((answered = true), x));
await looked; // the file on disk
assert.equal(answered, false);
fs.writeFileSync(shapes, broken);
r = await pending;
assert.deepEqual(
  r.items.map((d) => d.message),
  ['undefined: undefUnit'],
);
assert.equal(h.watchers, 0, 'the wait closed its file watchers');
// Already there: answered without waiting for a change.
r = await ask({ kind: 'diagnostics', uri: uri('shapes/shapes.go'), waitFor: [{ uri: uri('shapes/shapes.go'), sha256: sha(broken) }] });
assert.equal(r.items.length, 1);
results.waitForDisk = true;

step = 'waitFor: never';
await refused(
  { kind: 'diagnostics', timeoutMs: 600, waitFor: [{ uri: uri('main.go'), sha256: sha('something else') }] },
  -32803,
  'unavailable',
  /has not seen the expected content of main\.go in time/,
);
assert.equal(h.watchers, 0, 'the failed wait closed its file watchers');
// The server gives up (its caller went away): the wait ends at once.
const source = new rpc.CancellationTokenSource();
looked = h.ev.read.next();
pending = server.sendRequest('coditect/ide', { ...base, kind: 'diagnostics', timeoutMs: 60_000, waitFor: [{ uri: uri('main.go'), sha256: sha('never') }] }, source.token);
await looked;
source.cancel();
await assert.rejects(pending, (e) => e.code === -32803 && /cancelled/.test(e.message));
assert.equal(h.watchers, 0, 'the cancelled wait closed its file watchers');
await refused({ kind: 'diagnostics', waitFor: [{ uri: uri('main.go'), sha256: 'abc' }] }, -32602, 'invalid', /SHA-256/);
await refused({ kind: 'diagnostics', waitFor: [{ uri: 'file:///etc/passwd', sha256: sha('') }] }, -32803, 'forbidden');
results.waitForTimeout = true;

step = 'definition';
// fmt.Println(c.Area()) on line 10: Area is declared in shapes.go (a LocationLink).
r = await ask({ kind: 'definition', uri: uri('main.go'), position: { line: 10, character: 16 } });
assert.deepEqual(r, { locations: [{ uri: uri('shapes/shapes.go'), range: { start: { line: 8, character: 16 }, end: { line: 8, character: 20 } } }] });
// main is declared in main.go itself (a Location).
r = await ask({ kind: 'definition', uri: uri('main.go'), position: { line: 8, character: 6 } });
assert.deepEqual(r, { locations: [{ uri: uri('main.go'), range: { start: { line: 8, character: 5 }, end: { line: 8, character: 9 } } }] });
// Println is declared outside the workspace: left out, and counted.
r = await ask({ kind: 'definition', uri: uri('main.go'), position: { line: 10, character: 6 } });
assert.deepEqual(r, { locations: [], outside: 1 });
// By name, with its container.
r = await ask({ kind: 'definition', symbol: 'Circle.Area' });
assert.deepEqual(r.locations, [{ uri: uri('shapes/shapes.go'), range: { start: { line: 8, character: 16 }, end: { line: 8, character: 20 } } }]);
await refused({ kind: 'definition', symbol: 'Square.Area' }, -32803, 'not_found', /no symbol "Square\.Area"/);
await refused({ kind: 'definition', uri: uri('main.go') }, -32602, 'invalid', /needs uri and position, or symbol/);
results.definition = true;

step = 'references';
r = await ask({ kind: 'references', symbol: 'Circle' });
assert.deepEqual(
  r.locations.map((l) => [relative(ws, Uri.parse(l.uri).fsPath), l.range.start.line]),
  [
    ['main.go', 12],
    ['shapes/shapes.go', 2],
    ['shapes/shapes.go', 3],
    ['shapes/shapes.go', 8],
    ['shapes/shapes.go', 13],
  ],
);
r = await ask({ kind: 'references', symbol: 'Circle', limit: 2 });
assert.equal(r.locations.length, 2);
assert.equal(r.more, 3);
results.references = true;

step = 'symbols';
r = await ask({ kind: 'symbols', uri: uri('shapes/shapes.go') });
assert.deepEqual(
  r.symbols.map((s) => [s.name, s.kind, s.containerName, s.range.start.line, s.range.end.line]),
  [
    ['Circle', 23, undefined, 3, 5], // Struct
    ['Area', 6, 'Circle', 8, 10], // Method, flattened under its type
    ['Unit', 12, undefined, 13, 15], // Function
  ],
);
assert.ok(r.symbols.every((s) => s.uri === uri('shapes/shapes.go')));
r = await ask({ kind: 'symbols', query: 'a', limit: 1 });
assert.deepEqual(r.symbols, [{ name: 'main', kind: 12, uri: uri('main.go'), range: { start: { line: 8, character: 0 }, end: { line: 13, character: 1 } } }]);
assert.equal(r.more, 1, 'main and Area match "a"');
r = await ask({ kind: 'symbols', query: 'are' });
assert.deepEqual(r.symbols, [{ name: 'Area', kind: 6, containerName: 'Circle', uri: uri('shapes/shapes.go'), range: { start: { line: 8, character: 0 }, end: { line: 10, character: 1 } } }]);
await refused({ kind: 'symbols' }, -32602, 'invalid', /uri .* or query/);
results.symbols = true;

step = 'hover';
r = await ask({ kind: 'hover', uri: uri('main.go'), position: { line: 9, character: 15 } });
assert.equal(r.contents, '```go\nfunc Unit() Circle\n```\n\n---\n\n```go\n// Unit is declared in shapes.go\n```');
r = await ask({ kind: 'hover', symbol: 'Area', limit: 1 });
assert.equal(r.contents, '```go\nfunc (c Circle) Area() float64\n```');
assert.equal(r.more, 1);
// A provider that never answers costs at most the request's timeout.
h.hang = true;
await refused({ kind: 'hover', symbol: 'Area', timeoutMs: 500 }, -32803, 'unavailable', /the hover provider did not answer in time/);
h.hang = false;
results.hover = true;

step = 'context';
// The active editor (main.go, lines 10–11 selected) and a big selection capped at 4 KiB.
r = await ask({ kind: 'context' });
assert.deepEqual(r, {
  editors: [{ uri: uri('main.go'), visibleRanges: [{ start: { line: 0, character: 0 }, end: { line: 20, character: 0 } }] }],
  active: { uri: uri('main.go'), selection: { start: { line: 9, character: 1 }, end: { line: 10, character: 22 } }, text: 'c := shapes.Unit()\n\tfmt.Println(c.Area())' },
});
const big = join(ws, 'big.txt');
fs.writeFileSync(big, 'é'.repeat(3000));
h.openDoc(Uri.file(big), { active: true, selection: new Range(0, 0, 0, 3000) });
// An editor on a file outside the workspace is not shown.
h.openDoc(Uri.file(join(elsewhere, 'secret.go')));
r = await ask({ kind: 'context', limit: 1 });
assert.equal(r.editors.length, 1);
assert.equal(r.more, 1);
assert.equal(Buffer.byteLength(r.active.text), 4096);
assert.equal(r.active.text, 'é'.repeat(2048));
assert.equal(r.active.textMore, 6000 - 4096);
h.settings.set('coditect.bridge.shareContext', false);
await refused({ kind: 'context' }, -32803, 'forbidden', /does not share .*coditect\.bridge\.shareContext/);
h.settings.set('coditect.bridge.shareContext', true);
results.context = true;

step = 'open';
// A notification; nothing opens until the human clicks "Open", and then without taking focus.
r = await ask({ kind: 'open', uri: uri('shapes/shapes.go'), range: { start: { line: 8, character: 0 }, end: { line: 10, character: 1 } }, message: 'the area\nis wrong' });
assert.deepEqual(r, { shown: true });
assert.equal(h.shown.length, 1);
assert.equal(h.shown[0].text, 'builder (qwen2.5-coder-7b) asks you to look at shapes/shapes.go:9–11: the area is wrong');
assert.deepEqual(h.shown[0].items, ['Open']);
assert.equal(h.opened.length, 0, 'nothing opened before the click');
const opening = new Promise((resolve) => {
  const push = h.opened.push.bind(h.opened);
  h.opened.push = (...x) => (resolve(), push(...x));
});
h.shown[0].click('Open');
await opening;
assert.deepEqual(h.opened[0].uri, uri('shapes/shapes.go'));
assert.equal(h.opened[0].options.preserveFocus, true);
assert.deepEqual(JSON.parse(JSON.stringify(h.opened[0].options.selection)), { start: { line: 8, character: 0 }, end: { line: 10, character: 1 } });
// Dismissed: nothing opens.
await ask({ kind: 'open', uri: uri('main.go'), position: { line: 3, character: 0 } });
assert.equal(h.shown[1].text, 'builder (qwen2.5-coder-7b) asks you to look at main.go:4');
h.shown[1].click(undefined);
await ask({ kind: 'open', uri: uri('main.go') }); // a round trip later
assert.equal(h.opened.length, 1);
results.open = true;

step = 'outside the workspace';
for (const p of [
  { kind: 'definition', uri: 'file:///etc/passwd', position: { line: 0, character: 0 } },
  { kind: 'hover', uri: `file://${ws}/../elsewhere/secret.go`, position: { line: 0, character: 0 } },
  { kind: 'symbols', uri: uri('link.go') }, // a symbolic link to a file outside
  { kind: 'diagnostics', uri: Uri.file(join(elsewhere, 'secret.go')).toString() },
  { kind: 'open', uri: 'file:///etc/passwd' },
]) {
  await refused(p, -32803, 'forbidden', /is not under this editor's workspace folders/);
}
assert.equal(h.shown.length, 3, 'no notification for a file outside');
r = await ask({ kind: 'diagnostics' });
assert.ok(r.items.every((d) => d.uri.startsWith(Uri.file(ws).toString() + '/')), 'workspace diagnostics stay in the workspace');
await refused({ kind: 'hover', uri: 'untitled:Untitled-1', position: { line: 0, character: 0 } }, -32602, 'invalid', /file:\/\/ URI/);
results.outside = true;

step = 'bad requests';
await refused({ kind: 'compile' }, -32602, 'invalid', /unknown request kind "compile"/);
await refused({ kind: 'diagnostics', limit: undefined }, -32602, 'invalid', /limit/);
await refused({ kind: 'diagnostics', limit: 0 }, -32602, 'invalid', /limit/);
await refused({ kind: 'hover', uri: uri('main.go'), position: { line: -1, character: 0 } }, -32602, 'invalid', /position/);
await refused({ kind: 'diagnostics', timeoutMs: null }, -32602, 'invalid', /timeoutMs/);
results.bad = true;

reg3.dispose();
reg.dispose();
editor.dispose();
server.dispose();

if (bin) await serveCoditect();
clearTimeout(deadline);
fs.rmSync(root, { recursive: true, force: true });
console.log(JSON.stringify(results));

// Answers a real `coditect ide`'s requests with the same handlers, on a
// fresh copy of the fixture, until stdin closes.
async function serveCoditect() {
  step = 'coditect ide';
  clearTimeout(deadline);
  const ws = join(root, 'served');
  fs.cpSync(fixture, ws, { recursive: true });
  const h = makeVscode(ws, elsewhere);
  const { vscode } = h;
  h.analyseAll();
  const main = h.openDoc(Uri.file(join(ws, 'main.go')), { active: true, selection: new Range(9, 1, 10, 22) });
  const child = spawn(bin, ['ide', '--store', store, '--tenant', 'node', '--user', 'ada'], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ws });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  conn.onUnhandledNotification(() => {});
  const d = bridge.registerBridge(vscode, conn, { subscriptions: [] }, { ResponseError: rpc.ResponseError, timing });
  conn.listen();
  await conn.sendRequest('initialize', {
    processId: process.pid,
    clientInfo: { name: 'bridge_handlers', version: '1' },
    rootUri: Uri.file(ws).toString(),
    workspaceFolders: [{ uri: Uri.file(ws).toString(), name: 'ws' }],
    capabilities: { experimental: { coditect: { bridge: bridge.bridgeCapability(vscode) } } },
  });
  await conn.sendNotification('initialized', {});
  await conn.sendNotification('textDocument/didOpen', { textDocument: { uri: main.uri.toString(), languageId: 'go', version: main.version, text: main.text } });
  // Answered after the notifications before it: the editor is announced.
  await conn.sendRequest('workspace/executeCommand', { command: 'coditect.status' });
  console.log(`ready ${ws}`);
  // The Go test closes stdin when the agent side is done.
  await new Promise((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.resume();
  });
  await conn.sendRequest('shutdown');
  await conn.sendNotification('exit');
  const code = await exited;
  d.dispose();
  conn.dispose();
  assert.equal(code, 0, 'coditect ide exit status\n' + stderr);
  results.coditect = { notifications: h.shown.map((n) => n.text) };
}
