// Review before write, in the editor: a project's review policy turns an
// agent's write through the files tools into a proposal that a person
// accepts or rejects. This module shows a proposal in VS Code's diff editor
// (its before and after served by a content provider for the
// coditect-review: scheme), puts Accept and Reject in the diff's title bar,
// and tells the human when an agent proposes a change. The server
// (coditect ide) does the deciding: accept applies the write through the
// fenced write path and records "agent X, approved by human Y"; reject
// sends the reason to the agent's inbox.
import * as vscode from 'vscode';

/** The URI scheme of a proposal's two sides. */
export const scheme = 'coditect-review';

// The server's commands (ide/review.go).
const cmd = {
  list: 'coditect.review.list',
  show: 'coditect.review.show',
  accept: 'coditect.review.accept',
  reject: 'coditect.review.reject',
  agents: 'coditect.agents',
} as const;

/** A pending proposal, as coditect.review.list lists it. */
export interface Proposal {
  id: string;
  project?: string;
  path: string;
  agent?: string;
  agent_name?: string;
  model?: string;
  session?: string;
  created?: string;
  diff?: string;
  kind?: 'write' | 'edit' | 'move' | 'delete' | string;
  state?: string;
  /** A move's destination. */
  to?: string;
}

/** A proposal with its content, as coditect.review.show answers. */
export interface ProposalDetail extends Proposal {
  uri?: string;
  before?: string;
  after?: string;
  /** Binary content is not sent: before and after are empty. */
  binary?: boolean;
  /** False when the content before the change was too large to keep (its hash still guards the accept). */
  base_known?: boolean;
  base_hash?: string;
  base_size?: number;
  new_size?: number;
}

/** The audit event a coditect/event notification carries (the fields read here). */
export interface ReviewEvent {
  kind: string;
  path?: string;
  agent?: string;
  user?: string;
  attrs?: Record<string, unknown>;
}

type Execute = <T>(command: string, arg?: object) => Promise<T>;

// ---- pure helpers (no VS Code state) ---------------------------------------

/** The proposals of a coditect.review.list answer still pending. */
export function pendingOf(list: Proposal[] | null | undefined): Proposal[] {
  return (list ?? []).filter((p) => p.state === 'pending');
}

/** The last element of a '/'-separated path. */
export function baseName(path: string): string {
  const parts = path.split('/').filter(Boolean);
  return parts[parts.length - 1] ?? path;
}

/** The diff editor's title: "login.go: builder (qwen2.5-coder-7b) proposes — Review". */
export function diffTitle(p: Pick<Proposal, 'path' | 'kind' | 'to'>, agent: string): string {
  const what = p.kind === 'move' && p.to ? ` a move to ${p.to}` : p.kind === 'delete' ? ' deleting it' : '';
  return `${baseName(p.path)}: ${agent} proposes${what} — Review`;
}

/** The text of one side of a proposal's diff; binary or unkept content is described. */
export function sideText(d: ProposalDetail, side: 'before' | 'after'): string {
  if (d.binary) return `(binary content, ${(side === 'before' ? d.base_size : d.new_size) ?? 0} bytes: not shown)\n`;
  if (side === 'before' && d.base_known === false && d.base_hash) {
    return '(the content before this change was too large to keep; its hash still guards the accept)\n';
  }
  return (side === 'before' ? d.before : d.after) ?? '';
}

/** The review id a coditect/event notification names, "" when none. */
export function reviewIdOf(ev: ReviewEvent): string {
  const a = ev.attrs ?? {};
  for (const k of ['review_id', 'review', 'proposal', 'id']) {
    const v = a[k];
    if (typeof v === 'string' && v.startsWith('rv_')) return v;
  }
  return '';
}

/** The id and side of a coditect-review: URI's query ("id=rv_…&side=after"). */
export function parseQuery(query: string): { id: string; side: 'before' | 'after' } | undefined {
  const q = new URLSearchParams(query);
  const id = q.get('id');
  const side = q.get('side');
  if (!id || (side !== 'before' && side !== 'after')) return undefined;
  return { id, side };
}

/** A sentence for a refused review command: what the class means, then the server's words. */
export function describeError(err: unknown, what: string): string {
  const e = err as { message?: string; data?: { class?: string } };
  const msg = (e?.message ?? String(err)).replace(/^review: /, '');
  switch (e?.data?.class) {
    case 'conflict':
      if (/already decided/.test(msg)) return `Coditect: cannot ${what}: it was already decided (conflict). ${msg}`;
      return `Coditect: cannot ${what}: the file changed since the agent proposed this (conflict). ${msg}`;
    case 'not_found':
      return `Coditect: cannot ${what}: the proposal is gone (decided elsewhere, or withdrawn). ${msg}`;
    case 'forbidden':
      return `Coditect: cannot ${what}: your role may not (viewers read only). ${msg}`;
    case 'unavailable':
      return `Coditect: cannot ${what} now: the store is unavailable; retry shortly. ${msg}`;
  }
  return `Coditect: cannot ${what}: ${msg}`;
}

// ---- the editor side --------------------------------------------------------

/** Review state: the server connection and what is cached of proposals. */
class Reviews implements vscode.TextDocumentContentProvider {
  private readonly details = new Map<string, Promise<ProposalDetail>>();
  private readonly agentLabels = new Map<string, { name: string; label: string }>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  // Proposals this window decided: their review.* events are not news.
  private readonly decidedHere = new Set<string>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly execute: Execute) {}

  uri(p: Proposal, side: 'before' | 'after'): vscode.Uri {
    return vscode.Uri.from({ scheme, path: '/' + p.path.replace(/^\/+/, ''), query: `id=${encodeURIComponent(p.id)}&side=${side}` });
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const q = parseQuery(uri.query);
    if (!q) throw new Error(`not a proposal: ${uri.toString()}`);
    const d = await this.detail(q.id);
    return sideText(d, q.side);
  }

  detail(id: string): Promise<ProposalDetail> {
    let d = this.details.get(id);
    if (!d) {
      d = this.execute<ProposalDetail>(cmd.show, { id });
      this.details.set(id, d);
      d.catch(() => this.details.delete(id));
    }
    return d;
  }

  forget(id: string): void {
    this.details.delete(id);
  }

  /** An agent for people: {name, "name (model)"}, from the server's agent list, else as the proposal recorded it. */
  async agent(p: { agent?: string; agent_name?: string; model?: string }): Promise<{ name: string; label: string }> {
    const id = p.agent ?? '';
    if (id && !this.agentLabels.has(id)) {
      try {
        const { agents } = await this.execute<{ agents: { id: string; name: string; model?: string }[] }>(cmd.agents);
        for (const a of agents) this.agentLabels.set(a.id, { name: a.name, label: a.model ? `${a.name} (${a.model})` : a.name });
      } catch {
        // Named as the proposal recorded it, below.
      }
    }
    const known = id ? this.agentLabels.get(id) : undefined;
    if (known) return known;
    if (p.agent_name) return { name: p.agent_name, label: p.model ? `${p.agent_name} (${p.model})` : p.agent_name };
    return id ? { name: id, label: id } : { name: 'an agent', label: 'an agent' };
  }

  async list(): Promise<Proposal[]> {
    return pendingOf(await this.execute<Proposal[]>(cmd.list, {}));
  }

  /** Opens a proposal in the diff editor. */
  async open(id: string): Promise<void> {
    const d = await this.detail(id);
    const who = await this.agent(d);
    const p = { ...d, id };
    await vscode.commands.executeCommand('vscode.diff', this.uri(p, 'before'), this.uri(p, 'after'), diffTitle(p, who.label), {
      preview: false,
    });
  }

  /** Closes every diff editor showing proposal id; true when one was open. */
  async close(id: string): Promise<boolean> {
    const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => {
      const input = t.input;
      const uris = input instanceof vscode.TabInputTextDiff ? [input.original, input.modified] : input instanceof vscode.TabInputText ? [input.uri] : [];
      return uris.some((u) => u.scheme === scheme && parseQuery(u.query)?.id === id);
    });
    if (tabs.length) await vscode.window.tabGroups.close(tabs);
    return tabs.length > 0;
  }

  /** The proposal an Accept/Reject invocation is about: its argument, the active review editor, or the human's pick. */
  async target(arg: unknown): Promise<string | undefined> {
    if (arg instanceof vscode.Uri && arg.scheme === scheme) return parseQuery(arg.query)?.id;
    if (typeof arg === 'string' && arg.startsWith('rv_')) return arg;
    const id = (arg as { id?: unknown } | undefined)?.id;
    if (typeof id === 'string') return id;
    const active = vscode.window.activeTextEditor?.document.uri;
    if (active?.scheme === scheme) return parseQuery(active.query)?.id;
    return (await this.pick())?.id;
  }

  /** A quick pick of the pending proposals, oldest first. */
  async pick(): Promise<Proposal | undefined> {
    const list = (await this.list()).sort((a, b) => String(a.created ?? '').localeCompare(String(b.created ?? '')));
    if (!list.length) {
      void vscode.window.showInformationMessage('Coditect: no proposed changes wait for review.');
      return undefined;
    }
    const items = await Promise.all(
      list.map(async (p) => {
        const who = await this.agent(p);
        return {
          label: `$(diff) ${p.path}`,
          description: `${who.label} · ${p.kind ?? 'change'}`,
          detail: p.created ? `proposed ${new Date(p.created).toLocaleString()}` : undefined,
          p,
        };
      }),
    );
    const picked = await vscode.window.showQuickPick(items, { placeHolder: `${list.length} proposed changes wait for review`, matchOnDescription: true });
    return picked?.p;
  }

  async accept(arg: unknown): Promise<void> {
    const id = await this.target(arg);
    if (!id) return;
    let label = id;
    try {
      const d = await this.detail(id);
      label = `${(await this.agent(d)).name}'s change to ${d.path}`;
      this.decidedHere.add(id);
      await this.execute(cmd.accept, { id });
    } catch (err) {
      this.decidedHere.delete(id);
      void vscode.window.showErrorMessage(describeError(err, `accept ${label}`));
      return;
    }
    this.forget(id);
    await this.close(id);
    void vscode.window.showInformationMessage(`Coditect: accepted ${label}; it is written.`);
  }

  async reject(arg: unknown): Promise<void> {
    const id = await this.target(arg);
    if (!id) return;
    let label = id;
    try {
      const d = await this.detail(id);
      label = `${(await this.agent(d)).name}'s change to ${d.path}`;
    } catch (err) {
      void vscode.window.showErrorMessage(describeError(err, `reject ${label}`));
      return;
    }
    const reason = await vscode.window.showInputBox({
      prompt: `Why reject ${label}? The agent is told.`,
      ignoreFocusOut: true,
      validateInput: (v) => (v.trim() ? undefined : 'A reason is required: the agent reads it in its inbox.'),
    });
    if (!reason?.trim()) return;
    try {
      this.decidedHere.add(id);
      await this.execute(cmd.reject, { id, reason: reason.trim() });
    } catch (err) {
      this.decidedHere.delete(id);
      void vscode.window.showErrorMessage(describeError(err, `reject ${label}`));
      return;
    }
    this.forget(id);
    await this.close(id);
    void vscode.window.showInformationMessage(`Coditect: rejected ${label}; the agent was told why.`);
  }

  /** Reacts to a live audit event: a new proposal, or one decided elsewhere. */
  async event(ev: ReviewEvent): Promise<void> {
    const id = reviewIdOf(ev);
    if (ev.kind === 'review.proposed') {
      const who = await this.agent(ev);
      // A notification, not a modal nor an editor: the human's focus stays.
      const choice = await vscode.window.showInformationMessage(`Coditect: ${who.name} proposes a change to ${ev.path ?? 'a file'}`, 'Review');
      if (choice === 'Review') await (id ? this.open(id) : this.pick().then((p) => (p ? this.open(p.id) : undefined)));
      return;
    }
    if ((ev.kind === 'review.accepted' || ev.kind === 'review.rejected') && id && !this.decidedHere.has(id)) {
      this.forget(id);
      if (await this.close(id)) {
        const how = ev.kind === 'review.accepted' ? 'accepted' : 'rejected';
        void vscode.window.showInformationMessage(`Coditect: the proposed change to ${ev.path ?? 'a file'} was ${how}${ev.user ? ' by ' + ev.user : ''} elsewhere.`);
      }
    }
  }
}

let reviews: Reviews | undefined;

/**
 * registerReview registers the coditect-review: content provider and the
 * review commands. execute runs a server command (it throws while
 * coditect ide is not running).
 */
export function registerReview(context: vscode.ExtensionContext, execute: Execute): void {
  const r = new Reviews(execute);
  reviews = r;
  const guard = (fn: (arg?: unknown) => Promise<unknown>) => async (arg?: unknown) => {
    try {
      await fn(arg);
    } catch (err) {
      void vscode.window.showErrorMessage(describeError(err, 'review'));
    }
  };
  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(scheme, r),
    vscode.commands.registerCommand('coditect.reviewChange', guard(async (arg) => {
      // From the palette: a pick; from a notification or a link: its proposal.
      const id = arg === undefined ? (await r.pick())?.id : await r.target(arg);
      if (id) await r.open(id);
    })),
    vscode.commands.registerCommand('coditect.acceptChange', guard((arg) => r.accept(arg))),
    vscode.commands.registerCommand('coditect.rejectChange', guard((arg) => r.reject(arg))),
    { dispose: () => (reviews = undefined) },
  );
}

/** reviewEvent hands a coditect/event notification to the review UI. */
export function reviewEvent(ev: ReviewEvent): void {
  if (reviews && ev.kind.startsWith('review.')) void reviews.event(ev).catch(() => undefined);
}
