// Command baremcp is the baseline of the MCP benchmarks: a bare mcp-go
// server over stdio with one tool, "empty", that answers with a fixed text
// and does no work. Coditect's round trips are measured beside it in the
// same run; with -http ADDR it serves Streamable HTTP on ADDR instead and
// prints its URL on stdout. It imports only mcp-go.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// New returns the bare server.
func New() *mcpserver.MCPServer {
	s := mcpserver.NewMCPServer("baremcp", "1.0.0", mcpserver.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("empty", mcp.WithDescription("Do nothing.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("ok"), nil
		})
	return s
}

func main() {
	addr := flag.String("http", "", "serve Streamable HTTP on this address instead of stdio")
	flag.Parse()
	if *addr != "" {
		l, err := net.Listen("tcp", *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "baremcp:", err)
			os.Exit(1)
		}
		fmt.Printf("http://%s/mcp\n", l.Addr())
		fmt.Fprintln(os.Stderr, "baremcp:", http.Serve(l, mcpserver.NewStreamableHTTPServer(New())))
		os.Exit(1)
	}
	if err := mcpserver.NewStdioServer(New()).Listen(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "baremcp:", err)
		os.Exit(1)
	}
}
