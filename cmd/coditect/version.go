package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time by the Makefile (-X main.version=…); without
// it the module version or VCS revision from the build info is used.
var version = ""

func versionString() string {
	return fmt.Sprintf("coditect %s %s %s/%s", moduleVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// moduleVersion is the version set at link time, else the module version
// or VCS revision of the build.
func moduleVersion() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok {
		v = info.Main.Version
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
				v = s.Value
				if len(v) > 12 {
					v = v[:12]
				}
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

func newVersionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jsonOutput(cmd) {
				return writeJSON(cmd.OutOrStdout(), map[string]string{
					"version": moduleVersion(), "go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH,
				})
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
	jsonFlag(cmd)
	return cmd
}
