// Command coditect is the coordination server for teams of LLM agents and
// humans working on the same code. main is a thin wrapper: the subcommands
// in this package parse flags and call the packages that do the work.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "coditect:", err)
		os.Exit(1)
	}
}
