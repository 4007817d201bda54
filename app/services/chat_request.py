"""What the service asks Anthropic for: a conversation's parameters, as the request body."""

from dataclasses import dataclass
from typing import Any

from app.config import Effort, ThinkingDisplay
from app.services.models import ModelChoice

CacheControl = dict[str, str]


@dataclass(frozen=True, slots=True)
class ChatParams:
    model: ModelChoice
    messages: list[dict[str, str]]
    max_tokens: int
    system: str | None
    thinking: ThinkingDisplay | None = None
    effort: Effort | None = None
    cache: CacheControl | None = None


def request_body(params: ChatParams) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": params.model.name,
        "max_tokens": params.max_tokens,
        "messages": params.messages,
        "stream": True,
    }
    if params.system:
        body["system"] = params.system
    if params.thinking is not None:
        body["thinking"] = {"type": "adaptive", "display": params.thinking}
    if params.effort is not None:
        body["output_config"] = {"effort": params.effort}
    if params.cache is not None:
        # At the top level, Anthropic puts the breakpoint on the last block it can cache: the whole
        # prompt is written, and the next turn, which starts with the same bytes, reads it.
        body["cache_control"] = params.cache
    return body
