# pyrunner — see README.md. Every target works on a fresh Linux machine with Go and Python 3.
GO        ?= go
PYTHON    ?= python3
# Further interpreters the Python tests also run on where this machine has them (pyenv's 3.12 and
# 3.13 release builds, not its free-threaded "t" or debug ones: immortal.py does its work only there).
PYTHONS_NEWER ?= $(filter-out %t/bin/python3 %-debug/bin/python3,$(wildcard $(HOME)/.pyenv/versions/3.1[23].*/bin/python3))
BIN       := bin/pyrunner
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build run demo test lint gotest pytest fuzz bench bench-go soak sampling-cost promtool e2e-n8n e2e-queue clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pyrunner

# Connect to the n8n broker configured by the environment (see README).
run: build
	./$(BIN) run

# Build, then show pyrunner doing its job against the embedded fake n8n broker.
demo: build
	./$(BIN) demo

# What CI runs: formatting, vet, the race-checked Go tests (real Python processes,
# real websockets) and the Python runtime's own tests.
test: lint gotest pytest

lint:
	@.ci/no-binaries
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# -timeout is for a hang, not a measurement: on a busy 2-core machine the e2e
# package took 9 minutes, and 18 to 25 with a second `make test` beside it.
gotest:
	$(GO) test -race -count=1 -timeout 45m ./...

pytest:
	cd python/runtime && for py in $(PYTHON) $(PYTHONS_NEWER); do \
		echo "Python tests on $$py"; $$py -m unittest discover -s tests -t . -q || exit 1; done

# The JSON scanner reads what task processes send: fuzz it against encoding/json for a while
# (its seed corpus also runs in every `go test`). CI runs this after make test.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzEachMember$$' -fuzztime $(FUZZTIME) ./internal/jsonscan/

# The benchmark report (about 10 minutes on 2 cores): five Code-node scenarios in pyrunner's
# setups, a warm Pyodide (installed from npm into ~/.cache/pyrunner-bench on first use) and, with
# PYRUNNER_BENCH_OFFICIAL_RUNNER, n8n's official runner. Writes benchmark-results.json,
# benchmark-report.md and benchmark-chart.svg here (BENCH_FLAGS: e.g. -scenarios calc -n 50).
# PREVIOUS=<git revision>: that revision's worker pool is measured too, in the same run, built
# from a clean export of it into bin/previous-<commit>/.
BENCH_FLAGS ?=
PREVIOUS    ?=
ifneq ($(and $(PREVIOUS),$(filter bench,$(MAKECMDGOALS))),)
PREVIOUS_COMMIT := $(shell git rev-parse --quiet --verify --short=12 '$(PREVIOUS)^{commit}')
$(if $(PREVIOUS_COMMIT),,$(error PREVIOUS=$(PREVIOUS) is not a commit of this repository))
PREVIOUS_BIN := bin/previous-$(PREVIOUS_COMMIT)/pyrunner
endif
bench: build $(PREVIOUS_BIN)
	./$(BIN) bench -o . $(if $(PREVIOUS_BIN),-previous $(PREVIOUS_BIN)) $(BENCH_FLAGS)

bin/previous-%/pyrunner:
	rm -rf $(@D).src && mkdir -p $(@D).src
	git archive $* | tar -x -C $(@D).src
	cd $(@D).src && $(GO) build -trimpath -ldflags '-s -w -X main.version=$*' -o ../previous-$*/pyrunner ./cmd/pyrunner
	rm -rf $(@D).src

# The Go benchmarks, for regression checks (about 6 minutes): pyrunner through the fake broker,
# each number against a process-per-task baseline measured in the same run.
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 300x -timeout 60m ./e2e/ ./broker/...

# Soak (about 3 minutes in reuse mode): 100,000 tasks through the plain build, printing the
# runner's heap in use, resident memory, goroutines and open descriptors at 20 points; fails
# when one of them rose by more than a fixed allowance. SOAK_ISOLATION=isolated for that mode.
SOAK_TASKS     ?= 100000
SOAK_ISOLATION ?= reuse
soak:
	PYRUNNER_SOAK=$(SOAK_TASKS) PYRUNNER_SOAK_ISOLATION=$(SOAK_ISOLATION) $(GO) test -count=1 -timeout 120m -run '^TestSoak$$' -v ./e2e/

# What resource sampling costs pyrunner (about 3 minutes): its own CPU time, idle then under 3000
# tasks, with N8N_PYTHON_METRICS_SAMPLE_INTERVAL at 0 (off), 5000 (the default) and 100.
sampling-cost:
	PYRUNNER_SAMPLING_COST=1 $(GO) test -count=1 -timeout 30m -run '^TestSamplingCost$$' -v ./e2e/

# go test ./deploy/monitoring checks the Prometheus rules with promtool, from Debian's prometheus
# package: this installs it where it is missing (as root, on Debian; .ci/run does).
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# End-to-end against a real n8n 2.41.1 (installed once into ~/.cache/pyrunner-n8n).
e2e-n8n: build
	PYRUNNER_E2E_N8N=1 $(GO) test -count=1 -timeout 30m -run N8N -v ./e2e/

# n8n 2.41.1 in queue mode, wired as deploy/kubernetes wires it: main, two workers each with its
# own pyrunner, Redis and Postgres, all on loopback (about 8 minutes; needs redis-server and
# Postgres, Debian: apt-get install redis-server postgresql). Scale-out, faults, throughput.
e2e-queue: build
	PYRUNNER_E2E_QUEUE=1 $(GO) test -count=1 -timeout 30m -run Queue -v ./e2e/

clean:
	rm -rf bin
