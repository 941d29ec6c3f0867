// Command fdbcheck type-checks the packages of this module that are built
// with the fdb build tag (the FoundationDB backend, storage.Open's fdb://
// support, the fdb-tagged tests) on machines without FoundationDB's C
// header or library, where `go build -tags fdb` and `go vet -tags fdb`
// cannot run because cgo needs fdb_c.h.
//
// It asks `go list -tags fdb -deps -test` for the packages and their files,
// type-checks from source, with go/types and FakeImportC, every package that
// uses cgo outside the standard library (the FoundationDB binding), every
// package that depends on one, every package with a file whose build
// constraint names a checked tag, and the test variants among their imports,
// test files included. Everything else (the standard library, ordinary
// dependencies) is imported from the export data `go list -export` leaves in
// the build cache. So a misspelt binding call or a wrong argument type in
// fdb-tagged code fails with its position and message, and on success
// fdbcheck prints one line. It needs nothing but Go and the module cache.
//
// Usage:
//
//	go run ./internal/fdbcheck [-C dir] [-tags fdb] [-overlay file.json] [-v] [packages]
//
// The packages default to ./... (the packages that need no checking are
// skipped). -overlay takes go build's overlay file, so a test can check a
// changed copy of a file without touching the tree.
//
// fdbcheck owns nothing but this check; it imports only the standard
// library.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/importer"
	"go/parser"
	"go/scanner"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// config is what the command line says.
type config struct {
	dir      string // where go list runs; "" is the current directory
	tags     []string
	overlay  string
	verbose  bool
	patterns []string
}

// run is the command: 0 when every package type-checks, 1 when one does
// not or the check could not run, 2 for a bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdbcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var tags string
	fs.StringVar(&c.dir, "C", "", "run in `dir`, as go -C does")
	fs.StringVar(&tags, "tags", "fdb", "comma-separated build `tags` to check with")
	fs.StringVar(&c.overlay, "overlay", "", "go build's overlay `file` (JSON), applied to go list and to the files read")
	fs.BoolVar(&c.verbose, "v", false, "name each package as it is checked")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fdbcheck [flags] [packages]\n\n"+
			"Type-checks the fdb-tagged packages (default ./...) without fdb_c.h or libfdb_c.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, t := range strings.Split(tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.tags = append(c.tags, t)
		}
	}
	if len(c.tags) == 0 {
		fmt.Fprintln(stderr, "fdbcheck: -tags is empty")
		return 2
	}
	c.patterns = fs.Args()
	if len(c.patterns) == 0 {
		c.patterns = []string{"./..."}
	}

	start := time.Now()
	res, err := check(ctx, c, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "fdbcheck: %v\n", err)
		return 1
	}
	if res.errors > 0 {
		fmt.Fprintf(stderr, "fdbcheck: FAIL: %d errors in %d of %d packages built with -tags %s\n",
			res.errors, res.failed, res.packages, strings.Join(c.tags, ","))
		return 1
	}
	fmt.Fprintf(stdout, "fdbcheck: ok: %d packages (%d files) built with -tags %s type-check without fdb_c.h or libfdb_c (%.1fs)\n",
		res.packages, res.files, strings.Join(c.tags, ","), time.Since(start).Seconds())
	return 0
}

// listed is the part of `go list -json` fdbcheck reads.
type listed struct {
	ImportPath string // with " [p.test]" for a test variant
	Name       string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string          // resolved: test variants carry their suffix
	ImportMap  map[string]string // import path in the source -> ImportPath
	ForTest    string
	Standard   bool
	Export     string
	Module     *struct {
		Path      string
		Main      bool
		GoVersion string
	}
	Error *struct {
		Pos string
		Err string
	}
	DepsErrors []*struct {
		Pos string
		Err string
	}
}

// result counts what was checked.
type result struct {
	packages, files int
	errors, failed  int
}

// checker holds one run's state.
type checker struct {
	c       config
	stderr  io.Writer
	overlay map[string]string
	fset    *token.FileSet
	byPath  map[string]*listed // by ImportPath, test variants included
	source  map[string]bool    // checked from source
	parsed  map[string]*parsedPackage
	gc      types.Importer // export data
	exports map[string]string
	sizes   types.Sizes
	done    map[string]*types.Package
	res     result
}

// parsedPackage is a package's files and the errors found so far.
type parsedPackage struct {
	files []*ast.File
	diags []diag
}

// diag is one error of a checked package.
type diag struct {
	pos token.Position
	msg string
}

func check(ctx context.Context, c config, stderr io.Writer) (result, error) {
	k := &checker{c: c, stderr: stderr, fset: token.NewFileSet(),
		parsed: make(map[string]*parsedPackage), done: make(map[string]*types.Package)}
	var err error
	if k.overlay, err = readOverlay(c); err != nil {
		return k.res, err
	}
	tagArg := "-tags=" + strings.Join(c.tags, ",")

	// The graph, with cgo on so that the binding's cgo files are listed as
	// CgoFiles rather than excluded (go list runs no C compiler).
	graph, err := goList(ctx, c, []string{"CGO_ENABLED=1"}, append([]string{"-e", "-deps", "-test", tagArg,
		"-json=ImportPath,Name,Dir,GoFiles,CgoFiles,Imports,ImportMap,ForTest,Standard,Module,Error,DepsErrors"}, c.patterns...))
	if err != nil {
		return k.res, err
	}
	k.byPath = make(map[string]*listed, len(graph))
	for _, p := range graph {
		k.byPath[p.ImportPath] = p
	}
	if k.source, err = sourceSet(graph, k.byPath, k.overlay, c.tags); err != nil {
		return k.res, err
	}
	var checked []*listed
	for _, p := range graph {
		if k.source[p.ImportPath] && !isTestMain(p) {
			checked = append(checked, p)
		}
	}
	if len(checked) == 0 {
		return k.res, fmt.Errorf("no package in %s is built with -tags %s or depends on a cgo package",
			strings.Join(c.patterns, " "), strings.Join(c.tags, ","))
	}
	k.res.packages = len(checked)

	// go list's own errors (a missing import, a bad build constraint) on
	// checked packages fail the check before type-checking.
	for _, p := range checked {
		var msgs []string
		if p.Error != nil {
			msgs = append(msgs, listErr(c, p.Error.Pos, p.Error.Err))
		}
		for _, e := range p.DepsErrors {
			msgs = append(msgs, listErr(c, e.Pos, e.Err))
		}
		if len(msgs) > 0 {
			msgs = dedup(msgs)
			fmt.Fprintf(stderr, "# %s\n%s\n", p.ImportPath, strings.Join(msgs, "\n"))
			k.res.errors += len(msgs)
			k.res.failed++
		}
	}
	if k.res.errors > 0 {
		return k.res, nil
	}

	// Parse everything first: the files' imports say which export data is
	// needed (a cgo package's go list Imports also name what cgo's generated
	// code would import, such as runtime/cgo, which FakeImportC does without).
	exportRoots := make(map[string]bool)
	for _, p := range checked {
		pp, err := k.parse(p)
		if err != nil {
			return k.res, err
		}
		for _, f := range pp.files {
			for _, spec := range f.Imports {
				path, err := strconv.Unquote(spec.Path.Value)
				if err != nil || path == "C" || path == "unsafe" {
					continue
				}
				if id := resolve(p, path); !k.source[id] {
					exportRoots[id] = true
				}
			}
		}
	}
	if err := k.loadExports(ctx, tagArg, exportRoots); err != nil {
		return k.res, err
	}

	goarch := os.Getenv("GOARCH")
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	k.sizes = types.SizesFor("gc", goarch)
	for _, p := range checked {
		if err := k.typeCheck(ctx, p); err != nil {
			return k.res, err
		}
	}
	return k.res, nil
}

// parse reads and parses p's files through the overlay.
func (k *checker) parse(p *listed) (*parsedPackage, error) {
	pp := &parsedPackage{}
	for _, name := range slices.Concat(p.GoFiles, p.CgoFiles) {
		path := filePath(p, name)
		src, err := readSource(path, k.overlay)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(k.fset, path, src, parser.ParseComments|parser.SkipObjectResolution)
		if f != nil {
			pp.files = append(pp.files, f)
		}
		var list scanner.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				pp.diags = append(pp.diags, diag{e.Pos, e.Msg})
			}
		} else if err != nil {
			pp.diags = append(pp.diags, diag{msg: err.Error()})
		}
	}
	k.parsed[p.ImportPath] = pp
	k.res.files += len(pp.files)
	return pp, nil
}

// loadExports asks go list for the export data of roots and their
// dependencies, built with the caller's cgo setting (the API of a package
// does not depend on it), and makes the importer that reads it.
func (k *checker) loadExports(ctx context.Context, tagArg string, roots map[string]bool) error {
	k.exports = make(map[string]string)
	k.gc = importer.ForCompiler(k.fset, "gc", func(path string) (io.ReadCloser, error) {
		file := k.exports[path]
		if file == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
	if len(roots) == 0 {
		return nil
	}
	list := slices.Sorted(maps.Keys(roots))
	pkgs, err := goList(ctx, k.c, nil, append([]string{"-e", "-export", "-deps", tagArg, "-json=ImportPath,Export,Error"}, list...))
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		if p.Error != nil {
			return fmt.Errorf("export data for %s: %s", p.ImportPath, p.Error.Err)
		}
		k.exports[p.ImportPath] = p.Export
	}
	return nil
}

// typeCheck checks p after the checked packages it imports and reports its
// errors in position order.
func (k *checker) typeCheck(ctx context.Context, p *listed) error {
	if _, ok := k.done[p.ImportPath]; ok {
		return nil
	}
	for _, imp := range p.Imports {
		if q := k.byPath[imp]; q != nil && k.source[imp] && !isTestMain(q) {
			if err := k.typeCheck(ctx, q); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pp := k.parsed[p.ImportPath]
	if pp == nil {
		return fmt.Errorf("%s was not parsed", p.ImportPath)
	}
	diags := pp.diags
	conf := types.Config{
		Importer:    importerFunc(func(path string) (*types.Package, error) { return k.importFrom(p, path) }),
		FakeImportC: true,
		GoVersion:   goVersion(p),
		Sizes:       k.sizes,
		Error: func(err error) {
			if te, ok := err.(types.Error); ok {
				diags = append(diags, diag{te.Fset.Position(te.Pos), te.Msg})
				return
			}
			diags = append(diags, diag{msg: err.Error()})
		},
	}
	path, _, _ := strings.Cut(p.ImportPath, " ") // without a test variant's suffix
	tp, _ := conf.Check(path, k.fset, pp.files, nil)
	k.done[p.ImportPath] = tp
	if k.c.verbose {
		fmt.Fprintf(k.stderr, "fdbcheck: %s (%d files)\n", p.ImportPath, len(pp.files))
	}
	if len(diags) == 0 {
		return nil
	}
	slices.SortStableFunc(diags, func(a, b diag) int {
		return cmp.Or(strings.Compare(a.pos.Filename, b.pos.Filename), cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Column, b.pos.Column))
	})
	fmt.Fprintf(k.stderr, "# %s\n", p.ImportPath)
	for _, d := range diags {
		if d.pos.IsValid() {
			fmt.Fprintf(k.stderr, "%s: %s\n", relPos(k.c, d.pos), d.msg)
		} else {
			fmt.Fprintln(k.stderr, d.msg)
		}
	}
	k.res.errors += len(diags)
	k.res.failed++
	return nil
}

// importFrom resolves an import of package p: a package checked from
// source, or export data.
func (k *checker) importFrom(p *listed, path string) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	id := resolve(p, path)
	if k.source[id] {
		if tp := k.done[id]; tp != nil {
			return tp, nil
		}
		return nil, fmt.Errorf("%s was not checked before %s", id, p.ImportPath)
	}
	return k.gc.Import(id)
}

// resolve maps an import path in p's source to the ImportPath go list uses
// (a test variant, a vendored copy).
func resolve(p *listed, path string) string {
	if id, ok := p.ImportMap[path]; ok {
		return id
	}
	return path
}

// sourceSet returns the packages to check from source: those using cgo
// outside the standard library, those depending on one, the main module's
// packages with a file whose build constraint names a checked tag, and the
// test variants such packages import (a test variant has no export data of
// its own).
func sourceSet(graph []*listed, byPath map[string]*listed, overlay map[string]string, tags []string) (map[string]bool, error) {
	source := make(map[string]bool)
	var firstErr error
	var needs func(p *listed) bool
	needs = func(p *listed) bool {
		if v, ok := source[p.ImportPath]; ok {
			return v
		}
		source[p.ImportPath] = false // the import graph has no cycles; this guards bad input
		v := !p.Standard && len(p.CgoFiles) > 0
		for _, imp := range p.Imports {
			if q := byPath[imp]; q != nil && needs(q) {
				v = true
			}
		}
		if !v && p.Module != nil && p.Module.Main && !isTestMain(p) {
			named, err := namesTag(p, overlay, tags)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			v = named
		}
		source[p.ImportPath] = v
		return v
	}
	for _, p := range graph {
		needs(p)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for changed := true; changed; {
		changed = false
		for _, p := range graph {
			if !source[p.ImportPath] {
				continue
			}
			for _, imp := range p.Imports {
				if q := byPath[imp]; q != nil && q.ForTest != "" && !source[imp] {
					source[imp] = true
					changed = true
				}
			}
		}
	}
	return source, nil
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

// isTestMain reports whether p is the main package go test generates.
func isTestMain(p *listed) bool {
	return p.Name == "main" && p.ForTest == "" && strings.HasSuffix(p.ImportPath, ".test")
}

// filePath returns the path of one of p's files.
func filePath(p *listed, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(p.Dir, name)
}

// goVersion is the language version go build would compile p with.
func goVersion(p *listed) string {
	switch {
	case p.Standard || p.Module == nil:
		return ""
	case p.Module.GoVersion != "":
		return "go" + p.Module.GoVersion
	default:
		return "go1.16" // what the go command assumes for a module without a go line
	}
}

// namesTag reports whether a file of p has a build constraint that
// mentions one of tags.
func namesTag(p *listed, overlay map[string]string, tags []string) (bool, error) {
	for _, name := range slices.Concat(p.GoFiles, p.CgoFiles) {
		src, err := readSource(filePath(p, name), overlay)
		if err != nil {
			return false, err
		}
		for _, line := range constraintLines(src) {
			expr, err := constraint.Parse(line)
			if err != nil {
				continue // go list already judged the file
			}
			if mentions(expr, tags) {
				return true, nil
			}
		}
	}
	return false, nil
}

// constraintLines returns the //go:build lines of a file's header.
func constraintLines(src []byte) []string {
	var out []string
	for len(src) > 0 {
		var line []byte
		line, src, _ = bytes.Cut(src, []byte("\n"))
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0 || bytes.HasPrefix(line, []byte("//")) && !constraint.IsGoBuild(string(line)):
			continue
		case constraint.IsGoBuild(string(line)):
			out = append(out, string(line))
		default:
			return out // the header ends at the first other line
		}
	}
	return out
}

func mentions(e constraint.Expr, tags []string) bool {
	switch e := e.(type) {
	case *constraint.TagExpr:
		return slices.Contains(tags, e.Tag)
	case *constraint.NotExpr:
		return mentions(e.X, tags)
	case *constraint.AndExpr:
		return mentions(e.X, tags) || mentions(e.Y, tags)
	case *constraint.OrExpr:
		return mentions(e.X, tags) || mentions(e.Y, tags)
	}
	return false
}

// goList runs go list and decodes its stream of JSON objects.
func goList(ctx context.Context, c config, env []string, args []string) ([]*listed, error) {
	if c.overlay != "" {
		args = append([]string{"-overlay=" + c.overlay}, args...)
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"list"}, args...)...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var out []*listed
	dec := json.NewDecoder(&stdout)
	for {
		p := new(listed)
		if err := dec.Decode(p); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("go list: decode: %w", err)
		}
		out = append(out, p)
	}
}

// readOverlay reads go build's overlay file into absolute file -> replacement
// ("" when the overlay deletes the file).
func readOverlay(c config) (map[string]string, error) {
	if c.overlay == "" {
		return nil, nil
	}
	base, err := filepath.Abs(c.dir)
	if err != nil {
		return nil, err
	}
	path := c.overlay
	if !filepath.IsAbs(path) {
		path = filepath.Join(base, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	var o struct{ Replace map[string]string }
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("overlay %s: %w", c.overlay, err)
	}
	out := make(map[string]string, len(o.Replace))
	for from, to := range o.Replace {
		if !filepath.IsAbs(from) {
			from = filepath.Join(base, from)
		}
		if to != "" && !filepath.IsAbs(to) {
			to = filepath.Join(base, to)
		}
		out[filepath.Clean(from)] = to
	}
	return out, nil
}

// readSource reads a file as the build sees it, through the overlay.
func readSource(path string, overlay map[string]string) ([]byte, error) {
	if to, ok := overlay[filepath.Clean(path)]; ok {
		if to == "" {
			return nil, fmt.Errorf("%s: deleted by the overlay but listed by go list", path)
		}
		path = to
	}
	return os.ReadFile(path)
}

// relPos renders a position with its file relative to the checked module's
// directory when it lies inside it, as go build does.
func relPos(c config, pos token.Position) string {
	if base, err := filepath.Abs(c.dir); err == nil {
		if rel, err := filepath.Rel(base, pos.Filename); err == nil && !strings.HasPrefix(rel, "..") {
			pos.Filename = rel
		}
	}
	return pos.String()
}

func listErr(c config, pos, msg string) string {
	if pos == "" {
		return msg
	}
	if base, err := filepath.Abs(c.dir); err == nil {
		if rel, err := filepath.Rel(base, pos); err == nil && !strings.HasPrefix(rel, "..") {
			pos = rel
		}
	}
	return pos + ": " + msg
}

func dedup(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
