# pyrunner — see README.md. Every target works on a fresh Linux machine with Go and Python 3.
GO        ?= go
PYTHON    ?= python3
BIN       := bin/pyrunner
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

.PHONY: all build run demo test lint gotest pytest bench e2e-n8n e2e-queue clean

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
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

gotest:
	$(GO) test -race -count=1 -timeout 20m ./...

pytest:
	cd python/runtime && $(PYTHON) -m unittest discover -s tests -t . -q

# Benchmarks (about 6 minutes): pyrunner through the fake broker, each number against a
# process-per-task baseline measured in the same run; prints the README's Performance table.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 300x -timeout 60m ./e2e/ ./broker/...

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
