"""Template miners on the ten Loghub 2k samples: grouping accuracy per system.

    .venv/bin/python bench/miners.py [--data /work/shared/data/loghub] [--no-drain3]

Each system's lines are split with its published Loghub format string (``LogFormat``, pasted
unchanged), the message is masked with its published mask regexes (each match -> ``<*>``, as
Loghub's Drain does), and the distinct masked messages go to a miner through ``TemplateStore``
(the product path). Grouping accuracy (Loghub's definition) is computed over all 2,000 lines
against ``*_structured.csv``. Columns: ``ours`` (the default ``brain`` miner, one parameter set
for every system), ``drain`` (our Drain, published settings per system), ``drain3`` (drain3 0.9.11
run in its own venv ``bench/.venv-drain3`` in a subprocess, published settings; skipped if that venv
cannot be made) and Drain's published figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nightshift.drain import grouping_accuracy  # noqa: E402
from nightshift.logformat import LogFormat  # noqa: E402

SYSTEMS = ["HDFS", "BGL", "Hadoop", "Spark", "Zookeeper", "Thunderbird", "Windows", "Linux", "Android", "HealthApp"]
DEFAULT_DATA = Path("/work/shared/data/loghub")
DRAIN3_VENV = ROOT / "bench" / ".venv-drain3"


def load_sample(system: str, data: Path) -> tuple[list[str | None], list[str], dict]:
    """(message per line or None when the format does not match, truth EventId per line, settings)."""
    settings = json.loads((data / "benchmark_settings.json").read_text())[system]
    fmt = LogFormat.parse(settings["log_format"])
    regex = fmt.python_regex
    with (data / f"{system}_2k.log_structured.csv").open(newline="") as fh:
        truth = [row["EventId"] for row in sorted(csv.DictReader(fh), key=lambda r: int(r["LineId"]))]
    messages: list[str | None] = []
    with (data / f"{system}_2k.log").open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = regex.match(line.rstrip("\n").rstrip("\r"))
            messages.append(m.group(fmt.fields[-1]) if m else None)
    assert len(messages) == len(truth), (system, len(messages), len(truth))
    return messages, truth, settings


def mask(message: str, masks: list[str]) -> str:
    for regex in masks:
        message = re.sub(regex, "<*>", message)
    return message


def run_store(messages: list[str | None], masks: list[str], **params) -> list:
    """Template id per line through a fresh TemplateStore (unparsed lines get a unique id each)."""
    from nightshift.templates import TemplateStore

    with tempfile.TemporaryDirectory() as tmp:
        store = TemplateStore.load(Path(tmp) / "store.json", **params)
        masked = [None if m is None else mask(m, masks) for m in messages]
        ids = store.assign([m for m in masked if m is not None], "2020-01-01")
    return [("unparsed", i) if m is None else ids[m] for i, m in enumerate(masked)]


DRAIN3_SCRIPT = r"""
import json, re, sys
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig
job = json.load(sys.stdin)
cfg = TemplateMinerConfig()
cfg.drain_sim_th = job["st"]; cfg.drain_depth = job["depth"]; cfg.profiling_enabled = False
cfg.parametrize_numeric_tokens = False
tm = TemplateMiner(config=cfg)
out = []
for m in job["messages"]:
    if m is None:
        out.append(None); continue
    for r in job["masks"]:
        m = re.sub(r, "<*>", m)
    out.append(tm.add_log_message(m)["cluster_id"])
json.dump(out, sys.stdout)
"""


def drain3_python() -> Path | None:
    py = DRAIN3_VENV / "bin" / "python"
    if py.exists():
        return py
    try:
        subprocess.run([sys.executable, "-m", "venv", str(DRAIN3_VENV)], check=True, capture_output=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "drain3==0.9.11"], check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"drain3 skipped: cannot make {DRAIN3_VENV}: {exc}", file=sys.stderr)
        return None
    return py


def run_drain3(py: Path, messages, masks, settings) -> list | None:
    job = {"messages": messages, "masks": masks, "st": settings["drain_similarity_threshold"],
           "depth": settings["drain_depth"]}
    res = subprocess.run([str(py), "-c", DRAIN3_SCRIPT], input=json.dumps(job), capture_output=True, text=True)
    if res.returncode:
        print(f"drain3 failed: {res.stderr[-500:]}", file=sys.stderr)
        return None
    ids = json.loads(res.stdout)
    return [("unparsed", i) if x is None else x for i, x in enumerate(ids)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--no-drain3", action="store_true")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    args = p.parse_args(argv)
    from nightshift.miner import DEFAULT_PARAMETERS

    py = None if args.no_drain3 else drain3_python()
    rows = []
    print(f"{'system':<12} {'ours':>6} {'drain':>6} {'drain3':>6} {'pub.':>6} {'unparsed':>8} {'sec':>5}")
    for system in args.systems.split(","):
        messages, truth, settings = load_sample(system, args.data)
        t0 = time.perf_counter()
        ours = grouping_accuracy(run_store(messages, settings["masks"], miner="brain", **DEFAULT_PARAMETERS), truth)
        secs = time.perf_counter() - t0
        drain = grouping_accuracy(run_store(messages, settings["masks"], miner="drain",
                                            depth=settings["drain_depth"],
                                            similarity_threshold=settings["drain_similarity_threshold"]), truth)
        d3 = None
        if py is not None:
            ids = run_drain3(py, messages, settings["masks"], settings)
            d3 = None if ids is None else grouping_accuracy(ids, truth)
        pub = settings["published_drain_grouping_accuracy"]
        unparsed = sum(m is None for m in messages)
        rows.append((ours, drain, d3, pub))
        print(f"{system:<12} {ours:6.3f} {drain:6.3f} {'  n/a' if d3 is None else f'{d3:6.3f}'} {pub:6.3f} {unparsed:8d} {secs:5.2f}")
    n = len(rows)
    mean = lambda i: sum(r[i] for r in rows if r[i] is not None) / max(1, sum(r[i] is not None for r in rows))  # noqa: E731
    print(f"{'mean':<12} {mean(0):6.3f} {mean(1):6.3f} {mean(2):6.3f} {mean(3):6.3f}")
    worse = [SYSTEMS[i] for i, r in enumerate(rows) if round(r[0], 3) < r[3] and n == len(SYSTEMS)]
    print("below Drain published:", ", ".join(worse) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
