// The Coditect companion extension: runs `coditect ide` with
// vscode-languageclient, shows the session and live agents in the status
// bar, offers the server's commands, shows the dashboard in a webview panel,
// and adds the signal LSP lacks: that the human typed before a save (so
// saves by tools and other extensions are not taken for the human's).
import * as vscode from 'vscode';
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  TransportKind,
  State,
} from 'vscode-languageclient/node';
import { registerReview, reviewEvent } from './review';
import { registerBridge, bridgeSettingsOnly } from './bridge';

// The server's commands (ide/general.go).
const cmd = {
  sessionStart: 'coditect.session.start',
  sessionEnd: 'coditect.session.end',
  dashboard: 'coditect.dashboard',
  fileHistory: 'coditect.file.history',
  agents: 'coditect.agents',
  status: 'coditect.status',
  messageSend: 'coditect.message.send',
  taskCreate: 'coditect.task.create',
  leaseRelease: 'coditect.lease.release',
} as const;

interface Status {
  tenant: string;
  user: string;
  session: string;
  agents: number;
  agents_alive: number;
  open: number;
  unsaved: number;
}

interface AuditEvent {
  id: string;
  time: string;
  kind: string;
  path?: string;
  user?: string;
  agent?: string;
  session?: string;
  summary?: string;
  attribution?: { actor: string; agent_id?: string; model?: string };
  /** Who made the change, for people: "agent builder (qwen2.5-coder-7b)" (coditect.file.history). */
  who?: string;
  /** The unified diff of an agent's change through the files tools (coditect.file.history). */
  diff?: string;
}

interface Agent {
  id: string;
  name: string;
  client: string;
  model?: string;
  liveness: string;
}

// How often the human-activity signal is sent per document, at most.
const activityEvery = 1000;
// How often the status bar refreshes without events.
const statusEvery = 15_000;

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let panel: vscode.WebviewPanel | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  statusItem.command = 'coditect.showDashboard';
  statusItem.text = '$(sync~spin) Coditect';
  statusItem.show();
  context.subscriptions.push(statusItem);

  const register = (id: string, fn: (...args: unknown[]) => unknown) =>
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  register('coditect.showDashboard', () => showDashboard(context));
  register('coditect.startSession', startSession);
  register('coditect.endSession', endSession);
  register('coditect.fileHistory', (arg?: unknown) => fileHistory(arg));
  register('coditect.listAgents', listAgents);
  register('coditect.sendSelection', sendSelection);
  register('coditect.createTask', createTask);
  register('coditect.releaseLease', (arg?: unknown) => releaseLease(arg));
  registerReview(context, execute);
  register('coditect.restart', async () => {
    await stopClient();
    await startClient(context);
  });

  trackHumanActivity(context);
  const timer = setInterval(() => void refreshStatus(), statusEvery);
  context.subscriptions.push({ dispose: () => clearInterval(timer) });
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      // The bridge's sharing settings go to the running server (coditect/bridgeSettings).
      if (e.affectsConfiguration('coditect') && !bridgeSettingsOnly(e)) {
        await stopClient();
        await startClient(context);
      }
    }),
  );
  await startClient(context);
}

export async function deactivate(): Promise<void> {
  await stopClient();
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const cfg = vscode.workspace.getConfiguration('coditect');
  const args = ['ide'];
  for (const [flag, key] of [
    ['--store', 'store'],
    ['--tenant', 'tenant'],
    ['--user', 'user'],
  ] as const) {
    const v = cfg.get<string>(key, '');
    if (v) args.push(flag, v);
  }
  const serverOptions: ServerOptions = {
    command: cfg.get<string>('path', 'coditect') || 'coditect',
    args,
    transport: TransportKind.stdio,
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }],
    initializationOptions: { humanActivity: true },
    outputChannelName: 'Coditect',
  };
  client = new LanguageClient('coditect', 'Coditect', serverOptions, clientOptions);
  registerBridge(vscode, client, context);
  client.onDidChangeState((e) => {
    if (e.newState === State.Stopped) {
      statusItem.text = '$(circle-slash) Coditect';
      statusItem.tooltip = 'coditect ide is not running: see the Coditect output, or run "Coditect: Restart Server"';
    }
  });
  try {
    await client.start();
  } catch (err) {
    statusItem.text = '$(error) Coditect';
    statusItem.tooltip = `coditect ide failed to start: ${String(err)}`;
    return;
  }
  let pending: NodeJS.Timeout | undefined;
  context.subscriptions.push(
    client.onNotification('coditect/event', (ev: AuditEvent) => {
      reviewEvent(ev);
      // Agents and sessions come and go: refresh soon, once per burst.
      if (ev.kind.startsWith('agent.') || ev.kind.startsWith('session.') || ev.kind.startsWith('lease.')) {
        if (pending) clearTimeout(pending);
        pending = setTimeout(() => void refreshStatus(), 500);
      }
    }),
  );
  await refreshStatus();
}

async function stopClient(): Promise<void> {
  const c = client;
  client = undefined;
  if (c && c.state !== State.Stopped) {
    await c.stop();
  }
}

async function execute<T>(command: string, arg?: object): Promise<T> {
  if (!client || client.state !== State.Running) {
    throw new Error('coditect ide is not running');
  }
  return client.sendRequest<T>('workspace/executeCommand', { command, arguments: arg ? [arg] : [] });
}

async function refreshStatus(): Promise<void> {
  try {
    const st = await execute<Status>(cmd.status);
    const session = st.session ? ' · session' : '';
    statusItem.text = `$(organization) ${st.agents_alive}/${st.agents} agents${session}`;
    statusItem.tooltip = new vscode.MarkdownString(
      `**Coditect** — ${st.user} in ${st.tenant}\n\n` +
        `${st.agents_alive} agents alive of ${st.agents}\n\n` +
        (st.session ? `session \`${st.session}\`\n\n` : 'no session: run "Coditect: Start Session"\n\n') +
        `${st.unsaved} of ${st.open} open files with unsaved edits (agents may not overwrite them)\n\n` +
        'Click to show the dashboard.',
    );
  } catch {
    // The client is starting or stopped; its state handler says so.
  }
}

// The human-activity signal: a document change in the focused window's
// active editor (typing, pasting, undo) or a keyboard-driven selection
// change. Changes made by other extensions, formatters on save, or the
// file reloading from disk are not preceded by either.
function trackHumanActivity(context: vscode.ExtensionContext): void {
  const last = new Map<string, number>();
  const signal = (doc: vscode.TextDocument) => {
    if (doc.uri.scheme !== 'file' || !client || client.state !== State.Running) return;
    const key = doc.uri.toString();
    const now = Date.now();
    // The first after a save always goes (the server resets on didSave).
    if (now - (last.get(key) ?? 0) >= activityEvery) {
      last.set(key, now);
      void client.sendNotification('coditect/activity', { textDocument: { uri: key } });
    }
  };
  context.subscriptions.push(
    vscode.workspace.onDidChangeTextDocument((e) => {
      const active = vscode.window.activeTextEditor;
      if (e.contentChanges.length > 0 && vscode.window.state.focused && active && active.document === e.document) {
        signal(e.document);
      }
    }),
    vscode.window.onDidChangeTextEditorSelection((e) => {
      if (e.kind === vscode.TextEditorSelectionChangeKind.Keyboard) signal(e.textEditor.document);
    }),
    vscode.workspace.onDidSaveTextDocument((doc) => last.delete(doc.uri.toString())),
  );
}

async function showDashboard(context: vscode.ExtensionContext): Promise<void> {
  let url: string;
  try {
    ({ url } = await execute<{ url: string }>(cmd.dashboard));
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: no dashboard: ${String(err)}`);
    return;
  }
  const external = await externalDashboardUri(url);
  const origin = `${external.scheme}://${external.authority}`;
  if (!panel) {
    panel = vscode.window.createWebviewPanel('coditect.dashboard', 'Coditect', vscode.ViewColumn.Beside, {
      // The panel's own page runs no script (its CSP allows none), but a
      // webview without scripts sandboxes its iframes without them too.
      enableScripts: true,
      // The iframe keeps its feed and scroll position while hidden.
      retainContextWhenHidden: true,
    });
    panel.onDidDispose(() => (panel = undefined), undefined, context.subscriptions);
  }
  const src = external.toString(true);
  panel.webview.html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; frame-src ${origin}; style-src 'unsafe-inline';">
<style>html,body,iframe{margin:0;padding:0;border:0;width:100%;height:100%;overflow:hidden}</style>
</head><body><iframe src="${escapeAttr(src)}" sandbox="allow-scripts allow-same-origin allow-forms" referrerpolicy="no-referrer"></iframe></body></html>`;
  panel.reveal();
}

// externalDashboardUri maps the local dashboard URL to one the webview can
// reach. Only the origin goes through asExternalUri: code-server maps
// http://127.0.0.1:PORT/... to https://HOST/proxy/PORT/ and drops the path
// and fragment, so the secret path, query and #token are appended here to
// whatever path it returns. Desktop VS Code returns the origin unchanged
// (or a forwarded port's) with an empty path.
async function externalDashboardUri(url: string): Promise<vscode.Uri> {
  const local = vscode.Uri.parse(url, true);
  const mapped = await vscode.env.asExternalUri(local.with({ path: '/', query: '', fragment: '' }));
  const path = mapped.path.replace(/\/+$/, '') + local.path;
  return mapped.with({ path, query: local.query, fragment: local.fragment });
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

async function startSession(): Promise<void> {
  const title = await vscode.window.showInputBox({ prompt: 'What is the work?', value: `Editing ${vscode.workspace.name ?? 'workspace'}` });
  if (title === undefined) return;
  try {
    const s = await execute<{ id: string; workspace: string }>(cmd.sessionStart, { title });
    void vscode.window.showInformationMessage(`Coditect: session ${s.id} for ${s.workspace}`);
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: ${String(err)}`);
  }
  await refreshStatus();
}

async function endSession(): Promise<void> {
  const status = await vscode.window.showQuickPick(['completed', 'failed', 'cancelled'], { placeHolder: 'How did the session end?' });
  if (!status) return;
  try {
    await execute(cmd.sessionEnd, { status });
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: ${String(err)}`);
  }
  await refreshStatus();
}

async function fileHistory(arg?: unknown): Promise<void> {
  let uri = (arg as { uri?: string } | undefined)?.uri;
  uri ??= vscode.window.activeTextEditor?.document.uri.toString();
  if (!uri) {
    void vscode.window.showInformationMessage('Coditect: open a file to see its history');
    return;
  }
  try {
    const { events } = await execute<{ events: AuditEvent[] }>(cmd.fileHistory, { uri, limit: 200 });
    const items = events.map((ev) => ({
      label: `${ev.diff ? '$(diff) ' : ''}${ev.kind} · ${who(ev)}`,
      description: new Date(ev.time).toLocaleString(),
      detail: ev.diff ? `${ev.summary ?? ''} — pick to see the diff` : ev.summary,
      ev,
    }));
    const picked = await vscode.window.showQuickPick(items, { placeHolder: `${events.length} events, newest first`, matchOnDetail: true });
    // An agent's change opens as a unified diff in an untitled editor.
    if (picked?.ev.diff) {
      const doc = await vscode.workspace.openTextDocument({ language: 'diff', content: picked.ev.diff });
      await vscode.window.showTextDocument(doc, { preview: true });
    }
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: ${String(err)}`);
  }
}

function who(ev: AuditEvent): string {
  if (ev.who) return ev.who;
  const a = ev.attribution;
  if (a?.actor === 'human') return `${ev.user ?? 'human'} (human)`;
  if (a?.actor === 'agent') return `agent ${a.agent_id ?? ev.agent ?? ''}${a.model ? ` (${a.model})` : ''}`;
  return ev.agent ? `agent ${ev.agent}` : ev.user ?? 'unknown';
}

async function listAgents(): Promise<void> {
  try {
    const { agents } = await execute<{ agents: Agent[] }>(cmd.agents);
    await vscode.window.showQuickPick(
      agents.map((a) => ({ label: `${a.liveness === 'alive' ? '$(pass-filled)' : '$(circle-outline)'} ${a.name}`, description: a.model, detail: `${a.client} · ${a.liveness} · ${a.id}` })),
      { placeHolder: `${agents.length} agents` },
    );
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: ${String(err)}`);
  }
}

// The write commands act as the human: the server checks the role (a
// viewer may not write; forcing a lease is for admins) and records each
// action with the human's name.

/** The active editor's file and selection, as the server's {uri, range}. */
function selection(): { uri: string; range?: object } | undefined {
  const ed = vscode.window.activeTextEditor;
  if (!ed || ed.document.uri.scheme !== 'file') return undefined;
  const sel = ed.selection;
  const pos = (p: vscode.Position) => ({ line: p.line, character: p.character });
  return { uri: ed.document.uri.toString(), range: sel.isEmpty ? undefined : { start: pos(sel.start), end: pos(sel.end) } };
}

async function sendSelection(): Promise<void> {
  const where = selection();
  try {
    const { agents } = await execute<{ agents: Agent[] }>(cmd.agents);
    const picked = await vscode.window.showQuickPick(
      [
        ...agents.map((a) => ({ label: a.name, description: a.model, detail: `${a.client} · ${a.liveness} · ${a.id}`, to: a.id })),
        { label: 'Everyone', description: 'all', detail: 'every agent of the tenant', to: 'all' },
      ],
      { placeHolder: 'Send the selection to which agent?' },
    );
    if (!picked) return;
    const body = await vscode.window.showInputBox({ prompt: `Message to ${picked.label} (the selection and its lines are appended)` });
    if (!body) return;
    const subject = body.split('\n')[0].slice(0, 80);
    await execute(cmd.messageSend, { to: picked.to, subject, body, ...where });
    void vscode.window.showInformationMessage(`Coditect: sent to ${picked.label}`);
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: ${String(err)}`);
  }
}

async function createTask(): Promise<void> {
  const where = selection();
  const title = await vscode.window.showInputBox({ prompt: 'Task title (the selection and its lines go in the description)' });
  if (!title) return;
  const description = await vscode.window.showInputBox({ prompt: 'Description (optional)' });
  if (description === undefined) return;
  try {
    const t = await execute<{ id: string }>(cmd.taskCreate, { title, description, ...where });
    void vscode.window.showInformationMessage(`Coditect: task ${t.id} created`);
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: ${String(err)}`);
  }
}

async function releaseLease(arg?: unknown): Promise<void> {
  const uri = arg instanceof vscode.Uri ? arg.toString() : selection()?.uri;
  if (!uri) {
    void vscode.window.showInformationMessage('Coditect: open a file to release its lease');
    return;
  }
  const reason = await vscode.window.showInputBox({ prompt: 'Why force-release the lease? (the holder is told)' });
  if (reason === undefined) return;
  try {
    const { released } = await execute<{ released: { agent: string; token: number }[] }>(cmd.leaseRelease, { uri, reason: reason || undefined });
    void vscode.window.showInformationMessage(`Coditect: released ${released.length} lease(s) of ${released.map((l) => l.agent).join(', ')}`);
  } catch (err) {
    void vscode.window.showErrorMessage(`Coditect: ${String(err)}`);
  }
}
