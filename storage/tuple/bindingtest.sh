#!/bin/sh
# Runs go test with the FoundationDB binding's tuple package built without
# cgo, for the fdbtuple-tagged tests that compare this encoder with the
# binding's. go build refuses an overlay of files in the module cache, so
# the script copies the binding's go.mod and src/fdb/tuple to a temporary
# directory, puts testdata/fdbstub/fdb.go there as src/fdb (it declares what
# src/fdb/tuple uses, in place of the cgo package), and runs go test with a
# copy of this module's go.mod (-modfile) that replaces the binding with
# that directory. The module cache and the tree are left alone. Arguments go
# to go test, e.g.
#
#	sh storage/tuple/bindingtest.sh ./storage/tuple
#	sh storage/tuple/bindingtest.sh -run '^$' -fuzz '^FuzzPackMatchesBinding$' -fuzztime 30s ./storage/tuple
set -eu
GO=${GO:-go}
here=$(cd "$(dirname "$0")" && pwd)
binding=github.com/apple/foundationdb/bindings/go

"$GO" -C "$here" mod download "$binding"
src=$("$GO" -C "$here" list -m -f '{{.Dir}}' "$binding")
gomod=$("$GO" -C "$here" env GOMOD)
if [ ! -f "$src/src/fdb/tuple/tuple.go" ]; then
	echo "bindingtest.sh: no src/fdb/tuple/tuple.go in $binding at '$src'" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/coditect-fdbtuple.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/binding/src/fdb/tuple"
cp "$src/go.mod" "$tmp/binding/"
cp "$src"/src/fdb/tuple/*.go "$tmp/binding/src/fdb/tuple/"
cp "$here/testdata/fdbstub/fdb.go" "$tmp/binding/src/fdb/"
cp "$gomod" "$tmp/go.mod"
cp "$(dirname "$gomod")/go.sum" "$tmp/go.sum"
"$GO" mod edit -replace "$binding=$tmp/binding" "$tmp/go.mod"

CGO_ENABLED=0 "$GO" test -modfile "$tmp/go.mod" -tags fdbtuple "$@"
