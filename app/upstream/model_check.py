"""At start-up, ask Anthropic's Models API whether the configured model exists.

A retired or mistyped CHAT_MODEL otherwise shows only when the first user's request fails. The
check never stops start-up: Anthropic may be briefly unreachable while the service is fine.
"""

import anthropic
import structlog

from app.config import MODEL_SETTING

log = structlog.get_logger(__name__)


async def check_configured_model(client: anthropic.AsyncAnthropic, model: str, wait_at_most: float) -> None:
    try:
        info = await client.models.retrieve(model, timeout=wait_at_most)
    except anthropic.NotFoundError:
        log.error(
            "configured_model_not_found",
            model=model,
            setting=MODEL_SETTING,
            message=f"Anthropic does not know the model {model!r}, so every request will fail; "
            f"set {MODEL_SETTING} to a current model.",
        )
    except anthropic.APIError as exc:
        log.warning(
            "model_check_failed",
            model=model,
            error=type(exc).__name__,
            status=getattr(exc, "status_code", None),
            message="Could not ask Anthropic whether the configured model exists; going on.",
        )
    else:
        if info.lifecycle == "retired":
            log.error("configured_model_retired", model=model, setting=MODEL_SETTING)
        elif info.lifecycle == "deprecated":
            log.warning("configured_model_deprecated", model=model, retires_at=str(info.retires_at))
        else:
            log.info("configured_model_available", model=model)
