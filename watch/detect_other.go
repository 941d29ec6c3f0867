//go:build !linux

package watch

// fsKind cannot tell file systems apart here: the probe decides.
func fsKind(dir string) (kind, desc string) {
	return "unknown", "no statfs classification on this platform"
}

func inotifyLimit() string { return "" }
