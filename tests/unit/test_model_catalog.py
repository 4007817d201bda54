"""The model catalog: each model looked up once, in the background, never on a request's path."""

import asyncio
from types import SimpleNamespace
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import ModelInfo

from app.upstream import model_catalog
from app.upstream.model_catalog import ModelCatalog, ModelFacts


def model_info(model: str, window: int | None, *, compaction: bool) -> ModelInfo:
    return ModelInfo.construct(
        id=model,
        type="model",
        max_input_tokens=window,
        capabilities=SimpleNamespace(
            context_management=SimpleNamespace(compact_20260112=SimpleNamespace(supported=compaction))
        ),
    )


class ModelsApi:
    """`client.models.retrieve`, answering from a table; counts the calls."""

    def __init__(self, table: dict[str, ModelInfo]) -> None:
        self.table = table
        self.calls: list[str] = []
        self.models = self

    async def retrieve(self, model: str, **_: Any) -> ModelInfo:
        self.calls.append(model)
        await asyncio.sleep(0)
        if model not in self.table:
            request = httpx2.Request("GET", f"https://api.anthropic.com/v1/models/{model}")
            raise anthropic.APIConnectionError(request=request)
        return self.table[model]


def catalog_of(api: ModelsApi) -> ModelCatalog:
    return ModelCatalog(api, wait_at_most=1.0)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_unknown_until_its_look_up_answers_then_known_without_another() -> None:
    async def scenario() -> None:
        api = ModelsApi({"claude-a": model_info("claude-a", 100_000, compaction=True)})
        catalog = catalog_of(api)

        assert catalog.facts("claude-a") is None  # the request goes on; the look-up starts
        assert catalog.facts("claude-a") is None  # not a second look-up while the first runs
        await settle()

        assert catalog.facts("claude-a") == ModelFacts(100_000, compaction=True)
        assert api.calls == ["claude-a"]

    asyncio.run(scenario())


def test_a_model_the_check_already_read_is_never_looked_up() -> None:
    async def scenario() -> None:
        api = ModelsApi({})
        catalog = catalog_of(api)
        catalog.remember("claude-a", model_info("claude-a", None, compaction=False))

        assert catalog.facts("claude-a") == ModelFacts(None, compaction=False)
        assert api.calls == []

    asyncio.run(scenario())


def test_a_failed_look_up_is_asked_again_only_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        now = [1000.0]
        monkeypatch.setattr(model_catalog, "monotonic", lambda: now[0])
        api = ModelsApi({})
        catalog = catalog_of(api)

        assert catalog.facts("claude-a") is None
        await settle()
        assert catalog.facts("claude-a") is None
        assert api.calls == ["claude-a"]  # not one per request while the API fails

        now[0] += model_catalog.RETRY_LOOKUP_AFTER
        api.table["claude-a"] = model_info("claude-a", 2_000, compaction=True)
        assert catalog.facts("claude-a") is None
        await settle()
        assert catalog.facts("claude-a") == ModelFacts(2_000, compaction=True)
        await catalog.aclose()

    asyncio.run(scenario())
