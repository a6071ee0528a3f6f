"""The benchmark, in one command: the gateway against a direct call to the same fake upstream.

    uv run python bench/run.py [--quick] [--out bench/results/latest.json]

Starts the fake upstream (``taskset -c 1``) and the gateway (``taskset -c 0``, one worker),
waits until both answer, then runs every scenario first direct, then through the gateway,
``--repeats`` times (3; ``--quick``: 1 with smaller counts), and reports the medians of the
runs.  The driver is this process, pinned to core 1 beside the fake, so both paths share the
same client and upstream and differ only by the gateway hop.  Everything is bounded: a global
``--timeout``, a watchdog that hard-kills the children, and every child is killed on exit,
exception, Ctrl-C or SIGTERM.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procs
from bench.driver import Pool, Workload, build_request
from bench.report import aggregate, check_targets, table

HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
ROOT = Path(__file__).resolve().parent.parent
DRIVER_CORE, FAKE_CORE, GATEWAY_CORE = 1, 1, 0
PACED_MS = 50
WORKDIRS: list[Path] = []
# "authorization: Bearer ...\r\n" for the gateway when --access needs a key.
AUTH_HEADER = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    concurrency: int
    stream: bool
    max_tokens: int
    total: int
    duration_s: float
    warmup: int = 0
    paced_ms: float = 0.0
    ramp_s: float = 0.0


def scenarios(quick: bool) -> list[Scenario]:
    if quick:
        return [
            Scenario("lat_c1", 1, False, 16, 500, 10, warmup=100),
            Scenario("tput_c64", 64, False, 16, 10**9, 2.0, warmup=256),
            Scenario("ttft_c1", 1, True, 50, 200, 5, warmup=20),
            Scenario("burst_c64", 64, True, 50, 10**9, 2.0, warmup=128),
            Scenario("paced_1000", 1000, True, 20, 10**9, 3.0, paced_ms=PACED_MS, ramp_s=1.0),
        ]
    return [
        Scenario("lat_c1", 1, False, 16, 2_000, 20, warmup=200),
        Scenario("tput_c64", 64, False, 16, 10**9, 6.0, warmup=640),
        Scenario("ttft_c1", 1, True, 50, 500, 10, warmup=50),
        Scenario("burst_c64", 64, True, 50, 10**9, 6.0, warmup=256),
        Scenario("paced_1000", 1000, True, 20, 10**9, 6.0, paced_ms=PACED_MS, ramp_s=1.0),
    ]


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # "direct" | "gateway"
    port: int
    model: str
    paced_model: str
    headers: tuple[tuple[str, str], ...] = ()


def request_body(model: str, scen: Scenario) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a benchmark."},
            {"role": "user", "content": "Say hello."},
        ],
        "max_tokens": scen.max_tokens,
    }
    if scen.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def workload(target: Target, scen: Scenario) -> Workload:
    model = target.paced_model if scen.paced_ms else target.model
    # no-store: measure the full path, never the gateway's response cache
    headers = {"cache-control": "no-store", **dict(target.headers)}
    req = build_request(HOST, target.port, PATH, request_body(model, scen), headers)
    return Workload(
        req,
        stream=scen.stream,
        expected_chunks=scen.max_tokens if scen.stream else None,
        interval_ms=scen.paced_ms,
    )


# Processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def child_env(config: Path) -> dict[str, str]:
    """The runner's environment without provider keys (no real provider may wake up)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["LLM_GATEWAY_CONFIG"] = str(config)
    env.pop("LLM_GATEWAY_ENV", None)
    return env


ADMIN_KEY = "bench-admin-key"


def access_config(access: str, workdir: Path) -> str:
    """Config lines for --access: open (no keys; the ledger still records every call),
    keys (a key with limits and a budget, in-process counters), keys-redis (on Redis)."""
    lines = f"storage: {{url: 'sqlite:///{workdir}/gateway.db'}}\n"
    if access != "open":
        lines += f"auth: {{admin_key: {ADMIN_KEY}}}\n"
    if access == "keys-redis":
        lines += f"redis: {{url: 'redis://127.0.0.1:6379/0', prefix: bench-{os.getpid()}}}\n"
    return lines


async def create_bench_key(workdir: Path) -> str:
    """A key whose limits and budget are checked on every call but never reached."""
    from llm_gateway.gate.keys import mint_key
    from llm_gateway.storage import open_storage

    secret, key = mint_key("bench", rpm=10**9, tpm=10**12, budget=10.0**9)

    async def store() -> None:
        storage = open_storage(f"sqlite:///{workdir}/gateway.db")
        await storage.start()
        try:
            await storage.add_key(key)
        finally:
            await storage.aclose()

    await store()
    return secret


def write_config(
    workdir: Path, upstream_port: int, max_connections: int | None, access: str = "open"
) -> Path:
    path = workdir / "bench-gateway.yaml"
    extra = f", max_connections: {max_connections}" if max_connections else ""
    path.write_text(
        access_config(access, workdir) + "providers:\n"
        f"  fake: {{type: openai_compatible, base_url: http://{HOST}:{upstream_port}/v1{extra}}}\n"
        "models:\n"
        "  bench: {routes: [{provider: fake, model: bench-model}]}\n"
        f"  bench-paced: {{routes: [{{provider: fake, model: bench-model-paced-{PACED_MS}}}]}}\n"
    )
    return path


def default_gateway_cmd() -> str:
    script = Path(sys.executable).parent / "llm-gateway"
    exe = (
        shlex.quote(str(script))
        if script.exists()
        else f"{shlex.quote(sys.executable)} -m llm_gateway"
    )
    return exe + " serve --config {config} --host {host} --port {port}"


class GatewayError(RuntimeError):
    pass


class Gateway:
    """One gateway process, pinned to core 0, logging to a file in the work dir."""

    def __init__(self, template: str, config: Path, workdir: Path, pin: bool) -> None:
        self.port = free_port()
        self.cmd = shlex.split(template.format(config=config, host=HOST, port=self.port))
        self.config = config
        self.workdir = workdir
        self.pin = pin
        self.log_path = workdir / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout_s: float) -> float:
        """Spawn and wait for the first 200 from /v1/chat/completions; returns ms taken."""
        body = json.dumps(
            {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        ).encode()
        t0 = time.perf_counter()
        self.proc = self._spawn()
        deadline = t0 + timeout_s
        last = ""
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise GatewayError(f"gateway exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                status, payload = await procs.http_once(
                    HOST, self.port, "POST", PATH, body, 5.0, AUTH_HEADER
                )
                if status == 200:
                    return (time.perf_counter() - t0) * 1000.0
                last = f"HTTP {status}: {payload[:300]!r}"
            except (OSError, TimeoutError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.005)
        self.stop()
        raise GatewayError(f"gateway not ready in {timeout_s:.0f} s ({last})\n{self.log_tail()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "wb") as log:
            return procs.spawn(
                procs.pinned(self.cmd, GATEWAY_CORE if self.pin else None),
                cwd=self.workdir,
                env=child_env(self.config),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            procs.kill(self.proc)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def start_fake(pin: bool, max_s: float) -> tuple[subprocess.Popen[bytes], int]:
    cmd = [sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", "0"]
    cmd += ["--max-seconds", str(int(max_s))]
    proc = procs.spawn(procs.pinned(cmd, FAKE_CORE if pin else None), stdout=subprocess.PIPE)
    line = procs.read_line(proc, 20.0)
    if not line.startswith("FAKE_UPSTREAM_READY"):
        procs.kill(proc)
        raise RuntimeError(f"fake upstream did not start: {line!r}")
    return proc, int(line.split()[1])


# Measurement ----------------------------------------------------------------------------


async def sample_rss(pid: int, stop: asyncio.Event, out: list[int]) -> None:
    while not stop.is_set():
        out.append(procs.tree_kb(pid, "VmRSS"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def measure(
    target: Target,
    scen: Scenario,
    fake_pid: int,
    gateway: Gateway | None,
    pinned_run: bool,
) -> dict[str, Any]:
    work = workload(target, scen)
    pool = Pool(HOST, target.port, scen.concurrency)
    try:
        await pool.connect()
        if scen.warmup:
            await pool.run(work, total=scen.warmup, duration_s=10.0)
        server_pid = gateway.proc.pid if gateway is not None and gateway.proc else fake_pid
        fake0, server0 = procs.tree_cpu_s(fake_pid), procs.tree_cpu_s(server_pid)
        busy0 = procs.core_busy_s()
        rss: list[int] = []
        stop = asyncio.Event()
        sampler = None
        if gateway is not None and scen.paced_ms:
            sampler = asyncio.create_task(sample_rss(server_pid, stop, rss))
        res = await pool.run(
            work,
            total=scen.total,
            duration_s=scen.duration_s,
            ramp_s=scen.ramp_s,
            collect_gaps=bool(scen.paced_ms),
        )
        stop.set()
        if sampler is not None:
            await sampler
        fake_cpu = procs.tree_cpu_s(fake_pid) - fake0
        server_cpu = procs.tree_cpu_s(server_pid) - server0
        busy1 = procs.core_busy_s()
    finally:
        pool.close()
    out = res.to_dict()
    ok = max(1, res.ok)
    out["chunks_per_s"] = res.chunks / res.wall_s
    out["fake_cpu_s"] = fake_cpu
    out["server_cpu_s"] = server_cpu  # the gateway's, or the fake's on the direct path
    out["server_cpu_us_per_req"] = server_cpu / ok * 1e6
    out["fake_cpu_us_per_req"] = fake_cpu / ok * 1e6
    out["driver_cpu_us_per_req"] = res.driver_cpu_s / ok * 1e6
    # CPU ticks are 10 ms: the busy fraction means something only for longer runs
    out["core1_busy"] = (res.driver_cpu_s + fake_cpu) / res.wall_s if res.wall_s > 0.5 else None
    # CPU that neither the driver, the fake nor the gateway used: other load on the cores we
    # use (core 1 always; core 0 only matters when the gateway runs there)
    other = None
    if res.wall_s > 0.5 and pinned_run:
        delta = {c: busy1.get(c, 0.0) - busy0.get(c, 0.0) for c in busy1}
        other = max(0.0, delta.get(DRIVER_CORE, 0.0) - res.driver_cpu_s - fake_cpu)
        if gateway is not None:
            other += max(0.0, delta.get(GATEWAY_CORE, 0.0) - server_cpu)
        other /= res.wall_s
    out["other_cpu_busy"] = other
    if rss:
        out["max_rss_kb"] = max(rss)
    return out


def brief(res: dict[str, Any]) -> str:
    if "error" in res:
        return f"ERROR {res['error']}"
    parts = [
        f"ok={res['ok']}",
        f"err={res['errors'] + res['timed_out'] + res['incomplete_streams']}",
    ]
    parts.append(f"rate={res['rate']:,.0f}/s")
    parts.append(f"p50={res['latency_us']['p50']:,.0f}µs p99={res['latency_us']['p99']:,.0f}µs")
    if res.get("ttft_us"):
        parts.append(f"ttft50={res['ttft_us']['p50']:,.0f}µs")
    if res.get("gap_us"):
        parts.append(f"gap99={res['gap_us']['p99']:,.0f}µs stalled={res['stalled_streams']}")
    if res["core1_busy"] is not None:
        parts.append(f"core1={res['core1_busy']:.0%}")
    if res.get("other_cpu_busy") is not None:
        parts.append(f"other={res['other_cpu_busy']:.0%}")
    return " ".join(parts)


async def warm_gateway(gw: Gateway, api_key: str | None = None) -> None:
    """A few hundred requests of each kind so lazy imports and pools exist before 'idle'."""
    auth = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    target = Target("gateway", gw.port, "bench", "bench-paced", auth)
    for scen in (Scenario("w", 8, False, 16, 400, 5), Scenario("w", 8, True, 50, 100, 5)):
        pool = Pool(HOST, gw.port, scen.concurrency)
        try:
            await pool.run(workload(target, scen), total=scen.total, duration_s=scen.duration_s)
        finally:
            pool.close()


async def check_gateway_shape(gw: Gateway) -> list[str]:
    """Sanity: the gateway passes the fake's answer through (content and usage)."""
    problems = []
    body = json.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    ).encode()
    status, payload = await procs.http_once(HOST, gw.port, "POST", PATH, body, 5.0, AUTH_HEADER)
    try:
        obj = json.loads(payload)
        content = obj["choices"][0]["message"]["content"]
        if content != "Hello from the benchmark fake upstream.":
            problems.append(f"non-stream content differs: {content!r}")
        if obj.get("usage", {}).get("completion_tokens") != 16:
            problems.append(f"non-stream usage differs: {obj.get('usage')!r}")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        problems.append(f"non-stream answer unreadable (HTTP {status}): {exc!r} {payload[:200]!r}")
    return problems


def raise_nofile(want: int = 8192) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(max(soft, want), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def set_nice(value: int) -> int:
    """Raise this process's priority (inherited by the children) to keep other load out."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, value)
    return os.getpriority(os.PRIO_PROCESS, 0)


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + args.timeout
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {DRIVER_CORE})
    nofile = raise_nofile()
    meta_nice = set_nice(args.nice)
    scens = scenarios(args.quick)
    if args.scenarios:
        wanted = set(args.scenarios.split(","))
        scens = [s for s in scens if s.key in wanted]
    max_conc = max((s.concurrency for s in scens), default=1)
    if nofile < 2 * max_conc + 64:
        print(
            f"warning: open-file limit {nofile} is low for {max_conc} connections", file=sys.stderr
        )
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="llm-gw-bench-"))
    WORKDIRS.append(workdir)
    meta: dict[str, Any] = {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": git_rev(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "pinning": {"gateway": GATEWAY_CORE, "fake": FAKE_CORE, "driver": DRIVER_CORE}
        if pin
        else None,
        "loadavg_at_start": os.getloadavg(),
        "nice": meta_nice,
        "repeats": repeats,
        "quick": args.quick,
        "scenarios": [asdict(s) for s in scens],
    }
    proc_info: dict[str, Any] = {"status": "not run"}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s.key: {"direct": [], "gateway": []} for s in scens
    }
    gateway: Gateway | None = None
    try:
        fake, fake_port = start_fake(pin, args.timeout + 60)
        status, _ = await procs.http_once(HOST, fake_port, "GET", "/v1/models")
        if status != 200:
            raise RuntimeError(f"fake upstream /v1/models answered {status}")
        print(
            f"fake upstream on {HOST}:{fake_port} (pid {fake.pid}, core {FAKE_CORE if pin else '-'})"
        )
        config = write_config(workdir, fake_port, args.upstream_max_connections, args.access)
        if args.access != "open":
            global AUTH_HEADER
            args.api_key = await create_bench_key(workdir)
            AUTH_HEADER = f"authorization: Bearer {args.api_key}\r\n"
        meta["access"] = args.access
        meta["gateway_config"] = config.read_text()
        meta["gateway_cmd"] = args.gateway_cmd or default_gateway_cmd()
        if not args.no_gateway:
            try:
                colds = []
                for i in range(args.cold_starts or (1 if args.quick else 3)):
                    gw = Gateway(meta["gateway_cmd"], config, workdir, pin)
                    colds.append(await gw.start(args.startup_timeout))
                    print(f"gateway cold start #{i + 1}: {colds[-1]:.0f} ms")
                    if gateway is not None:
                        gateway.stop()
                    gateway = gw
                assert gateway is not None and gateway.proc is not None
                proc_info = {"status": "ok", "cold_start_ms_runs": colds}
                proc_info["cold_start_ms"] = sorted(colds)[len(colds) // 2]
                proc_info["shape_problems"] = await check_gateway_shape(gateway)
                await warm_gateway(gateway, args.api_key)
                await asyncio.sleep(1.0)
                proc_info["idle_rss_mb"] = procs.tree_kb(gateway.proc.pid, "VmRSS") / 1024
                print(
                    f"gateway on {HOST}:{gateway.port} (pid {gateway.proc.pid}, core "
                    f"{GATEWAY_CORE if pin else '-'}), idle RSS {proc_info['idle_rss_mb']:.1f} MB"
                )
                for p in proc_info["shape_problems"]:
                    print(f"  ! {p}")
            except GatewayError as exc:
                gateway = None
                proc_info = {"status": "unavailable", "error": str(exc)}
                print(f"gateway unavailable, running direct only:\n{exc}", file=sys.stderr)
        targets = [Target("direct", fake_port, "bench-model", f"bench-model-paced-{PACED_MS}")]
        if gateway is not None:
            auth = (("authorization", f"Bearer {args.api_key}"),) if args.api_key else ()
            targets.append(Target("gateway", gateway.port, "bench", "bench-paced", auth))
        for r in range(repeats):
            for scen in scens:
                for target in targets:
                    budget = scen.duration_s + scen.ramp_s + 15
                    if time.monotonic() + budget > deadline:
                        print(
                            f"[{r + 1}/{repeats}] {scen.key} {target.name}: skipped (time budget)"
                        )
                        meta["truncated"] = True
                        continue
                    via = gateway if target.name == "gateway" else None
                    if via is not None and not via.alive():
                        res: dict[str, Any] = {"error": "gateway process died"}
                    else:
                        try:
                            res = await measure(target, scen, fake.pid, via, pin)
                        except (OSError, TimeoutError) as exc:
                            res = {"error": repr(exc)}
                    runs[scen.key][target.name].append(res)
                    print(
                        f"[{r + 1}/{repeats}] {scen.key:<10} {target.name:<7} {brief(res)}",
                        flush=True,
                    )
        if gateway is not None and gateway.proc is not None:
            proc_info["peak_rss_mb"] = procs.tree_kb(gateway.proc.pid, "VmHWM") / 1024
            sampled = [
                r["max_rss_kb"]
                for r in runs.get("paced_1000", {}).get("gateway", [])
                if "max_rss_kb" in r
            ]
            if sampled:
                proc_info["max_rss_during_paced_mb"] = max(sampled) / 1024
            if not gateway.alive():
                proc_info["died"] = gateway.log_tail()
    finally:
        if gateway is not None:
            gateway.stop()
        procs.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
    agg = aggregate(runs)
    targets_out = check_targets(agg, proc_info)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["loadavg_at_end"] = os.getloadavg()
    print(table(agg, proc_info, targets_out))
    print(f"\n(medians of {repeats} run(s); elapsed {meta['elapsed_s']} s)")
    return {
        "meta": meta,
        "gateway_process": proc_info,
        "summary": agg,
        "targets": targets_out,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Gateway vs direct benchmark (see docs/performance.md)"
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat, small counts (≤ ~90 s)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument(
        "--gateway-cmd",
        default=None,
        help="server command template with {config} {host} {port}; LLM_GATEWAY_CONFIG is also "
        "set (default: llm-gateway serve --config {config} --host {host} --port {port})",
    )
    parser.add_argument(
        "--upstream-max-connections",
        type=int,
        default=None,
        help="set the fake provider's max_connections in the gateway config (default: unset)",
    )
    parser.add_argument("--no-gateway", action="store_true", help="direct only (harness check)")
    parser.add_argument("--api-key", default=None, help="bearer key for the gateway, if not open")
    parser.add_argument(
        "--access",
        choices=("open", "keys", "keys-redis"),
        default="open",
        help="open: no keys (ledger on); keys: a key with limits and budget, in-process "
        "counters; keys-redis: the same on Redis (default: open)",
    )
    parser.add_argument("--scenarios", default=None, help="comma list: lat_c1,tput_c64,ttft_c1,...")
    parser.add_argument("--cold-starts", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="priority for the driver, fake and gateway (default -10 if permitted: other "
        "work on the machine then preempts them less)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not taskset the processes")
    parser.add_argument(
        "--timeout", type=float, default=None, help="global limit, s (420; quick 150)"
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 150.0 if args.quick else 420.0

    def abort(code: int, why: str) -> None:
        """Kill every child by its id, drop the work dir, and leave at once."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        print(f"\n{why}: stopping the children", file=sys.stderr, flush=True)
        procs.kill_all()
        for d in WORKDIRS:
            shutil.rmtree(d, ignore_errors=True)
        os._exit(code)

    watchdog = threading.Timer(
        args.timeout + 30.0, abort, (124, f"watchdog: global timeout {args.timeout:.0f} s exceeded")
    )
    watchdog.daemon = True
    watchdog.start()

    def on_signal(signum: int, _frame: object) -> None:
        abort(128 + signum, f"interrupted by {signal.Signals(signum).name}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        import uvloop

        doc = uvloop.run(asyncio.wait_for(amain(args), args.timeout + 20.0))
    except TimeoutError:
        print(f"\nglobal timeout {args.timeout:.0f} s exceeded", file=sys.stderr)
        return 124
    finally:
        procs.kill_all()
        watchdog.cancel()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
