package tools

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultToolsets returns the toolsets a host gets without --toolsets:
// small enough for a 7B model's context.
func DefaultToolsets() []string { return []string{"core"} }

// Catalog returns every toolset, in the order tools/list shows them. A new
// toolset is one file (coord.go, files.go) and one entry here.
func Catalog() []Toolset {
	return []Toolset{Core()}
}

// Select returns the named toolsets from the catalog, in catalog order.
// "all" names every toolset; an empty list means DefaultToolsets(). An
// unknown name is an error that lists the known ones.
func Select(names []string) ([]Toolset, error) {
	if len(names) == 0 {
		names = DefaultToolsets()
	}
	cat := Catalog()
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
