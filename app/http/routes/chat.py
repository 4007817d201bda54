"""POST /chat: validate, ask Anthropic, answer with JSON or an event stream."""

import orjson
from fastapi import APIRouter, Depends, Request, Response

from app.chat.params import ChatParams
from app.http.deps import (
    EndUserIdDep,
    OpenStreamsDep,
    ResumptionDep,
    SettingsDep,
    UpstreamDep,
    require_json,
)
from app.http.errors import ERROR_RESPONSES
from app.http.middleware.request_log import add_to_request_summary
from app.http.schemas.chat import ChatRequest, ChatResponse
from app.observability.summary import ChatSummary
from app.resumable.resumption import new_stream_id
from app.streaming.client_gone import cancelled_if_client_leaves
from app.streaming.formats.chat_events import ChatEventsEncoder, ending
from app.streaming.relay import Resumable, stream_response

router = APIRouter()

_STREAM_DESCRIPTION = """\
With `"stream": true`: Server-Sent Events. Each event has an `event:` name and a JSON `data:`
whose `type` repeats it: `start` (`id`, `model`) as soon as Anthropic has accepted the request,
then `thinking` (`text`) while the model thinks (its summary with `"thinking": "summarized"`,
else one event with an empty `text`), then `delta` (`text`) for each piece of the answer, then
`end` (`stop_reason`, `usage`, `context`, and `compaction` when Anthropic compacted), then `data: [DONE]`.
A `compaction` event (`compaction`: the block) comes before the answer's text when Anthropic
summarises the conversation's older turns. If Anthropic fails after thinking or answer
text was sent, the stream ends with an `error` event (`error.type`, `error.message`) and no
`[DONE]`. Comment lines (`: ping`) keep idle connections open, from `start` on.

With resumption on (CHAT_REDIS_URL), every event starts with an `id:` line and `start` has a
`stream_id`: `GET /chat/streams/{stream_id}` with `Last-Event-ID` sends the events after it, and
`POST /chat/streams/{stream_id}/stop` ends the answer with `end` (`stop_reason: "stopped"`).
"""


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="Relay a conversation to Claude",
    dependencies=[Depends(require_json)],
    responses={
        200: {"content": {"text/event-stream": {}}, "description": _STREAM_DESCRIPTION},
        **ERROR_RESPONSES,
    },
)
async def chat(
    request: ChatRequest,
    connection: Request,
    upstream: UpstreamDep,
    settings: SettingsDep,
    streams: OpenStreamsDep,
    end_user_id: EndUserIdDep,
    resumption: ResumptionDep,
) -> Response:
    """Send the whole conversation; get the next assistant message, as one JSON body or streamed."""
    messages = [message.as_turn() for message in request.messages]
    params = ChatParams.with_defaults(settings, messages, request, end_user_id)
    summary = ChatSummary(model=params.model.name, stream=request.stream, end_user_id=params.end_user_id)
    add_to_request_summary(summary)
    if request.stream:
        answer = upstream.answer(params, summary)
        if resumption is None:
            return await stream_response(connection, answer, summary, streams, ChatEventsEncoder())
        encoder = ChatEventsEncoder(stream_id=new_stream_id())
        assert encoder.stream_id is not None
        resumable = Resumable(
            resumption, encoder.stream_id, "chat", last_event_id=lambda: encoder.last_event_id
        )
        return await stream_response(connection, answer, summary, streams, encoder, resumable)
    async with cancelled_if_client_leaves(connection.receive, summary):
        completion = await upstream.complete(params, summary)
    summary.ended(None)
    body = {
        "id": completion.id,
        "model": completion.model,
        "role": "assistant",
        "content": completion.text,
        "thinking": completion.thinking,
        **ending(completion.end),
    }
    return Response(orjson.dumps(body), media_type="application/json")
