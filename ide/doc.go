// Package ide owns the IDE protocol (`coditect ide`): LSP-style JSON-RPC
// over stdio between Coditect and an editor (the companion VS Code
// extension in ide/vscode, Neovim, any LSP client), one file per protocol
// area as gopls does:
//
//	framing.go               LSP base framing: exactly Content-Length bytes; bad input answered, never fatal
//	dispatch.go              gopls's policy: notifications in order, requests concurrent, $/cancelRequest on the read loop
//	general.go               the lifecycle state machine: initialize, initialized, shutdown, exit
//	project.go               documents and workspace folders resolved into projects; untracked documents
//	text_synchronization.go  incremental sync, dirty state, unsaved-edit marks, IDE saves (Provenance)
//	buffer.go                a document's text and UTF-16 positions
//	command.go               workspace/executeCommand: sessions, dashboard, file history, agents, status, the human's messages, tasks and lease releases
//	hover.go, code_lens.go   who last changed a file, from the audit log's path index
//	events.go                coditect/event and window/showMessage from the live audit log
//	access.go                the scope re-validated every second: a revoked token, a disabled user or tenant is refused
//	bridge.go                the IDE bridge: the editor's presence, agents' requests as coditect/ide (or answered for plain LSP clients)
//
// Serve runs one connection as one principal's tenant.Scope (resolved by
// the caller as for `coditect mcp`); the package reaches tenant data only
// through it and the storage layers (attrib, audit, agent, bridge, lease,
// message, session, project, task). It must not import tools, webview, server or cmd: the
// dashboard reaches it through the Dashboard interface, which cmd/coditect
// implements.
//
// Wire protocol: docs/IDE.md.
package ide
