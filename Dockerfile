# Builds with the classic builder too (testcontainers' docker SDK has no BuildKit).
# BASE_IMAGE: any Debian-like image with python3 (3.11+) and venv; where no registry is
# reachable, .ci/docker-setup makes one locally and passes it here.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==0.13.9"
WORKDIR /app
# Dependencies first, in their own layer: rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project --no-cache
COPY app ./app
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-editable --no-cache

FROM ${BASE_IMAGE}
# A fixed uid, so that Kubernetes' runAsUser (deploy/k8s) names the same user.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY gunicorn.conf.py ./
# PROMETHEUS_MULTIPROC_DIR: each worker's metrics, summed by /metrics (gunicorn.conf.py empties it at
# start); under /tmp, a tmpfs or emptyDir where the root filesystem is read-only.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app.main:app"]
