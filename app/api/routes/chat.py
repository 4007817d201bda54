"""POST /chat: validate, call the chat service, answer with JSON or an event stream."""

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError

from app.api.chat_events import SHUTDOWN_FRAME, chat_event_frames
from app.api.deps import ChatServiceDep, OpenStreamsDep, SettingsDep, require_json
from app.api.disconnect import cancelled_if_client_leaves
from app.api.request_log import add_to_request_summary
from app.api.schemas.chat import ChatRequest, ChatResponse, ErrorResponse
from app.api.sse import EventStreamResponse
from app.config import Settings
from app.services.chat import ChatParams, ChatStats
from app.services.models import ModelChoice

router = APIRouter()

_STREAM_DESCRIPTION = """\
With `"stream": true`: Server-Sent Events. Each event has an `event:` name and a JSON `data:`
whose `type` repeats it: `start` (`id`, `model`), then `delta` (`text`) for each piece of the
answer, then `end` (`stop_reason`, `usage`), then `data: [DONE]`. If Anthropic fails after the
first delta, the stream ends with an `error` event (`error.type`, `error.message`) and no
`[DONE]`. Comment lines (`: ping`) keep idle connections open.
"""

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Anthropic rejected the request, or the requested model does not exist.",
        401: "Anthropic rejected the service's API key.",
        403: "The API key may not use this model or feature.",
        413: "The request body is over the size limit, or the conversation too large for Anthropic.",
        415: "The body is not sent as JSON.",
        429: "Rate-limited by Anthropic after retries; see `Retry-After`.",
        502: "Anthropic failed, could not be reached, or the configured model is retired.",
        503: "Anthropic is overloaded after retries; see `Retry-After`.",
        504: "Anthropic did not answer in time.",
    }.items()
}


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="Relay a conversation to Claude",
    dependencies=[Depends(require_json)],
    responses={200: {"content": {"text/event-stream": {}}, "description": _STREAM_DESCRIPTION}, **_ERRORS},
)
async def chat(
    request: ChatRequest,
    connection: Request,
    service: ChatServiceDep,
    settings: SettingsDep,
    streams: OpenStreamsDep,
) -> Response:
    """Send the whole conversation; get the next assistant message, as one JSON body or streamed."""
    params = _params(request, settings)
    stats = ChatStats(model=params.model, stream=request.stream)
    add_to_request_summary(stats)
    if request.stream:
        async with cancelled_if_client_leaves(connection.receive, on_leave=stats.client_left):
            stream = await service.open_stream(params, stats)
        return EventStreamResponse(
            chat_event_frames(stream, stats),
            streams=streams,
            farewell=SHUTDOWN_FRAME,
            on_shutdown=stats.ended_by_shutdown,
        )
    async with cancelled_if_client_leaves(connection.receive, on_leave=stats.client_left):
        completion = await service.complete(params, stats)
    body = {
        "id": completion.id,
        "model": completion.model,
        "role": "assistant",
        "content": completion.text,
        "stop_reason": completion.stop_reason,
        "usage": {
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
        },
    }
    return Response(orjson.dumps(body), media_type="application/json")


def _params(request: ChatRequest, settings: Settings) -> ChatParams:
    """The request's choices checked against the server's limits, defaults filled in."""
    problems: list[dict[str, Any]] = []
    if request.model is not None and settings.allowed_models and request.model not in settings.allowed_models:
        problems.append(
            {
                "type": "value_error",
                "loc": ("body", "model"),
                "msg": f"Value error, model must be one of: {', '.join(settings.allowed_models)}",
                "input": request.model,
            }
        )
    if request.max_tokens is not None and request.max_tokens > settings.max_tokens_ceiling:
        problems.append(
            {
                "type": "less_than_equal",
                "loc": ("body", "max_tokens"),
                "msg": f"Input should be less than or equal to {settings.max_tokens_ceiling}",
                "input": request.max_tokens,
                "ctx": {"le": settings.max_tokens_ceiling},
            }
        )
    if problems:
        raise RequestValidationError(problems)
    return ChatParams(
        model=ModelChoice(request.model or settings.model, configured=request.model is None),
        messages=[message.model_dump() for message in request.messages],
        max_tokens=request.max_tokens or settings.max_tokens_default,
        system=request.system if request.system is not None else settings.system_prompt,
    )
