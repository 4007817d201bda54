"""Ask Anthropic's Models API, at start-up and then every few hours, whether the configured model
and each fallback model exist and when they retire.

A retired or mistyped model otherwise shows only when the first user's request fails, and a
retirement scheduled while a replica runs for weeks would never be said again. The check never
stops start-up or a request: Anthropic may be briefly unreachable while the service is fine.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime

import anthropic
import structlog

from app.config import FALLBACK_SETTING, MODEL_SETTING, Settings
from app.upstream.model_catalog import ModelCatalog

log = structlog.get_logger(__name__)

# A model, and when Anthropic will retire it (None: no retirement scheduled, or no such model).
OnRetirement = Callable[[str, datetime | None], None]


def models_to_check(settings: Settings) -> list[tuple[str, str]]:
    """Each model the service may call on its own, with the setting that names it; once each."""
    named = [(settings.model, MODEL_SETTING)]
    named += [(model, FALLBACK_SETTING) for model in settings.fallback_models if model != settings.model]
    return list(dict(named).items())


async def watch_models(
    client: anthropic.AsyncAnthropic,
    settings: Settings,
    on_retirement: OnRetirement,
    wait_at_most: float,
    catalog: ModelCatalog | None = None,
) -> None:
    """Runs until cancelled: every model checked now, then every `model_check_interval` seconds.
    What Anthropic says of each also fills the catalog (its context window, its capabilities)."""
    models = models_to_check(settings)
    while True:
        for model, setting in models:
            await check_model(client, model, setting, on_retirement, wait_at_most, catalog)
        await asyncio.sleep(settings.model_check_interval)


async def check_model(
    client: anthropic.AsyncAnthropic,
    model: str,
    setting: str,
    on_retirement: OnRetirement,
    wait_at_most: float,
    catalog: ModelCatalog | None = None,
) -> None:
    try:
        info = await client.models.retrieve(model, timeout=wait_at_most)
    except anthropic.NotFoundError:
        on_retirement(model, None)
        fails = "every request will fail" if setting == MODEL_SETTING else "every fallback to it will fail"
        log.error(
            "configured_model_not_found",
            model=model,
            setting=setting,
            message=f"Anthropic does not know the model {model!r}, so {fails}; "
            f"set {setting} to a current model.",
        )
    except anthropic.APIError as exc:
        # What was last learnt stands: one failed look-up does not cancel a scheduled retirement.
        log.warning(
            "model_check_failed",
            model=model,
            setting=setting,
            error=type(exc).__name__,
            status=getattr(exc, "status_code", None),
            message="Could not ask Anthropic whether the configured model exists; going on.",
        )
    else:
        on_retirement(model, info.retires_at)
        if catalog is not None:
            catalog.remember(model, info)
        retires_at = info.retires_at.isoformat() if info.retires_at else None
        if info.lifecycle == "retired":
            log.error("configured_model_retired", model=model, setting=setting, retires_at=retires_at)
        elif info.lifecycle == "deprecated":
            log.warning("configured_model_deprecated", model=model, setting=setting, retires_at=retires_at)
        else:
            log.info("configured_model_available", model=model, setting=setting, retires_at=retires_at)
