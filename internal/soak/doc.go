// Package soak holds the load test of issue 8: TestSoak runs one
// `coditect serve` daemon under simulated agents (separate `coditect mcp`
// processes over stdio and MCP clients over HTTP), a stream of file
// changes in its watched workspace and WebSocket feed clients, for a
// bounded time, measures what the daemon does, and checks that the audit
// log holds exactly the acknowledged operations. docs/SOAK.md explains
// how to run it and read its report.
//
// It is a test package only: it drives the built binary as real
// processes, over loopback, and imports the module's packages only for
// the audit event type and the argument redaction the log applies
// (tools.RedactArgs), which the exact check must reproduce.
package soak
