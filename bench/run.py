"""The benchmark: the service beside a tutorial-style reference relay and the floor, in one run.

    uv run --group bench python -m bench.run            # full run: docs/benchmarks.md, its plot
    uv run --group bench python -m bench.run --smoke    # a few requests per scenario, checks only
    uv run --group bench python -m bench.run --only B50,C --traced   # and the service with traces on
    uv run --group bench python -m bench.run --only D,B50,R   # resumption on beside off (needs redis-server)

Layout (2 cores): each relay is ONE uvicorn worker (uvloop, httptools) started with
`taskset -c 0`; this process is pinned to core 1 and runs, on one uvloop event loop, both the load
generator and the fake Anthropic API from the tests (in-process: the fake's reply is switched per
scenario without a restart, and its CPU is counted with the load generator's, so every phase
records how busy core 1 was). The floor is the load generator straight against the fake. All
traffic is on 127.0.0.1. Relay CPU is utime+stime from /proc/PID/stat around each phase, memory
RSS from /proc/PID/statm.

Every request is checked: status, the event order (start, thinking..., delta..., end, [DONE],
nothing after), token count, the exact text (and thinking summary) the fake sent, and the usage it
reported. One wrong or failed request
makes the run fail (exit status 1) and no figures are written.

Resumption (issue #18): a fourth target, `resumable`, is the service again with `CHAT_REDIS_URL`
set, on the relay's core like the others, against a Debian `redis-server` this run starts on a
free port (nothing on disk; on the load's core, as a Redis elsewhere would be: the relay's core
pays only the client side) and stops by its PID. D and B50 run on it beside the service with
resumption off; R runs on it alone: half the clients drop their connection after a random token
and resume at once with `Last-Event-ID`, and each joined answer must be the exact one, every
event id once, in order. Redis's own CPU (its /proc/PID/stat) is reported apart. Without
`redis-server` these are skipped, with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.loadgen import ANTHROPIC, RELAY, Result, Target, request, run_load, selfcheck
from bench.report import resumption_lines
from fake_anthropic import FakeAnthropic, Reply, default_tokens, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
# The first two cores this process may use: the relay under test on one, the load on the other.
_CORES = sorted(os.sched_getaffinity(0))
RELAY_CORE, LOAD_CORE = (_CORES[0], _CORES[1]) if len(_CORES) >= 2 else (_CORES[0], _CORES[0])
FD_LIMIT = 65536
MODEL = "claude-sonnet-5-5"
# Scenario E's thinking summary, one thinking_delta each, spread over its thinking time.
THINKING = ('Thinking about "the question"', " with a back\\slash,\n", " café 日本語 🙂,", " done.")


@dataclass(frozen=True)
class Scenario:
    name: str
    tokens: int
    interval_ms: float
    concurrency: int
    total: int
    stream: bool = True
    staggered: bool = False  # first requests spread over one stream's length, not one burst
    all_open: bool = False  # D: every stream opened at once; memory measured while all are open
    timeout_s: float = 60.0
    # E: the model thinks this long before its text (the fake pinging meanwhile), and the
    # summary is asked for: the pieces come as thinking_deltas spread over that time.
    thinking_s: float = 0.0
    thinking: tuple[str, ...] = ()
    resumable: bool = False  # also run on the service with resumption on (target `resumable`)
    # Only on `resumable`: every other client (the 1st, 3rd...) drops its connection after a random
    # token and resumes at once.
    drop_half: bool = False

    def drop_at(self) -> Callable[[int], int | None] | None:
        """For run_load: after how many tokens the n-th request drops (None: it does not)."""
        if not self.drop_half:
            return None
        rng = random.Random(18)  # the same drops in every run

        def drop(n: int) -> int | None:
            return rng.randint(1, self.tokens - 1) if n % 2 == 0 else None

        return drop

    @property
    def stream_s(self) -> float:
        return self.thinking_s + max(self.tokens - 1, 0) * self.interval_ms / 1000

    def reply(self) -> Reply:
        """What the fake answers in this scenario."""
        return Reply.text(
            default_tokens(self.tokens),
            interval=self.interval_ms / 1000,
            thinking=self.thinking,
            thinking_seconds=self.thinking_s,
        )

    def target(self, target: Target) -> Target:
        """`target`, asking for the thinking summary when this scenario thinks."""
        return replace(target, summarized=bool(self.thinking))


FULL = [
    # D first, on relays that have only been warmed up: the RSS grown by a previous phase's
    # streams would otherwise be reused and hide part of the cost of an open stream.
    Scenario(
        "D",
        tokens=12,
        interval_ms=1000,
        concurrency=1000,
        total=1000,
        all_open=True,
        timeout_s=90,
        resumable=True,
    ),
    Scenario("A", tokens=200, interval_ms=0, concurrency=50, total=300),
    Scenario("B50", tokens=100, interval_ms=20, concurrency=50, total=200, staggered=True, resumable=True),
    # B50 with resumption on, where every other client drops after a random token and resumes.
    Scenario("R", tokens=100, interval_ms=20, concurrency=50, total=200, staggered=True, drop_half=True),
    Scenario("B100", tokens=100, interval_ms=20, concurrency=100, total=300, staggered=True),
    Scenario("B200", tokens=100, interval_ms=20, concurrency=200, total=600, staggered=True),
    # The same with every worker starting at the same instant, as this benchmark's first version
    # did: each round begins with a burst of 50..200 new requests.
    Scenario("B50-burst", tokens=100, interval_ms=20, concurrency=50, total=100),
    Scenario("B100-burst", tokens=100, interval_ms=20, concurrency=100, total=200),
    Scenario("B200-burst", tokens=100, interval_ms=20, concurrency=200, total=400),
    Scenario("C", tokens=50, interval_ms=0, concurrency=50, total=1500, stream=False),
    # C with answers of 200 tokens (A's length): what JSON mode's reading of Anthropic's stream
    # costs per token, beside C's per-request cost. Fewer requests, for a phase about as long.
    Scenario("C200", tokens=200, interval_ms=0, concurrency=50, total=1000, stream=False),
    # A model that thinks 2 s before a B200 answer: what counts is how soon `start` arrives.
    Scenario(
        "E",
        tokens=100,
        interval_ms=20,
        concurrency=200,
        total=600,
        staggered=True,
        thinking_s=2.0,
        thinking=THINKING,
    ),
]
SMOKE = [
    Scenario(
        "D", tokens=5, interval_ms=100, concurrency=20, total=20, all_open=True, timeout_s=20, resumable=True
    ),
    Scenario("A", tokens=200, interval_ms=0, concurrency=3, total=3, timeout_s=20),
    Scenario(
        "B50", tokens=20, interval_ms=20, concurrency=3, total=3, staggered=True, timeout_s=20, resumable=True
    ),
    Scenario(
        "R", tokens=20, interval_ms=20, concurrency=4, total=4, staggered=True, timeout_s=20, drop_half=True
    ),
    Scenario("C", tokens=50, interval_ms=0, concurrency=3, total=3, stream=False, timeout_s=20),
    Scenario("C200", tokens=200, interval_ms=0, concurrency=3, total=3, stream=False, timeout_s=20),
    Scenario(
        "E",
        tokens=20,
        interval_ms=20,
        concurrency=3,
        total=3,
        staggered=True,
        thinking_s=0.5,
        thinking=THINKING,
        timeout_s=20,
    ),
]
WARMUP = Scenario("warm-up", tokens=50, interval_ms=0, concurrency=10, total=20)


class BenchFailed(Exception):
    pass


# -- /proc -----------------------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) seconds, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def runtime_of(pid: int) -> dict[str, Any]:
    """What the relay process really runs with: its cores, and whether uvloop/httptools are loaded."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    status = Path(f"/proc/{pid}/status").read_text()
    cores = next(
        line.split(":", 1)[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list")
    )
    threads = next(int(line.split(":", 1)[1]) for line in status.splitlines() if line.startswith("Threads"))
    return {
        "cores": cores,
        "threads": threads,
        "uvloop": "/uvloop/" in maps,
        "httptools": "/httptools/" in maps,
    }


# -- processes -------------------------------------------------------------------------------


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the relays inherit it


class Relays:
    """The relay processes this run started, each stopped by its own PID."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-cwd-"))  # away from any developer's .env
        self.started: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, app: str, port: int, env: dict[str, str]) -> int:
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANTHROPIC_", "CHAT_", "WEB_CONCURRENCY"))
        }
        log = (self.logs / f"{name}.log").open("wb")
        argv = ["taskset", "-c", str(RELAY_CORE), sys.executable, "-m", "uvicorn", app]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--backlog", "4096"]
        process = await asyncio.create_subprocess_exec(
            *argv,
            env={**clean, "PYTHONPATH": str(ROOT), **env},
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.started[name] = process
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise BenchFailed(
                    f"{name} exited with {process.returncode}: see {self.logs / (name + '.log')}"
                )
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return process.pid
            except OSError:
                await asyncio.sleep(0.1)
        raise BenchFailed(f"{name} did not listen on port {port} within 30 s")

    def check_alive(self) -> None:
        for name, process in self.started.items():
            if process.returncode is not None:
                raise BenchFailed(f"{name} exited during the run with {process.returncode}")

    async def stop(self) -> None:
        for process in self.started.values():
            if process.returncode is None:
                process.terminate()
        for process in self.started.values():
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


class RedisProcess:
    """Debian's `redis-server` for the resumable service: a free port on 127.0.0.1, nothing on
    disk, pinned to the load's core; stopped by its PID."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        log = (self.logs / "redis.log").open("wb")
        argv = ["taskset", "-c", str(LOAD_CORE), "redis-server", "--port", str(self.port)]
        argv += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise BenchFailed(
                    f"redis-server exited with {self.process.returncode}: see {self.logs / 'redis.log'}"
                )
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                answer = await reader.readline()
                writer.close()
                if answer == b"+PONG\r\n":
                    return
            await asyncio.sleep(0.05)
        raise BenchFailed(f"redis-server did not answer PING on port {self.port} within 10 s")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


# -- measuring ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def check(target: str, scenario: Scenario, results: list[Result]) -> list[str]:
    reply = scenario.reply()
    expected = reply.text_value
    # The reference relay ignores thinking (the tutorial's relay predates it): no thinking events.
    expected_thinking = "".join(scenario.thinking) if target != "reference" else ""
    problems = []
    if len(results) != scenario.total:
        problems.append(f"{target} {scenario.name}: {len(results)} of {scenario.total} requests ran")
    if scenario.drop_half:
        resumed = sum(1 for r in results if r.dropped and r.resume_latency is not None)
        if resumed != (scenario.total + 1) // 2:
            problems.append(
                f"{target} {scenario.name}: {resumed} of {scenario.total} requests dropped and resumed, "
                f"not {(scenario.total + 1) // 2}"
            )
    for i, result in enumerate(results):
        where = f"{target} {scenario.name} #{i}"
        if result.error is not None or result.status != 200:
            problems.append(f"{where}: status {result.status}, {result.error}")
        elif not result.done:
            problems.append(f"{where}: did not end with [DONE]")
        elif scenario.stream and len(result.texts) != scenario.tokens:
            problems.append(f"{where}: {len(result.texts)} tokens, the fake sent {scenario.tokens}")
        elif scenario.stream and result.start_time is None:
            problems.append(f"{where}: no start event")
        elif "".join(result.thinking) != expected_thinking or (expected_thinking and not result.thinking):
            problems.append(f"{where}: thinking {''.join(result.thinking)!r}, expected {expected_thinking!r}")
        elif result.text != expected:
            at = next(
                (i for i, (a, b) in enumerate(zip(result.text, expected, strict=False)) if a != b),
                min(len(result.text), len(expected)),
            )
            problems.append(
                f"{where}: text differs from what the fake sent at character {at}: "
                f"{result.text[max(0, at - 10) : at + 20]!r}, expected {expected[max(0, at - 10) : at + 20]!r}"
            )
        elif result.output_tokens != reply.output_tokens:
            problems.append(
                f"{where}: usage says {result.output_tokens} output tokens, not {reply.output_tokens}"
            )
    return problems


async def open_all(
    target: Target, scenario: Scenario, pid: int | None, redis_pid: int | None
) -> tuple[list[Result], dict[str, float]]:
    """Scenario D: every stream opened at once; RSS read when all have their first token and
    none has ended."""
    n = scenario.total
    results = [Result() for _ in range(n)]
    firsts = 0
    all_first = asyncio.Event()

    def first_token() -> None:
        nonlocal firsts
        firsts += 1
        if firsts == n:
            all_first.set()

    started = time.perf_counter()
    everything = asyncio.gather(
        *(request(target, True, r, timeout_s=scenario.timeout_s, on_first_token=first_token) for r in results)
    )
    waiter = asyncio.ensure_future(all_first.wait())
    await asyncio.wait([waiter, everything], timeout=scenario.timeout_s, return_when=asyncio.FIRST_COMPLETED)
    figures: dict[str, float] = {}
    if all_first.is_set():
        figures["all_first_token_s"] = time.perf_counter() - started
        figures["open_when_measured"] = sum(1 for r in results if r.token_times and not r.finished)
        if pid is not None:
            figures["rss_open_kib"] = rss_kib(pid)
        if redis_pid is not None:
            figures["redis_rss_open_kib"] = rss_kib(redis_pid)
    waiter.cancel()
    await everything
    return results, figures


async def measure(
    target: Target, pid: int | None, scenario: Scenario, redis_pid: int | None = None
) -> tuple[dict[str, float], list[Result]]:
    """`redis_pid`: the Redis of a resumable target, whose CPU and memory are reported apart."""
    target = scenario.target(target)
    user_before, system_before = cpu_times(pid) if pid else (0.0, 0.0)
    rss_before = rss_kib(pid) if pid else 0
    redis_cpu_before = cpu_seconds(redis_pid) if redis_pid else 0.0
    redis_rss_before = rss_kib(redis_pid) if redis_pid else 0
    load_before = own_cpu_seconds()
    started = time.perf_counter()
    figures: dict[str, float] = {}
    if scenario.all_open:
        results, figures = await open_all(target, scenario, pid, redis_pid)
    else:
        results = await run_load(
            target,
            stream=scenario.stream,
            concurrency=scenario.concurrency,
            total=scenario.total,
            deadline_s=180,
            stagger_s=scenario.stream_s if scenario.staggered else 0.0,
            timeout_s=scenario.timeout_s,
            drop_at=scenario.drop_at(),
        )
    wall = time.perf_counter() - started
    ok = [r for r in results if r.error is None]
    tokens = sum(len(r.texts) for r in ok) if scenario.stream else len(ok) * scenario.tokens
    ttfts = [t for r in ok if (t := r.ttft) is not None]
    starts = [t for r in ok if (t := r.time_to_start) is not None]
    gaps = [gap for r in ok for gap in r.gaps]
    resumes = [t for r in ok if (t := r.resume_latency) is not None]
    figures |= {
        "wall_s": wall,
        "requests": len(results),
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "requests_per_s": len(results) / wall,
        "load_side_cpu_pct": 100 * (own_cpu_seconds() - load_before) / wall,
    }
    if resumes:
        figures["resumes"] = len(resumes)
    for name, values in (
        ("ttft", ttfts),
        ("start", starts),
        ("gap", gaps if scenario.stream else []),
        ("resume_first_event", resumes),
    ):
        for q in (50, 99):
            if (value := percentile(values, q)) is not None:
                figures[f"{name}_p{q}_ms"] = value * 1000
    if pid:
        user_after, system_after = cpu_times(pid)
        cpu = user_after - user_before + system_after - system_before
        figures |= {
            "cpu_s": cpu,
            "cpu_system_pct": 100 * (system_after - system_before) / cpu if cpu else 0.0,
            "cpu_pct": 100 * cpu / wall,
            "cpu_us_per_token": cpu * 1e6 / max(tokens, 1),
            "cpu_us_per_request": cpu * 1e6 / max(len(results), 1),
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_kib(pid),
        }
        if "rss_open_kib" in figures:
            figures["kib_per_stream"] = (figures["rss_open_kib"] - rss_before) / scenario.total
    if redis_pid:
        redis_cpu = cpu_seconds(redis_pid) - redis_cpu_before
        figures |= {
            "redis_cpu_s": redis_cpu,
            "redis_cpu_pct": 100 * redis_cpu / wall,
            "redis_cpu_us_per_token": redis_cpu * 1e6 / max(tokens, 1),
            "redis_rss_before_kib": redis_rss_before,
            "redis_rss_after_kib": rss_kib(redis_pid),
        }
        if "redis_rss_open_kib" in figures:
            figures["redis_kib_per_stream"] = (
                figures["redis_rss_open_kib"] - redis_rss_before
            ) / scenario.total
    return figures, results


async def store_errors(target: Target) -> float:
    """The resumable service's `chat_resume_store_errors_total`, all operations: each an answer
    that went on unresumable, or a reader turned away, because Redis failed or took over 1 s."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    body = await reader.read()
    writer.close()
    prefix = b"chat_resume_store_errors_total{"
    return sum(float(line.rsplit(b" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix))


def set_reply(fake: FakeAnthropic, scenario: Scenario) -> None:
    fake.default = scenario.reply()


def show(scenario: str, target: str, figures: dict[str, float]) -> None:
    keys: tuple[str, ...] = ("tokens_per_s", "requests_per_s", "ttft_p50_ms", "ttft_p99_ms", "gap_p99_ms")
    keys += ("start_p50_ms", "start_p99_ms")
    keys += ("cpu_us_per_token", "cpu_us_per_request", "cpu_pct", "cpu_system_pct", "load_side_cpu_pct")
    keys += ("kib_per_stream", "all_first_token_s", "open_when_measured")
    keys += ("resumes", "resume_first_event_p50_ms", "resume_first_event_p99_ms")
    keys += ("redis_cpu_us_per_token", "redis_cpu_pct", "redis_kib_per_stream", "store_errors")
    shown = " ".join(f"{k}={figures[k]:,.1f}" for k in keys if k in figures)
    print(f"{scenario:7} {target:9} {shown}", flush=True)


def targets_of(
    scenario: Scenario, targets: list[tuple[Target, int | None]]
) -> list[tuple[Target, int | None]]:
    """The targets a scenario runs on: `resumable` only where it asks for it, alone for R."""
    if scenario.drop_half:
        return [(t, pid) for t, pid in targets if t.resumable]
    return [(t, pid) for t, pid in targets if scenario.resumable or not t.resumable]


def _quiet_cancellations(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A failed run tears down with streams in flight; their cancellation is not news.
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


async def run(scenarios: list[Scenario], logs: Path, traced: bool = False) -> dict[str, Any]:
    """`traced`: a second service, its traces exported to an OTLP receiver in this process."""
    asyncio.get_running_loop().set_exception_handler(_quiet_cancellations)
    fake = FakeAnthropic("127.0.0.1", 0, record=0)
    server = await fake.serve()
    relays = Relays(logs)
    receiver = None
    redis: RedisProcess | None = None
    if any(s.resumable or s.drop_half for s in scenarios):
        if shutil.which("redis-server") is None:
            print(
                "bench: redis-server not found (Debian: apt-get install redis-server): SKIPPING the "
                "resumption scenarios (R, and D and B50 with resumption on)",
                flush=True,
            )
            scenarios = [s for s in scenarios if not s.drop_half]
        else:
            redis = RedisProcess(logs)
    try:
        env = {
            "ANTHROPIC_API_KEY": "bench-key",
            "ANTHROPIC_BASE_URL": fake.url,
            "CHAT_MODEL": MODEL,
            "CHAT_LOG_FORMAT": "json",
        }
        service_port, reference_port = free_port(), free_port()
        reference_pid = await relays.start("reference", "bench.reference_relay:app", reference_port, env)
        service_pid = await relays.start("service", "app.main:app", service_port, env)
        targets: list[tuple[Target, int | None]] = [
            (Target("floor", fake.port, ANTHROPIC), None),
            (Target("reference", reference_port, RELAY), reference_pid),
            (Target("service", service_port, RELAY), service_pid),
        ]
        if traced:
            from tests.otlp_receiver import OtlpReceiver

            receiver = OtlpReceiver().start()  # decodes what it receives, on the load's core
            traced_port = free_port()
            traced_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
            traced_pid = await relays.start("traced", "app.main:app", traced_port, traced_env)
            targets.append((Target("traced", traced_port, RELAY), traced_pid))
        if redis is not None:
            await redis.start()
            resumable_port = free_port()
            resumable_env = {**env, "CHAT_REDIS_URL": redis.url}
            resumable_pid = await relays.start("resumable", "app.main:app", resumable_port, resumable_env)
            targets.append((Target("resumable", resumable_port, RELAY, resumable=True), resumable_pid))
        problems: list[str] = []
        set_reply(fake, WARMUP)
        for target, _ in targets:
            for stream in (True, False):
                warm = await run_load(
                    target, stream=stream, concurrency=WARMUP.concurrency, total=WARMUP.total, deadline_s=60
                )
                problems += check(target.name, WARMUP if stream else _non_streaming(WARMUP), warm)
        if problems:
            raise BenchFailed("\n".join(["warm-up requests failed:", *problems[:20]]))
        runtime = {"service": runtime_of(service_pid), "reference": runtime_of(reference_pid)}
        if redis is not None:
            runtime["resumable"] = runtime_of(resumable_pid)
        print(f"relays: {runtime}", flush=True)

        results: dict[str, dict[str, dict[str, float]]] = {}
        for scenario in scenarios:
            set_reply(fake, scenario)
            for target, pid in targets_of(scenario, targets):
                await asyncio.sleep(0.5)  # let the last phase's connections close
                relays.check_alive()
                redis_pid = redis.pid if redis is not None and target.resumable else None
                errors_before = await store_errors(target) if target.resumable else 0.0
                figures, outcomes = await measure(target, pid, scenario, redis_pid)
                if target.resumable:
                    figures["store_errors"] = await store_errors(target) - errors_before
                    if figures["store_errors"]:
                        print(
                            f"bench: {target.name} {scenario.name}: {figures['store_errors']:.0f} answers or "
                            "readers lost resumption (Redis failed or took over 1 s): see its log",
                            flush=True,
                        )
                problems += check(target.name, scenario, outcomes)
                if scenario.all_open and figures.get("open_when_measured", 0) != scenario.total:
                    problems.append(
                        f"{target.name} {scenario.name}: only {figures.get('open_when_measured', 0):.0f} of "
                        f"{scenario.total} streams were open with a first token at once; pace them slower"
                    )
                results.setdefault(scenario.name, {})[target.name] = figures
                show(scenario.name, target.name, figures)
        relays.check_alive()
        if problems:
            raise BenchFailed(
                "\n".join([f"{len(problems)} incorrect or failed requests (not a result):", *problems[:30]])
            )
        outcome = {"results": results, "relays": runtime, "service_log": _log_summary(logs / "service.log")}
        if redis is not None:
            outcome["resumable_log"] = _log_summary(logs / "resumable.log")
        return outcome
    finally:
        await relays.stop()  # first, so that the relays' pooled connections to the fake close
        if redis is not None:
            await redis.stop()
        server.close()
        await asyncio.sleep(0.1)
        if receiver is not None:
            print(f"traced: the receiver decoded {len(receiver.spans):,} spans", flush=True)
            receiver.stop()


def _non_streaming(scenario: Scenario) -> Scenario:
    return Scenario(
        scenario.name, scenario.tokens, scenario.interval_ms, scenario.concurrency, scenario.total, False
    )


def _log_summary(path: Path) -> dict[str, int]:
    """The service's log, as a check that the product really ran with everything on."""
    counts = {"request_lines": 0, "with_request_id": 0, "warnings_or_errors": 0, "retries": 0}
    with path.open(encoding="utf-8", errors="replace") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "request":
                counts["request_lines"] += 1
                counts["with_request_id"] += bool(entry.get("request_id"))
            if entry.get("level") in ("warning", "error", "critical"):
                counts["warnings_or_errors"] += 1
            if entry.get("event") == "upstream_retry":
                counts["retries"] += 1
    return counts


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?"
    )
    info = {
        "cpu": f"{model}, {os.cpu_count()} cores",
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    for package in (
        "anthropic",
        "fastapi",
        "starlette",
        "pydantic",
        "uvicorn",
        "uvloop",
        "httptools",
        "httpx",
        "httpx2",
        "aiohttp",
        "orjson",
        "structlog",
        "tenacity",
        "sse-starlette",
        "matplotlib",
    ):
        with contextlib.suppress(PackageNotFoundError):
            info[package] = version(package)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a few requests per scenario, checks only; writes no docs"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="the report (full run)"
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenario names (e.g. B50,C,D): print their figures and keep them in "
        "bench/results/, write no docs",
    )
    parser.add_argument(
        "--traced",
        action="store_true",
        help="also run the service with traces on (OTLP to a receiver here), as target `traced`; "
        "with --only or --smoke",
    )
    args = parser.parse_args(argv)
    if args.traced and not (args.only or args.smoke):
        parser.error("--traced goes with --only or --smoke (the report knows three targets)")

    if len(_CORES) < 2:
        print("bench: needs 2 cores (relay on core 0, load generator and fake on core 1)", file=sys.stderr)
        return 2
    raise_fd_limit()
    os.sched_setaffinity(0, {LOAD_CORE})
    selfcheck()
    scenarios = SMOKE if args.smoke else FULL
    if args.only:
        wanted = args.only.split(",")
        scenarios = [s for s in scenarios if s.name in wanted]
        if unknown := set(wanted) - {s.name for s in scenarios}:
            parser.error(f"no scenario {', '.join(sorted(unknown))}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else RESULTS_DIR

    import uvloop

    started = time.monotonic()
    limit = 120 if args.smoke else 900

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(limit):
            return await run(scenarios, logs, args.traced)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            outcome = runner.run(bounded())
    except (BenchFailed, TimeoutError) as exc:
        reason = str(exc) or f"did not finish within {limit} s"
        print(f"bench: FAILED after {time.monotonic() - started:.0f} s: {reason}", file=sys.stderr)
        print(f"bench: relay logs in {logs}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"bench: all requests correct ({elapsed:.0f} s)", flush=True)
    if not args.smoke and any("resumable" in figures for figures in outcome["results"].values()):
        print(
            "\n".join(["", "Resumption on ÷ off, this run:", *resumption_lines(outcome["results"])]),
            flush=True,
        )
        print(f"resumable service log: {outcome.get('resumable_log')}", flush=True)
    if args.smoke:
        shutil.rmtree(logs, ignore_errors=True)
    if args.smoke:
        return 0

    run_info = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "duration_s": round(elapsed, 1),
        "load_average": os.getloadavg(),  # the machine may be shared: how busy it was at the end
        "scenarios": [asdict(s) for s in scenarios],
        **outcome,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = RESULTS_DIR / f"{stamp}.json"
    raw.write_text(json.dumps(run_info, indent=2), encoding="utf-8")
    if args.only:
        print(f"bench: raw figures in {raw}")
        return 0

    from bench.report import write_report

    write_report(run_info, args.out)
    print(f"bench: wrote {args.out}, {args.out.with_suffix('.png')} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
