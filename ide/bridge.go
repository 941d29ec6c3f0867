package ide

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/bridge"
	"github.com/coditect/coditect/storage/errclass"
	"github.com/coditect/coditect/storage/project"
)

// The IDE bridge (storage/bridge): after initialized, the connection
// announces its editor's presence for the projects of its workspace
// folders and open documents, and answers agents' requests until
// shutdown. A client that declared capabilities.experimental.coditect.
// bridge (the companion extension) gets each request as a coditect/ide
// request and answers it from its language providers; the server converts
// project-relative paths and 1-based character positions to file URIs and
// LSP positions (0-based, UTF-16) and back, drops what lies outside the
// request's project, and bounds the answer. A plain LSP client (Neovim)
// answers only what the server can on its own: open (showMessageRequest
// with an Open action, then showDocument without taking focus; a plain
// showMessage for a client without showDocument) and context (its open
// documents). docs/IDE.md, "The IDE bridge", has the
// wire contract.

// bridgeMethod is the server-to-client request of the bridge, and
// bridgeSettingsMethod the client's notification of a settings change.
const (
	bridgeMethod         = "coditect/ide"
	bridgeSettingsMethod = "coditect/bridgeSettings"
)

// plainKinds are what the server answers for a plain LSP client.
var plainKinds = []string{bridge.KindOpen, bridge.KindContext}

// clientCapabilities is what the server reads of the client's
// capabilities.
type clientCapabilities struct {
	Experimental struct {
		Coditect struct {
			Bridge *bridgeCapability `json:"bridge"`
		} `json:"coditect"`
	} `json:"experimental"`
	Window struct {
		ShowDocument *struct {
			Support bool `json:"support"`
		} `json:"showDocument"`
	} `json:"window"`
}

// bridgeCapability is the extension's declaration of the bridge.
type bridgeCapability struct {
	Kinds []string `json:"kinds"`
	Share bool     `json:"share"`
}

// bridgeConn is the connection's end of the bridge.
type bridgeConn struct {
	ed     *bridge.Editor
	cancel context.CancelFunc
	// served is closed when Serve has returned: every request taken
	// is answered or dropped.
	served  chan struct{}
	plain   bool // no bridge capability: the server answers alone
	showDoc bool
}

// lspPosition and lspRange are LSP's (0-based lines, UTF-16 columns).
type lspPosition struct {
	Line      int `json:"line"`
	Character int `json:"character"`
}

type lspRange struct {
	Start lspPosition `json:"start"`
	End   lspPosition `json:"end"`
}

// ideRequest is the params of a coditect/ide request.
type ideRequest struct {
	ID        string       `json:"id"`
	Kind      string       `json:"kind"`
	Agent     string       `json:"agent"`
	User      string       `json:"user"`
	Project   string       `json:"project"`
	URI       string       `json:"uri,omitempty"`
	Position  *lspPosition `json:"position,omitempty"`
	Range     *lspRange    `json:"range,omitempty"`
	Symbol    string       `json:"symbol,omitempty"`
	Query     string       `json:"query,omitempty"`
	Message   string       `json:"message,omitempty"`
	WaitFor   []waitURI    `json:"waitFor,omitempty"`
	Limit     int          `json:"limit"`
	TimeoutMs int64        `json:"timeoutMs"`
}

type waitURI struct {
	URI    string `json:"uri"`
	SHA256 string `json:"sha256"`
}

// ideAnswer is the result of a coditect/ide request, every kind's fields.
type ideAnswer struct {
	Items []struct {
		URI      string          `json:"uri"`
		Range    lspRange        `json:"range"`
		Severity int             `json:"severity"`
		Message  string          `json:"message"`
		Source   string          `json:"source"`
		Code     json.RawMessage `json:"code"`
	} `json:"items"`
	Locations []struct {
		URI   string   `json:"uri"`
		Range lspRange `json:"range"`
	} `json:"locations"`
	Symbols []struct {
		Name          string   `json:"name"`
		Kind          int      `json:"kind"`
		ContainerName string   `json:"containerName"`
		URI           string   `json:"uri"`
		Range         lspRange `json:"range"`
	} `json:"symbols"`
	Contents string `json:"contents"`
	Editors  []struct {
		URI           string     `json:"uri"`
		VisibleRanges []lspRange `json:"visibleRanges"`
	} `json:"editors"`
	Active *struct {
		URI       string   `json:"uri"`
		Selection lspRange `json:"selection"`
		Text      string   `json:"text"`
	} `json:"active"`
	Shown  bool `json:"shown"`
	Opened bool `json:"opened"`
	More   int  `json:"more"`
}

// parseCapabilities reads the client's capabilities leniently: a
// capability of an unexpected shape is no capability, never a failed
// initialize.
func parseCapabilities(raw json.RawMessage) clientCapabilities {
	var c clientCapabilities
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &c)
	}
	return c
}

// startBridge announces the editor and serves the bridge's requests; it
// runs once the client is initialized. A failure is logged: the editor
// then simply does not answer agents.
func (s *server) startBridge(caps clientCapabilities) {
	s.mu.Lock()
	if s.bridge != nil || s.stopping {
		s.mu.Unlock()
		return
	}
	client := s.client
	s.mu.Unlock()
	p := bridge.Presence{Editor: s.opts.Editor, Client: client, Kind: bridge.EditorLSP, Kinds: plainKinds, Machine: project.Machine(),
		Projects: s.bridgeProjects()}
	bc := &bridgeConn{plain: true, showDoc: caps.Window.ShowDocument != nil && caps.Window.ShowDocument.Support}
	if b := caps.Experimental.Coditect.Bridge; b != nil {
		bc.plain = false
		p.Kind, p.Share, p.Kinds = bridge.EditorVSCode, b.Share, nil
		for _, k := range b.Kinds {
			if slices.Contains(bridge.Kinds, k) && !slices.Contains(p.Kinds, k) {
				p.Kinds = append(p.Kinds, k)
			}
		}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	ed, err := bridge.Connect(ctx, s.sc, p, bridge.Options{Logger: s.log})
	if err != nil {
		cancel()
		s.log.Warn("the IDE bridge is off: announcing the editor failed", "error", err)
		return
	}
	bc.ed, bc.cancel, bc.served = ed, cancel, make(chan struct{})
	s.mu.Lock()
	s.bridge = bc
	s.mu.Unlock()
	s.log.Info("IDE bridge", "kind", p.Kind, "kinds", p.Kinds, "share", p.Share, "projects", p.Projects)
	if !s.goBackground(func() {
		defer close(bc.served)
		if err := ed.Serve(ctx, func(rctx context.Context, r bridge.Request) (bridge.Result, error) {
			return s.answerBridge(rctx, bc, r)
		}); err != nil && ctx.Err() == nil {
			s.log.Warn("the IDE bridge stopped", "error", err)
		}
	}) {
		close(bc.served)
	}
	s.goBackground(func() { s.followProjects(ctx, ed) })
}

// stopBridge disconnects the editor: agents see it gone at once.
func (s *server) stopBridge(ctx context.Context) {
	s.mu.Lock()
	bc := s.bridge
	s.mu.Unlock()
	if bc == nil {
		return
	}
	bc.cancel()
	// The answers of the requests being handled go out before the
	// editor disconnects (which answers the rest with an error).
	select {
	case <-bc.served:
	case <-ctx.Done():
	}
	if err := bc.ed.Close(ctx); err != nil {
		s.log.Warn("disconnecting the IDE bridge", "error", err)
	}
}

// bridgeProjects returns the projects of the workspace folders and the
// open documents.
func (s *server) bridgeProjects() []string {
	var out []string
	for _, f := range s.workspaceRoots() {
		if f.project != "" && !slices.Contains(out, f.project) {
			out = append(out, f.project)
		}
	}
	s.docs.mu.Lock()
	for _, d := range s.docs.m {
		if d.tracked && !slices.Contains(out, d.file.Project) {
			out = append(out, d.file.Project)
		}
	}
	s.docs.mu.Unlock()
	slices.Sort(out)
	return out
}

// followProjects keeps the presence's projects those of the folders and
// documents the editor has open.
func (s *server) followProjects(ctx context.Context, ed *bridge.Editor) {
	t := time.NewTicker(bridge.PresenceTTL / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.bridgeProjects()
		if slices.Equal(now, ed.Presence().Projects) {
			continue
		}
		if err := ed.Update(ctx, func(p *bridge.Presence) { p.Projects = now }); err != nil && ctx.Err() == nil {
			s.log.Warn("updating the editor's projects", "error", err)
		}
	}
}

// bridgeSettings applies the extension's coditect/bridgeSettings.
func (s *server) bridgeSettings(ctx context.Context, params json.RawMessage) error {
	var p struct {
		Share *bool `json:"share"`
	}
	if err := decode(params, &p); err != nil {
		return err
	}
	s.mu.Lock()
	bc := s.bridge
	s.mu.Unlock()
	if bc == nil || p.Share == nil {
		return nil
	}
	return bc.ed.Update(ctx, func(pr *bridge.Presence) { pr.Share = *p.Share })
}

// answerBridge answers one request: through the client when it has the
// bridge, else from the server's own state.
func (s *server) answerBridge(ctx context.Context, bc *bridgeConn, r bridge.Request) (bridge.Result, error) {
	pj, err := s.requestProject(ctx, r.Project)
	if err != nil {
		return bridge.Result{}, err
	}
	if bc.plain {
		return s.answerPlain(ctx, bc, pj, r)
	}
	params, err := pj.wire(s, r)
	if err != nil {
		return bridge.Result{}, err
	}
	var raw json.RawMessage
	if err := s.callClient(ctx, bridgeCallID(r.ID), params, &raw); err != nil {
		var je *jsonrpc2.Error
		if errors.As(err, &je) {
			return bridge.Result{}, errclass.New(clientErrorClass(je), je.Message)
		}
		return bridge.Result{}, err
	}
	var a ideAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return bridge.Result{}, errclass.New(errclass.Invalid, fmt.Sprintf("the editor's answer to %s is malformed: %v", r.Kind, err))
	}
	res := pj.convert(s, r, a)
	fit(&res, r.Params.Limit)
	return res, nil
}

// bridgeCallID is the JSON-RPC id of the coditect/ide request of the
// bridge's request id: a string, never one of the connection's numbered
// requests, so that $/cancelRequest can name it.
func bridgeCallID(id string) jsonrpc2.ID {
	return jsonrpc2.ID{Str: bridgeMethod + ":" + id, IsString: true}
}

// callClient sends the coditect/ide request id and waits for its answer
// until ctx ends (the request's deadline, or its asker withdrew it); then
// it tells the client with $/cancelRequest, so that the editor stops
// working on it. The client still answers a cancelled request (LSP), and
// that late answer is dropped.
func (s *server) callClient(ctx context.Context, id jsonrpc2.ID, params, result any) error {
	call, err := s.rpc.DispatchCall(ctx, bridgeMethod, params, jsonrpc2.PickID(id))
	if err != nil {
		return err
	}
	err = call.Wait(ctx, result)
	if ctx.Err() != nil {
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if nerr := s.rpc.Notify(nctx, "$/cancelRequest", map[string]any{"id": id.Str}); nerr != nil {
			s.log.Debug("$/cancelRequest", "id", id.Str, "error", nerr)
		}
	}
	return err
}

// clientErrorClass is the class of an error the client answered with.
func clientErrorClass(je *jsonrpc2.Error) *errclass.Class {
	if je.Data != nil {
		var d struct {
			Class string `json:"class"`
		}
		if json.Unmarshal(*je.Data, &d) == nil {
			for _, c := range errclass.All {
				if c.Name() == strings.ReplaceAll(d.Class, "-", "_") {
					return c
				}
			}
		}
	}
	if je.Code == codeInvalidParams {
		return errclass.Invalid
	}
	return errclass.Unavailable
}

// reqProject is the request's project on this machine: its roots (real
// paths), the first holding a workspace folder first.
type reqProject struct {
	id    string
	roots []string
	texts map[string][]byte
	mu    sync.Mutex
}

func (s *server) requestProject(ctx context.Context, id string) (*reqProject, error) {
	p, err := project.Get(ctx, s.sc, id)
	if err != nil {
		return nil, err
	}
	roots := p.RootsOn(project.Machine())
	if len(roots) == 0 {
		return nil, errclass.New(errclass.NotFound, fmt.Sprintf("project %s has no root on the editor's machine", p.Name))
	}
	pj := &reqProject{id: id, texts: map[string][]byte{}}
	for _, r := range roots {
		pj.roots = append(pj.roots, realPath(r))
	}
	for _, f := range s.workspaceRoots() {
		for i, r := range pj.roots {
			if f.project == id && within(r, f.path) {
				pj.roots[0], pj.roots[i] = pj.roots[i], pj.roots[0]
			}
		}
	}
	return pj, nil
}

// within reports whether p is dir or below it.
func within(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

// abs returns the absolute path of a project-relative path.
func (pj *reqProject) abs(rel string) string {
	return filepath.Join(pj.roots[0], filepath.FromSlash(rel))
}

func (pj *reqProject) uri(rel string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(pj.abs(rel))}).String()
}

// rel returns the project-relative path of a file URI; ok is false for
// one outside the project.
func (pj *reqProject) rel(uri string) (string, bool) {
	p, err := uriPath(uri)
	if err != nil {
		return "", false
	}
	for _, r := range pj.roots {
		if within(r, p) {
			rel, err := filepath.Rel(r, p)
			if err != nil {
				return "", false
			}
			return filepath.ToSlash(rel), true
		}
	}
	return "", false
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// maxLineSource bounds a file read to convert positions.
const maxLineSource = 8 << 20

// text returns a file's text as the editor holds it: an open document's
// buffer, else the file on disk (nil when unreadable).
func (pj *reqProject) text(s *server, abs string) []byte {
	pj.mu.Lock()
	defer pj.mu.Unlock()
	if t, ok := pj.texts[abs]; ok {
		return t
	}
	var t []byte
	s.docs.mu.Lock()
	for _, d := range s.docs.m {
		if d.path == abs {
			t = slices.Clone(d.buf.text)
			break
		}
	}
	s.docs.mu.Unlock()
	if t == nil {
		if fi, err := os.Stat(abs); err == nil && fi.Mode().IsRegular() && fi.Size() <= maxLineSource {
			t, _ = os.ReadFile(abs)
		}
	}
	pj.texts[abs] = t
	return t
}

// textLine returns line n (0-based) of text, without its ending.
func textLine(text []byte, n int) []byte {
	for i := 0; i < n; i++ {
		j := strings.IndexByte(string(text), '\n')
		if j < 0 {
			return nil
		}
		text = text[j+1:]
	}
	if j := strings.IndexByte(string(text), '\n'); j >= 0 {
		text = text[:j]
	}
	return []byte(strings.TrimSuffix(string(text), "\r"))
}

// toUTF16 converts a 1-based character column of a line to LSP's 0-based
// UTF-16 character.
func toUTF16(l []byte, col int) int {
	if col <= 1 {
		return 0
	}
	n, chars := 0, 0
	for len(l) > 0 && chars < col-1 {
		r, size := utf8.DecodeRune(l)
		n += utf16.RuneLen(r) // an invalid byte decodes as U+FFFD: one unit
		l = l[size:]
		chars++
	}
	return n + (col - 1 - chars) // past the line's end: as sent
}

// fromUTF16 converts LSP's 0-based UTF-16 character to a 1-based
// character column.
func fromUTF16(l []byte, ch int) int {
	units, chars := 0, 0
	for len(l) > 0 && units < ch {
		r, size := utf8.DecodeRune(l)
		u := utf16.RuneLen(r)
		if u < 0 {
			u = 1
		}
		units += u
		l = l[size:]
		chars++
	}
	return chars + 1 + max(0, ch-units)
}

// position converts a project file's 1-based line and column.
func (pj *reqProject) position(s *server, rel string, ln, col int) *lspPosition {
	if ln <= 0 {
		return nil
	}
	p := &lspPosition{Line: ln - 1}
	if col > 1 {
		p.Character = toUTF16(textLine(pj.text(s, pj.abs(rel)), ln-1), col)
	}
	return p
}

// location converts an LSP range in a file of the project.
func (pj *reqProject) location(s *server, rel string, r lspRange) bridge.Location {
	t := pj.text(s, pj.abs(rel))
	return bridge.Location{Path: rel,
		Line: r.Start.Line + 1, Column: fromUTF16(textLine(t, r.Start.Line), r.Start.Character),
		EndLine: r.End.Line + 1, EndColumn: fromUTF16(textLine(t, r.End.Line), r.End.Character)}
}

// wire is the coditect/ide request of r.
func (pj *reqProject) wire(s *server, r bridge.Request) (ideRequest, error) {
	w := ideRequest{ID: r.ID, Kind: r.Kind, Agent: r.AgentLabel, User: r.User, Project: r.ProjectName,
		Symbol: r.Params.Symbol, Query: r.Params.Query, Message: r.Params.Message, Limit: r.Params.Limit,
		TimeoutMs: max(1, time.Until(r.Deadline).Milliseconds())}
	if w.Agent == "" {
		w.Agent = r.Agent
	}
	// Diagnostics of a directory are the whole project's, filtered on the
	// way back (see convert).
	if r.Params.Path != "" && !(r.Kind == bridge.KindDiagnostics && isDir(pj.abs(r.Params.Path))) {
		w.URI = pj.uri(r.Params.Path)
	}
	if w.URI != "" {
		w.Position = pj.position(s, r.Params.Path, r.Params.Line, r.Params.Column)
		if r.Kind == bridge.KindOpen && w.Position != nil {
			end := max(r.Params.EndLine, r.Params.Line)
			w.Range = &lspRange{Start: *w.Position, End: lspPosition{Line: end - 1}}
		}
	}
	for _, wf := range r.Params.WaitFor {
		w.WaitFor = append(w.WaitFor, waitURI{URI: pj.uri(wf.Path), SHA256: wf.SHA256})
	}
	return w, nil
}

// convert turns the client's answer into the bridge's result: paths
// relative to the project (others counted in Elsewhere), 1-based lines
// and character columns, diagnostics filtered by severity and directory.
func (pj *reqProject) convert(s *server, r bridge.Request, a ideAnswer) bridge.Result {
	res := bridge.Result{Contents: a.Contents, Shown: a.Shown, Opened: a.Opened, More: a.More}
	dir := ""
	if r.Kind == bridge.KindDiagnostics && r.Params.Path != "" {
		dir = r.Params.Path
	}
	for _, it := range a.Items {
		rel, ok := pj.rel(it.URI)
		if !ok {
			res.Elsewhere++
			continue
		}
		if dir != "" && rel != dir && !strings.HasPrefix(rel, dir+"/") {
			continue
		}
		if r.Params.SeverityMin > 0 && it.Severity > r.Params.SeverityMin {
			continue
		}
		code := strings.Trim(string(it.Code), `"`)
		if code == "null" {
			code = ""
		}
		res.Diagnostics = append(res.Diagnostics, bridge.Diagnostic{Location: pj.location(s, rel, it.Range), Severity: it.Severity,
			Message: it.Message, Source: it.Source, Code: code})
	}
	for _, l := range a.Locations {
		rel, ok := pj.rel(l.URI)
		if !ok {
			res.Elsewhere++
			continue
		}
		res.Locations = append(res.Locations, pj.location(s, rel, l.Range))
	}
	for _, sym := range a.Symbols {
		rel, ok := pj.rel(sym.URI)
		if !ok {
			res.Elsewhere++
			continue
		}
		res.Symbols = append(res.Symbols, bridge.Symbol{Name: sym.Name, Kind: sym.Kind, Container: sym.ContainerName, Location: pj.location(s, rel, sym.Range)})
	}
	for _, e := range a.Editors {
		rel, ok := pj.rel(e.URI)
		if !ok {
			res.Elsewhere++
			continue
		}
		oe := bridge.OpenEditor{Path: rel}
		if len(e.VisibleRanges) > 0 {
			oe.FirstLine, oe.LastLine = e.VisibleRanges[0].Start.Line+1, e.VisibleRanges[len(e.VisibleRanges)-1].End.Line+1
		}
		res.Editors = append(res.Editors, oe)
	}
	if a.Active != nil {
		if rel, ok := pj.rel(a.Active.URI); ok {
			res.Active = &bridge.Active{Path: rel, Selection: pj.location(s, rel, a.Active.Selection), Text: a.Active.Text}
		} else {
			res.Elsewhere++
		}
	}
	return res
}

// fit trims a result's lists to limit and its encoding to well under
// bridge.MaxAnswer, counting what it left out in More.
func fit(res *bridge.Result, limit int) {
	if limit <= 0 {
		limit = bridge.DefaultLimit
	}
	res.Diagnostics = keep(res.Diagnostics, limit, &res.More)
	res.Locations = keep(res.Locations, limit, &res.More)
	res.Symbols = keep(res.Symbols, limit, &res.More)
	res.Editors = keep(res.Editors, limit, &res.More)
	const budget = bridge.MaxAnswer * 3 / 4
	if len(res.Contents) > budget/2 {
		cut := textclip.Prefix(res.Contents, budget/2)
		res.Contents = cut + fmt.Sprintf("\n… %d more bytes", len(res.Contents)-len(cut))
	}
	if res.Active != nil && len(res.Active.Text) > budget/8 {
		res.Active.Text = textclip.Clip(res.Active.Text, budget/8)
	}
	for {
		b, _ := json.Marshal(res)
		if len(b) <= budget {
			return
		}
		switch {
		case len(res.Diagnostics) > 1:
			res.Diagnostics = keep(res.Diagnostics, len(res.Diagnostics)/2, &res.More)
		case len(res.Locations) > 1:
			res.Locations = keep(res.Locations, len(res.Locations)/2, &res.More)
		case len(res.Symbols) > 1:
			res.Symbols = keep(res.Symbols, len(res.Symbols)/2, &res.More)
		case len(res.Editors) > 1:
			res.Editors = keep(res.Editors, len(res.Editors)/2, &res.More)
		default:
			for i := range res.Diagnostics {
				res.Diagnostics[i].Message = textclip.Clip(res.Diagnostics[i].Message, 1000)
			}
			return
		}
	}
}

// keep returns the first n items of s (all when it is shorter), counting
// those it leaves out in more.
func keep[T any](s []T, n int, more *int) []T {
	if len(s) <= n {
		return s
	}
	*more += len(s) - n
	return s[:n]
}

// answerPlain answers for a client without the bridge: open through
// window/showMessageRequest (then showDocument, not taking focus, when
// the human clicks Open) or, for a client without showDocument, a
// window/showMessage naming the file; context from the open documents;
// anything else refused.
func (s *server) answerPlain(ctx context.Context, bc *bridgeConn, pj *reqProject, r bridge.Request) (bridge.Result, error) {
	switch r.Kind {
	case bridge.KindContext:
		var res bridge.Result
		for _, d := range s.docs.openDocs() {
			if rel, ok := pj.rel((&url.URL{Scheme: "file", Path: filepath.ToSlash(d.path)}).String()); ok {
				res.Editors = append(res.Editors, bridge.OpenEditor{Path: rel})
			}
		}
		slices.SortFunc(res.Editors, func(a, b bridge.OpenEditor) int { return strings.Compare(a.Path, b.Path) })
		fit(&res, r.Params.Limit)
		return res, nil
	case bridge.KindOpen:
		where := r.Params.Path
		if r.Params.Line > 0 {
			where += fmt.Sprintf(":%d", r.Params.Line)
		}
		who := r.AgentLabel
		if who == "" {
			who = "an agent"
		}
		msg := fmt.Sprintf("Coditect: %s (for %s) asks you to look at %s in %s", who, r.User, where, r.ProjectName)
		if r.Params.Message != "" {
			msg += ": " + r.Params.Message
		}
		if !bc.showDoc {
			// The client cannot show a document (Neovim before 0.8): a
			// message naming the file, without an Open button that would
			// do nothing nor a prompt that would block the editor.
			abs := pj.abs(r.Params.Path)
			if r.Params.Line > 0 {
				abs += fmt.Sprintf(":%d", r.Params.Line)
			}
			if err := s.rpc.Notify(ctx, "window/showMessage", map[string]any{"type": 3, "message": msg + " (" + abs + ")"}); err != nil {
				return bridge.Result{}, err
			}
			return bridge.Result{Shown: true}, nil
		}
		uri := pj.uri(r.Params.Path)
		sel := pj.position(s, r.Params.Path, r.Params.Line, 1)
		// The human answers when they like; the agent does not wait.
		s.goBackground(func() {
			var choice *struct {
				Title string `json:"title"`
			}
			err := s.rpc.Call(s.ctx, "window/showMessageRequest", map[string]any{
				"type": 3, "message": msg, "actions": []map[string]string{{"title": "Open"}},
			}, &choice)
			if err != nil || choice == nil || choice.Title != "Open" {
				return
			}
			params := map[string]any{"uri": uri, "takeFocus": false}
			if sel != nil {
				params["selection"] = lspRange{Start: *sel, End: *sel}
			}
			var shown struct {
				Success bool `json:"success"`
			}
			if err := s.rpc.Call(s.ctx, "window/showDocument", params, &shown); err != nil {
				s.log.Debug("showDocument", "error", err)
			}
		})
		return bridge.Result{Shown: true}, nil
	}
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	return bridge.Result{}, errclass.New(errclass.Unavailable, fmt.Sprintf("the editor of %s (%s, plain LSP) cannot answer ide_%s; use VS Code with the Coditect extension",
		s.sc.Principal().User, client, r.Kind))
}
