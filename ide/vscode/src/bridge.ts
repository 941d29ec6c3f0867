// The editor's side of the IDE bridge: answers the server's `coditect/ide`
// requests (an agent asking, through `coditect ide`, for what this editor
// knows) with VS Code's language providers, diagnostics and editors, and
// declares the capability and the human's sharing choice.
//
// The module takes the `vscode` API as a parameter and imports it for types
// only, so its handlers run under plain Node with an API object supplied by
// a test (ide/vscode/test/bridge_handlers.mjs); it does not import the
// language client at load either, for the same reason.
import type * as vscode from 'vscode';
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import * as path from 'node:path';

/** The request kinds this editor answers. */
export const bridgeKinds = ['diagnostics', 'definition', 'references', 'symbols', 'hover', 'context', 'open'] as const;
export type BridgeKind = (typeof bridgeKinds)[number];

/** The parts of the `vscode` module the bridge uses. */
export type BridgeApi = Pick<typeof vscode, 'workspace' | 'languages' | 'commands' | 'window' | 'Uri' | 'Position' | 'Range' | 'RelativePattern'>;

/** A JSON-RPC connection: vscode-languageclient's LanguageClient or a vscode-jsonrpc MessageConnection. */
export interface BridgeConnection {
  onRequest(method: string, handler: (params: any, token: vscode.CancellationToken) => Promise<unknown>): vscode.Disposable;
  sendNotification(method: string, params?: any): Promise<void> | void;
  /** LanguageClient's: declares the capability in `initialize`. */
  registerFeature?(feature: {
    fillClientCapabilities(caps: { experimental?: any }): void;
    initialize(): void;
    getState(): { kind: 'static' };
    clear(): void;
  }): void;
}

/** The JSON-RPC library's ResponseError class (it must be the connection's own copy). */
export type ResponseErrorClass = new (code: number, message: string, data?: unknown) => Error;

/** Timing of the diagnostics wait; the defaults suit language servers that debounce (gopls: 1 s). */
export interface BridgeTiming {
  /** How long diagnostics must be quiet before they are taken as settled. */
  quietMs: number;
  /** How long to wait, after a waited-for file changed, for its first diagnostics. */
  firstDiagnosticsMs: number;
  /** Kept back from the request's timeoutMs for the answer's way back. */
  marginMs: number;
}

export const defaultTiming: BridgeTiming = { quietMs: 300, firstDiagnosticsMs: 3000, marginMs: 1000 };

// JSON-RPC error codes; `data.class` names the error class for the server
// (storage/errclass names: invalid, forbidden, not_found, unavailable).
const invalidParams = -32602;
const requestFailed = -32803;

/** An error the connection answers with its code, message and class. */
export class BridgeError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly errClass: 'invalid' | 'forbidden' | 'not_found' | 'unavailable',
  ) {
    super(message);
  }
}
const invalid = (msg: string) => new BridgeError(invalidParams, msg, 'invalid');
const forbidden = (msg: string) => new BridgeError(requestFailed, msg, 'forbidden');
const unavailable = (msg: string) => new BridgeError(requestFailed, msg, 'unavailable');

// Caps on what one answer carries, beyond the request's limit.
const selectionCap = 4096;
const hoverCap = 8192;
const messageCap = 1000;
const openMessageCap = 300;

/**
 * The `initialize` capability `experimental.coditect.bridge`. With the
 * bridge off it declares no kinds, rather than nothing: an editor without
 * the capability is a plain LSP client, for which the server itself
 * answers context (the open files) and open.
 */
export function bridgeCapability(api: BridgeApi): { kinds: string[]; share: boolean } {
  const cfg = api.workspace.getConfiguration('coditect.bridge');
  if (!cfg.get<boolean>('enabled', true)) return { kinds: [], share: false };
  return { kinds: [...bridgeKinds], share: cfg.get<boolean>('share', false) };
}

let registered: vscode.Disposable | undefined;

/**
 * Declares the bridge capability on the connection, answers its
 * `coditect/ide` requests and sends `coditect/bridgeSettings` when the
 * sharing setting changes. Call it before the client starts; a second call
 * replaces the first (one client per window).
 */
export function registerBridge(
  api: BridgeApi,
  conn: BridgeConnection,
  context: { subscriptions: { dispose(): unknown }[] },
  opts: { ResponseError?: ResponseErrorClass; timing?: Partial<BridgeTiming> } = {},
): vscode.Disposable {
  registered?.dispose();
  registered = undefined;
  conn.registerFeature?.({
    fillClientCapabilities(caps) {
      caps.experimental = { ...(caps.experimental ?? {}), coditect: { ...(caps.experimental?.coditect ?? {}), bridge: bridgeCapability(api) } };
    },
    initialize() {},
    getState: () => ({ kind: 'static' }),
    clear() {},
  });
  if (bridgeCapability(api).kinds.length === 0) return { dispose() {} };
  // The language client is loaded by extension.ts already; a test passes its own connection's class.
  const RE: ResponseErrorClass = opts.ResponseError ?? require('vscode-languageclient/node').ResponseError;
  const timing = { ...defaultTiming, ...opts.timing };
  const log = new DiagnosticsLog(api);
  const subs: vscode.Disposable[] = [
    log,
    conn.onRequest('coditect/ide', async (params, token) => {
      try {
        return await handleBridgeRequest(api, params, token, timing, log);
      } catch (err) {
        if (err instanceof BridgeError) throw new RE(err.code, err.message, { class: err.errClass });
        throw new RE(requestFailed, `the editor failed to answer: ${err instanceof Error ? err.message : String(err)}`, { class: 'unavailable' });
      }
    }),
    api.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('coditect.bridge.share')) return;
      const share = api.workspace.getConfiguration('coditect.bridge').get<boolean>('share', false);
      // A stopped client refuses; the next start declares the setting.
      void Promise.resolve(conn.sendNotification('coditect/bridgeSettings', { share })).catch(() => undefined);
    }),
  ];
  const d = {
    dispose() {
      for (const s of subs.splice(0)) s.dispose();
      if (registered === d) registered = undefined;
    },
  };
  registered = d;
  context.subscriptions.push(d);
  return d;
}

/** True when a configuration change touches only the bridge's sharing settings (no restart needed). */
export function bridgeSettingsOnly(e: vscode.ConfigurationChangeEvent): boolean {
  return e.affectsConfiguration('coditect.bridge.share') || e.affectsConfiguration('coditect.bridge.shareContext');
}

// ---- wire types ----

interface WirePosition {
  line: number;
  character: number;
}
interface WireRange {
  start: WirePosition;
  end: WirePosition;
}
interface WireLocation {
  uri: string;
  range: WireRange;
}
export interface BridgeParams {
  id: string;
  kind: string;
  agent: string;
  user: string;
  project: string;
  uri?: string;
  position?: WirePosition;
  range?: WireRange;
  symbol?: string;
  query?: string;
  message?: string;
  waitFor?: { uri: string; sha256: string }[];
  limit: number;
  timeoutMs: number;
}

const pos = (p: vscode.Position): WirePosition => ({ line: p.line, character: p.character });
const rng = (r: vscode.Range): WireRange => ({ start: pos(r.start), end: pos(r.end) });

/** The request's time budget, cancellation included. */
class Budget {
  readonly end: number;
  constructor(
    timeoutMs: number,
    marginMs: number,
    readonly token?: vscode.CancellationToken,
  ) {
    this.end = Date.now() + Math.max(0, timeoutMs - Math.min(marginMs, timeoutMs / 5));
  }
  left(): number {
    return this.end - Date.now();
  }
  /** p, or an error when the budget runs out or the request is cancelled first. */
  race<T>(p: Thenable<T>, what: string, late?: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      let cancel: vscode.Disposable | undefined;
      const done = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        cancel?.dispose();
        f();
      };
      timer = setTimeout(() => done(() => reject(late ? late() : unavailable(`${what} did not answer in time`))), Math.max(0, this.left()));
      cancel = this.token?.onCancellationRequested(() => done(() => reject(unavailable('the request was cancelled'))));
      p.then(
        (v) => done(() => resolve(v)),
        (e) => done(() => reject(e)),
      );
    });
  }
}

/** Answers one `coditect/ide` request. */
export async function handleBridgeRequest(
  api: BridgeApi,
  params: unknown,
  token?: vscode.CancellationToken,
  timing: BridgeTiming = defaultTiming,
  log?: DiagnosticsLog,
): Promise<unknown> {
  const p = checkParams(params);
  const budget = new Budget(p.timeoutMs, timing.marginMs, token);
  switch (p.kind as BridgeKind) {
    case 'diagnostics':
      return diagnostics(api, p, budget, timing, log);
    case 'definition':
    case 'references':
      return locations(api, p, budget);
    case 'symbols':
      return symbols(api, p, budget);
    case 'hover':
      return hover(api, p, budget);
    case 'context':
      return editorContext(api, p);
    case 'open':
      return open(api, p);
    default:
      throw invalid(`unknown request kind "${p.kind}" (this editor answers ${bridgeKinds.join(', ')})`);
  }
}

function checkParams(x: unknown): BridgeParams {
  if (typeof x !== 'object' || x === null) throw invalid('params must be an object');
  const p = x as BridgeParams;
  if (typeof p.kind !== 'string' || !p.kind) throw invalid('kind is required');
  if (!Number.isInteger(p.limit) || p.limit < 1) throw invalid('limit must be a positive integer');
  if (typeof p.timeoutMs !== 'number' || !(p.timeoutMs > 0)) throw invalid('timeoutMs must be a positive number');
  if (p.uri !== undefined && typeof p.uri !== 'string') throw invalid('uri must be a string');
  const isPos = (q: unknown): q is WirePosition =>
    typeof q === 'object' && q !== null && Number.isInteger((q as WirePosition).line) && Number.isInteger((q as WirePosition).character) && (q as WirePosition).line >= 0 && (q as WirePosition).character >= 0;
  if (p.position !== undefined && !isPos(p.position)) throw invalid('position must be {line, character}, 0-based');
  if (p.range !== undefined && !(typeof p.range === 'object' && p.range !== null && isPos(p.range.start) && isPos(p.range.end))) {
    throw invalid('range must be {start, end} positions, 0-based');
  }
  for (const k of ['symbol', 'query', 'message', 'agent'] as const) {
    if (p[k] !== undefined && typeof p[k] !== 'string') throw invalid(`${k} must be a string`);
  }
  if (p.waitFor !== undefined && !Array.isArray(p.waitFor)) throw invalid('waitFor must be a list of {uri, sha256}');
  return p;
}

// ---- the workspace boundary ----

function real(p: string): string {
  try {
    return realpathSync.native(p);
  } catch {
    return path.resolve(p);
  }
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Whether u is a file under one of the workspace folders (`..` and symbolic links resolved). */
function inWorkspace(api: BridgeApi, u: vscode.Uri): boolean {
  if (u.scheme !== 'file') return false;
  const folders = api.workspace.workspaceFolders ?? [];
  const abs = path.resolve(u.fsPath);
  const target = real(abs);
  return folders.some((f) => f.uri.scheme === 'file' && inside(path.resolve(f.uri.fsPath), abs) && inside(real(f.uri.fsPath), target));
}

/** The request's uri, parsed and checked to be in the workspace. */
function fileUri(api: BridgeApi, s: string | undefined, what = 'uri'): vscode.Uri {
  if (!s) throw invalid(`${what} is required`);
  let u: vscode.Uri;
  try {
    u = api.Uri.parse(s, true);
  } catch {
    throw invalid(`${what} is not a URI: ${s}`);
  }
  if (u.scheme !== 'file') throw invalid(`${what} must be a file:// URI: ${s}`);
  if (!inWorkspace(api, u)) throw forbidden(`${u.fsPath} is not under this editor's workspace folders`);
  return u;
}

const relName = (api: BridgeApi, u: vscode.Uri) => api.workspace.asRelativePath(u, false);

/** The first limit items, and how many more there were. */
function bounded<T>(items: T[], limit: number): { items: T[]; more?: number } {
  return items.length > limit ? { items: items.slice(0, limit), more: items.length - limit } : { items };
}

// ---- diagnostics ----

/**
 * When diagnostics last changed, per file and at all, since `since`: kept
 * for the connection's lifetime by registerBridge, so diagnostics that a
 * fast language server published before the request came in count.
 */
export class DiagnosticsLog {
  readonly since = Date.now();
  readonly last = new Map<string, number>();
  any = this.since;
  readonly waiters = new Set<() => void>();
  private readonly sub: vscode.Disposable;
  constructor(api: BridgeApi) {
    this.sub = api.languages.onDidChangeDiagnostics((e) => {
      const now = Date.now();
      this.any = now;
      for (const u of e.uris) this.last.set(u.toString(), now);
      for (const w of [...this.waiters]) w();
    });
  }
  dispose(): void {
    this.sub.dispose();
    this.waiters.clear();
  }
}

async function diagnostics(api: BridgeApi, p: BridgeParams, budget: Budget, timing: BridgeTiming, log?: DiagnosticsLog) {
  const target = p.uri !== undefined ? fileUri(api, p.uri) : undefined;
  const waits = (p.waitFor ?? []).map((w, i) => {
    if (typeof w !== 'object' || w === null || typeof w.sha256 !== 'string') throw invalid(`waitFor[${i}] must be {uri, sha256}`);
    const want = w.sha256.toLowerCase().replace(/^sha256:/, '');
    if (!/^[0-9a-f]{64}$/.test(want)) throw invalid(`waitFor[${i}].sha256 must be a SHA-256 in hex`);
    return { uri: fileUri(api, w.uri, `waitFor[${i}].uri`), want };
  });
  if (waits.length > 0) {
    const own = log ? undefined : new DiagnosticsLog(api);
    try {
      const changedAt = await waitForHashes(api, waits, budget);
      await settle((log ?? own)!, new Set(waits.map((w) => w.uri.toString())), changedAt, budget, timing);
    } finally {
      own?.dispose();
    }
  }
  const pairs: [vscode.Uri, readonly vscode.Diagnostic[]][] = target
    ? [[target, api.languages.getDiagnostics(target)]]
    : api.languages.getDiagnostics().filter(([u]) => inWorkspace(api, u));
  const items = pairs.flatMap(([u, ds]) =>
    ds.map((d) => ({
      uri: u.toString(),
      range: rng(d.range),
      // vscode.DiagnosticSeverity is LSP's less one.
      severity: (d.severity + 1) as 1 | 2 | 3 | 4,
      message: d.message.length > messageCap ? d.message.slice(0, messageCap) + '…' : d.message,
      ...(d.source ? { source: d.source } : {}),
      ...(d.code !== undefined ? { code: typeof d.code === 'object' ? d.code.value : d.code } : {}),
    })),
  );
  // Errors first, then by file and line.
  items.sort((a, b) => a.severity - b.severity || (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0) || a.range.start.line - b.range.start.line);
  return bounded(items, p.limit);
}

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/**
 * Waits until the editor's view of each file (its open document's text, or
 * the file on disk when not open) hashes to the wanted SHA-256, woken by
 * document and file-system events. Returns when the last of them changed
 * (the event's time, or the file's modification time when it matched at
 * once), or fails when the budget runs out.
 */
async function waitForHashes(api: BridgeApi, waits: { uri: vscode.Uri; want: string }[], budget: Budget): Promise<number> {
  const pending = new Map(waits.map((w) => [w.uri.toString(), w]));
  let changedAt = 0;
  let wake: () => void = () => {};
  const check = async (key: string, at?: number) => {
    const w = pending.get(key);
    if (!w) return;
    let got: string | undefined;
    const doc = api.workspace.textDocuments.find((d) => d.uri.toString() === key);
    if (doc) {
      // VS Code drops a UTF-8 byte order mark from the document's text.
      const text = doc.getText();
      got = sha256(text);
      if (got !== w.want && sha256('\ufeff' + text) === w.want) got = w.want;
    } else {
      try {
        got = sha256(await api.workspace.fs.readFile(w.uri));
      } catch {
        got = undefined; // not there yet
      }
    }
    if (got !== w.want) return;
    if (at === undefined) {
      try {
        at = (await api.workspace.fs.stat(w.uri)).mtime;
      } catch {
        at = 0;
      }
    }
    if (pending.delete(key)) {
      changedAt = Math.max(changedAt, at);
      wake();
    }
  };
  const onDoc = (d: vscode.TextDocument) => void check(d.uri.toString(), Date.now());
  const subs: vscode.Disposable[] = [
    api.workspace.onDidChangeTextDocument((e) => onDoc(e.document)),
    api.workspace.onDidOpenTextDocument(onDoc),
    api.workspace.onDidCloseTextDocument(onDoc),
    api.workspace.onDidSaveTextDocument(onDoc),
  ];
  for (const w of waits) {
    const watcher = api.workspace.createFileSystemWatcher(
      new api.RelativePattern(api.Uri.file(path.dirname(w.uri.fsPath)), path.basename(w.uri.fsPath)),
      false,
      false,
      true,
    );
    const key = w.uri.toString();
    subs.push(watcher, watcher.onDidChange(() => void check(key, Date.now())), watcher.onDidCreate(() => void check(key, Date.now())));
  }
  try {
    await Promise.all(waits.map((w) => check(w.uri.toString())));
    if (pending.size > 0) {
      await budget.race(
        new Promise<void>((resolve) => {
          wake = () => void (pending.size === 0 && resolve());
          wake(); // a check may have finished before this
        }),
        'the wait for the file',
        () =>
          unavailable(
            `the editor has not seen the expected content of ${[...pending.values()].map((w) => relName(api, w.uri)).join(', ')} in time ` +
              '(its copy differs: unsaved edits in the editor, or the write has not happened)',
          ),
      );
    }
    return changedAt;
  } finally {
    for (const s of subs) s.dispose();
  }
}

/**
 * Lets the language servers catch up with the waited-for files: first a
 * diagnostics change for one of them after the last one changed (unless
 * that change predates the log; bounded by firstDiagnosticsMs), then no
 * diagnostics change anywhere for quietMs. The budget cuts the wait short
 * rather than failing it.
 */
async function settle(log: DiagnosticsLog, files: Set<string>, changedAt: number, budget: Budget, timing: BridgeTiming): Promise<void> {
  const start = Date.now();
  const firstBy = Math.min(budget.end, start + timing.firstDiagnosticsMs);
  const fresh = () => changedAt < log.since || [...files].some((f) => (log.last.get(f) ?? 0) >= changedAt);
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      cancel?.dispose();
      log.waiters.delete(step);
      resolve();
    };
    const step = () => {
      clearTimeout(timer);
      const now = Date.now();
      if (!fresh() && now < firstBy) {
        timer = setTimeout(step, firstBy - now);
        return;
      }
      const quietBy = Math.min(log.any + timing.quietMs, budget.end);
      if (now >= quietBy) return finish();
      timer = setTimeout(step, quietBy - now);
    };
    const cancel = budget.token?.onCancellationRequested(finish);
    log.waiters.add(step);
    step();
  });
}

// ---- definition, references ----

type AnyLocation = vscode.Location | vscode.LocationLink;

function toWire(l: AnyLocation): WireLocation {
  if ('targetUri' in l) return { uri: l.targetUri.toString(), range: rng(l.targetSelectionRange ?? l.targetRange) };
  return { uri: l.uri.toString(), range: rng(l.range) };
}

/** In-workspace locations, duplicates dropped, bounded; `outside` counts those dropped for being outside the workspace. */
function boundedLocations(api: BridgeApi, all: AnyLocation[], limit: number) {
  const seen = new Set<string>();
  const out: WireLocation[] = [];
  let outside = 0;
  for (const l of all) {
    const w = toWire(l);
    const key = `${w.uri}:${w.range.start.line}:${w.range.start.character}:${w.range.end.line}:${w.range.end.character}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (!inWorkspace(api, api.Uri.parse(w.uri))) outside++;
    else out.push(w);
  }
  const { items, more } = bounded(out, limit);
  return { locations: items, ...(more ? { more } : {}), ...(outside ? { outside } : {}) };
}

/** Where a symbol name is declared: exact matches from the workspace symbol provider, "Container.name" allowed. */
async function findSymbol(api: BridgeApi, name: string, budget: Budget, near?: vscode.Uri): Promise<{ uri: vscode.Uri; position: vscode.Position }[]> {
  const dot = name.lastIndexOf('.');
  const [container, short] = dot > 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [undefined, name];
  const found =
    (await budget.race(api.commands.executeCommand<vscode.SymbolInformation[]>('vscode.executeWorkspaceSymbolProvider', short), 'the workspace symbol provider')) ?? [];
  const hits = found.filter(
    (s) => s.name === short && (!container || (s.containerName ?? '').split('.').pop() === container) && inWorkspace(api, s.location.uri),
  );
  if (hits.length === 0) throw new BridgeError(requestFailed, `no symbol "${name}" in this editor's workspace`, 'not_found');
  // The symbol's range spans its declaration; the position is its name in it.
  const key = near?.toString();
  hits.sort((a, b) => Number(b.location.uri.toString() === key) - Number(a.location.uri.toString() === key));
  const out: { uri: vscode.Uri; position: vscode.Position }[] = [];
  for (const s of hits.slice(0, 5)) {
    let position = s.location.range.start;
    try {
      const doc = await budget.race(api.workspace.openTextDocument(s.location.uri), 'opening the document');
      const from = doc.offsetAt(s.location.range.start);
      const text = doc.getText(s.location.range);
      const re = new RegExp(`(^|[^\\w$])${short.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w$])`);
      const m = re.exec(text);
      if (m) position = doc.positionAt(from + m.index + m[1].length);
    } catch {
      // The range's start is close enough.
    }
    out.push({ uri: s.location.uri, position });
  }
  return out;
}

/** The request's position (uri + position), or the symbol's. */
async function targets(api: BridgeApi, p: BridgeParams, budget: Budget): Promise<{ uri: vscode.Uri; position: vscode.Position }[]> {
  if (p.position) {
    const uri = fileUri(api, p.uri);
    return [{ uri, position: new api.Position(p.position.line, p.position.character) }];
  }
  if (p.symbol) return findSymbol(api, p.symbol, budget, p.uri ? fileUri(api, p.uri) : undefined);
  throw invalid(`${p.kind} needs uri and position, or symbol`);
}

async function locations(api: BridgeApi, p: BridgeParams, budget: Budget) {
  const command = p.kind === 'definition' ? 'vscode.executeDefinitionProvider' : 'vscode.executeReferenceProvider';
  const all: AnyLocation[] = [];
  for (const t of await targets(api, p, budget)) {
    const got = await budget.race(api.commands.executeCommand<AnyLocation[] | AnyLocation | undefined>(command, t.uri, t.position), `the ${p.kind} provider`);
    if (Array.isArray(got)) all.push(...got);
    else if (got) all.push(got);
  }
  return boundedLocations(api, all, p.limit);
}

// ---- symbols ----

type WireSymbol = { name: string; kind: number; containerName?: string; uri: string; range: WireRange };

async function symbols(api: BridgeApi, p: BridgeParams, budget: Budget) {
  const out: WireSymbol[] = [];
  if (p.uri !== undefined) {
    const uri = fileUri(api, p.uri);
    const got =
      (await budget.race(
        api.commands.executeCommand<(vscode.DocumentSymbol | vscode.SymbolInformation)[]>('vscode.executeDocumentSymbolProvider', uri),
        'the document symbol provider',
      )) ?? [];
    const walk = (s: vscode.DocumentSymbol | vscode.SymbolInformation, container?: string) => {
      // vscode.SymbolKind is LSP's less one.
      if ('children' in s && Array.isArray(s.children)) {
        out.push({ name: s.name, kind: s.kind + 1, ...(container ? { containerName: container } : {}), uri: uri.toString(), range: rng(s.range) });
        for (const c of s.children) walk(c, s.name);
      } else {
        const si = s as vscode.SymbolInformation;
        out.push({ name: si.name, kind: si.kind + 1, ...(si.containerName ? { containerName: si.containerName } : {}), uri: si.location.uri.toString(), range: rng(si.location.range) });
      }
    };
    for (const s of got) walk(s);
  } else {
    if (typeof p.query !== 'string') throw invalid('symbols needs uri (document symbols) or query (workspace symbols)');
    const got =
      (await budget.race(api.commands.executeCommand<vscode.SymbolInformation[]>('vscode.executeWorkspaceSymbolProvider', p.query), 'the workspace symbol provider')) ?? [];
    for (const s of got) {
      if (!inWorkspace(api, s.location.uri)) continue;
      out.push({ name: s.name, kind: s.kind + 1, ...(s.containerName ? { containerName: s.containerName } : {}), uri: s.location.uri.toString(), range: rng(s.location.range) });
    }
  }
  const { items, more } = bounded(out, p.limit);
  return { symbols: items, ...(more ? { more } : {}) };
}

// ---- hover ----

async function hover(api: BridgeApi, p: BridgeParams, budget: Budget) {
  const [t] = await targets(api, p, budget);
  const got = (await budget.race(api.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', t.uri, t.position), 'the hover provider')) ?? [];
  const parts: string[] = [];
  for (const h of got) {
    for (const c of h.contents) {
      if (typeof c === 'string') parts.push(c);
      else if ('language' in c) parts.push('```' + c.language + '\n' + c.value + '\n```');
      else parts.push(c.value);
    }
  }
  const { items, more } = bounded(parts.filter((s) => s.trim() !== ''), p.limit);
  let contents = items.join('\n\n---\n\n');
  if (Buffer.byteLength(contents) > hoverCap) contents = capUtf8(contents, hoverCap) + '\n\n…';
  return { contents, ...(more ? { more } : {}) };
}

/** s cut to at most max UTF-8 bytes, at a character boundary. */
function capUtf8(s: string, max: number): string {
  const b = Buffer.from(s);
  if (b.length <= max) return s;
  let end = max;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end).toString();
}

// ---- context, open ----

function editorContext(api: BridgeApi, p: BridgeParams) {
  if (!api.workspace.getConfiguration('coditect.bridge').get<boolean>('shareContext', true)) {
    throw forbidden('the human does not share which files are open and what is selected (setting coditect.bridge.shareContext)');
  }
  const editors = api.window.visibleTextEditors
    .filter((e) => inWorkspace(api, e.document.uri))
    .map((e) => ({ uri: e.document.uri.toString(), visibleRanges: e.visibleRanges.map(rng) }));
  const { items, more } = bounded(editors, p.limit);
  const ed = api.window.activeTextEditor;
  let active: { uri: string; selection: WireRange; text?: string; textMore?: number } | undefined;
  if (ed && inWorkspace(api, ed.document.uri)) {
    active = { uri: ed.document.uri.toString(), selection: rng(ed.selection) };
    if (!ed.selection.isEmpty) {
      const text = ed.document.getText(ed.selection);
      active.text = capUtf8(text, selectionCap);
      const cut = Buffer.byteLength(text) - Buffer.byteLength(active.text);
      if (cut > 0) active.textMore = cut;
    }
  }
  return { editors: items, ...(more ? { more } : {}), ...(active ? { active } : {}) };
}

function open(api: BridgeApi, p: BridgeParams) {
  const uri = fileUri(api, p.uri);
  const r = p.range ?? (p.position ? { start: p.position, end: p.position } : undefined);
  const lines = r ? (r.end.line > r.start.line ? `:${r.start.line + 1}–${r.end.line + 1}` : `:${r.start.line + 1}`) : '';
  const who = (p.agent || 'an agent').slice(0, 100);
  const msg = (p.message ?? '').replace(/\s+/g, ' ').trim();
  const text = `${who} asks you to look at ${relName(api, uri)}${lines}${msg ? `: ${msg.length > openMessageCap ? msg.slice(0, openMessageCap) + '…' : msg}` : ''}`;
  // The notification does not take focus; the file opens only on "Open",
  // and then beside the human's focus, not in place of it.
  void Promise.resolve(api.window.showInformationMessage(text, 'Open')).then(async (choice) => {
    if (choice !== 'Open') return;
    try {
      await api.window.showTextDocument(uri, {
        preserveFocus: true,
        preview: true,
        ...(r ? { selection: new api.Range(r.start.line, r.start.character, r.end.line, r.end.character) } : {}),
      });
    } catch (err) {
      void api.window.showErrorMessage(`Coditect: cannot open ${relName(api, uri)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  return { shown: true };
}
