"""A request's options checked against this server's limits, with its defaults filled in."""

from typing import Any

from fastapi.exceptions import RequestValidationError

from app.api.schemas.chat import ChatOptions
from app.config import Settings
from app.services.chat_request import ChatParams
from app.services.models import ModelChoice


def chat_params(options: ChatOptions, messages: list[dict[str, str]], settings: Settings) -> ChatParams:
    """Limits that depend on the configuration answer 422 like the schema's own checks."""
    problems: list[dict[str, Any]] = []
    if options.model is not None and settings.allowed_models and options.model not in settings.allowed_models:
        problems.append(
            {
                "type": "value_error",
                "loc": ("body", "model"),
                "msg": f"Value error, model must be one of: {', '.join(settings.allowed_models)}",
                "input": options.model,
            }
        )
    if options.max_tokens is not None and options.max_tokens > settings.max_tokens_ceiling:
        problems.append(
            {
                "type": "less_than_equal",
                "loc": ("body", "max_tokens"),
                "msg": f"Input should be less than or equal to {settings.max_tokens_ceiling}",
                "input": options.max_tokens,
                "ctx": {"le": settings.max_tokens_ceiling},
            }
        )
    if problems:
        raise RequestValidationError(problems)
    return ChatParams(
        model=ModelChoice(options.model or settings.model, configured=options.model is None),
        messages=messages,
        max_tokens=options.max_tokens or settings.max_tokens_default,
        system=options.system if options.system is not None else settings.system_prompt,
        thinking=options.thinking or settings.thinking,
        effort=options.effort or settings.effort,
        cache=_CACHE_CONTROL[settings.prompt_cache],
    )


_CACHE_CONTROL: dict[str, dict[str, str] | None] = {
    "5m": {"type": "ephemeral"},
    "1h": {"type": "ephemeral", "ttl": "1h"},
    "off": None,
}
