"""Which models are checked, and how their retirement dates become one gauge in every process mode."""

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.observability.metrics import MODEL_RETIREMENTS, ModelRetirements, exposition
from app.upstream.model_check import models_to_check
from tests.unit.conftest import SettingsFactory

GAUGE = "chat_model_retirement_timestamp_seconds"
JAN_5 = datetime(2027, 1, 5, tzinfo=UTC)


def series(text: str) -> dict[str, float]:
    return {
        sample.labels["model"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == GAUGE
    }


def scrape(collector: ModelRetirements) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return series(generate_latest(registry).decode())


def test_the_configured_model_and_each_fallback_are_checked_once(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        model="claude-a", fallback_models=["claude-b", "claude-a", "claude-c", "claude-b"]
    )

    assert models_to_check(settings) == [
        ("claude-a", "CHAT_MODEL"),
        ("claude-b", "CHAT_FALLBACK_MODELS"),
        ("claude-c", "CHAT_FALLBACK_MODELS"),
    ]


def test_without_fallbacks_only_the_configured_model_is_checked(make_settings: SettingsFactory) -> None:
    assert models_to_check(make_settings(model="claude-a")) == [("claude-a", "CHAT_MODEL")]


def test_a_scheduled_retirement_is_its_unix_time_and_none_is_no_series() -> None:
    retirements = ModelRetirements()
    assert scrape(retirements) == {}

    retirements.update("claude-a", JAN_5)
    retirements.update("claude-b", None)
    assert scrape(retirements) == {"claude-a": 1799107200.0}

    retirements.update("claude-a", None)  # the schedule withdrawn, or the model gone
    assert scrape(retirements) == {}


def test_in_multiprocess_mode_the_scrape_has_the_series_and_loses_it_when_withdrawn(tmp_path: Path) -> None:
    # The case a multiprocess Gauge cannot serve: prometheus-client keeps a series in the
    # worker's file after `remove`.
    try:
        MODEL_RETIREMENTS.update("claude-unit-test", JAN_5)
        body, _ = exposition(str(tmp_path))
        assert series(body.decode()) == {"claude-unit-test": 1799107200.0}

        MODEL_RETIREMENTS.update("claude-unit-test", None)
        body, _ = exposition(str(tmp_path))
        assert series(body.decode()) == {}
        assert f"# TYPE {GAUGE} gauge" in body.decode()
    finally:
        MODEL_RETIREMENTS.update("claude-unit-test", None)
