package webview

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every page: scripts and styles come
// only from this server (no inline script, no eval, no remote scripts or
// fonts), data goes only back to it, and the page cannot be framed by
// another site: only by itself, by a page of its own origin (code-server's
// webview, served beside /proxy/PORT/) and by desktop VS Code's webview and
// workbench, whose vscode-webview: and vscode-file: schemes no web site has.
// The same policy holds inside a VS Code webview.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self' vscode-webview: vscode-file:"

// static serves the embedded dashboard: index.html for "/" and the files
// under assets/ by name.
func (h *Handler) static() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		p := path.Clean(r.URL.Path)
		if p == "/" || p == "/index.html" {
			// The page is small; always revalidate so an upgrade shows at once.
			hd.Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		if strings.HasPrefix(p, "/assets/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(p, "/assets")
			hd.Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r2)
			return
		}
		http.NotFound(w, r)
	})
}
