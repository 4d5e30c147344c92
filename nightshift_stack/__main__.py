"""``python -m nightshift_stack secrets|up|down|status``: the stack on this machine (see README / docs/deploy.md)."""

from __future__ import annotations

import argparse
import json
import sys

from nightshift_stack import stack


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nightshift_stack", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("secrets", help="generate .env (mode 600) with every secret; keeps an existing one")
    s.add_argument("--force", action="store_true", help="replace an existing file (the databases keep old passwords"
                   " until the next `up`, which resets the roles' passwords)")
    sub.add_parser("up", help="start every service, wait until healthy")
    sub.add_parser("down", help="stop every service")
    sub.add_parser("status", help="each service: healthy / unhealthy / stopped")
    for verb in ("start", "stop"):
        sub.add_parser(verb, help=f"{verb} one service of a running stack").add_argument("service")
    args = p.parse_args(argv)
    try:
        if args.cmd == "secrets":
            existed = stack.env_file().exists() and not args.force
            path = stack.write_secrets(force=args.force)
            print(f"{path} {'exists (kept)' if existed else 'written (mode 600)'}")
        elif args.cmd == "up":
            stack.up()
        elif args.cmd == "down":
            stack.down()
            print(f"[stack] stopped (state in {stack.state_dir()})")
        elif args.cmd == "start":
            stack.start_service(args.service)
            stack.wait_healthy([args.service], stack.state_dir())
        elif args.cmd == "stop":
            stack.stop_service(args.service)
        elif args.cmd == "status":
            print(json.dumps(stack.status(), indent=1))
    except stack.StackError as exc:
        print(f"[stack] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
