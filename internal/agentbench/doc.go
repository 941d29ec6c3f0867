// Package agentbench measures Coditect the way many agents on one machine
// use it: N official-SDK MCP clients calling as fast as they can, over
// stdio (N `coditect mcp` processes on one embedded store) and over HTTP
// (one `coditect serve` daemon), beside the baselines measured in the same
// run — a bare mcp-go server driven the same way and raw single-row durable
// SQLite commits on the same disk. Its benchmark (BenchmarkAgents) prints a
// table of calls/s, p50 and p99 per row, and, for Coditect's processes, the
// CPU time and the bytes written to disk per call.
//
// It holds only tests: it runs the coditect binary (internal/testbin) and
// the bare server (server/internal/baremcp) as real processes and imports
// nothing of the module beyond internal/testbin.
package agentbench
