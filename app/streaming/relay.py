"""Relaying an answer as an event stream: the part every wire format shares.

The route picks an encoder (its wire format) and hands over the answer's sequence; this module
waits for its `Start` (a failure until then is still an HTTP status), then sends the encoder's
frames for the start, the pieces and the end, turns a failure midway into the encoder's error
frame, and says how the answer ended. Retries live below it (app/upstream/stream.py), pings and
the shutdown grace beside it (app/streaming/response.py).
"""

import asyncio
from collections.abc import AsyncGenerator

import structlog
from starlette.requests import Request

from app.chat.answer import AnswerEvent, Compacted, End, Handover, Start
from app.chat.errors import UpstreamError
from app.observability.summary import INTERNAL_ERROR, ChatSummary
from app.streaming.client_gone import cancelled_if_client_leaves
from app.streaming.formats.base import StreamEncoder
from app.streaming.response import EventStreamResponse, OpenStreams

log = structlog.get_logger(__name__)

RESTARTING = ("service_restarting", "The service is restarting; send the request again.")
_FAILED_MIDWAY = "The service failed while relaying the answer; send the request again."

Answer = AsyncGenerator[AnswerEvent, None]


async def stream_response(
    request: Request, answer: Answer, summary: ChatSummary, streams: OpenStreams, encoder: StreamEncoder
) -> EventStreamResponse:
    """Waits for the answer's start (failures until Anthropic accepts it become HTTP statuses),
    then streams it."""
    async with cancelled_if_client_leaves(request.receive, summary):
        start = await anext(answer)
    assert type(start) is Start
    summary.note_start()
    return EventStreamResponse(
        relay(start, answer, summary, encoder),
        streams=streams,
        headers=encoder.headers,
        farewell=encoder.error(*RESTARTING),
        on_shutdown=summary.mark_ended_by_shutdown,
    )


async def relay(
    start: Start, answer: Answer, summary: ChatSummary, encoder: StreamEncoder
) -> AsyncGenerator[bytes, None]:
    """start, pieces..., end; or, if the answer fails midway, the error frame."""
    ending: BaseException | None = None
    try:
        yield encoder.start(start)
        async for event in answer:
            if type(event) is list:
                if summary.ttft_ms is None:  # until the first text; no work after it
                    summary.note_first_text(event)
                yield encoder.pieces(event)  # pieces that arrived in one upstream read leave in one write
            elif type(event) is Handover:
                yield encoder.handover(event)
            elif type(event) is Compacted:
                yield encoder.compaction(event)
            else:
                assert type(event) is End
                yield encoder.end(event)
    except UpstreamError as error:
        ending = error
        log.warning("stream_failed", error_type=error.kind.value, error=error.message)
        yield encoder.error(error.kind.value, error.message)
    except (asyncio.CancelledError, GeneratorExit) as exc:
        ending = exc
        raise
    except Exception as exc:
        ending = exc
        log.exception("stream_internal_error")
        await answer.aclose()
        yield encoder.error(INTERNAL_ERROR, _FAILED_MIDWAY)
    finally:
        await answer.aclose()  # closes the upstream response, so Anthropic stops generating
        outcome = summary.ended(ending)
        if isinstance(ending, asyncio.CancelledError | GeneratorExit):
            log.info(outcome, upstream_closed=True)
