"""Run every atheris harness in this directory, one after the other (`make fuzz`).

Each harness fuzzes for --seconds (FUZZ_SECONDS in make) in one process, starting from its
committed seeds (seeds/<family>/) plus what earlier runs found (corpus/<family>/, where new
inputs are kept). A crash, a failed check, a hang (-timeout) or a memory blow-up is written to
crashes/<family>-<kind>-<hash>; the run then fails. crashes/, corpus/ and logs/ are git-ignored.
Reproduce one input with `.venv/bin/python tests/fuzz/fuzz_<family>.py <file>`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import scratch_path

HERE = Path(__file__).resolve().parent
CRASHES, CORPUS, LOGS, SEEDS = (HERE / name for name in ("crashes", "corpus", "logs", "seeds"))
HANG_SECONDS = 10  # one input running longer than this is reported as a hang
STATUS_LINE = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
STAT = re.compile(r"stat::(\w+):\s+(\d+)")


@dataclass
class Outcome:
    family: str
    returncode: int
    stats: dict[str, int] = field(default_factory=dict)
    coverage: tuple[str, ...] = ("?", "?", "?")  # cov, ft, corpus entries
    findings: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.returncode != 0 or bool(self.findings)


def run_one(harness: Path, seconds: int, extra: list[str]) -> Outcome:
    family = harness.stem.removeprefix("fuzz_")
    corpus = CORPUS / family
    for directory in (corpus, CRASHES, LOGS):
        directory.mkdir(parents=True, exist_ok=True)
    before = set(CRASHES.glob(f"{family}-*"))
    log = LOGS / f"{family}.log"
    command = [sys.executable, str(harness), str(corpus), str(SEEDS / family),
               f"-max_total_time={seconds}", f"-timeout={HANG_SECONDS}",
               f"-artifact_prefix={CRASHES}/{family}-", "-print_final_stats=1", *extra]
    print(f"fuzzing {family} for {seconds} s (log: {log.relative_to(HERE.parents[1])})",
          flush=True)
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            returncode = process.wait(timeout=seconds + 120)
        except subprocess.TimeoutExpired:
            process.kill()
            returncode = process.wait()
    shutil.rmtree(scratch_path(harness.stem, process.pid), ignore_errors=True)
    text = log.read_text(errors="replace")
    outcome = Outcome(family, returncode, findings=sorted(set(CRASHES.glob(f"{family}-*"))
                                                          - before))
    outcome.stats = {name: int(value) for name, value in STAT.findall(text)}
    statuses = STATUS_LINE.findall(text)
    if statuses:
        outcome.coverage = statuses[-1][1:4]
    return outcome


def report(outcomes: list[Outcome]) -> None:
    print(f"\n{'harness':<16}{'runs':>10}{'exec/s':>8}{'cov':>6}{'ft':>7}{'corpus':>8}  result")
    for o in outcomes:
        result = "FAILED" if o.failed else "ok"
        print(f"{o.family:<16}{o.stats.get('number_of_executed_units', 0):>10}"
              f"{o.stats.get('average_exec_per_sec', 0):>8}{o.coverage[0]:>6}{o.coverage[1]:>7}"
              f"{o.coverage[2]:>8}  {result}")
    for o in outcomes:
        if o.failed:
            print(f"\n{o.family}: exit status {o.returncode}; see tests/fuzz/logs/{o.family}.log")
            for finding in o.findings:
                print(f"  reproduce: .venv/bin/python tests/fuzz/fuzz_{o.family}.py {finding}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="per harness (default 60)")
    parser.add_argument("--only", nargs="*", default=[], metavar="FAMILY",
                        help="e.g. uci web_input (default: every harness)")
    parser.add_argument("libfuzzer", nargs="*", help="more libFuzzer flags, after --")
    args = parser.parse_args()
    harnesses = sorted(HERE.glob("fuzz_*.py"))
    if args.only:
        harnesses = [h for h in harnesses if h.stem.removeprefix("fuzz_") in args.only]
    outcomes = [run_one(harness, args.seconds, args.libfuzzer) for harness in harnesses]
    report(outcomes)
    return 1 if not outcomes or any(o.failed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
