"""The model: a default that exists, and an operator told at start-up when the configured one does not."""

import time
import typing
from collections.abc import Callable
from typing import Any

import httpx
from anthropic._data import DEPRECATED_MODELS
from anthropic.types.model_param import ModelParam

from app.config import DEFAULT_MODEL
from fake_anthropic import FakeAnthropic
from tests.conftest import Service


def _literal_models(annotation: object) -> set[str]:
    models: set[str] = set()
    for arg in typing.get_args(annotation):
        models |= {arg} if isinstance(arg, str) else _literal_models(arg)
    return models


def test_the_default_model_is_current_in_the_pinned_sdk() -> None:
    # An SDK upgrade that drops or schedules the end of the default fails here, before users notice.
    assert DEFAULT_MODEL in _literal_models(ModelParam)
    assert DEFAULT_MODEL not in DEPRECATED_MODELS


def _lines(service: Service, event: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while not (lines := [line for line in service.log.lines() if line.get("event") == event]):
        assert time.monotonic() < deadline, f"no {event} line in the log:\n{service.log.text()[-2000:]}"
        time.sleep(0.05)
    return lines


def test_an_unknown_configured_model_is_an_error_line_at_start_up(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    service = start_service(CHAT_MODEL="claude-3-5-sonnet-latest")

    lines = _lines(service, "configured_model_not_found")

    assert {line["level"] for line in lines} == {"error"}
    assert all(line["model"] == "claude-3-5-sonnet-latest" for line in lines)
    assert all("CHAT_MODEL" in line["message"] for line in lines)
    assert "claude-3-5-sonnet-latest" in fake.model_lookups


def test_an_unreachable_models_api_is_a_warning_and_start_up_goes_on(
    start_service: Callable[..., Service],
) -> None:
    service = start_service(ANTHROPIC_BASE_URL="http://127.0.0.1:9")  # nothing listens there

    lines = _lines(service, "model_check_failed")

    assert {line["level"] for line in lines} == {"warning"}
    assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200  # and it serves


def test_a_current_model_is_confirmed_quietly(service: Service) -> None:
    lines = _lines(service, "configured_model_available")

    assert {line["level"] for line in lines} == {"info"}
