"""Aggregate benchmark runs (medians), check the targets, print the table."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Run = Mapping[str, Any]


def get(run: Run, path: str) -> float | None:
    """``run["a"]["b"]`` for ``path == "a.b"``; None when absent."""
    cur: Any = run
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return float(cur) if isinstance(cur, int | float) else None


def median_of(runs: Sequence[Run], path: str) -> float | None:
    values = [v for r in runs if "error" not in r and (v := get(r, path)) is not None]
    return statistics.median(values) if values else None


@dataclass(frozen=True, slots=True)
class Metric:
    path: str
    label: str
    kind: str  # "time" (µs: added) | "rate" (ratio) | "count" (added) | "info" (no comparison)


# What each scenario reports (medians over the repeats).
METRICS: dict[str, tuple[Metric, ...]] = {
    "lat_c1": (
        Metric("latency_us.p50", "latency p50 (µs)", "time"),
        Metric("latency_us.p99", "latency p99 (µs)", "time"),
    ),
    "tput_c64": (
        Metric("rate", "throughput (req/s)", "rate"),
        Metric("latency_us.p50", "latency p50 (µs)", "time"),
        Metric("latency_us.p99", "latency p99 (µs)", "time"),
        Metric("server_cpu_us_per_req", "server CPU per request (µs)", "time"),
        Metric("driver_cpu_us_per_req", "(harness) driver CPU per request (µs)", "info"),
        Metric("fake_cpu_us_per_req", "(harness) fake CPU per request (µs)", "info"),
        Metric("core1_busy", "(harness) core 1 busy, driver + fake", "info"),
    ),
    "ttft_c1": (
        Metric("ttft_us.p50", "TTFT p50 (µs)", "time"),
        Metric("ttft_us.p99", "TTFT p99 (µs)", "time"),
        Metric("latency_us.p50", "stream completion p50 (µs)", "time"),
    ),
    "burst_c64": (
        Metric("rate", "streams/s (50 chunks)", "rate"),
        Metric("chunks_per_s", "content chunks/s", "rate"),
        Metric("ttft_us.p99", "TTFT p99 (µs)", "time"),
        Metric("latency_us.p99", "stream completion p99 (µs)", "time"),
        Metric("server_cpu_us_per_req", "server CPU per stream (µs)", "time"),
        Metric("driver_cpu_us_per_req", "(harness) driver CPU per stream (µs)", "info"),
        Metric("fake_cpu_us_per_req", "(harness) fake CPU per stream (µs)", "info"),
        Metric("core1_busy", "(harness) core 1 busy, driver + fake", "info"),
    ),
    "paced_1000": (
        Metric("ttft_us.p50", "TTFT p50 (µs)", "time"),
        Metric("ttft_us.p99", "TTFT p99 (µs)", "time"),
        Metric("gap_us.p99", "inter-chunk gap p99 (µs)", "time"),
        Metric("gap_us.max", "inter-chunk gap max (µs)", "time"),
        Metric("stalled_streams", "stalled streams (see below)", "count"),
        Metric("late_first_chunk", "  of which first chunk > 100 ms", "count"),
        Metric("rate", "streams/s", "rate"),
        Metric("chunks_per_s", "content chunks/s", "rate"),
    ),
}


def aggregate(runs: Mapping[str, Mapping[str, Sequence[Run]]]) -> dict[str, Any]:
    """Per scenario: median of every metric for direct and gateway, and added/ratio."""
    out: dict[str, Any] = {}
    for key, by_target in runs.items():
        rows: dict[str, Any] = {}
        direct, gateway = by_target.get("direct", ()), by_target.get("gateway", ())
        for m in METRICS.get(key, ()):
            d, g = median_of(direct, m.path), median_of(gateway, m.path)
            row: dict[str, Any] = {"label": m.label, "kind": m.kind, "direct": d, "gateway": g}
            if d is not None and g is not None:
                if m.kind == "rate":
                    row["ratio"] = g / d if d else None
                elif m.kind != "info":
                    row["added"] = g - d
            rows[m.path] = row
        totals = {}
        for target, target_runs in by_target.items():
            totals[target] = {
                k: sum(int(get(r, k) or 0) for r in target_runs)
                for k in (
                    "errors",
                    "timed_out",
                    "incomplete_streams",
                    "stalled_streams",
                    "cache_hits",
                )
            } | {
                "failed_runs": sum(1 for r in target_runs if "error" in r),
                "max_other_cpu_busy": max(
                    (get(r, "other_cpu_busy") or 0.0 for r in target_runs), default=0.0
                ),
                "max_core1_busy": max(
                    (get(r, "core1_busy") or 0.0 for r in target_runs), default=0.0
                ),
            }
            totals[target]["runs"] = len(target_runs)
        out[key] = {"metrics": rows, "totals": totals}
    return out


def runs_of(scen: Mapping[str, Any], target: str) -> int:
    """How many successful runs of ``target`` a scenario summary holds."""
    t = scen["totals"].get(target) or {}
    return int(t.get("runs", 0)) - int(t.get("failed_runs", 0))


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value_of: str  # "<scenario>:<metric path>:<direct|gateway|added|gateway_total>" or "proc:<key>"
    op: str  # "<=" or ">="
    limit: float
    unit: str


TARGETS = (
    Target("added latency p50, c=1", "lat_c1:latency_us.p50:added", "<=", 600, "µs"),
    Target("added latency p99, c=1", "lat_c1:latency_us.p99:added", "<=", 2000, "µs"),
    Target("non-stream throughput, c=64, one worker", "tput_c64:rate:gateway", ">=", 3000, "req/s"),
    Target("streams/s of 50 chunks, c=64", "burst_c64:rate:gateway", ">=", 1500, "streams/s"),
    Target("added TTFT p50, c=1", "ttft_c1:ttft_us.p50:added", "<=", 500, "µs"),
    Target(
        "stalled streams, 1,000 paced (all runs)",
        "paced_1000:stalled_streams:gateway_total",
        "<=",
        0,
        "",
    ),
    Target("idle RSS", "proc:idle_rss_mb", "<=", 80, "MB"),
    Target("peak RSS", "proc:peak_rss_mb", "<=", 250, "MB"),
    Target("cold start (spawn → first answer)", "proc:cold_start_ms", "<=", 1000, "ms"),
)


def check_targets(agg: Mapping[str, Any], proc: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        value: float | None = None
        if t.value_of.startswith("proc:"):
            v = proc.get(t.value_of[5:])
            value = float(v) if isinstance(v, int | float) else None
        else:
            scen, path, col = t.value_of.split(":")
            s = agg.get(scen)
            if s is not None:
                if col == "gateway_total":
                    gw_totals = s["totals"].get("gateway")
                    if gw_totals and runs_of(s, "gateway"):
                        value = float(s["totals"]["gateway"].get(path.split(".")[-1], 0))
                else:
                    row = s["metrics"].get(path, {})
                    v = row.get(col)
                    value = float(v) if isinstance(v, int | float) else None
        passed = None if value is None else (value <= t.limit if t.op == "<=" else value >= t.limit)
        out.append(
            {
                "name": t.name,
                "value": value,
                "op": t.op,
                "limit": t.limit,
                "unit": t.unit,
                "pass": passed,
            }
        )
    return out


def _fmt(v: float | None, kind: str = "time", path: str = "") -> str:
    if v is None:
        return "pending"
    if path == "core1_busy":
        return f"{v:.0%}"
    if kind == "count":
        return f"{v:.0f}"
    if kind == "rate" or abs(v) >= 10_000:
        return f"{v:,.0f}"
    return f"{v:,.1f}"


TITLES = {
    "lat_c1": "Non-stream, concurrency 1",
    "tput_c64": "Non-stream, concurrency 64",
    "ttft_c1": "Stream of 50 chunks, concurrency 1",
    "burst_c64": "Stream of 50 chunks, concurrency 64 (burst)",
    "paced_1000": "1,000 concurrent streams, 20 chunks paced 50 ms "
    "(stalled: a gap > 150 ms or a first chunk > 100 ms)",
}


def table(
    agg: Mapping[str, Any], proc: Mapping[str, Any], targets: Sequence[Mapping[str, Any]]
) -> str:
    lines: list[str] = []
    w = 44
    header = f"{'':{w}} {'direct':>12} {'gateway':>12} {'added / ratio':>15}"
    for key, scen in agg.items():
        lines += ["", TITLES.get(key, key), header, "-" * len(header)]
        for path, row in scen["metrics"].items():
            kind = row["kind"]
            extra = ""
            if row.get("ratio") is not None:
                extra = f"x{row['ratio']:.3f}"
            elif row.get("added") is not None:
                extra = f"{row['added']:+,.1f}" if kind == "time" else f"{row['added']:+.0f}"
            lines.append(
                f"{row['label']:{w}} {_fmt(row['direct'], kind, path):>12} "
                f"{_fmt(row['gateway'], kind, path):>12} {extra:>15}"
            )
        bad = {
            t: v
            for t, v in scen["totals"].items()
            if any(v[k] for k in ("errors", "timed_out", "incomplete_streams", "failed_runs"))
        }
        for t, v in bad.items():
            lines.append(f"  ! {t}: {v}")
        for t, v in scen["totals"].items():
            if v.get("cache_hits"):
                lines.append(f"  ! {t}: {v['cache_hits']} responses had x-cache: HIT")
            if v.get("max_other_cpu_busy", 0) > 0.2:
                lines.append(
                    f"  ! {t}: other processes took up to {v['max_other_cpu_busy']:.0%} of a core "
                    "on the cores in use during a run: noisy"
                )
            if t == "gateway" and v.get("max_core1_busy", 0) > 0.9:
                lines.append(
                    "  ! core 1 (driver + fake) was >90% busy during a gateway run: "
                    "the gateway number is a floor"
                )
    lines += ["", "Gateway process"]
    for k, label, unit in (
        ("cold_start_ms", "cold start: spawn → first 200", "ms"),
        ("idle_rss_mb", "idle RSS (after warm-up)", "MB"),
        ("peak_rss_mb", "peak RSS (VmHWM at end)", "MB"),
        ("max_rss_during_paced_mb", "max RSS sampled during 1,000 streams", "MB"),
    ):
        v = proc.get(k)
        lines.append(
            f"  {label:{w - 2}} {_fmt(v if isinstance(v, int | float) else None):>12} {unit}"
        )
    lines += ["", "Targets"]
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "pending"}[t["pass"]]
        lines.append(
            f"  {t['name']:{w - 2}} {_fmt(t['value']):>12} {t['op']} {t['limit']:g} {t['unit']:<9} {verdict}"
        )
    return "\n".join(lines)
