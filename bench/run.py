"""The benchmark: the service beside a tutorial-style reference relay and the floor, in one run.

    uv run --group bench python -m bench.run            # full run, writes docs/benchmarks.md
    uv run --group bench python -m bench.run --smoke    # a few requests per scenario, checks only

Each relay runs as one uvicorn worker pinned to core 0; the fake Anthropic API and this load
generator share core 1; everything talks over 127.0.0.1. Relay CPU comes from /proc/PID/stat,
memory from /proc/PID/statm. Every request is checked (token count, exact text, `[DONE]`); one
wrong or failed request makes the run fail instead of producing figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bench.loadgen import Outcome, Target, post_json, request, run_load
from tests.fakes.anthropic_api import default_tokens

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
RELAY_CORE, LOAD_CORE = "0", "1"


@dataclass(frozen=True)
class Scenario:
    name: str
    tokens: int
    interval_ms: float
    concurrency: int
    total: int
    stream: bool = True


FULL = [
    Scenario("A", tokens=200, interval_ms=0, concurrency=50, total=150),
    Scenario("B50", tokens=100, interval_ms=20, concurrency=50, total=100),
    Scenario("B100", tokens=100, interval_ms=20, concurrency=100, total=200),
    Scenario("B200", tokens=100, interval_ms=20, concurrency=200, total=400),
    Scenario("C", tokens=50, interval_ms=0, concurrency=50, total=1500, stream=False),
    Scenario("D", tokens=20, interval_ms=250, concurrency=1000, total=1000),
]
SMOKE = [
    Scenario("A", tokens=200, interval_ms=0, concurrency=3, total=3),
    Scenario("B50", tokens=100, interval_ms=20, concurrency=3, total=3),
    Scenario("C", tokens=50, interval_ms=0, concurrency=3, total=3, stream=False),
    Scenario("D", tokens=20, interval_ms=50, concurrency=20, total=20),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], core: str, env: dict[str, str], port: int
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            ["taskset", "-c", core, *argv],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.started.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: see {log.name}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return process
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not listen on {port}")

    def stop(self) -> None:
        for process in self.started:
            process.terminate()
        for process in self.started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def check(target: str, scenario: Scenario, outcomes: list[Outcome]) -> list[str]:
    expected = "".join(default_tokens(scenario.tokens))
    problems = []
    for outcome in outcomes:
        if outcome.error or outcome.status != 200 or not outcome.done:
            problems.append(
                f"{target} {scenario.name}: status {outcome.status}, done {outcome.done}, {outcome.error}"
            )
        elif scenario.stream and len(outcome.text) != scenario.tokens:
            problems.append(
                f"{target} {scenario.name}: {len(outcome.text)} tokens, expected {scenario.tokens}"
            )
        elif "".join(outcome.text) != expected:
            problems.append(f"{target} {scenario.name}: text differs from what the fake sent")
    if len(outcomes) != scenario.total:
        problems.append(f"{target} {scenario.name}: {len(outcomes)} of {scenario.total} requests ran")
    return problems


async def measure(
    target: Target, pid: int | None, scenario: Scenario
) -> tuple[dict[str, float], list[Outcome]]:
    cpu_before = cpu_seconds(pid) if pid else 0.0
    rss_before = rss_kib(pid) if pid else 0
    started = time.perf_counter()
    result: dict[str, float] = {}
    if scenario.name.startswith("D"):
        outcomes = [Outcome() for _ in range(scenario.total)]
        tasks = [asyncio.ensure_future(request(target, True, outcome)) for outcome in outcomes]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(o.token_times or o.error for o in outcomes):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # polling keeps the per-token path of the load generator free of hooks
        result["all_first_token_s"] = time.perf_counter() - started
        if pid:
            result["kib_per_stream"] = (rss_kib(pid) - rss_before) / scenario.total
        await asyncio.gather(*tasks)
    else:
        outcomes = await run_load(
            target,
            stream=scenario.stream,
            concurrency=scenario.concurrency,
            total=scenario.total,
            deadline_s=120,
        )
    wall = time.perf_counter() - started
    tokens = sum(len(o.text) for o in outcomes) if scenario.stream else len(outcomes) * scenario.tokens
    ttfts = [o.ttft for o in outcomes if o.ttft is not None]
    gaps = [gap for o in outcomes for gap in o.gaps]
    result |= {
        "wall_s": wall,
        "requests": len(outcomes),
        "tokens_per_s": tokens / wall,
        "requests_per_s": len(outcomes) / wall,
        "ttft_p50_ms": percentile(ttfts, 50) * 1000,
        "ttft_p99_ms": percentile(ttfts, 99) * 1000,
        "gap_p99_ms": percentile(gaps, 99) * 1000,
    }
    if pid:
        cpu = cpu_seconds(pid) - cpu_before
        result["cpu_us_per_token"] = cpu * 1e6 / max(tokens, 1)
        result["cpu_us_per_request"] = cpu * 1e6 / max(len(outcomes), 1)
        result["cpu_s"] = cpu
    return result, outcomes


async def run(scenarios: list[Scenario], logs: Path) -> dict[str, dict[str, dict[str, float]]]:
    fake_port, service_port, reference_port = free_port(), free_port(), free_port()
    processes = Processes(logs)
    relay_env = {
        "ANTHROPIC_API_KEY": "bench-key",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake_port}",
        "CHAT_MODEL": "claude-sonnet-4-5",
        "CHAT_LOG_FORMAT": "json",
    }
    try:
        processes.start(
            "fake",
            [sys.executable, "tests/fakes/anthropic_api.py", "--port", str(fake_port)],
            LOAD_CORE,
            {},
            fake_port,
        )
        uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--backlog", "4096"]
        service = processes.start(
            "service",
            [*uvicorn, "--port", str(service_port), "app.main:app"],
            RELAY_CORE,
            relay_env,
            service_port,
        )
        reference = processes.start(
            "reference",
            [*uvicorn, "--port", str(reference_port), "bench.reference_relay:app"],
            RELAY_CORE,
            relay_env,
            reference_port,
        )
        targets = [
            (Target("floor", fake_port, "anthropic"), None),
            (Target("reference", reference_port, "relay"), reference.pid),
            (Target("service", service_port, "relay"), service.pid),
        ]
        results: dict[str, dict[str, dict[str, float]]] = {}
        problems: list[str] = []
        for scenario in scenarios:
            await post_json(
                fake_port, "/_fake/default", {"tokens": scenario.tokens, "interval_ms": scenario.interval_ms}
            )
            for target, pid in targets:
                if scenario.name.startswith("D") and pid is None:
                    continue  # memory is a relay's figure
                await run_load(
                    target, stream=scenario.stream, concurrency=5, total=10, deadline_s=30
                )  # warm-up
                figures, outcomes = await measure(target, pid, scenario)
                problems += check(target.name, scenario, outcomes)
                results.setdefault(scenario.name, {})[target.name] = figures
                print(
                    f"{scenario.name:5} {target.name:9} "
                    + " ".join(f"{k}={v:.1f}" for k, v in figures.items()),
                    flush=True,
                )
        if problems:
            print("\n".join(["INCORRECT REQUESTS (not a result):", *problems[:20]]), file=sys.stderr)
            raise SystemExit(1)
        return results
    finally:
        processes.stop()


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    packages = [
        "anthropic",
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "aiohttp",
        "sse-starlette",
        "orjson",
    ]
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in packages},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="a few requests per scenario, correctness only")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))  # inherited by the relays
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    results = asyncio.run(run(SMOKE if args.smoke else FULL, results_dir))
    print(f"bench: all requests correct ({time.monotonic() - started:.0f} s)")
    if args.smoke:
        return
    info = machine()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results_dir / f"{stamp}.json").write_text(json.dumps({"machine": info, "results": results}, indent=2))
    from bench.report import write_report

    write_report(results, info, args.out)
    print(f"bench: wrote {args.out}")


if __name__ == "__main__":
    main()
