"""What Anthropic's Models API says of each model the service calls: its context window and
whether it can compact. Read once per model per process, never on a request's path.

A request asks `facts(model)`: the answer is what is known now, or None while the first look-up
runs in the background (started by that call). The configured and fallback models are known
from start-up, fed by the model check (model_check.py), which asks the same API anyway.
"""

import asyncio
from dataclasses import dataclass
from time import monotonic

import anthropic
import structlog
from anthropic.types import ModelInfo

log = structlog.get_logger(__name__)

# After a failed look-up, the next request for the model asks again, but not sooner than this:
# an unreachable Models API must not cost a look-up per request.
RETRY_LOOKUP_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class ModelFacts:
    context_window: int | None  # max_input_tokens; None when Anthropic does not say
    compaction: bool  # the compact_20260112 context-management edit is supported


def facts_of(info: ModelInfo) -> ModelFacts:
    capabilities = info.capabilities
    compact = capabilities.context_management.compact_20260112 if capabilities is not None else None
    return ModelFacts(info.max_input_tokens, compaction=bool(compact and compact.supported))


class ModelCatalog:
    """One per process, beside the client."""

    def __init__(self, client: anthropic.AsyncAnthropic, wait_at_most: float) -> None:
        self._client = client
        self._wait_at_most = wait_at_most
        self._facts: dict[str, ModelFacts] = {}
        self._lookups: dict[str, asyncio.Task[None]] = {}
        self._failed_at: dict[str, float] = {}

    def facts(self, model: str) -> ModelFacts | None:
        """What is known of `model`, or None until its look-up (started here) has answered."""
        if (known := self._facts.get(model)) is not None:
            return known
        if model not in self._lookups and monotonic() - self._failed_at.get(model, -RETRY_LOOKUP_AFTER) >= (
            RETRY_LOOKUP_AFTER
        ):
            self._lookups[model] = asyncio.ensure_future(self._look_up(model))
        return None

    def remember(self, model: str, info: ModelInfo) -> None:
        self._facts[model] = facts_of(info)

    async def aclose(self) -> None:
        for lookup in self._lookups.values():
            lookup.cancel()
        if self._lookups:
            await asyncio.wait(self._lookups.values())

    async def _look_up(self, model: str) -> None:
        try:
            self.remember(model, await self._client.models.retrieve(model, timeout=self._wait_at_most))
        except anthropic.APIError as exc:
            self._failed_at[model] = monotonic()
            log.warning(
                "model_lookup_failed",
                model=model,
                error=type(exc).__name__,
                status=getattr(exc, "status_code", None),
                message="The model's context window is unknown until a later look-up answers.",
            )
        finally:
            del self._lookups[model]
