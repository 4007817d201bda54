"""Unit tests of the pure parts: no server, no sockets, no sleeps."""

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from app.config import Settings


@pytest.fixture(autouse=True)
def _fresh_fake() -> None:
    """Overrides tests/conftest.py's autouse fixture of this name, which starts the fake Anthropic
    server for every test: nothing here talks to it."""


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's CHAT_*, ANTHROPIC_* or OTEL_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith(("CHAT_", "ANTHROPIC_", "OTEL_")) or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def logs() -> Iterator[list[dict[str, Any]]]:
    """What the code under test logged, as structlog event dicts; nothing is rendered (rendering
    a traceback for the console costs more than a test here)."""
    with structlog.testing.capture_logs() as captured:
        yield captured


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings() -> SettingsFactory:
    """Settings from the arguments only: no environment, no `.env`."""

    def make(**overrides: Any) -> Settings:
        return Settings(_env_file=None, anthropic_api_key="k", **overrides)  # type: ignore[call-arg]

    return make
