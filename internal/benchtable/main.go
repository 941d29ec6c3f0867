// Command benchtable turns `go test -bench -count N` output into the
// Markdown table docs/BENCHMARKS.md quotes: the median of every metric of
// every benchmark over its runs, and, for benchmarks with "raw" and "kv"
// (or "bare" and "coditect") variants, the ratio of the medians.
//
// Usage: go test -bench . -count 5 ./... | go run ./internal/benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

type bench struct {
	name    string
	pkg     string
	metrics map[string][]float64
	units   []string
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var order []*bench
	byName := map[string]*bench{}
	pkg := ""
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		text := sc.Text()
		if p, ok := strings.CutPrefix(text, "pkg: "); ok {
			pkg = p
			continue
		}
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		key := pkg + " " + m[1]
		b := byName[key]
		if b == nil {
			b = &bench{name: m[1], pkg: pkg, metrics: map[string][]float64{}}
			byName[key] = b
			order = append(order, b)
		}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if _, ok := b.metrics[unit]; !ok {
				b.units = append(b.units, unit)
			}
			b.metrics[unit] = append(b.metrics[unit], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(order) == 0 {
		return fmt.Errorf("no benchmark lines on standard input")
	}
	fmt.Fprintln(out, "| package | benchmark | runs | medians |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for _, b := range order {
		var parts []string
		runs := 0
		for _, u := range b.units {
			if u == "B/op" || u == "allocs/op" {
				continue
			}
			vs := b.metrics[u]
			runs = max(runs, len(vs))
			parts = append(parts, fmt.Sprintf("%s %s", format(median(vs)), u))
		}
		fmt.Fprintf(out, "| %s | %s | %d | %s |\n", shortPkg(b.pkg), b.name, runs, strings.Join(parts, ", "))
	}
	// Ratios: X/kv against X/raw, per rate metric (higher is better) and
	// latency metric.
	var ratios []string
	for _, b := range order {
		i := strings.LastIndex(b.name, "/")
		if i < 0 {
			continue
		}
		base, variant := b.name[:i], b.name[i+1:]
		if variant != "kv" && variant != "coditect" {
			continue
		}
		ref := byName[b.pkg+" "+base+"/raw"]
		if ref == nil {
			ref = byName[b.pkg+" "+base+"/bare"]
		}
		if ref == nil {
			continue
		}
		for _, u := range b.units {
			if rv, ok := ref.metrics[u]; ok && u != "B/op" && u != "allocs/op" {
				r := median(b.metrics[u]) / median(rv)
				ratios = append(ratios, fmt.Sprintf("| %s | %s | %.2f |", base, u, r))
			}
		}
	}
	if len(ratios) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| benchmark | metric | ratio to the baseline (median / median) |")
		fmt.Fprintln(out, "|---|---|---|")
		for _, r := range ratios {
			fmt.Fprintln(out, r)
		}
	}
	return nil
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func format(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/coditect/coditect/")
}
