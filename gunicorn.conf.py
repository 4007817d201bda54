"""gunicorn settings, from the environment: gunicorn manages processes, uvicorn serves ASGI."""

import os
from pathlib import Path

from gunicorn.glogging import Logger

from app.observability.log import configure_logging

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 1)))
worker_class = "uvicorn_worker.UvicornWorker"

# For async workers `timeout` is only a heartbeat: a worker whose event loop stops answering for
# this long is killed. It does not limit how long a stream may last.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, streams in flight get this long to finish before workers are killed. Compose's
# stop_grace_period must be longer.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "60"))
# Longer than a typical load balancer's idle time-out (60 s), so it closes first, not us.
keepalive = int(os.environ.get("KEEPALIVE", "75"))
# Never recycle workers by request count: a recycled worker cuts its live streams.
max_requests = 0

accesslog = None  # the app writes one summary line per request, with its request id
# The runtime control socket would live under the app user's read-only home; containers are
# managed by their orchestrator instead.
control_socket_disable = True


def on_starting(server):  # type: ignore[no-untyped-def]
    # prometheus-client's multiprocess mode: each worker writes its figures to files here and
    # /metrics sums them. Files of an earlier run would be counted again, so start empty. Done
    # before app.main is first imported: importing the metrics creates the master's files (all
    # zero, so that every metric is exported before its first request).
    if metrics_dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
        for stale in Path(metrics_dir).iterdir():
            stale.unlink()

    from app.main import settings_or_exit

    # Invalid configuration stops the master with one clear line, instead of workers that
    # fail to boot over and over.
    settings_or_exit()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    # A dead worker's open streams no longer count (chat_open_streams is a live sum); its
    # counters stay in the totals.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


class JsonLogger(Logger):
    """gunicorn's own lines in the same structlog JSON as the app's."""

    def setup(self, cfg):  # type: ignore[no-untyped-def]
        super().setup(cfg)
        configure_logging(os.environ.get("CHAT_LOG_LEVEL", "INFO"), os.environ.get("CHAT_LOG_FORMAT", "auto"))
        for log in (self.error_log, self.access_log):
            log.handlers.clear()
            log.propagate = True


logger_class = JsonLogger
