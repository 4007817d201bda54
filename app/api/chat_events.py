"""The `/chat` stream's events, encoded once each as SSE bytes.

Each event names itself twice, in `event:` and in the JSON's `type`, like Anthropic's own stream.
"""

import asyncio
from collections.abc import AsyncGenerator

import orjson
import structlog

from app.services.chat import ChatStats, ChatStream
from app.services.errors import UpstreamError

log = structlog.get_logger(__name__)

_DELTA_HEAD = b'event: delta\ndata: {"type":"delta","text":'
_DELTA_TAIL = b"}\n\n"
DONE_FRAME = b"data: [DONE]\n\n"


def _frame(event: str, data: dict[str, object]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps({"type": event, **data}) + b"\n\n"


SHUTDOWN_FRAME = _frame(
    "error",
    {
        "error": {
            "type": "service_restarting",
            "message": "The service is restarting; send the request again.",
        }
    },
)


async def chat_event_frames(stream: ChatStream, stats: ChatStats) -> AsyncGenerator[bytes, None]:
    """start, delta..., end, [DONE]; or, if upstream fails midway, an `error` event and no [DONE]."""
    yield _frame("start", {"id": stream.id, "model": stream.model})
    try:
        async for texts in stream:
            # Deltas that arrived in one upstream read leave in one write.
            yield b"".join([_DELTA_HEAD + orjson.dumps(text) + _DELTA_TAIL for text in texts])
    except UpstreamError as error:
        log.warning("stream_failed", error_type=error.kind.value, error=error.message)
        yield _frame("error", {"error": {"type": error.kind.value, "message": error.message}})
        return
    except (asyncio.CancelledError, GeneratorExit):
        if stats.outcome == "ok":  # not ended by shutdown's grace period
            stats.outcome = "client_disconnected"
        log.info(stats.outcome, upstream_closed=True)
        raise
    usage = {"input_tokens": stream.usage.input_tokens, "output_tokens": stream.usage.output_tokens}
    yield _frame("end", {"stop_reason": stream.stop_reason, "usage": usage}) + DONE_FRAME
