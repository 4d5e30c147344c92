"""How long ``nightshift try-source`` takes on each Loghub sample, as a user runs it.

    .venv/bin/python bench/try_source.py [--engine python|spark] [--runs 3]

One fresh ``nightshift try-source <source> tests/fixtures/loghub/<System>_2k.log --show 1`` process
per run (interpreter start, imports, parsing, mining, printing: the whole command), wall time from
the parent; prints min/median/max per sample and the slowest median. Issue 12's target: under 10 s
for a 2,000-line file.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {"android": "Android", "bgl": "BGL", "hadoop": "Hadoop", "hdfs": "HDFS", "healthapp": "HealthApp",
           "linux": "Linux", "spark": "Spark", "thunderbird": "Thunderbird", "windows": "Windows",
           "zookeeper": "Zookeeper"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("python", "spark"), default="python")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    nightshift = Path(sys.executable).with_name("nightshift")
    print(f"| sample | lines | engine | runs | min | median | max |\n|---|---|---|---|---|---|---|")
    medians = []
    for source, system in SAMPLES.items():
        sample = ROOT / "tests" / "fixtures" / "loghub" / f"{system}_2k.log"
        walls = []
        for _ in range(args.runs):
            start = time.perf_counter()
            proc = subprocess.run([str(nightshift), "try-source", source, str(sample), "--show", "1", "--day", "2026-12-01",
                                   "--engine", args.engine], capture_output=True, text=True, cwd=ROOT)
            walls.append(time.perf_counter() - start)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
        lines = proc.stdout.split(":", 1)[1].split(" lines")[0].strip()
        medians.append(statistics.median(walls))
        print(f"| {system} | {lines} | {args.engine} | {args.runs} | {min(walls):.2f} s | {medians[-1]:.2f} s | {max(walls):.2f} s |")
    print(f"\nslowest median: {max(medians):.2f} s (target: under 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
