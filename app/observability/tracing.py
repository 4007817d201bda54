"""Traces: one OTLP/HTTP pipeline per worker, on only where a collector is configured.

Made in the lifespan, which gunicorn runs in each worker after the fork, so that each worker has
its own export thread and its own pid in the spans' resource (one made in the master would carry
the master's pid into every worker). The provider is not made global:
the service hands its tracer to the two places that make spans (the server span's middleware and
the upstream attempts), so that nothing else (FastAPI's own telemetry, the SDK's spans, a library)
switches itself on because a global provider appeared.
"""

import os
import threading
from typing import Final

import structlog
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import PROCESS_PID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

log = structlog.get_logger(__name__)

# The longest a stopping worker waits for its last spans to leave. The SDK's own shutdown waits
# up to 30 s, and each export up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s), retrying a collector
# that refuses connections: a dead collector would hold every stopping worker that long.
FLUSH_WITHIN: Final = 3.0

INSTRUMENTATION_SCOPE: Final = "chat-service"


class Tracing:
    """The worker's tracer provider: its batch processor and exporter, and their bounded end."""

    def __init__(self, endpoint: str, service_name: str, service_version: str) -> None:
        # service.instance.id comes from the SDK's detector, new in each process: a worker's own.
        resource = Resource.create(
            {SERVICE_NAME: service_name, SERVICE_VERSION: service_version, PROCESS_PID: os.getpid()}
        )
        # Not shut down at exit by the SDK (an unbounded wait there): `shutdown` below is.
        self._provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        # Batch size, queue, delay and the exporter's headers, time-out and TLS come from the
        # standard OTEL_BSP_* and OTEL_EXPORTER_OTLP_* variables, read by the SDK itself.
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer: Tracer = self._provider.get_tracer(INSTRUMENTATION_SCOPE, service_version)
        self.endpoint = endpoint

    def shutdown(self, within: float = FLUSH_WITHIN) -> bool:
        """Sends what is queued and stops, waiting at most `within` seconds; False if it did not
        finish in time (the spans left are lost; the export thread is a daemon and dies with the
        process)."""
        stopping = threading.Thread(target=self._provider.shutdown, name="trace-shutdown", daemon=True)
        stopping.start()
        stopping.join(within)
        if stopping.is_alive():
            log.warning("trace_flush_timed_out", endpoint=self.endpoint, waited_s=within)
            return False
        return True
