// Package webview owns the dashboard: its HTTP and WebSocket handlers and
// its static assets, embedded with go:embed, which also run inside the IDE
// as a webview panel. It must not import tools or ide. The dashboard lands
// with issue 6.
package webview
