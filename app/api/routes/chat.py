"""POST /chat: validate, call the chat service, answer with JSON or an event stream."""

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from app.api.deps import ChatServiceDep, OpenStreamsDep, SettingsDep, require_json
from app.api.disconnect import cancelled_if_client_leaves
from app.api.encoders.chat_events import ChatEventsEncoder
from app.api.params import chat_params
from app.api.relay import stream_response
from app.api.request_log import add_to_request_summary
from app.api.schemas.chat import ChatRequest, ChatResponse, ErrorResponse
from app.services.chat_stats import ChatStats

router = APIRouter()

_STREAM_DESCRIPTION = """\
With `"stream": true`: Server-Sent Events. Each event has an `event:` name and a JSON `data:`
whose `type` repeats it: `start` (`id`, `model`) as soon as Anthropic has accepted the request,
then `thinking` (`text`) while the model thinks (its summary with `"thinking": "summarized"`,
else one event with an empty `text`), then `delta` (`text`) for each piece of the answer, then
`end` (`stop_reason`, `usage`), then `data: [DONE]`. If Anthropic fails after thinking or answer
text was sent, the stream ends with an `error` event (`error.type`, `error.message`) and no
`[DONE]`. Comment lines (`: ping`) keep idle connections open, from `start` on.
"""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Anthropic rejected the request, the requested model does not exist (`model_not_found`), "
        "or the body is not valid JSON (`bad_request`).",
        401: "Anthropic rejected the service's API key.",
        403: "The API key may not use this model or feature.",
        413: "The request body is over the size limit, or the conversation too large for Anthropic.",
        415: "The body is not sent as JSON.",
        429: "Rate-limited by Anthropic after retries; see `Retry-After`.",
        502: "Anthropic failed, could not be reached, or the configured model is retired.",
        503: "Anthropic is overloaded after retries; see `Retry-After`.",
        504: "Anthropic did not answer in time.",
        500: "The service failed unexpectedly (`internal_error`); the request id is in its logs.",
    }.items()
}


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
    service: ChatServiceDep,
    settings: SettingsDep,
    streams: OpenStreamsDep,
) -> Response:
    """Send the whole conversation; get the next assistant message, as one JSON body or streamed."""
    messages = [{"role": message.role, "content": message.content} for message in request.messages]
    params = chat_params(request, messages, settings)
    stats = ChatStats(model=params.model, stream=request.stream)
    add_to_request_summary(stats)
    if request.stream:
        return await stream_response(connection, service, params, stats, streams, ChatEventsEncoder())
    async with cancelled_if_client_leaves(connection.receive, on_leave=stats.client_left):
        completion = await service.complete(params, stats)
    body = {
        "id": completion.id,
        "model": completion.model,
        "role": "assistant",
        "content": completion.text,
        "thinking": completion.thinking,
        "stop_reason": completion.stop_reason,
        "usage": completion.usage.as_dict(),
    }
    return Response(orjson.dumps(body), media_type="application/json")
