"""POST /chat/count_tokens: how many tokens a conversation would take, before it is sent."""

from fastapi import APIRouter, Depends, Request

from app.chat.params import ChatParams
from app.http.deps import EndUserIdDep, SettingsDep, UpstreamDep, require_json
from app.http.errors import ERROR_RESPONSES
from app.http.middleware.request_log import add_to_request_summary
from app.http.schemas.chat import CountTokensRequest, CountTokensResponse
from app.observability.summary import ChatSummary
from app.streaming.client_gone import cancelled_if_client_leaves

router = APIRouter()


@router.post(
    "/chat/count_tokens",
    response_model=CountTokensResponse,
    summary="Count a conversation's input tokens",
    dependencies=[Depends(require_json)],
    responses=ERROR_RESPONSES,
)
async def count_tokens(
    request: CountTokensRequest,
    connection: Request,
    upstream: UpstreamDep,
    settings: SettingsDep,
    end_user_id: EndUserIdDep,
) -> CountTokensResponse:
    """The body `/chat` takes (without `stream`), counted as it would be sent: the system prompt,
    thinking and effort included. Counting has its own rate limit at Anthropic: use an answer's
    `context` for the running figure, and count only before sending something large."""
    messages = [message.as_turn() for message in request.messages]
    params = ChatParams.with_defaults(settings, messages, request, end_user_id)
    summary = ChatSummary(model=params.model.name, stream=False, end_user_id=params.end_user_id)
    add_to_request_summary(summary)
    async with cancelled_if_client_leaves(connection.receive, summary):
        counted = await upstream.count_tokens(params, summary)
    summary.ended(None)
    return CountTokensResponse(input_tokens=counted.input_tokens, context_window=counted.context_window)
