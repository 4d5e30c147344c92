"""Named fault points for the fault-injection tests.

Code that changes durable state calls :func:`point` between its steps. When the environment
variable ``NIGHTSHIFT_FAULT`` lists that point's name (comma-separated), the process kills itself
with SIGKILL there, as a crash or an out-of-memory kill would: no ``finally`` blocks, no atexit.
Unset (always, outside the tests) it costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "NIGHTSHIFT_FAULT"


def point(name: str) -> None:
    """Die here if ``NIGHTSHIFT_FAULT`` names this point."""
    wanted = os.environ.get(ENV)
    if wanted and name in wanted.split(","):
        sys.stderr.write(f"NIGHTSHIFT_FAULT: killed at {name}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
