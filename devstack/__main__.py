"""``python -m devstack up | down | status | logs | test``: what ``./platform`` runs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from creditrisk.errors import CreditRiskError
from devstack.ops import show_logs
from devstack.stack import Layout, down, run_tests, status, up


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="./platform",
        description="Run the credit-risk platform locally, or its tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything and wait until healthy")
    p_up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for health")
    p_up.add_argument("--quiet", "-q", action="store_true",
                      help="no progress bar for the pipeline pass (for logs; or PLATFORM_QUIET=1)")
    sub.add_parser("down", help="stop everything up started")
    p_status = sub.add_parser("status", help="show each service and its health")
    p_status.add_argument("--json", action="store_true", help="one JSON object")
    p_logs = sub.add_parser("logs", help="a service's log (no service: list the logs)")
    p_logs.add_argument("service", nargs="?", help="e.g. api, mlflow, airflow-scheduler")
    p_logs.add_argument("-f", "--follow", action="store_true", help="keep printing (Ctrl-C)")
    p_logs.add_argument("-n", "--lines", type=int, default=100, help="lines of the tail")
    p_test = sub.add_parser("test", help="ruff, mypy and the whole pytest suite")
    p_test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest")
    args = parser.parse_args(argv)
    layout = Layout.from_env()
    try:
        if args.command == "up":
            return up(layout, args.timeout, quiet=args.quiet)
        if args.command == "down":
            return down(layout)
        if args.command == "status":
            return status(layout, as_json=args.json)
        if args.command == "logs":
            return show_logs(layout.logs, args.service, lines=args.lines, follow=args.follow,
                             out=sys.stdout)
        return run_tests(args.pytest_args)
    except CreditRiskError as exc:
        print(f"platform: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # still one line first; the traceback only on request
        print(f"platform: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("CREDITRISK_DEBUG"):
            raise
        print("platform: set CREDITRISK_DEBUG=1 for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
