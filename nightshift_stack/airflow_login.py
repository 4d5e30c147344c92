"""Write the SimpleAuthManager passwords file from the environment, then exec the given command.

``python -m nightshift_stack.airflow_login airflow api-server ...``: the login is
``AIRFLOW_ADMIN_USER`` / ``AIRFLOW_ADMIN_PASSWORD`` (from the generated .env) instead of a password
that Airflow generates and prints; the file (``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE``)
is written with mode 600.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    missing = [k for k in ("AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD",
                           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") if not os.environ.get(k)]
    if missing or not argv:
        sys.stderr.write(f"usage: python -m nightshift_stack.airflow_login COMMAND...; missing settings: {missing}\n")
        return 2
    path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, out)
    os.execvp(argv[0], argv)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
