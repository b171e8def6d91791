# pyrunner: n8n's Python task runner, as a container that connects to n8n's task broker.
#
#   docker build -t pyrunner --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run --rm -e N8N_RUNNERS_TASK_BROKER_URI=http://n8n:5679 \
#     -e N8N_RUNNERS_AUTH_TOKEN_FILE=/run/secrets/n8n_runners_auth_token ... pyrunner
#
# See deploy/README.md for Docker Compose, Kubernetes and n8n's own runners image.

# ---- build: a static binary, so the runtime image needs only Python -----------------------------
FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /usr/local/bin/pyrunner ./cmd/pyrunner

# ---- runtime: pyrunner and the CPython 3.10+ it runs tasks in -----------------------------------
FROM python:3.13-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="pyrunner" \
      org.opencontainers.image.description="Python task runner for n8n: a drop-in replacement for n8n's official Python runner, on a warm pool of sandboxed Python processes" \
      org.opencontainers.image.source="https://github.com/pyrunner/pyrunner" \
      org.opencontainers.image.version="${VERSION}"

# The python image ships its standard library without bytecode. Tasks run as an unprivileged
# user and cannot write it next to the sources, so without this every `import json` in a task
# would compile from source again.
RUN python3 -m compileall -q -j 0 "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"

# Non-root: pyrunner then runs its tasks as this same user, each task process fenced in by its own
# Landlock domain and a seccomp filter (no capabilities needed). Run the container as root
# (--user 0) and pyrunner instead gives every task process a uid of its own (see deploy/README.md).
# The home and the cache stay world-readable so that, under a root pyrunner, the tasks' own uids
# can read the runtime cached there.
RUN groupadd --gid 1000 runner \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/runner --shell /usr/sbin/nologin runner \
 && chmod 0755 /home/runner \
 && install -d -m 0755 -o runner -g runner /home/runner/.cache /home/runner/.cache/pyrunner

COPY --from=build /usr/local/bin/pyrunner /usr/local/bin/pyrunner

# Serve /healthz, /readyz and /metrics (off by default outside a container).
ENV N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED=true
# On every interface, so that Kubernetes HTTP probes and Prometheus reach it from outside the
# container; `pyrunner healthcheck` asks 127.0.0.1 when this is 0.0.0.0.
ENV N8N_RUNNERS_HEALTH_CHECK_SERVER_HOST=0.0.0.0
# The health server's port (n8n's runner default), published below.
ENV N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT=5681
# The image's own CPython, named by path: resolving it skips the PATH lookup at start.
ENV N8N_PYTHON_INTERPRETER=/usr/local/bin/python3
# Where pyrunner byte-compiles its Python runtime once per Python version: in the user's home,
# which survives in the container's layer (or mount a volume here to keep it across containers).
ENV N8N_PYTHON_CACHE_DIR=/home/runner/.cache/pyrunner

# Numeric, so that Kubernetes' runAsNonRoot can check it without a passwd lookup.
USER 1000:1000
WORKDIR /home/runner
EXPOSE 5681

# Liveness: the process serves. `pyrunner healthcheck -path /readyz` also needs it registered
# with the broker; compose.yaml uses that one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["pyrunner", "healthcheck"]

# pyrunner runs as PID 1 and handles SIGTERM itself: running tasks get
# N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT (10 s) to finish, then it exits. No init (tini) needed: as
# PID 1 pyrunner runs the runner as its child, forwards signals to it and reaps the orphans a
# container's PID 1 inherits (a task's own leftovers are reaped by its zygote, a child subreaper).
STOPSIGNAL SIGTERM
ENTRYPOINT ["pyrunner"]
CMD ["run"]
