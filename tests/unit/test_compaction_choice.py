"""Whether a request asks Anthropic to compact: the setting, the request, and what the Models API
says of the model (unknown yet: not this time; unable: one warning per model per process)."""

import asyncio
from typing import Any

from app.chat.params import ChatParams, ModelChoice
from app.upstream.request import request_body
from app.upstream.stream import Upstream
from tests.unit.conftest import SettingsFactory
from tests.unit.test_model_catalog import ModelsApi, catalog_of, model_info, settle

EDIT = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 80_000}}


def params(model: str, *, compaction: bool = True) -> ChatParams:
    return ChatParams(
        model=ModelChoice(model, configured=True),
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=64,
        system=None,
        compaction=compaction,
    )


def asked(upstream: Upstream, chat: ChatParams) -> dict[str, Any]:
    return upstream._with_compaction(request_body(chat), chat)


def test_compaction_follows_the_models_capabilities(
    make_settings: SettingsFactory, logs: list[dict[str, Any]]
) -> None:
    async def scenario() -> None:
        api = ModelsApi(
            {
                "claude-a": model_info("claude-a", 100_000, compaction=True),
                "claude-b": model_info("claude-b", 100_000, compaction=False),
            }
        )
        upstream = Upstream(api, make_settings(), catalog=catalog_of(api))  # type: ignore[arg-type]

        # Not known yet: the request goes without, and the look-up starts.
        assert "extra_body" not in asked(upstream, params("claude-a"))
        await settle()
        body = asked(upstream, params("claude-a"))
        assert body["extra_body"] == {"context_management": {"edits": [EDIT]}}  # 80 % of 100,000
        assert body["extra_headers"] == {"anthropic-beta": "compact-2026-01-12"}
        assert "extra_body" not in asked(upstream, params("claude-a", compaction=False))

        asked(upstream, params("claude-b"))
        await settle()
        for _ in range(3):
            assert "extra_body" not in asked(upstream, params("claude-b"))

    asyncio.run(scenario())

    warnings = [log for log in logs if log["event"] == "compaction_unsupported"]
    assert [(log["log_level"], log["model"]) for log in warnings] == [("warning", "claude-b")]
