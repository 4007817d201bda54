"""A real OTLP/HTTP trace receiver, as a collector is one: POST /v1/traces, protobuf decoded.

It keeps every span it was sent, flattened with its resource's attributes, for tests to read;
`python -m tests.otlp_receiver` runs one alone (the benchmark's tracing-on run points at it).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

KINDS = {
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_INTERNAL: "internal",
}


@dataclass
class ReceivedSpan:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status: str  # "unset", "ok" or "error"
    start_ns: int
    end_ns: int
    events: list[str] = field(default_factory=list)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def decode(payload: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(payload)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        status={0: "unset", 1: "ok", 2: "error"}[span.status.code],
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        events=[event.name for event in span.events],
                    )
                )
    return spans


class OtlpReceiver:
    """Listens on 127.0.0.1 (a free port) until `stop`."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.exports = 0  # trace batches received
        self.posts: list[str] = []  # the path of every POST, whatever its signal (metrics, logs ...)
        self._arrivals = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._arrivals:
                    receiver.posts.append(self.path)
                encoding = self.headers.get("content-encoding", "")
                if encoding == "gzip":
                    payload = gzip.decompress(payload)
                elif encoding == "deflate":
                    payload = zlib.decompress(payload)
                if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
                    self.send_error(404 if self.path != "/v1/traces" else 415)
                    return
                receiver._add(decode(payload))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _add(self, spans: list[ReceivedSpan]) -> None:
        with self._arrivals:
            self.spans.extend(spans)
            self.exports += 1
            self._arrivals.notify_all()

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._arrivals:
            self.spans.clear()
            self.posts.clear()
            self.exports = 0

    def wait_for(self, condition: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0) -> bool:
        """Waits until `condition(spans)` holds; False on time-out."""
        with self._arrivals:
            return self._arrivals.wait_for(lambda: condition(self.spans), timeout)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._arrivals:
            return [span for span in self.spans if span.trace_id == trace_id]


def span_tree(spans: list[ReceivedSpan]) -> str:
    """The spans as an indented tree, children under their parent, with their attributes."""
    ids = {span.span_id for span in spans}
    lines: list[str] = []

    def add(span: ReceivedSpan, depth: int) -> None:
        pad = "  " * depth
        lines.append(
            f"{pad}{span.name} [{span.kind}, {(span.end_ns - span.start_ns) / 1e6:.1f} ms, {span.status}]"
        )
        lines.append(f"{pad}  span {span.span_id} parent {span.parent_span_id or '-'}")
        for key, value in sorted(span.attributes.items()):
            lines.append(f"{pad}  {key} = {value!r}")
        for child in sorted((s for s in spans if s.parent_span_id == span.span_id), key=lambda s: s.start_ns):
            add(child, depth + 1)

    for root in sorted((s for s in spans if s.parent_span_id not in ids), key=lambda s: s.start_ns):
        add(root, 0)
    return "\n".join(lines)


def main() -> None:
    receiver = OtlpReceiver().start()
    print(f"OTLP/HTTP receiver on {receiver.endpoint}", flush=True)
    try:
        while True:
            time.sleep(10)
            print(f"{len(receiver.spans)} spans in {receiver.exports} exports", flush=True)
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
