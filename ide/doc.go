// Package ide owns the IDE protocol (`coditect ide`): LSP-style JSON-RPC over
// stdio between Coditect and an editor extension, one file per protocol
// area as gopls does. It reaches tenant data only through a tenant.Scope and
// must not import tools or webview. The protocol lands with issue 7.
package ide
