"""The retry policy: how many attempts, how long between them, and when not to try again.

Driven with a function that fails a given number of times; tenacity's sleep is replaced by one that
records the wait it was asked for, so no test sleeps.
"""

import asyncio
from collections.abc import Callable

import pytest

from app.chat.errors import ErrorKind, UpstreamError
from app.upstream.retry import retrying
from tests.unit.conftest import SettingsFactory


def overloaded(retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(ErrorKind.OVERLOADED, "Overloaded", retryable=True, retry_after=retry_after)


class Run:
    """One request's attempts: the calls made, the retries counted and the waits chosen."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0
        self.retries = 0
        self.waits: list[float] = []

    async def _call(self) -> str:
        self.calls += 1
        if self.calls <= len(self.failures):
            raise self.failures[self.calls - 1]
        return "the answer"

    def __call__(
        self,
        make_settings: SettingsFactory,
        *,
        may_retry: Callable[[], bool] = lambda: True,
        **settings: float,
    ) -> str:
        policy = retrying(
            make_settings(**{"retry_initial_wait": 0.001, **settings}),
            on_retry=self._count_retry,
            may_retry=may_retry,
        )

        async def sleep(seconds: float) -> None:
            self.waits.append(seconds)

        policy.sleep = sleep

        async def attempts() -> str:
            result = ""
            async for attempt in policy:
                with attempt:
                    result = await self._call()
            return result

        return asyncio.run(attempts())

    def _count_retry(self) -> None:
        self.retries += 1


def test_a_retryable_failure_is_tried_again_until_it_succeeds(make_settings: SettingsFactory) -> None:
    run = Run([overloaded(), overloaded()])
    assert run(make_settings, retry_attempts=4) == "the answer"
    assert (run.calls, run.retries, len(run.waits)) == (3, 2, 2)


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_it_stops_after_the_attempts_and_raises_the_last_failure(
    make_settings: SettingsFactory, attempts: int
) -> None:
    failures: list[BaseException] = [overloaded() for _ in range(10)]
    run = Run(failures)
    with pytest.raises(UpstreamError) as raised:
        run(make_settings, retry_attempts=attempts)
    assert raised.value is failures[attempts - 1]
    assert (run.calls, run.retries) == (attempts, attempts - 1)


def test_the_servers_retry_after_is_the_wait(make_settings: SettingsFactory) -> None:
    run = Run([overloaded(retry_after=1.25), overloaded(retry_after=0.0), overloaded()])
    assert run(make_settings, retry_attempts=4, retry_max_wait=20) == "the answer"
    assert run.waits[:2] == [1.25, 0.0]
    assert run.waits[2] < 1  # no retry-after: the back-off's own, from 1 ms


def test_a_retry_after_at_the_ceiling_is_waited(make_settings: SettingsFactory) -> None:
    run = Run([overloaded(retry_after=5)])
    assert run(make_settings, retry_attempts=4, retry_max_wait=5) == "the answer"
    assert run.waits == [5]


def test_a_retry_after_over_the_ceiling_stops_at_once(make_settings: SettingsFactory) -> None:
    failure = overloaded(retry_after=30)
    run = Run([failure])
    with pytest.raises(UpstreamError) as raised:
        run(make_settings, retry_attempts=4, retry_max_wait=20)
    assert raised.value is failure  # with its retry_after, for the client's Retry-After
    assert (run.calls, run.retries, run.waits) == (1, 0, [])


def test_the_back_off_grows_exponentially_with_jitter_up_to_the_ceiling(
    make_settings: SettingsFactory,
) -> None:
    initial, ceiling = 1.0, 5.0
    run = Run([overloaded() for _ in range(5)])
    run(make_settings, retry_attempts=6, retry_initial_wait=initial, retry_max_wait=ceiling)
    assert len(run.waits) == 5
    for attempt, wait in enumerate(run.waits, start=1):
        exponential = initial * 2 ** (attempt - 1)  # 1, 2, 4, 8, 16
        assert min(exponential, ceiling) <= wait <= min(exponential + initial, ceiling), (attempt, wait)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(UpstreamError(ErrorKind.BAD_REQUEST, "bad", retryable=False), id="not retryable"),
        pytest.param(RuntimeError("a bug"), id="not an upstream error"),
        pytest.param(ValueError("a bug"), id="another exception"),
    ],
)
def test_a_failure_not_worth_another_attempt_is_raised_at_once(
    make_settings: SettingsFactory, failure: BaseException
) -> None:
    run = Run([failure])
    with pytest.raises(type(failure)) as raised:
        run(make_settings, retry_attempts=4)
    assert raised.value is failure
    assert (run.calls, run.retries) == (1, 0)


def test_no_retry_once_may_retry_says_no(make_settings: SettingsFactory) -> None:
    run = Run([overloaded(), overloaded()])
    with pytest.raises(UpstreamError):
        run(make_settings, retry_attempts=4, may_retry=lambda: False)
    assert (run.calls, run.retries) == (1, 0)


def test_may_retry_is_asked_at_each_failure(make_settings: SettingsFactory) -> None:
    answers = iter([True, False])
    run = Run([overloaded(), overloaded(), overloaded()])
    with pytest.raises(UpstreamError):
        run(make_settings, retry_attempts=4, may_retry=lambda: next(answers))
    assert (run.calls, run.retries) == (2, 1)
