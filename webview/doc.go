// Package webview owns the dashboard: its REST API under /api/v1, its live
// WebSocket feed at /api/v1/feed and its static assets (embedded in the
// binary), which also run inside the IDE as a webview panel.
//
// Every request acts in exactly one tenant: the one of the bearer token the
// auth middleware resolves to a *tenant.Scope through the Directory. No
// handler takes a tenant id from a request; tenant data is reached only
// through that scope and the storage layers' APIs.
//
// The feed protocol (see docs/DAEMON.md): the client connects to
// /api/v1/feed (Origin must be the page's own or vscode-webview://*),
// then sends one JSON message
//
//	{"type":"subscribe","token":"cdt_…","cursor":"…","filter":{"kind":"file.modified"}}
//
// where cursor is an event id to follow after, "" for the start of the log
// or "head" for only what comes next. A client that cannot keep up is
// closed with status 4408 and resumes with the id of the last event it
// received: it misses nothing and sees nothing twice. The token may instead
// come in an Authorization header on the handshake (non-browser clients); it
// is never accepted in the URL, so it never reaches access logs.
//
// This package imports the storage layers; it must not import tools, ide,
// server or cmd.
package webview
