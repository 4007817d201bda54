"""POST /chat/ui: `/chat` for the Vercel AI SDK's `useChat`, with no glue code on the frontend.

The same upstream answer and relay as `/chat`'s stream (retries, client-gone handling, pings, logs);
only the request's shape and the wire format differ.
"""

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError

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
from app.http.schemas.chat_ui import ChatUIRequest
from app.observability.summary import ChatSummary
from app.resumable.resumption import new_stream_id
from app.streaming.formats.ui_messages import UIMessageStreamEncoder
from app.streaming.relay import Resumable, stream_response
from app.streaming.response import EventStreamResponse

router = APIRouter()


_STREAM_DESCRIPTION = """\
The AI SDK's UI message stream (header `x-vercel-ai-ui-message-stream: v1`): `data:` lines with
JSON chunks, as `DefaultChatTransport` reads them. `start` (`messageId`, `messageMetadata.model`),
`start-step`, then, if the model thinks, `reasoning-start`, `reasoning-delta` (its summary, with
`"thinking": "summarized"`; none when omitted), `reasoning-end`; then `text-start`,
`text-delta`…, `text-end`, `finish-step`, `message-metadata` (`model`, `stopReason`, `usage`,
`contextWindow`), `finish` (`finishReason`: `stop`, `length`, `content-filter` or `other`),
`data: [DONE]`. A failure after `start` ends it with `error` (`errorText`), `finish-step`, `finish`
(`finishReason: "error"`), `data: [DONE]`. Failures before it are HTTP statuses with `/chat`'s
JSON bodies. Comment lines (`: ping`) keep idle connections open.

With resumption on (CHAT_REDIS_URL), the chat's `id` keys the answer: `GET /chat/ui/{id}/stream`
(what `useChat({ resume: true })` calls) replays it from its `start` and follows it live, and
`POST /chat/ui/{id}/stop` ends it (`finish` after `stopReason: "stopped"` in the metadata).
"""


@router.post(
    "/chat/ui",
    summary="Relay a conversation from the AI SDK's useChat",
    response_class=Response,  # no JSON body to document: the 200 is the event stream below
    dependencies=[Depends(require_json)],
    responses={
        200: {"content": {"text/event-stream": {}}, "description": _STREAM_DESCRIPTION},
        **ERROR_RESPONSES,
    },
)
async def chat_ui(
    request: ChatUIRequest,
    connection: Request,
    upstream: UpstreamDep,
    settings: SettingsDep,
    streams: OpenStreamsDep,
    end_user_id: EndUserIdDep,
    resumption: ResumptionDep,
) -> EventStreamResponse:
    """What `DefaultChatTransport` sends (`{id, messages, trigger, messageId}` plus `/chat`'s options
    from its `body`); the next assistant message as the UI message stream `useChat` reads."""
    messages = request.chat_messages()
    if not messages:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "messages"),
                    "msg": "Value error, no text to send: the messages have no text parts "
                    "(reasoning, step, source and data parts are not sent to the model)",
                    "input": None,
                }
            ]
        )
    params = ChatParams.with_defaults(settings, messages, request, end_user_id)
    summary = ChatSummary(model=params.model.name, stream=True, end_user_id=params.end_user_id)
    add_to_request_summary(summary)
    answer = upstream.answer(params, summary)
    resumable = None
    if resumption is not None and request.id:
        resumable = Resumable(resumption, new_stream_id(), "ui", chat_id=request.id)
    return await stream_response(connection, answer, summary, streams, UIMessageStreamEncoder(), resumable)
