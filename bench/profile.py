"""Profiles the service with py-spy while the load generator runs one benchmark scenario at it.

    uv run --group bench --with py-spy python -m bench.profile                 # scenario A, 20 s
    uv run --group bench --with py-spy python -m bench.profile --scenario B200 --seconds 30
    uv run --group bench --with py-spy python -m bench.profile --scenario C      # non-streaming
    uv run --group bench --with py-spy python -m bench.profile --scenario C200   # non-streaming, 200 tokens
    uv run --group bench --with py-spy python -m bench.profile --scenario B50 --resumable  # CHAT_REDIS_URL set
    uv run --group bench --with py-spy python -m bench.profile --scenario R      # drops and resumes (resumable)

Same layout as `bench.run` (the service alone on core 0, load generator and fake on core 1).
py-spy samples the service's process (`record --pid`, raw collapsed stacks) while the scenario
is run again and again; every request is checked as in the benchmark. Prints the functions with
the most own (leaf) and total (inclusive) samples, and own samples per package, and writes them
beside the raw stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.loadgen import RELAY, Target, run_load
from bench.run import (
    FULL,
    LOAD_CORE,
    MODEL,
    WARMUP,
    BenchFailed,
    RedisProcess,
    Relays,
    check,
    cpu_seconds,
    raise_fd_limit,
    set_reply,
)
from fake_anthropic import FakeAnthropic, free_port

IDLE_WORKER = re.compile(r"^_worker \(.*concurrent/futures/thread\.py(:\d+)?\)$")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _where(frame: str) -> tuple[str, str]:
    """(function with a short file name, package) for one py-spy frame."""
    match = FRAME.match(frame)
    if not match:
        return frame, "?"
    func, file = match["func"], match["file"]
    if "site-packages/" in file:
        rest = file.split("site-packages/", 1)[1]
        package = rest.split("/", 1)[0].removesuffix(".py")
    elif "/lib/python3" in file:
        rest = "stdlib/" + file.split("/lib/python3", 1)[1].split("/", 1)[-1]
        package = "stdlib " + rest.split("/")[1].removesuffix(".py")
    elif file.startswith(("app/", "/")) and "/app/" in f"/{file}":
        rest = "app/" + f"/{file}".split("/app/", 1)[1]
        package = "app"
    else:
        rest, package = file, file.split("/", 1)[0]
    return f"{func} ({rest})", package


def summarize(raw: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    samples = idle = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_where(frame) for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        if IDLE_WORKER.search(stack.rsplit(";", 1)[-1]):
            idle += count  # an executor thread waiting for work, which py-spy here does not see as idle
            continue
        samples += count
        leaf, package = frames[-1]
        own[leaf] += count
        packages[package] += count
        for name in {name for name, _ in frames}:
            total[name] += count
    if not samples:
        return "no samples"

    def table(title: str, counter: collections.Counter[str], skip_roots: bool = False) -> list[str]:
        lines = [f"{title} ({samples} samples)", f"{'%':>6}  function"]
        rows = [(name, n) for name, n in counter.most_common() if not (skip_roots and n >= 0.99 * samples)]
        lines += [f"{100 * n / samples:6.1f}  {name}" for name, n in rows[:top]]
        return [*lines, ""]

    note = (
        f"{idle} samples of idle thread-pool workers (blocked in `work_queue.get`) left out; "
        "`Runner.run` own time is the event loop's C code (uvloop: epoll, socket reads and writes).\n\n"
    )
    return note + "\n".join(
        table("own time (leaf frames)", own)
        + table("total time (inclusive; frames in every sample left out)", total, skip_roots=True)
        + table("own time by package", packages)
    )


async def profile(scenario_name: str, seconds: float, out: Path, rate: int, resumable: bool) -> str:
    """`resumable`: the service with resumption on, against a redis-server started here (R always)."""
    scenario = next(s for s in FULL if s.name == scenario_name)
    resumable = resumable or scenario.drop_half
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise BenchFailed("py-spy is not installed: run with `uv run --group bench --with py-spy ...`")
    fake = FakeAnthropic("127.0.0.1", 0, record=0)
    server = await fake.serve()
    logs = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    relays = Relays(logs)
    redis = RedisProcess(logs) if resumable else None
    try:
        port = free_port()
        env = {
            "ANTHROPIC_API_KEY": "bench-key",
            "ANTHROPIC_BASE_URL": fake.url,
            "CHAT_MODEL": MODEL,
            "CHAT_LOG_FORMAT": "json",
        }
        if redis is not None:
            await redis.start()
            env["CHAT_REDIS_URL"] = redis.url
        pid = await relays.start("service", "app.main:app", port, env)
        target = Target("service", port, RELAY, resumable=resumable)
        set_reply(fake, WARMUP)
        problems = check(
            "service", WARMUP, await run_load(target, stream=True, concurrency=10, total=20, deadline_s=60)
        )
        redis_before = cpu_seconds(redis.pid) if redis is not None else 0.0
        set_reply(fake, scenario)
        raw = out.with_suffix(".raw.txt")
        spy = await asyncio.create_subprocess_exec(
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(raw),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await asyncio.sleep(1)  # py-spy attaches
        cpu_before, tokens, rounds, started = cpu_seconds(pid), 0, 0, time.perf_counter()
        deadline = time.monotonic() + seconds + 30
        while spy.returncode is None and time.monotonic() < deadline:
            results = await run_load(
                scenario.target(target),
                stream=scenario.stream,
                concurrency=scenario.concurrency,
                total=scenario.total,
                deadline_s=seconds + 30,
                stagger_s=scenario.stream_s if scenario.staggered else 0.0,
                timeout_s=scenario.timeout_s,
                drop_at=scenario.drop_at(),
            )
            problems += check("service", scenario, results)
            tokens += sum(len(r.texts) for r in results) if scenario.stream else len(results)
            rounds += 1
        cpu = cpu_seconds(pid) - cpu_before
        wall = time.perf_counter() - started
        output = (await spy.communicate())[0].decode(errors="replace")
        if spy.returncode != 0 or not raw.exists():
            raise BenchFailed(f"py-spy failed ({spy.returncode}):\n{output.strip()}")
        if problems:
            raise BenchFailed("\n".join([f"{len(problems)} incorrect requests:", *problems[:20]]))
        unit = "token" if scenario.stream else "request"
        head = (
            f"service under scenario {scenario.name}, {rounds} rounds, {tokens} {unit}s in {wall:.1f} s, "
            f"{tokens / wall:,.0f} {unit}s/s, {cpu * 1e6 / max(tokens, 1):.1f} µs CPU per {unit} "
            f"(with py-spy sampling at {rate} Hz)"
        )
        if redis is not None:
            redis_cpu = cpu_seconds(redis.pid) - redis_before
            head += f"; resumption on: Redis's own CPU {redis_cpu * 1e6 / max(tokens, 1):.1f} µs per {unit}"
        head += "\n\n"
        summary = head + summarize(raw)
        out.with_suffix(".summary.txt").write_text(summary, encoding="utf-8")
        return summary
    finally:
        await relays.stop()
        if redis is not None:
            await redis.stop()
        server.close()
        shutil.rmtree(logs, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", default="A", choices=[s.name for s in FULL if not s.all_open])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench-profile")
    parser.add_argument(
        "--resumable",
        action="store_true",
        help="the service with CHAT_REDIS_URL (a redis-server started here)",
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.sched_setaffinity(0, {LOAD_CORE})
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            print(runner.run(profile(args.scenario, args.seconds, args.out, args.rate, args.resumable)))
    except BenchFailed as exc:
        print(f"profile: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"profile: raw stacks in {args.out.with_suffix('.raw.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
