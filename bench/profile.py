"""Where usbprintd spends its CPU under one benchmark load, function by function.

    .venv/bin/python bench/profile.py small            # 10000 x 4 KiB jobs, py-spy
    .venv/bin/python bench/profile.py slow --mib 64    # one job into the 8 MiB/s FIFO
    .venv/bin/python bench/profile.py small --cprofile # deterministic, with call counts

py-spy samples the running daemon without pausing it, counting only samples where Python code
holds the GIL (the interpreter's own CPU; kernel time shows as "system" in the first line);
--cprofile runs the daemon under cProfile instead (slower, but exact call counts).
Prints the top functions by own time and by inclusive time; the raw profile stays in
bench/results/profile/.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clients import SlowPrinter, send_job, small_jobs
from bench.isolation import enter_namespace
from bench.procstat import MIB, user_system_seconds
from bench.servers import REPO, Printer, Usbprintd

OUT = REPO / "bench" / "results" / "profile"
PORT = 9100


def run_load(args: argparse.Namespace, workdir: Path, server: Usbprintd,
             on_started: Callable[[Usbprintd], None] = lambda server: None) -> str:
    """Start the daemon on the load's sink, drive it, say what it cost (user and kernel CPU)."""
    with contextlib.ExitStack() as stack:
        sink = None
        if args.load == "slow":
            sink = stack.enter_context(SlowPrinter(str(workdir / "slow.fifo"), args.rate * MIB))
        server.start([Printer(sink.path if sink else "/dev/null", PORT)])
        on_started(server)
        time.sleep(0.5)
        user, system = user_system_seconds(server.pids[0])
        started = time.perf_counter()
        if args.load == "small":
            small_jobs(PORT, args.jobs, 4096)
            what, amount, unit = f"{args.jobs} jobs of 4 KiB", args.jobs / 1000, "ms/job"
        else:
            send_job(PORT, args.mib * MIB)
            if sink is not None:
                sink.wait_consumed(args.mib * MIB, timeout=60)
            target = f"a FIFO read at {args.rate:g} MiB/s" if sink else "/dev/null"
            what, amount, unit = f"{args.mib} MiB into {target}", args.mib / 1024, "s/GiB"
        elapsed = time.perf_counter() - started
        user_after, system_after = user_system_seconds(server.pids[0])
    return (f"{what} in {elapsed:.2f} s; server CPU {(user_after - user) / amount:.3g} {unit} "
            f"user + {(system_after - system) / amount:.3g} {unit} system")


def with_py_spy(args: argparse.Namespace, workdir: Path) -> tuple[str, Path]:
    raw = OUT / f"{args.load}.pyspy.txt"
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spies: list[subprocess.Popen[bytes]] = []

    def attach(server: Usbprintd) -> None:
        spies.append(subprocess.Popen(
            [py_spy, "record", "--pid", str(server.pids[0]), "--rate", str(args.rate_hz),
             "--nonblocking", "--function", "--format", "raw", "--output", str(raw),
             *(() if args.all_samples else ("--gil",))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy needs a moment to attach

    with Usbprintd(workdir) as server:
        description = run_load(args, workdir, server, on_started=attach)
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    return description, raw


def with_cprofile(args: argparse.Namespace, workdir: Path) -> tuple[str, Path]:
    stats = OUT / f"{args.load}.cprofile"
    with Usbprintd(workdir, python_args=("-m", "cProfile", "-o", str(stats))) as server:
        description = run_load(args, workdir, server)
    return description, stats


def summarise_collapsed(path: Path, top: int) -> str:
    """Own and inclusive share of the busy samples per function, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "| Own % | Inclusive % | Function |", "|---:|---:|---|"]
    for frame, count in own.most_common(top):
        lines.append(f"| {100 * count / total:.1f} | {100 * inclusive[frame] / total:.1f} "
                     f"| {frame} |")
    lines += ["", "| Inclusive % | Function |", "|---:|---|"]
    for frame, count in inclusive.most_common(top):
        lines.append(f"| {100 * count / total:.1f} | {frame} |")
    return "\n".join(lines)


def summarise_cprofile(path: Path, top: int) -> str:
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    lines = [f"{total:.2f} s profiled", "", "| Own % | Inclusive s | Calls | Function |",
             "|---:|---:|---:|---|"]
    for (filename, line, name), (_, calls, own, cumulative, _) in rows[:top]:
        where = f"{Path(filename).name}:{line}" if line else filename
        lines.append(f"| {100 * own / total:.1f} | {cumulative:.2f} | {calls} | {name} ({where}) |")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("load", choices=("small", "slow", "bulk"))
    parser.add_argument("--jobs", type=int, default=10_000, help="small: number of jobs")
    parser.add_argument("--mib", type=int, default=64, help="slow/bulk: job size")
    parser.add_argument("--rate", type=float, default=8.0, help="slow: consumer MiB/s")
    parser.add_argument("--rate-hz", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--all-samples", action="store_true",
                        help="py-spy: count samples outside the GIL too (blocking syscalls, "
                             "preemption); default: only Python code holding the GIL")
    parser.add_argument("--cprofile", action="store_true", help="cProfile instead of py-spy")
    parser.add_argument("--top", type=int, default=25)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if (code := enter_namespace(Path(__file__), argv)) is not None:
        return code
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="usbprintd-profile-"))
    try:
        if args.cprofile:
            description, path = with_cprofile(args, workdir)
            summary = summarise_cprofile(path, args.top)
        else:
            description, path = with_py_spy(args, workdir)
            summary = summarise_collapsed(path, args.top)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{description}\nprofile: {path.relative_to(REPO)}\n\n{summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
