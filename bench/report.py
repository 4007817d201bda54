"""Turns one benchmark run (the JSON that `bench.run` writes) into docs/benchmarks.md and its plot."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

Figures = dict[str, dict[str, dict[str, float]]]
TARGETS_ORDER = ("service", "reference", "floor")
B_LEVEL = re.compile(r"^B(\d+)(-burst)?$")


def _added_ttft(results: Figures) -> None:
    """Time to first token, and to `start`, over the floor's, in the same scenario."""
    for scenario in results.values():
        floor = scenario.get("floor", {})
        for name, figures in scenario.items():
            if name == "floor":
                continue
            for what in ("ttft", "start"):
                for q in ("p50", "p99"):
                    if f"{what}_{q}_ms" in figures and f"{what}_{q}_ms" in floor:
                        figures[f"{what}_added_{q}_ms"] = figures[f"{what}_{q}_ms"] - floor[f"{what}_{q}_ms"]


def _levels(results: Figures, burst: bool) -> list[tuple[int, str]]:
    found = [(m, name) for name in results if (m := B_LEVEL.match(name))]
    return sorted((int(m[1]), name) for m, name in found if bool(m[2]) == burst)


def _get(results: Figures, scenario: str, target: str, figure: str) -> float | None:
    return results.get(scenario, {}).get(target, {}).get(figure)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _at_most(limit: float) -> Callable[[float], bool]:
    return lambda ratio: ratio <= limit


# (label, scenario, figure, compared with, goal, test): the targets. The B figures, which
# depend on how arrivals are spread, are judged on both variants of their scenario.
TARGETS: list[tuple[str, str, str, str, str, Callable[[float], bool]]] = [
    ("B50: relay CPU per relayed token", "B50", "cpu_us_per_token", "reference", "≤ 0.25×", _at_most(0.25)),
    (
        "B50-burst: relay CPU per relayed token",
        "B50-burst",
        "cpu_us_per_token",
        "reference",
        "≤ 0.25×",
        _at_most(0.25),
    ),
    ("A: tokens/s relayed at saturation", "A", "tokens_per_s", "floor", "≥ 0.8×", lambda r: r >= 0.8),
    ("B200: inter-token gap p99", "B200", "gap_p99_ms", "floor", "≤ 2.5×", _at_most(2.5)),
    ("B200-burst: inter-token gap p99", "B200-burst", "gap_p99_ms", "floor", "≤ 2.5×", _at_most(2.5)),
    (
        "B50: time to first token added, p99",
        "B50",
        "ttft_added_p99_ms",
        "reference",
        "≤ 0.25×",
        _at_most(0.25),
    ),
    (
        "B50-burst: time to first token added, p99",
        "B50-burst",
        "ttft_added_p99_ms",
        "reference",
        "≤ 0.25×",
        _at_most(0.25),
    ),
    (
        "C: relay CPU per non-streaming request",
        "C",
        "cpu_us_per_request",
        "reference",
        "≤ 0.55×",
        _at_most(0.55),
    ),
    ("D: memory per open stream", "D", "kib_per_stream", "reference", "≤ 0.7×", _at_most(0.7)),
]


def _no_worse_beyond_noise(on: float, off: float) -> bool:
    # A p50 of a few ms moves by a ms or two between phases of one run on a shared core.
    return on <= max(off * 1.15, off + 2.0)


# (label, scenario, figure, goal, test of (on ÷ off, on, off) or None): resumption on (the
# `resumable` target) against off (`service`) in the same run; the targets, and figures
# shown beside them without one.
RESUME_ROWS: list[tuple[str, str, str, str, Callable[[float, float, float], bool] | None]] = [
    ("B50: relay CPU µs per token", "B50", "cpu_us_per_token", "≤ 1.3×", lambda ratio, on, off: ratio <= 1.3),
    ("D: relay CPU µs per token", "D", "cpu_us_per_token", "≤ 1.3×", lambda ratio, on, off: ratio <= 1.3),
    (
        "B50: time to first token p50, ms",
        "B50",
        "ttft_p50_ms",
        "no worse beyond noise (≤ 1.15× or + 2 ms)",
        lambda ratio, on, off: _no_worse_beyond_noise(on, off),
    ),
    (
        "D: time to first token p50, ms",
        "D",
        "ttft_p50_ms",
        "no worse beyond noise (≤ 1.15× or + 2 ms)",
        lambda ratio, on, off: _no_worse_beyond_noise(on, off),
    ),
    (
        "D: relay KiB per open stream (1000 open)",
        "D",
        "kib_per_stream",
        "≤ 1.3×",
        lambda ratio, on, off: ratio <= 1.3,
    ),
    ("B50: time to first token p99, ms", "B50", "ttft_p99_ms", "", None),
    ("B50: inter-token gap p99, ms", "B50", "gap_p99_ms", "", None),
    ("D: seconds until every stream has a first token", "D", "all_first_token_s", "", None),
]


def resumption_lines(results: Figures) -> list[str]:
    """The resumption table: on ÷ off from one run, R's resumed readers, Redis's own cost."""

    def on_off(scenario: str, figure: str) -> tuple[float | None, float | None]:
        return _get(results, scenario, "resumable", figure), _get(results, scenario, "service", figure)

    lines = [
        "| figure | off | on | on ÷ off | goal | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for label, scenario, figure, goal, passes in RESUME_ROWS:
        on, off = on_off(scenario, figure)
        ratio = _ratio(on, off)
        met = "–"
        if passes is not None and on is not None and off is not None and ratio is not None:
            met = "**yes**" if passes(ratio, on, off) else "no"
        lines.append(
            f"| {label} | {_fmt(off)} | {_fmt(on)} | {_fmt(ratio, 2)}{'×' if ratio else ''} | {goal} | {met} |"
        )
    for scenario in ("D", "B50", "R"):
        errors = _get(results, scenario, "resumable", "store_errors")
        if errors is not None:
            lines.append(
                f"| {scenario}: answers that lost resumption (Redis failed or over 1 s; the metric) "
                f"| – | {errors:,.0f} | – | 0 | {'**yes**' if errors == 0 else 'no'} |"
            )
    p50 = _get(results, "R", "resumable", "resume_first_event_p50_ms")
    p99 = _get(results, "R", "resumable", "resume_first_event_p99_ms")
    if p99 is not None:
        resumes = _get(results, "R", "resumable", "resumes")
        lines += [
            f"| R: resumed reader's first event after its request, p50, ms ({_fmt(resumes, 0)} resumes) "
            f"| – | {_fmt(p50)} | – | | – |",
            f"| R: resumed reader's first event after its request, p99, ms | – | {_fmt(p99)} | – "
            f"| ≤ 50 ms | {'**yes**' if p99 <= 50 else 'no'} |",
        ]
        cpu_r, cpu_off = (
            _get(results, "R", "resumable", "cpu_us_per_token"),
            _get(results, "B50", "service", "cpu_us_per_token"),
        )
        ratio = _ratio(cpu_r, cpu_off)
        lines.append(
            f"| R: relay CPU µs per token (off: B50's) | {_fmt(cpu_off)} | {_fmt(cpu_r)} "
            f"| {_fmt(ratio, 2)}{'×' if ratio else ''} | | – |"
        )
    for scenario in ("B50", "D", "R"):
        redis = _get(results, scenario, "resumable", "redis_cpu_us_per_token")
        relay = _get(results, scenario, "resumable", "cpu_us_per_token")
        off = _get(results, scenario if scenario != "R" else "B50", "service", "cpu_us_per_token")
        if redis is None:
            continue
        both = relay + redis if relay is not None else None
        ratio = _ratio(both, off)
        lines.append(
            f"| {scenario}: Redis's own CPU µs per token (another core; relay + Redis on ÷ relay off) "
            f"| – | {_fmt(redis)} | {_fmt(ratio, 2)}{'×' if ratio else ''} | | – |"
        )
    redis_kib = _get(results, "D", "resumable", "redis_kib_per_stream")
    if redis_kib is not None:
        lines.append(
            f"| D: Redis KiB per open stream (RSS growth ÷ streams) | – | {_fmt(redis_kib)} | – | | – |"
        )
    return lines


def plot(results: Figures, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    styles = {"service": ("o-", "C0"), "reference": ("s--", "C3"), "floor": ("^:", "0.45")}
    for row, burst in enumerate((False, True)):
        levels = _levels(results, burst)
        left, right = axes[row]
        for target, (style, color) in styles.items():
            xs = [c for c, name in levels if target in results[name]]
            rows = [results[name][target] for _, name in levels if target in results[name]]
            if not rows:
                continue
            left.plot(xs, [r["ttft_p99_ms"] for r in rows], style, color=color, label=f"{target} p99")
            left.plot(
                xs, [r["ttft_p50_ms"] for r in rows], style, color=color, alpha=0.35, label=f"{target} p50"
            )
            right.plot(xs, [r["gap_p99_ms"] for r in rows], style, color=color, label=f"{target} p99")
        how = "all workers start at once (bursts)" if burst else "arrivals spread over a stream's length"
        left.set(title=f"Time to first token — {how}", xlabel="concurrent streams", ylabel="ms", yscale="log")
        right.set(title=f"Inter-token gap p99 — {how}", xlabel="concurrent streams", ylabel="ms")
        right.set_ylim(bottom=0)
        for axis in (left, right):
            axis.yaxis.set_major_formatter(ScalarFormatter())
            axis.yaxis.set_minor_formatter(NullFormatter())
            axis.set_xticks([c for c, _ in levels])
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=7)
            axis.title.set_fontsize(9)
    fig.suptitle(
        "Scenario B: 100 tokens 20 ms apart; each relay is one uvicorn worker on one core", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(run: dict[str, Any], out: Path) -> None:
    results: Figures = run["results"]
    _added_ttft(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    plot(results, png)
    scenarios = {s["name"]: s for s in run["scenarios"]}

    def row(label: str, scenario: str, figure: str, digits: int = 1) -> str:
        service, reference, floor = (_get(results, scenario, t, figure) for t in TARGETS_ORDER)
        vs_reference, vs_floor = _ratio(service, reference), _ratio(service, floor)
        return (
            f"| {label} | {_fmt(service, digits)} | {_fmt(reference, digits)} | {_fmt(floor, digits)} "
            f"| {_fmt(vs_reference, 2)}{'×' if vs_reference else ''} "
            f"| {_fmt(vs_floor, 2)}{'×' if vs_floor else ''} |"
        )

    def b_rows(concurrency: int, name: str) -> list[str]:
        return [
            row(f"{name}: relay CPU µs per token", name, "cpu_us_per_token"),
            row(f"{name}: relay core busy, %", name, "cpu_pct", 0),
            row(f"{name}: tokens/s delivered", name, "tokens_per_s", 0),
            row(f"{name}: time to first token p50, ms", name, "ttft_p50_ms"),
            row(f"{name}: time to first token p99, ms", name, "ttft_p99_ms"),
            row(f"{name}: time to first token added over the floor, p50, ms", name, "ttft_added_p50_ms"),
            row(f"{name}: time to first token added over the floor, p99, ms", name, "ttft_added_p99_ms"),
            row(f"{name}: inter-token gap p50, ms", name, "gap_p50_ms"),
            row(f"{name}: inter-token gap p99, ms", name, "gap_p99_ms"),
        ]

    def c_rows(name: str) -> list[str]:
        tokens = scenarios.get(name, {}).get("tokens", "?")
        return [
            row(
                f"{name}: requests/s, non-streaming, {tokens} tokens, 50 concurrent",
                name,
                "requests_per_s",
                0,
            ),
            row(f"{name}: relay CPU µs per request", name, "cpu_us_per_request", 0),
            row(f"{name}: relay CPU µs per answer token", name, "cpu_us_per_token"),
            row(f"{name}: latency p50, ms", name, "ttft_p50_ms"),
            row(f"{name}: latency p99, ms", name, "ttft_p99_ms"),
        ]

    def e_rows(name: str) -> list[str]:
        return [
            row(f"{name}: time to start p50, ms", name, "start_p50_ms"),
            row(f"{name}: time to start p99, ms", name, "start_p99_ms"),
            row(f"{name}: time to start added over the floor, p50, ms", name, "start_added_p50_ms"),
            row(f"{name}: time to start added over the floor, p99, ms", name, "start_added_p99_ms"),
            row(f"{name}: relay CPU µs per stream", name, "cpu_us_per_request", 0),
            row(f"{name}: relay CPU µs per text token", name, "cpu_us_per_token"),
            row(f"{name}: relay core busy, %", name, "cpu_pct", 0),
            row(f"{name}: time to first text token p50, ms", name, "ttft_p50_ms", 0),
            row(f"{name}: time to first text token p99, ms", name, "ttft_p99_ms", 0),
            row(f"{name}: inter-token gap p99, ms", name, "gap_p99_ms"),
        ]

    log = run.get("service_log", {})
    d = scenarios.get("D", {})
    e = scenarios.get("E", {})
    lines = [
        "# Benchmarks",
        "",
        "The service beside a tutorial-style reference relay (`bench/reference_relay.py`: FastAPI,",
        "sse-starlette's `EventSourceResponse`, the SDK's `messages.stream()` on its default transport,",
        "`json.dumps` per token) and the floor (the load generator straight against the fake Anthropic",
        f"API, no relay), all measured in one run ({run['started']}, {run['duration_s']:.0f} s) on one machine.",
        "Absolute figures move by 2× between machines: compare the ratios, which come from one run.",
        "What changed these figures, and the profile: [performance.md](performance.md).",
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in run["machine"].items()],
        *[
            f"- {name} process: cores {info['cores']}, {info['threads']} threads, "
            f"uvloop {'loaded' if info['uvloop'] else 'NOT loaded'}, "
            f"httptools {'loaded' if info['httptools'] else 'NOT loaded'} (read from /proc/PID/maps)"
            for name, info in run.get("relays", {}).items()
        ],
        "",
        "## How it is measured",
        "",
        "- Each relay runs as one `uvicorn` worker (`uvicorn[standard]` defaults: uvloop, httptools)",
        "  started with `taskset -c 0`. The load generator (`bench/loadgen.py`, raw asyncio streams on uvloop)",
        "  and the fake Anthropic API (`fake_anthropic/`) share core 1, in one process and one",
        "  event loop: the fake runs in-process, so its reply (token count, pacing) is switched per scenario",
        "  without a restart, and its CPU is counted with the load generator's. The last table shows how",
        "  busy core 1 was in each phase: below 100 % the load side was not what limited a relay.",
        "- The service runs as shipped, configured only by environment (`ANTHROPIC_API_KEY=bench-key`,",
        "  `ANTHROPIC_BASE_URL` = the fake, `CHAT_MODEL=claude-sonnet-5-5`, `CHAT_LOG_FORMAT=json`, stdout to a",
        "  file): JSON logs with a summary line per request, request ids, retries armed, pings at the default",
        f"  interval. Its log of this run: {log.get('request_lines', '?')} request lines, "
        f"{log.get('with_request_id', '?')} with a request id, {log.get('retries', '?')} retries, "
        f"{log.get('warnings_or_errors', '?')} warnings or errors.",
        "  The reference keeps uvicorn's default access log (one line per request, like the service's summary).",
        "- One TCP connection per request (`Connection: close`) for every target. Time to first token runs",
        "  from before `connect()` to the read that completes the first `delta` event; gaps are between the",
        "  reads that complete consecutive `delta` events (`time.perf_counter`).",
        "- Relay CPU: utime + stime from `/proc/PID/stat` (all threads) before and after each phase, divided by",
        "  the tokens (or requests) of the phase. Memory: resident set from `/proc/PID/statm`.",
        "- A, C, C200: closed loops of 50 workers, all starting at once; C and C200 ask for one JSON body",
        f"  (`stream: false`), answers of {scenarios.get('C', {}).get('tokens', '?')} and "
        f"{scenarios.get('C200', {}).get('tokens', '?')} tokens. B50/B100/B200: closed loops of 50/100/200",
        "  workers whose first requests are spread over one stream's length (2 s), as in steady traffic.",
        "  B…-burst: the same with every worker starting at the same instant, so each round begins with",
        "  50–200 new requests at once (as this benchmark's first version did); the first-token figures",
        "  of a burst mostly measure concurrency × the per-request CPU.",
        f"- D runs first, on relays that have only been warmed up: {d.get('total', 1000)} streams opened at once,",
        f"  {d.get('tokens', '?')} tokens {d.get('interval_ms', 0) / 1000:.0f} s apart, so that all are open together;",
        "  the resident set is read when every stream has its first token (and, checked, none has ended),",
        "  minus the resident set before the phase, per stream.",
        f"- E: a model that thinks: {e.get('thinking_s', 0):.0f} s of thinking (the fake sends Anthropic's "
        "`ping` every 250 ms",
        f"  meanwhile and the summary in {len(e.get('thinking', ()))} `thinking_delta`s, asked for with "
        '`"thinking": "summarized"`), then',
        f"  {e.get('tokens', '?')} tokens {e.get('interval_ms', 0):.0f} ms apart, "
        f"{e.get('concurrency', '?')} streams, arrivals spread as in B. Time to start runs",
        "  from before `connect()` to the read that completes the `start` event (the floor: Anthropic's",
        "  `message_start`); relay CPU is per stream. The reference relay ignores thinking (its",
        "  `messages.stream()` loop handles `message_start` and `text` only), so it sends no `thinking`",
        "  events and is checked for none; its `start` also goes out at `message_start`.",
        "- Every request of every scenario is checked: HTTP 200, events in order (start, thinking…, delta…,",
        "  end, `[DONE]`, no thinking after a delta, nothing after `[DONE]`; Anthropic's own events for the",
        "  floor), the token count, the exact text and thinking summary the fake sent (quotes, backslashes,",
        "  newlines, é, 日本語, 🙂, combining marks, whitespace-only tokens) and the usage reported. One wrong",
        "  or failed request fails the run; this page is only written by a run where all were right.",
        "",
        "## Results",
        "",
        "| figure | service | reference | floor | service ÷ reference | service ÷ floor |",
        "|---|---:|---:|---:|---:|---:|",
        row("A: tokens/s, 50 streams × 200 tokens, unpaced", "A", "tokens_per_s", 0),
        row("A: relay CPU µs per token", "A", "cpu_us_per_token"),
        row("A: relay core busy, %", "A", "cpu_pct", 0),
    ]
    for concurrency, name in _levels(results, burst=False) + _levels(results, burst=True):
        lines += b_rows(concurrency, name)
    lines += [
        *c_rows("C"),
        *(c_rows("C200") if "C200" in results else []),
        row("D: KiB of relay memory per open stream (1000 open)", "D", "kib_per_stream"),
        row("D: relay RSS before the phase, KiB", "D", "rss_before_kib", 0),
        row("D: relay RSS with 1000 streams open, KiB", "D", "rss_open_kib", 0),
        row("D: seconds until all 1000 streams have a first token", "D", "all_first_token_s", 2),
        *(e_rows("E") if "E" in results else []),
        "",
        "Reading B: a relay whose core is near 100 % busy cannot start new streams as fast as they",
        "come; in the closed loop its workers then wait at the first token (seconds, for the reference",
        "from B100 on), fewer streams flow at once than the scenario's name says, and its gaps look",
        "better than they would under the full load. Compare tokens/s delivered with the floor's.",
        *(
            [
                "",
                "Reading E: `start` is all a client sees while the model thinks. Both relays send it at",
                "Anthropic's `message_start`, so its time is the per-request set-up (B's first token, without",
                "the token); the first text comes at the floor's 2 s plus whatever the relay adds. The",
                "reference ignores thinking: its SDK parses the thinking events but it sends none on.",
            ]
            if "E" in results
            else []
        ),
        "",
        "## Targets",
        "",
        "From the issue; each a ratio to the reference or the floor in this same run. The B figures",
        "depend on how arrivals are spread, so each is judged on both variants of its scenario: streams",
        "started together also get their tokens together, and one event-loop wake-up then serves many",
        "streams, which lowers the CPU per token of a lean relay most.",
        "",
        "| figure | goal | service | reference | floor | ratio | met |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    met_count = 0
    for label, scenario, figure, against, goal, passes in TARGETS:
        service, reference, floor = (_get(results, scenario, t, figure) for t in TARGETS_ORDER)
        ratio = _ratio(service, reference if against == "reference" else floor)
        met = ratio is not None and passes(ratio)
        goal_text = f"{goal} the {against}'s"
        if scenario == "D":
            first = _get(results, "D", "service", "all_first_token_s")
            met = met and first is not None and first <= 2
            goal_text += f"; all 1000 first tokens ≤ 2 s (service: {_fmt(first, 2)} s)"
        met_count += met
        lines.append(
            f"| {label} | {goal_text} | {_fmt(service)} | {_fmt(reference)} | {_fmt(floor)} "
            f"| {_fmt(ratio, 2)} | {'**yes**' if met else 'no'} |"
        )
    lines += [
        "",
        f"{met_count} of {len(TARGETS)} met in this run. A p99 rests on the few slowest requests of a phase:",
        "one full garbage collection (tens of ms in either relay) landing in a phase or not moves it",
        "severalfold, and ratios within about 10 % of their goal can land on either side from one run",
        "to the next. Run twice before concluding.",
    ]

    cpu50 = _get(results, "B50", "service", "cpu_us_per_token")
    cpu200 = _get(results, "B200", "service", "cpu_us_per_token")
    kib = _get(results, "D", "service", "kib_per_stream")
    if cpu50 and cpu200:
        rate = 50  # tokens/s per stream, as in scenario B

        def streams(cpu: float, share: float, per_stream: float = rate) -> str:
            return f"{share * 1e6 / cpu / per_stream:,.0f}"

        lines += [
            "",
            "## Capacity",
            "",
            f"In B the service spends {cpu200:.0f}–{cpu50:.0f} µs of CPU per relayed token (B200–B50; the",
            "per-request work, see C, is included, spread over each stream's 100 tokens; more streams per",
            "core share more of the event loop's wake-ups, so the cost per token falls with concurrency).",
            f"A stream at {rate} tokens/s (20 ms apart, a fast model) therefore costs "
            f"{cpu200 * rate / 1e4:.1f}–{cpu50 * rate / 1e4:.1f} % of a core:",
            f"one core carries {streams(cpu50, 1)}–{streams(cpu200, 1)} such streams at 100 % CPU, or about",
            f"{streams(cpu50, 0.7)}–{streams(cpu200, 0.7)} keeping 30 % headroom for bursts of new requests (whose",
            "first tokens queue behind all other work on that core) and for event-loop latency. At 20",
            f"tokens/s per stream, if a token costs the same, {streams(cpu50, 0.7, 20)}–{streams(cpu200, 0.7, 20)}"
            " streams per core.",
            "",
            "A worker is one event loop on one thread: it uses one core at most. `WEB_CONCURRENCY` should",
            "equal the cores the container may use (its default): fewer leaves cores idle, more only adds",
            "memory and context switches. Size replicas × `WEB_CONCURRENCY` ≥ expected concurrent streams ÷",
            "the streams per core above."
            + (
                f" Memory is not the limit: {kib:.0f} KiB per open stream is {kib * 1000 / 1024:.0f} MiB"
                " per 1000 streams."
                if kib
                else ""
            ),
        ]
    if any("resumable" in figures for figures in results.values()):
        resumable_log = run.get("resumable_log", {})
        lines += [
            "",
            "## Resumption on and off (issue #18)",
            "",
            "`resumable` is the service again with `CHAT_REDIS_URL` set (one uvicorn worker on core 0, like",
            "the others), against a `redis-server` this run started on core 1 (with the load generator and",
            "the fake, as a Redis on another host would be). D and B50 run on it and on the service with",
            "resumption off (`service`); R is B50 on it alone with every other client dropping its",
            "connection after a random token and resuming at once (`GET /chat/streams/{id}`,",
            "`Last-Event-ID`); every joined answer checked exact, every event id once and in order. A",
            "resumed reader's first event is timed from before its `connect()` to the read that completes",
            "it. Redis's CPU is its own process's (`/proc/PID/stat`), on the other core, not in the relay's.",
            f"Its log: {resumable_log.get('request_lines', '?')} request lines, "
            f"{resumable_log.get('warnings_or_errors', '?')} warnings or errors.",
            "",
            *resumption_lines(results),
        ]
    lines += [
        "",
        "## Plot",
        "",
        f"![time to first token and inter-token gap p99 against concurrency]({png.name})",
        "",
        "## Load side (core 1: load generator + fake), busy %",
        "",
        "| scenario | floor | reference | service |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | "
            + " | ".join(
                _fmt(_get(results, name, t, "load_side_cpu_pct"), 0)
                for t in ("floor", "reference", "service")
            )
            + " |"
            for name in results
        ],
        "",
        "The floor's own phases saturate core 1 in A, C and C200 by design (that is the floor). In a relay's",
        "phase, core 1 below 100 % means the relay, not the load side, set the pace.",
        "",
        "## Reproduce",
        "",
        "```sh",
        "uv sync --all-groups",
        "uv run --group bench python -m bench.run          # about 4.5 minutes on 2 cores; rewrites this page",
        "uv run --group bench python -m bench.run --smoke  # a few requests per scenario, checks only (CI)",
        "uv run --group bench --with py-spy python -m bench.profile   # py-spy profile of the service under A",
        "```",
        "",
        "Needs 2 cores and `taskset`. Raw figures of each run: `bench/results/<time>.json` (not committed),",
        "the relays' logs beside them.",
    ]
    out.write_text("\n".join(lines) + "\n" + _kept_sections(out), encoding="utf-8")


# Sections other tools write into the report (bench.prompt_cache), kept when a run rewrites it.
KEPT_BEGIN, KEPT_END = "<!-- prompt-cache:begin -->", "<!-- prompt-cache:end -->"


def _kept_sections(out: Path) -> str:
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    if KEPT_BEGIN not in old or KEPT_END not in old:
        return ""
    return "\n" + old[old.index(KEPT_BEGIN) : old.index(KEPT_END) + len(KEPT_END)] + "\n"
