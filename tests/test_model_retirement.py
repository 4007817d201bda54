"""Models that retire: the configured model and each fallback are looked up in Anthropic's Models
API at start-up and every CHAT_MODEL_CHECK_INTERVAL, and /metrics says when each one retires."""

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from fake_anthropic import FakeAnthropic
from tests.conftest import CURRENT_MODEL, Service, ServiceProcess, process_backend_only

GAUGE = "chat_model_retirement_timestamp_seconds"
RETIRES_AT = "2027-01-05T00:00:00Z"


def retirements(service: Service) -> dict[str, float]:
    """The gauge's series on a scrape: model -> Unix time."""
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    return {
        sample.labels["model"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == GAUGE
    }


def every_scrape(service: Service, scrapes: int = 6) -> dict[str, float] | None:
    """What the scrapes say if they agree (None if not): under gunicorn each is answered by any
    worker, from what that worker last learnt."""
    seen = [retirements(service) for _ in range(scrapes)]
    return seen[0] if all(one == seen[0] for one in seen) else None


def eventually(condition: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return result


def log_lines(service: Service, event: str, model: str) -> list[dict[str, Any]]:
    return [line for line in service.log.lines() if line.get("event") == event and line.get("model") == model]


def unix(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()


def test_a_deprecated_model_says_when_it_retires(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    model = "claude-retiring-1"
    fake.model_lifecycles[model] = ("deprecated", RETIRES_AT)

    service = start_service(CHAT_MODEL=model, CHAT_ALLOWED_MODELS=None)

    assert eventually(lambda: retirements(service)) == {model: unix(RETIRES_AT)}
    [line, *_] = eventually(lambda: log_lines(service, "configured_model_deprecated", model))
    assert (line["level"], line["setting"]) == ("warning", "CHAT_MODEL")
    assert unix(line["retires_at"]) == unix(RETIRES_AT)


def test_an_active_model_has_no_retirement_series(service: Service) -> None:
    eventually(lambda: log_lines(service, "configured_model_available", CURRENT_MODEL))

    assert retirements(service) == {}
    assert f"# TYPE {GAUGE} gauge" in httpx.get(f"{service.url}/metrics", timeout=5).text


def test_a_deprecated_fallback_model_is_reported_too(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    model, fallbacks = "claude-steady-2", ["claude-steady-3", "claude-retiring-3"]
    fake.model_lifecycles["claude-retiring-3"] = ("deprecated", RETIRES_AT)

    service = start_service(
        CHAT_MODEL=model, CHAT_FALLBACK_MODELS=",".join(fallbacks), CHAT_ALLOWED_MODELS=None
    )

    assert eventually(lambda: retirements(service)) == {"claude-retiring-3": unix(RETIRES_AT)}
    assert {model, *fallbacks} <= set(fake.model_lookups)
    [line, *_] = eventually(lambda: log_lines(service, "configured_model_deprecated", "claude-retiring-3"))
    assert line["setting"] == "CHAT_FALLBACK_MODELS"


def test_the_check_repeats_so_a_retirement_announced_later_shows(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    model = "claude-retiring-4"
    service = start_service(CHAT_MODEL=model, CHAT_ALLOWED_MODELS=None, CHAT_MODEL_CHECK_INTERVAL="0.5")
    # Every worker has looked the model up, and found it active, before Anthropic announces anything.
    eventually(lambda: fake.model_lookups.count(model) >= 4)
    assert every_scrape(service) == {}

    looked_up = fake.model_lookups.count(model)
    fake.model_lifecycles[model] = ("deprecated", RETIRES_AT)  # Anthropic announces a retirement
    eventually(lambda: every_scrape(service) == {model: unix(RETIRES_AT)})

    fake.model_lifecycles[model] = ("active", None)  # and withdraws it: the series goes
    eventually(lambda: every_scrape(service) == {})
    assert fake.model_lookups.count(model) > looked_up


@process_backend_only
def test_the_repeated_check_ends_with_the_service(
    start_service: Callable[..., Service], fake: FakeAnthropic
) -> None:
    model = "claude-steady-5"
    service = start_service(CHAT_MODEL=model, CHAT_ALLOWED_MODELS=None, CHAT_MODEL_CHECK_INTERVAL="0.3")
    assert isinstance(service, ServiceProcess)
    eventually(lambda: fake.model_lookups.count(model) >= 2)

    service.stop()

    # uvicorn re-raises the SIGTERM once it has shut down: the lifespan's end is in the log.
    events = [line["event"] for line in service.log.lines()]
    assert {"stopped", "Application shutdown complete."} <= set(events)
    assert "Task was destroyed" not in service.log.text()
