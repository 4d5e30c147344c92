"""drain3 peer of the ingest benchmark: the baseline's work done with drain3 0.9.11.

Runs in drain3's own virtualenv (``bench/.venv-drain3``, made by ``bench/miners.py``'s
``drain3_python()``: drain3 pins an old cachetools, so it cannot share the project's venv), and
therefore imports nothing from the project: the source's regexes and Drain parameters come as
one JSON argument, built by ``bench/ingest_bench.py`` from ``sources/<name>.yaml``.

Per line, as ``bench/baseline.py`` does: match the header with the source's format regex
(Python ``re``), take the message, ``TemplateMiner.add_log_message(message)`` with the source's
masks given to drain3 as its masking instructions (drain3 applies them in order with ``re.sub``,
each match becoming ``<*>``, before mining), extract the session id from the message with the
source's ``session.id_regex`` and count events (drain3 cluster ids) per session in a dict.
Nothing is written; prints one JSON object (counts, loop seconds, peak RSS).

    bench/.venv-drain3/bin/python bench/drain3_peer.py FILE '{"header": ..., "message_group": N,
        "masks": [...], "session_regex": ..., "depth": 4, "similarity_threshold": 0.5,
        "max_children": 100}'
"""

import json
import re
import sys
import time
from collections import defaultdict


def peak_rss_bytes():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def main(argv):
    path, job = argv[1], json.loads(argv[2])
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()          # drain3's defaults, except:
    config.profiling_enabled = False
    config.drain_depth = job["depth"]
    config.drain_sim_th = job["similarity_threshold"]
    config.drain_max_children = job["max_children"]
    config.mask_prefix, config.mask_suffix = "<", ">"
    config.masking_instructions = [MaskingInstruction(regex, "*") for regex in job["masks"]]   # -> <*>
    miner = TemplateMiner(config=config)    # no persistence handler: nothing is saved

    header = re.compile(job["header"])
    message_group = job["message_group"]
    session_re = re.compile(job["session_regex"])
    sessions = defaultdict(lambda: defaultdict(int))
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
            cluster_id = miner.add_log_message(message)["cluster_id"]
            sid = session_re.search(message)
            if sid is not None:
                with_session += 1
                sessions[sid.group(0)][cluster_id] += 1
    seconds = time.perf_counter() - started
    print(json.dumps({
        "file": path,
        "lines": lines,
        "parsed": parsed,
        "unparsed": lines - parsed,
        "with_session": with_session,
        "sessions": len(sessions),
        "templates": len(miner.drain.clusters),
        "seconds": seconds,
        "lines_per_s": lines / seconds if seconds > 0 else None,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
