"""Answers that outlive their connection (CHAT_REDIS_URL): come back for one, or stop it.

The ids in these paths are secrets (whoever has one reads or stops that answer): the log lines
name the route's template instead.
"""

from typing import Annotated

from fastapi import APIRouter, Header, Response

from app.http.deps import OpenStreamsDep, ResumptionDep
from app.http.errors import RESUME_RESPONSES
from app.http.middleware.request_log import add_to_request_summary
from app.observability.summary import ResumeSummary
from app.resumable.errors import StreamNotFound
from app.resumable.resumption import Resumption
from app.streaming.formats.chat_events import ChatEventsEncoder
from app.streaming.formats.ui_messages import UIMessageStreamEncoder
from app.streaming.response import EventStreamResponse

router = APIRouter()

_EVENT_STREAM: dict[str, object] = {"content": {"text/event-stream": {}}}


def _on(resumption: Resumption | None) -> Resumption:
    if resumption is None:
        raise StreamNotFound()  # resumption is off: no answer is ever kept
    return resumption


@router.get(
    "/chat/streams/{stream_id}",
    summary="Come back for a /chat answer",
    response_class=Response,
    responses={
        200: {
            **_EVENT_STREAM,
            "description": "The events after `Last-Event-ID` (all of them without it), then the "
            "live ones, as the original stream: same ids, same end.",
        },
        204: {"description": "`Last-Event-ID` is the answer's last event: nothing more will come."},
        **RESUME_RESPONSES,
    },
)
async def resume_chat(
    stream_id: str,
    resumption: ResumptionDep,
    streams: OpenStreamsDep,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> Response:
    """What an `EventSource` on this URL does by itself when its connection drops; a `fetch`
    reader sends the `Last-Event-ID` header with the last `id:` it read."""
    resumption = _on(resumption)
    stored = await resumption.open(stream_id, "chat")
    add_to_request_summary(ResumeSummary("chat", stored.request_id))
    if (
        last_event_id is not None
        and not stored.live
        and stored.chunks
        and stored.chunks[-1].last_event_id <= last_event_id
    ):
        return Response(status_code=204)  # the standard "stop reconnecting" to an EventSource
    frames = resumption.frames(stream_id, stored, last_event_id, ChatEventsEncoder().error)
    return EventStreamResponse(frames, streams=streams, farewell=b"")


@router.post(
    "/chat/streams/{stream_id}/stop",
    summary="Stop a /chat answer in flight",
    status_code=204,
    response_class=Response,
    responses=RESUME_RESPONSES,
)
async def stop_chat(stream_id: str, resumption: ResumptionDep) -> Response:
    """Closes the call to Anthropic wherever it runs; every reader's stream ends with `end`
    (`stop_reason: "stopped"`) and `[DONE]`."""
    await _on(resumption).stop(stream_id)
    return Response(status_code=204)


@router.get(
    "/chat/ui/{chat_id}/stream",
    summary="Come back for a chat's /chat/ui answer (useChat's resume)",
    response_class=Response,
    responses={
        200: {**_EVENT_STREAM, "description": "The UI message stream from its `start`, then live."},
        204: {"description": "The chat has no answer in flight or recently finished."},
        **RESUME_RESPONSES,
    },
)
async def resume_chat_ui(chat_id: str, resumption: ResumptionDep, streams: OpenStreamsDep) -> Response:
    """What `DefaultChatTransport.reconnectToStream` calls: `useChat({ resume: true })` on load,
    and the transport after a network error."""
    if resumption is None:
        return Response(status_code=204)
    try:
        stream_id = await resumption.stream_of_chat(chat_id)
        stored = await resumption.open(stream_id, "ui")
    except StreamNotFound:
        return Response(status_code=204)
    add_to_request_summary(ResumeSummary("ui", stored.request_id))
    encoder = UIMessageStreamEncoder()
    frames = resumption.frames(stream_id, stored, None, encoder.error)
    return EventStreamResponse(frames, streams=streams, headers=encoder.headers, farewell=b"")


@router.post(
    "/chat/ui/{chat_id}/stop",
    summary="Stop a chat's /chat/ui answer in flight",
    status_code=204,
    response_class=Response,
    responses=RESUME_RESPONSES,
)
async def stop_chat_ui(chat_id: str, resumption: ResumptionDep) -> Response:
    """Every reader's stream ends with a `finish` (`stopReason: "stopped"` in the metadata)."""
    await _on(resumption).stop_chat(chat_id)
    return Response(status_code=204)
