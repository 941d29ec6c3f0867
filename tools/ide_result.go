package tools

import (
	"fmt"
	"strings"

	"github.com/coditect/coditect/internal/textclip"
	"github.com/coditect/coditect/storage/bridge"
)

// Budgets of what the ide tools show a model.
const (
	// ideTextBudget bounds the text of one answer, in bytes; the items
	// past it are counted in more.
	ideTextBudget = 8 << 10
	// ideItemText bounds one diagnostic's message, one symbol's name, in
	// bytes.
	ideItemText = 300
	// ideHoverBudget bounds hover contents and a selection's text.
	ideHoverBudget = 4 << 10
)

type ideDiagOut struct {
	ideLoc
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Source   string `json:"source,omitempty"`
	Code     string `json:"code,omitempty"`
}

type ideSymbolOut struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Container string `json:"container,omitempty"`
	Path      string `json:"path"`
	Line      int    `json:"line"`
}

type ideActiveOut struct {
	Path      string  `json:"path"`
	Selection *ideLoc `json:"selection,omitempty"`
	Text      string  `json:"text,omitempty"`
}

type ideOut struct {
	Editor      string              `json:"editor"`
	Items       []ideDiagOut        `json:"items,omitempty"`
	Locations   []ideLoc            `json:"locations,omitempty"`
	Symbols     []ideSymbolOut      `json:"symbols,omitempty"`
	Contents    *string             `json:"contents,omitempty"`
	Editors     []bridge.OpenEditor `json:"editors,omitempty"`
	Active      *ideActiveOut       `json:"active,omitempty"`
	Shown       *bool               `json:"shown,omitempty"`
	Opened      *bool               `json:"opened,omitempty"`
	More        int                 `json:"more,omitempty"`
	Elsewhere   int                 `json:"elsewhere,omitempty"`
	textBuilder strings.Builder
}

var severityNames = [...]string{"", "error", "warning", "info", "hint"}

// symbolKinds names LSP's SymbolKind numbers.
var symbolKinds = [...]string{"", "file", "module", "namespace", "package", "class", "method", "property", "field",
	"constructor", "enum", "interface", "function", "variable", "constant", "string", "number", "boolean", "array",
	"object", "key", "null", "enum member", "struct", "event", "operator", "type parameter"}

func enumName(names []string, i int) string {
	if i > 0 && i < len(names) {
		return names[i]
	}
	return fmt.Sprint(i)
}

// line adds a line to the text unless the budget is spent; it reports
// whether it did.
func (o *ideOut) line(format string, args ...any) bool {
	s := fmt.Sprintf(format, args...)
	if o.textBuilder.Len()+len(s)+1 > ideTextBudget {
		return false
	}
	o.textBuilder.WriteString(s)
	o.textBuilder.WriteByte('\n')
	return true
}

// loc shows a location relative to the workspace ws; ok is false for one
// outside the workspace (or malformed).
func loc(ws string, l bridge.Location) (ideLoc, bool) {
	rel, ok := cleanRel(l.Path)
	if !ok {
		return ideLoc{}, false
	}
	p, ok := wsPath(ws, rel)
	if !ok {
		return ideLoc{}, false
	}
	return ideLoc{Path: p, Line: l.Line, Column: l.Column, EndLine: l.EndLine, EndColumn: l.EndColumn}, true
}

// showIDE renders an editor's answer for a model: paths relative to the
// workspace ws (items outside it counted in elsewhere), within the text
// budget (items past it counted in more).
func showIDE(kind, ws string, ans bridge.Answered) Result {
	r := ans.Result
	o := &ideOut{Editor: ans.Editor.User, More: r.More, Elsewhere: r.Elsewhere}
	if ans.Editor.Client != "" {
		o.Editor += " (" + ans.Editor.Client + ")"
	}
	head := ""
	switch kind {
	case bridge.KindDiagnostics:
		o.Items = []ideDiagOut{}
		for _, d := range r.Diagnostics {
			l, ok := loc(ws, d.Location)
			if !ok {
				o.Elsewhere++
				continue
			}
			it := ideDiagOut{ideLoc: l, Severity: enumName(severityNames[:], d.Severity), Message: textclip.Clip(d.Message, ideItemText),
				Source: textclip.Clip(d.Source, 64), Code: textclip.Clip(d.Code, 64)}
			if !o.line("%s %s: %s", l, it.Severity, strings.ReplaceAll(it.Message, "\n", " ")) {
				o.More++
				continue
			}
			o.Items = append(o.Items, it)
		}
		head = fmt.Sprintf("%d problems", len(o.Items))
	case bridge.KindDefinition, bridge.KindReferences:
		o.Locations = []ideLoc{}
		for _, bl := range r.Locations {
			l, ok := loc(ws, bl)
			if !ok {
				o.Elsewhere++
				continue
			}
			if !o.line("%s", l) {
				o.More++
				continue
			}
			o.Locations = append(o.Locations, l)
		}
		head = fmt.Sprintf("%d locations", len(o.Locations))
	case bridge.KindSymbols:
		o.Symbols = []ideSymbolOut{}
		for _, s := range r.Symbols {
			l, ok := loc(ws, s.Location)
			if !ok {
				o.Elsewhere++
				continue
			}
			so := ideSymbolOut{Name: textclip.Clip(s.Name, ideItemText), Kind: enumName(symbolKinds[:], s.Kind), Container: textclip.Clip(s.Container, ideItemText), Path: l.Path, Line: l.Line}
			in := ""
			if so.Container != "" {
				in = " in " + so.Container
			}
			if !o.line("%s %s%s  %s:%d", so.Kind, so.Name, in, so.Path, so.Line) {
				o.More++
				continue
			}
			o.Symbols = append(o.Symbols, so)
		}
		head = fmt.Sprintf("%d symbols", len(o.Symbols))
	case bridge.KindHover:
		c := r.Contents
		if len(c) > ideHoverBudget {
			cut := textclip.Prefix(c, ideHoverBudget)
			c = cut + fmt.Sprintf("\n… %d more bytes", len(r.Contents)-len(cut))
		}
		o.Contents = &c
		if c == "" {
			head = "nothing to show"
		}
		o.line("%s", c)
	case bridge.KindContext:
		o.Editors = []bridge.OpenEditor{}
		for _, e := range r.Editors {
			l, ok := loc(ws, bridge.Location{Path: e.Path, Line: e.FirstLine})
			if !ok {
				o.Elsewhere++
				continue
			}
			e.Path = l.Path
			if !o.line("open: %s", e.Path) {
				o.More++
				continue
			}
			o.Editors = append(o.Editors, e)
		}
		if a := r.Active; a != nil {
			if l, ok := loc(ws, a.Selection); ok || a.Selection.Path == "" {
				if p, ok := loc(ws, bridge.Location{Path: a.Path}); ok {
					act := &ideActiveOut{Path: p.Path, Text: textclip.Clip(a.Text, ideHoverBudget)}
					if a.Selection.Line > 0 {
						l.Path = p.Path
						act.Selection = &l
					}
					o.Active = act
					o.line("active: %s", p.Path)
				}
			}
		}
		head = fmt.Sprintf("%d open files", len(o.Editors))
	case bridge.KindOpen:
		o.Shown, o.Opened = &r.Shown, &r.Opened
		switch {
		case r.Opened:
			head = "the human opened it"
		case r.Shown:
			head = "shown to the human as a notification"
		default:
			head = "the editor did not show it"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, from the editor of %s", head, o.Editor)
	if o.More > 0 {
		fmt.Fprintf(&b, "; %d more not shown (narrow the request, or raise limit)", o.More)
	}
	if o.Elsewhere > 0 {
		fmt.Fprintf(&b, "; %d outside your workspace left out", o.Elsewhere)
	}
	b.WriteString(".\n")
	b.WriteString(o.textBuilder.String())
	return Result{Structured: o, Text: strings.TrimRight(b.String(), "\n")}
}
