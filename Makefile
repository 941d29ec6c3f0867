# Coditect build. `make run` starts the main job; `make test` is what CI runs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
BIN       := bin/coditect
PKGS      := ./...
BENCHTIME ?= 1s

.PHONY: build run test setup vet ide-check vsix unit soak soak-short bench-smoke fuzz-short fuzz fdb-check crash bench bench-agents lint fmt clean

# Fuzz targets, package:function:executions[:script]. make fuzz runs each
# for FUZZTIME; make test runs each for its number of executions
# (fuzz-short), about 2-4 s each on a 2-core machine. A target with a script
# runs `sh script <go test flags> ./package` instead of `go test`: the
# binding differential fuzz needs the FoundationDB binding's tuple package
# built without cgo (storage/tuple/bindingtest.sh).
FUZZ_TARGETS := storage/tuple:FuzzUnpack:40000 storage/tuple:FuzzRoundTrip:20000 storage/tuple:FuzzOrder:60000 \
	storage/tuple:FuzzPackMatchesBinding:50000:storage/tuple/bindingtest.sh \
	storage/keyspace:FuzzTenantIsolation:8000 storage/lease:FuzzOverlapSymmetric:2000 storage/audit:FuzzAppend:1500 \
	tools:FuzzToolArgs:1000 tools:FuzzRedactPrefilter:5000 internal/gitignore:FuzzIgnorePattern:1000 ide:FuzzReadObject:4000 webview:FuzzRESTQuery:1000
FUZZTIME ?= 2m

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/coditect

# The daemon on the embedded store; it prints the dashboard URL (on the first
# start, with a login token in it; on later ones, the command that makes a
# token, with this binary's absolute path, so it works as printed). It
# watches the project in WATCH (default: this checkout), registering it on
# the first start, so the dashboard shows file changes at once;
# `make run WATCH=~/src/app` watches another one.
WATCH ?= $(CURDIR)
run: build
	./$(BIN) serve --watch "$(WATCH)"

# vet, the FDB type check, the unit and integration tests, the short
# (10-kill) crash test, one iteration of every benchmark (reduced sizes) and
# a few seconds of every fuzz target.
test: setup vet fdb-check ide-check unit soak-short bench-smoke fuzz-short

# What the tests need beyond Go, installed idempotently: Debian's Chromium
# and playwright-core for the dashboard's browser tests; the extension's npm
# packages (TypeScript, vscode-jsonrpc for the IDE protocol's Node client)
# and Debian's Neovim for the IDE tests.
setup:
	sh webview/e2e/setup.sh
	sh ide/vscode/setup.sh

# Type-checks the VS Code extension.
ide-check:
	sh ide/vscode/setup.sh npm
	cd ide/vscode && npx --no-install tsc -p ./ --noEmit

# Packages the VS Code extension as bin/coditect.vsix.
vsix:
	sh ide/vscode/setup.sh npm
	cd ide/vscode && npx --no-install tsc -p ./ && npx --no-install vsce package --skip-license --out ../../bin/coditect.vsix

# The second line checks that the macOS build (and its tests) compiles.
vet:
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)

# The second line runs the tests that compare storage/tuple with the
# FoundationDB binding's tuple package, built without cgo.
unit:
	$(GO) test -short -count=1 -timeout 20m $(PKGS)
	GO='$(GO)' sh storage/tuple/bindingtest.sh -short -count=1 ./storage/tuple

bench-smoke:
	$(GO) test -short -count=1 -run '^$$' -bench . -benchtime 1x -timeout 20m $(PKGS)

# Executions, not seconds: with a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" at the deadline under CPU contention
# (go.dev/issue/75804, fixed in Go 1.27), which would fail CI with no input
# to blame.
fuzz-short:
	@$(MAKE) --no-print-directory fuzz SHORT=1

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; rest=$${rest#*:}; n=$${rest%%:*}; \
		gotest="$(GO) test"; case $$rest in *:*) gotest="sh $${rest#*:}";; esac; \
		budget=$(FUZZTIME); if [ -n "$(SHORT)" ]; then budget=$${n}x; fi; \
		echo "fuzz $$pkg $$fn ($$budget)"; \
		GO='$(GO)' $$gotest -run '^$$' -fuzz "^$$fn$$" -fuzztime $$budget ./$$pkg; \
	done

# Type-checks every `fdb`-tagged package without fdb_c.h or libfdb_c.
fdb-check:
	$(GO) run ./internal/fdbcheck

# The soak test (docs/SOAK.md): 50 agents for 10 minutes against one daemon;
# report in bin/soak.json.
soak:
	mkdir -p bin
	CODITECT_SOAK_DURATION=10m CODITECT_SOAK_AGENTS=50 CODITECT_SOAK_REPORT=$(CURDIR)/bin/soak.json \
		$(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v ./internal/soak

# The reduced soak in make test: 24 agents, 30 s, on its own so that it
# neither skews nor is skewed by the other packages' tests.
soak-short:
	$(GO) test -count=1 -timeout 5m -run '^TestSoak$$' ./internal/soak

# The long crash tests: 200 SIGKILLs of writer processes; coditect mcp
# processes started several at a time beside spool recoveries and
# SIGKILLed (every acknowledged read keeps its record); and the kill loop
# mixing stdio and HTTP MCP writers (CODITECT_CRASH_ITERATIONS, default
# 100), which logs the acknowledged reads and writes it checked; the local
# core SIGKILLed 200 times mid-batch under 4 agents' traffic, and 100
# forwarders SIGKILLed one at a time while the other agents write through
# the same core.
crash:
	$(GO) test -count=1 -timeout 60m -run 'TestCrash' -v ./storage/kv/sqlite/
	$(GO) test -count=1 -timeout 60m -run 'TestMCPSpoolRaceConcurrentStarts|TestCrashMixStdioHTTP|TestCoreSIGKILLMidTraffic|TestForwarderSIGKILLMidTraffic' -v ./internal/faults/

# Benchmarks: 5 runs each; the medians table for docs/BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count 5 -timeout 90m $(PKGS) | tee bench.out
	$(GO) run ./internal/benchtable < bench.out

# Agents on one machine (internal/agentbench): 1, 4, 16 and 32 agents over
# stdio and HTTP beside a bare mcp-go server and raw durable SQLite commits,
# medians of 5 interleaved rounds of 5 s (notes, messages, whoami);
# BASE=path/to/coditect adds the rows of another build.
bench-agents:
	CODITECT_AGENTBENCH_ROUNDS=5 CODITECT_AGENTBENCH_DURATION=5s CODITECT_AGENTBENCH_OPS=note,message,whoami \
		CODITECT_AGENTBENCH_BASE=$(BASE) CODITECT_AGENTBENCH_READ_AGENTS=1,16 \
		$(GO) test -count=1 -timeout 90m -run '^$$' -bench . -benchtime 1x ./internal/agentbench

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo 'gofmt: the files above need formatting'; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest $(PKGS)

clean:
	rm -rf bin bench.out
