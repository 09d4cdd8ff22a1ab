"""usbprintd against Debian's p910nd: same sinks, same clients, same run, servers alternating.

    make bench                       # full run, a few minutes
    make bench BENCH_ARGS=--quick    # 1-2 minute smoke run
    .venv/bin/python bench/run.py --help

Runs inside a private network and mount namespace (unshare) so that ports 9100-9107 and
p910nd's lock directory cannot collide with anything else on the machine. Prints a Markdown
table (medians, min-max, usbprintd/p910nd ratios, targets) and writes bench/results/latest.json,
latest.md and latest.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clients import JobError, SlowPrinter
from bench.isolation import enter_namespace
from bench.latency import latency_markdown, load_latencies
from bench.plot import write_png
from bench.scenarios import (
    Measurements,
    Settings,
    define_figures,
    fleet_run,
    main_run,
    slow_run,
    slow_sink_path,
    web_run,
)
from bench.servers import REPO, P910nd, Server, ServerError, Usbprintd, ensure_p910nd
from bench.stats import BASELINE, SUBJECT, markdown_table

RESULTS = REPO / "bench" / "results"
PHASES = ("main", "slow", "fleet", "web")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- runs --------------------------------------------------------------------------------------


def usbprintd_runnable() -> str:
    """'' when `python -m usbprintd run --help` works, else why not."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-m", "usbprintd", "run", "--help"], env=env,
                            capture_output=True, text=True, check=False)
    return "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["?"])[-1]


class Bench:
    def __init__(self, settings: Settings, servers: list[str], workdir: Path,
                 p910nd_binary: str | None) -> None:
        self.settings = settings
        self.servers = servers
        self.workdir = workdir
        self.p910nd_binary = p910nd_binary
        self.figures = define_figures(settings)
        self.failures: list[str] = []
        self.notes: list[str] = []

    def make_server(self, kind: str) -> Server:
        if kind == SUBJECT:
            return Usbprintd(self.workdir)
        assert self.p910nd_binary
        return P910nd(self.workdir, self.p910nd_binary)

    def record(self, kind: str, values: Measurements) -> None:
        for key, value in values.items():
            self.figures[key].add(kind, value)

    def run_one(self, phase: str, rep: int, kind: str,
                scenario: Callable[[Server], Measurements]) -> bool:
        label = f"{phase} {rep + 1}/{self.reps_for(phase)} {kind}"
        started = time.monotonic()
        try:
            with self.make_server(kind) as server:
                values = scenario(server)
        except (ServerError, JobError, OSError) as err:
            message = f"{label}: {err}"
            self.failures.append(message.splitlines()[0])
            log(f"FAILED {message}")
            return False
        self.record(kind, values)
        shown = ", ".join(f"{k}={v:.3g}" for k, v in values.items() if v is not None)
        log(f"{label} ({time.monotonic() - started:.1f} s): {shown}")
        return True

    def reps_for(self, phase: str) -> int:
        return self.settings.slow_reps if phase == "slow" else self.settings.reps

    def run_phase(self, phase: str) -> None:
        s = self.settings
        if phase == "web":
            if SUBJECT not in self.servers:
                return
            for rep in range(s.reps):
                if not self.run_one(phase, rep, SUBJECT, lambda srv: web_run(srv, s)):
                    self.notes.append("web page figures missing: usbprintd did not serve it")
                    return
            return
        if phase == "slow":
            with SlowPrinter(slow_sink_path(self.workdir), s.slow_rate_mib * 2**20) as sink:
                self._alternate(phase, lambda srv: slow_run(srv, s, sink))
            return
        scenario = {"main": main_run, "fleet": fleet_run}[phase]
        self._alternate(phase, lambda srv: scenario(srv, s))

    def _alternate(self, phase: str, scenario: Callable[[Server], Measurements]) -> None:
        for rep in range(self.reps_for(phase)):
            for kind in self.servers:  # A B A B ...
                self.run_one(phase, rep, kind, scenario)


def machine_info(p910nd_binary: str | None) -> dict[str, object]:
    def output(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False,
                                  cwd=REPO).stdout.strip()
        except OSError:
            return ""

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    dirty = "-dirty" if output("git", "status", "--porcelain", "--", "src") else ""
    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "usbprintd_commit": output("git", "rev-parse", "--short", "HEAD") + dirty,
        "p910nd_package": output("dpkg-query", "-W", "-f", "${Version}", "p910nd"),
        "p910nd_binary": p910nd_binary,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


# --- output ------------------------------------------------------------------------------------


def render(bench: Bench, info: dict[str, object], latency_text: str) -> str:
    s = bench.settings
    lines = [
        f"## usbprintd vs p910nd — {info['started']}",
        "",
        f"Machine: {info['cpu']} x {info['cpus']}, Linux {info['kernel']}, Python "
        f"{info['python']}, usbprintd {info['usbprintd_commit']}, p910nd "
        f"{info['p910nd_package']}; load average at start {' '.join(info['loadavg_start'])}. "
        f"Loopback in a private network namespace; {s.reps} runs per figure "
        f"({s.slow_reps} for the slow consumer), servers alternating. Ratios are "
        f"{SUBJECT}/{BASELINE} of the medians.",
        "",
        markdown_table(list(bench.figures.values())),
        "",
        latency_text,
    ]
    if bench.notes or bench.failures:
        lines += ["", "Notes:"] + [f"- {n}" for n in bench.notes + bench.failures]
    return "\n".join(lines) + "\n"


def write_results(bench: Bench, info: dict[str, object], text: str, latencies) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": info,
        "settings": asdict(bench.settings),
        "servers": bench.servers,
        "figures": {key: figure.as_dict() for key, figure in bench.figures.items()},
        "latency": latencies.as_dict() if latencies else {"status": "not measured in this run"},
        "notes": bench.notes,
        "failures": bench.failures,
    }
    (RESULTS / "latest.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "latest.md").write_text(text)
    png = RESULTS / "latest.png"
    title = f"usbprintd vs p910nd, {info['started']} ({info['usbprintd_commit']})"
    if not write_png(list(bench.figures.values()), png, title):
        png.unlink(missing_ok=True)
        log("matplotlib not available: no PNG (pip install -e '.[bench]')")


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1-2 minute smoke run")
    defaults = Settings()
    for field in fields(Settings):
        option = "--" + field.name.replace("_", "-")
        parser.add_argument(option, type=type(getattr(defaults, field.name)), default=None,
                            help=f"default {getattr(defaults, field.name)} "
                                 f"(quick: {getattr(Settings.quick(), field.name)})")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--servers", default=f"{SUBJECT},{BASELINE}",
                        help="comma-separated, in alternation order")
    parser.add_argument("--no-namespace", action="store_true",
                        help="use the host's loopback and /run/lock (ports 9100-9107 must be free)")
    parser.add_argument("--keep-work", action="store_true", help="keep server logs and configs")
    return parser.parse_args(argv)


def build_settings(args: argparse.Namespace) -> Settings:
    base = Settings.quick() if args.quick else Settings()
    overrides = {f.name: getattr(args, f.name) for f in fields(Settings)
                 if getattr(args, f.name) is not None}
    return Settings(**{**asdict(base), **overrides})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    p910nd_binary = ensure_p910nd() if BASELINE in servers else None
    if not args.no_namespace and (code := enter_namespace(Path(__file__), argv)) is not None:
        return code
    return run(args, servers, p910nd_binary)


def run(args: argparse.Namespace, servers: list[str], p910nd_binary: str | None) -> int:
    settings = build_settings(args)
    workdir = Path(tempfile.mkdtemp(prefix="usbprintd-bench-"))
    info = machine_info(p910nd_binary)
    info["started"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    bench = Bench(settings, servers, workdir, p910nd_binary)
    if SUBJECT in servers and (why := usbprintd_runnable()):
        bench.notes.append(f"usbprintd not measured: `usbprintd run` does not work yet ({why})")
        bench.servers = [s for s in servers if s != SUBJECT]
    started = time.monotonic()
    try:
        for phase in [p for p in args.phases.split(",") if p]:
            log(f"phase {phase}")
            bench.run_phase(phase)
    except KeyboardInterrupt:
        bench.notes.append("interrupted: partial results")
    except Exception:
        bench.notes.append("aborted by an error: partial results")
        traceback.print_exc()
    finally:
        if args.keep_work:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info["duration_s"] = round(time.monotonic() - started, 1)
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    latencies = load_latencies()
    text = render(bench, info, latency_markdown(latencies))
    print(text)
    write_results(bench, info, text, latencies)
    log(f"done in {info['duration_s']} s; results in {RESULTS.relative_to(REPO)}/latest.*")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
