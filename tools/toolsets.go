package tools

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultToolsets returns the toolsets a host gets without --toolsets:
// small enough for a 7B model's context. Agents that share a project with
// others add coord and files (--toolsets core,coord,files or all).
func DefaultToolsets() []string { return []string{"core"} }

// Config configures the toolsets; its zero value means the defaults.
type Config struct {
	// MaxFileRead bounds the files fs_read reads and fs_edit edits, in
	// bytes; zero means DefaultMaxFile.
	MaxFileRead int
	// MaxFileWrite bounds what fs_write and fs_edit write, in bytes; zero
	// means DefaultMaxFile.
	MaxFileWrite int
	// MaxReadLines and MaxReadBytes are the budget of one fs_read: the
	// most lines, and bytes of the file, it returns (it says where to
	// continue when it returns fewer lines than asked for); zero means
	// DefaultReadLines and DefaultReadBytes.
	MaxReadLines int
	MaxReadBytes int
	// WriteLeaseTTL is how long the lease fs_write takes for an agent that
	// holds none lasts; zero means lease.DefaultTTL.
	WriteLeaseTTL time.Duration
	// Protected are absolute paths the files tools never read, list or
	// write, nor anything inside them, even within a project root: the
	// store's file and its -wal, -shm and -journal files, and the audit
	// spool directory. A call that reaches one is refused and audited as
	// forbidden.
	Protected []string
}

// Catalog returns every toolset, in the order tools/list shows them. A new
// toolset is its files (core.go, coord*.go, files*.go, ide*.go) and one entry here.
func Catalog(cfg Config) []Toolset {
	return []Toolset{Core(), Coord(), Files(cfg), IDE(cfg)}
}

// Select returns the named toolsets from the catalog, in catalog order.
// "all" names every toolset; an empty list means DefaultToolsets(). An
// unknown name is an error that lists the known ones.
func Select(names []string, cfg Config) ([]Toolset, error) {
	if len(names) == 0 {
		names = DefaultToolsets()
	}
	cat := Catalog(cfg)
	known := make([]string, len(cat))
	for i, s := range cat {
		known[i] = s.Name
	}
	want := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(strings.ToLower(n))
		switch {
		case n == "":
		case n == "all":
			for _, k := range known {
				want[k] = true
			}
		case slices.Contains(known, n):
			want[n] = true
		default:
			return nil, fmt.Errorf("unknown toolset %q (known: %s, all)", n, strings.Join(known, ", "))
		}
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("no toolset selected (known: %s, all)", strings.Join(known, ", "))
	}
	var out []Toolset
	for _, s := range cat {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}
