package main

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	in := `goos: linux
pkg: github.com/coditect/coditect/storage/kv/sqlite
BenchmarkCommitSingle/raw-2   3000   74046 ns/op   13505 commits/s   0.063 p50-ms
BenchmarkCommitSingle/raw-2   3000   76291 ns/op   13108 commits/s   0.066 p50-ms
BenchmarkCommitSingle/raw-2   3000   75644 ns/op   13220 commits/s   0.068 p50-ms
BenchmarkCommitSingle/kv-2    3000  118659 ns/op    8428 commits/s   0.108 p50-ms
BenchmarkCommitSingle/kv-2    3000  118923 ns/op    8409 commits/s   0.104 p50-ms
BenchmarkCommitSingle/kv-2    3000  129271 ns/op    7736 commits/s   0.116 p50-ms
BenchmarkRoundTrip/stdio/readonly/bare-2      10  271548 ns/op
BenchmarkRoundTrip/stdio/readonly/coditect-2  10  321420 ns/op
PASS
`
	var out strings.Builder
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| storage/kv/sqlite | BenchmarkCommitSingle/raw | 3 | 75644 ns/op, 13220 commits/s, 0.066 p50-ms |",
		"| storage/kv/sqlite | BenchmarkCommitSingle/kv | 3 | 118923 ns/op, 8409 commits/s, 0.108 p50-ms |",
		"| BenchmarkCommitSingle | commits/s | 0.64 |",
		"| BenchmarkRoundTrip/stdio/readonly | ns/op | 1.18 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if err := run(strings.NewReader("nothing"), &out); err == nil {
		t.Error("no benchmark lines accepted")
	}
}
