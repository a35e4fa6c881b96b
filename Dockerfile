# The Todo API as a production container image.
#
#   docker build -t todo-api .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgresql://... -e AUTH_JWT_SECRET=... todo-api
#
# Two stages: the builder installs the locked project (no dev extra) into a virtual environment; the
# runtime stage copies only that environment onto a fresh slim Python, so no build tool, pip
# cache or source tree ends up in the image. Every dependency ships wheels: no compiler needed.
# The Python minor version matches the one CI tests on (requires-python is >=3.11).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder

# uv installs exactly the locked set (uv.lock) into /opt/venv, with this image's Python.
ARG UV_VERSION=0.13.8
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /build
# README.md is the package's long description (pyproject's `readme`), so the build needs it.
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
# The runtime dependencies and the extras a deployment turns on with a setting (redis for
# REDIS_URL, sentry for SENTRY_DSN); the project itself as a wheel, not editable.
RUN uv sync --locked --no-editable --extra redis --extra sentry \
    && /opt/venv/bin/todo-api --help > /dev/null


FROM python:${PYTHON_VERSION}-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ENVIRONMENT=production

# A fixed, unprivileged UID/GID (no login shell, no home), so volume permissions and
# Kubernetes' runAsNonRoot/runAsUser can rely on it.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-log-init --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app

# The code stays owned by root (read-only to the service). The working directory belongs to
# the service only so that a trial run without DATABASE_URL can create its SQLite file there;
# with PostgreSQL nothing is written, and the root filesystem may be mounted read-only.
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
RUN chown app:app /app

USER 10001:10001

EXPOSE 8000

# Liveness only (no database call): the image has no curl, so the standard library asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

# Exec form: the server is PID 1's direct command and receives SIGTERM itself, then drains
# in-flight requests for up to SHUTDOWN_GRACE_S. `serve` applies pending migrations first (under
# an advisory lock); a deployment that runs `todo-api migrate` as a release step adds
# `--no-migrate` (see compose.yaml). Without `--workers` production starts one worker per CPU
# the container *sees* (often the host's, not its CPU limit): set it for your limit.
ENTRYPOINT ["todo-api"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
