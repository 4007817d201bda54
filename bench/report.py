"""Turns one benchmark run into docs/benchmarks.md and its plot."""

from __future__ import annotations

from pathlib import Path

Results = dict[str, dict[str, dict[str, float]]]

# (label, scenario, figure, how to compare, target): ratios against the reference or the floor.
TARGETS = [
    (
        "B50: relay CPU per relayed token",
        "B50",
        "cpu_us_per_token",
        "reference",
        "≤ 0.25×",
        lambda r: r <= 0.25,
    ),
    ("A: tokens/s relayed at saturation", "A", "tokens_per_s", "floor", "≥ 0.8×", lambda r: r >= 0.8),
    ("B200: inter-token gap p99", "B200", "gap_p99_ms", "floor", "≤ 2.5×", lambda r: r <= 2.5),
    (
        "B50: time to first token added, p99",
        "B50",
        "ttft_added_p99_ms",
        "reference",
        "≤ 0.25×",
        lambda r: r <= 0.25,
    ),
    (
        "C: relay CPU per non-streaming request",
        "C",
        "cpu_us_per_request",
        "reference",
        "≤ 0.55×",
        lambda r: r <= 0.55,
    ),
    ("D: memory per open stream", "D", "kib_per_stream", "reference", "≤ 0.7×", lambda r: r <= 0.7),
]


def _added_ttft(results: Results) -> None:
    """Time to first token over the floor's, in the same scenario."""
    for scenario in results.values():
        floor = scenario.get("floor")
        for name, figures in scenario.items():
            if floor is not None and name != "floor":
                figures["ttft_added_p50_ms"] = figures["ttft_p50_ms"] - floor["ttft_p50_ms"]
                figures["ttft_added_p99_ms"] = figures["ttft_p99_ms"] - floor["ttft_p99_ms"]


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [(int(name[1:]), name) for name in results if name.startswith("B")]
    levels.sort()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for target, style, color in (("service", "o-", "C0"), ("reference", "s--", "C1"), ("floor", "^:", "C2")):
        rows = [results[name][target] for _, name in levels if target in results[name]]
        xs = [c for c, name in levels if target in results[name]]
        left.plot(xs, [r["ttft_p99_ms"] for r in rows], style, color=color, label=f"{target} p99")
        left.plot(xs, [r["ttft_p50_ms"] for r in rows], style, color=color, alpha=0.4, label=f"{target} p50")
        right.plot(xs, [r["gap_p99_ms"] for r in rows], style, color=color, label=target)
    left.set(title="Time to first token", xlabel="concurrent streams", ylabel="ms", yscale="log")
    right.set(
        title="Inter-token gap p99 (tokens every 20 ms)",
        xlabel="concurrent streams",
        ylabel="ms",
        yscale="log",
    )
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(results: Results, machine: dict[str, str], out: Path) -> None:
    _added_ttft(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    plot(results, png)

    def row(label: str, scenario: str, figure: str, digits: int = 1) -> str:
        figures = results.get(scenario, {})
        service, reference, floor = (
            figures.get(t, {}).get(figure) for t in ("service", "reference", "floor")
        )
        vs_reference = f"{service / reference:.2f}×" if service is not None and reference else "–"
        vs_floor = f"{service / floor:.2f}×" if service is not None and floor else "–"
        return f"| {label} | {_fmt(service, digits)} | {_fmt(reference, digits)} | {_fmt(floor, digits)} | {vs_reference} | {vs_floor} |"

    lines = [
        "# Benchmarks",
        "",
        "What changed these figures, and the profile: [performance.md](performance.md).",
        "",
        "The service beside a tutorial-style reference relay (`bench/reference_relay.py`: FastAPI,",
        "sse-starlette, the SDK's `messages.stream()`, `json.dumps` per token) and the floor (the load",
        "generator straight against the fake Anthropic API), measured in one run on one machine.",
        "Each relay is one uvicorn worker pinned to core 0; the fake and the load generator share core 1.",
        "The service runs as shipped: JSON logs with a summary line per request, request ids, retries",
        "armed, keep-alive pings. Every request of every scenario was checked: token count, exact text",
        "(quotes, backslashes, newlines, é, 日本語, 🙂, combining marks) and `[DONE]`.",
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in machine.items()],
        "",
        "## Results",
        "",
        "| figure | service | reference | floor | service ÷ reference | service ÷ floor |",
        "|---|---:|---:|---:|---:|---:|",
        row("A: tokens/s, 50 streams × 200 tokens, unpaced", "A", "tokens_per_s", 0),
        row("A: relay CPU µs per token", "A", "cpu_us_per_token"),
        row("B50: relay CPU µs per token", "B50", "cpu_us_per_token"),
        row("B50: time to first token p50, ms", "B50", "ttft_p50_ms"),
        row("B50: time to first token p99, ms", "B50", "ttft_p99_ms"),
        row("B50: time to first token added over the floor, p50, ms", "B50", "ttft_added_p50_ms"),
        row("B50: time to first token added over the floor, p99, ms", "B50", "ttft_added_p99_ms"),
        row("B50: inter-token gap p99, ms", "B50", "gap_p99_ms"),
        row("B100: time to first token p99, ms", "B100", "ttft_p99_ms"),
        row("B100: inter-token gap p99, ms", "B100", "gap_p99_ms"),
        row("B200: relay CPU µs per token", "B200", "cpu_us_per_token"),
        row("B200: time to first token added over the floor, p99, ms", "B200", "ttft_added_p99_ms"),
        row("B200: inter-token gap p99, ms", "B200", "gap_p99_ms"),
        row("C: requests/s, non-streaming, 50 concurrent", "C", "requests_per_s", 0),
        row("C: relay CPU µs per request", "C", "cpu_us_per_request", 0),
        row("D: KiB of relay memory per open stream (1000 open)", "D", "kib_per_stream"),
        row("D: seconds until all 1000 streams have a first token", "D", "all_first_token_s", 2),
        "",
        "## Targets",
        "",
        "| target | service | compared with | ratio | goal | met |",
        "|---|---:|---|---:|---|---|",
    ]
    for label, scenario, figure, against, goal, passes in TARGETS:
        figures = results.get(scenario, {})
        service, other = figures.get("service", {}).get(figure), figures.get(against, {}).get(figure)
        ratio = service / other if service is not None and other else None
        met = "yes" if ratio is not None and passes(ratio) else "no"
        if scenario == "D":
            first = figures.get("service", {}).get("all_first_token_s", 99)
            met = "yes" if met == "yes" and first <= 2 else "no"
            goal += ", all first tokens ≤ 2 s"
        lines.append(
            f"| {label} | {_fmt(service)} | {against} {_fmt(other)} | {_fmt(ratio, 2)} | {goal} | {met} |"
        )

    cpu = results.get("B50", {}).get("service", {}).get("cpu_us_per_token")
    if cpu:
        tokens_per_core_s = 1e6 / cpu
        lines += [
            "",
            "## Capacity",
            "",
            f"At {cpu:.0f} µs of CPU per relayed token (B50), one core relays about {tokens_per_core_s:,.0f} tokens/s.",
            f"A stream at 50 tokens/s (20 ms apart) costs {cpu * 50 / 1e4:.1f} % of a core, so one core carries about",
            f"{tokens_per_core_s / 50 * 0.7:,.0f} such streams while keeping 30 % headroom for first-token work, pings and",
            "logging. Each gunicorn worker is one such core's worth: set `WEB_CONCURRENCY` to the number of cores",
            "the container may use (more workers than cores only adds memory), and size replicas by",
            "expected concurrent streams ÷ that figure per core.",
        ]
    lines += [
        "",
        f"![time to first token and gap p99 against concurrency]({png.name})",
        "",
        "## Reproduce",
        "",
        "```sh",
        "uv sync --all-groups",
        "uv run --group bench python -m bench.run          # about 2 minutes; rewrites this page",
        "uv run --group bench python -m bench.run --smoke  # a few requests per scenario, checks only (CI)",
        "```",
        "",
        "Raw figures of each run: `bench/results/*.json`. Absolute numbers differ by 2× between machines;",
        "compare the ratios, which come from one run.",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
