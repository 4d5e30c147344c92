"""Single-process Python baseline for the ingest + features work, done the way existing tools do it.

This is what Drain3 / loglizer-style pipelines do with a log file: read it line by line, split the
header with the source's format regex, mask variables with Python ``re``, feed the masked message to
a Drain miner, take the session id from the message and count events (template ids) per session in
a dict. Nothing is written; the result is a handful of counts.

It uses the same source declaration (``sources/<name>.yaml``) and the same Drain implementation
(``nightshift.drain.TemplateMiner``) as the Spark path, so both do the same per-line work.

Importable::

    from bench.baseline import run_baseline
    result = run_baseline(Path("bench/out/lake-1m/raw/source=hdfs/dt=2026-11-01/hdfs.log"))

CLI (prints one JSON object on stdout, including the loop's wall time and the process's peak RSS)::

    .venv/bin/python bench/baseline.py bench/out/lake-1m/raw/source=hdfs/dt=2026-11-01/hdfs.log
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # run as a script: make ``nightshift`` importable from a checkout
    sys.path.insert(0, str(PROJECT_ROOT))

from nightshift.drain import TemplateMiner  # noqa: E402
from nightshift.sources import SourceConfig, load_source  # noqa: E402


def _python_replacement(replacement: str) -> str:
    """A mask replacement as a literal for ``re.sub`` (no group references)."""
    return replacement.replace("\\", "\\\\")


def run_baseline(path: Path, source: SourceConfig | None = None, sources_dir: Path | None = None) -> dict[str, Any]:
    """Parse, mask, mine and count events per session for one raw log file, in this process.

    Returns counts: ``lines`` (input lines), ``parsed`` (header regex matched), ``unparsed``,
    ``with_session`` (parsed lines that carry a session id), ``sessions``, ``templates``
    (Drain clusters) and ``seconds`` (wall time of the loop, without interpreter start-up).
    """
    import re

    if source is None:
        source = load_source("hdfs", sources_dir or PROJECT_ROOT / "sources")
    header = source.log_format.python_regex
    message_group = source.log_format.group_index[source.message_field]
    masks = [(re.compile(m.regex), _python_replacement(m.replacement)) for m in source.masks]
    session_re = re.compile(source.session_id_regex)
    drain = source.drain
    miner = TemplateMiner(
        depth=int(drain.get("depth", 4)),
        similarity_threshold=float(drain.get("similarity_threshold", 0.5)),
        max_children=int(drain.get("max_children", 100)),
    )
    # session id -> template id -> count (loglizer's event count matrix, as dicts)
    sessions: defaultdict[str, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))

    lines = parsed = with_session = 0
    started = time.perf_counter()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            lines += 1
            m = header.match(line.rstrip("\n"))
            if m is None:
                continue
            parsed += 1
            message = m.group(message_group)
            masked = message
            for pattern, replacement in masks:
                masked = pattern.sub(replacement, masked)
            template_id, _ = miner.add(masked)
            sid = session_re.search(message)
            if sid is not None:
                with_session += 1
                sessions[sid.group(0)][template_id] += 1
    seconds = time.perf_counter() - started
    return {
        "file": str(path),
        "lines": lines,
        "parsed": parsed,
        "unparsed": lines - parsed,
        "with_session": with_session,
        "sessions": len(sessions),
        "templates": len(miner),
        "seconds": seconds,
        "lines_per_s": lines / seconds if seconds > 0 else None,
    }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far.

    On Linux this is the kernel's ``VmHWM`` of the process: ``ru_maxrss`` is not used there because
    it survives ``execve`` and so includes the RSS of the parent that spawned us (a benchmark
    driver that just generated gigabytes of logs would inflate it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss if sys.platform == "darwin" else rss * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/baseline.py", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="raw log file (e.g. <lake>/raw/source=hdfs/dt=<day>/hdfs.log)")
    parser.add_argument("--source", default="hdfs", help="source name: sources/<name>.yaml (default: hdfs)")
    parser.add_argument("--sources-dir", type=Path, default=PROJECT_ROOT / "sources")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return 2
    result = run_baseline(args.file, load_source(args.source, args.sources_dir))
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
