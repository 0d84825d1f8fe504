"""``reload-middleware trigger URL...``: ask running servers to reload, one batch of replicas at a time.

It imports nothing of the server: only the roll-out client and this user's local credential.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .._config import declaration
from .rollout import BadTarget, ReplicaOutcome, Result, Rollout, replicas, roll_out


def trigger_parser() -> argparse.ArgumentParser:
    token, admin_path = declaration("token"), declaration("admin_path")
    parser = argparse.ArgumentParser(
        prog="reload-middleware trigger",
        description="Ask running servers to reload now (POST to their admin endpoint). Several replicas "
        "roll one batch at a time: each must reload (and pass --check) before the next batch starts; "
        "the first failure stops the roll-out, and the replicas not reached keep their version. "
        "Exits 0 when every reload succeeded or nothing changed, 1 when one failed, is stale or failed its "
        "check, 2 when a replica refused or could not be reached.",
    )
    parser.add_argument("urls", nargs="+", metavar="URL", help="a server, e.g. http://127.0.0.1:8000; several roll")
    parser.add_argument(
        "--all-addresses",
        action="store_true",
        help="reload every address each URL's host name resolves to (a headless service, a DNS round robin)",
    )
    parser.add_argument("--batch", type=int, default=1, help="replicas reloaded at once (default: 1)")
    parser.add_argument(
        "--check", metavar="PATH", help="after each reload, PATH must answer 2xx from the new version (e.g. /health)"
    )
    parser.add_argument(
        "--max-failures", type=int, default=0, help="failed replicas tolerated before the roll-out stops (default: 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--token",
        default=os.environ.get(token.variable),
        help=f"bearer token (default: {token.variable}; for a server on this machine without one, "
        "the server must first prove it holds this user's local credential, which is never sent); never printed",
    )
    parser.add_argument("--force", action="store_true", help="reload the whole app, changed or not")
    parser.add_argument(
        "--admin-path", default=admin_path.default, help=f"the admin endpoint (default: {admin_path.default})"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each answer")
    return parser


def main(argv: Sequence[str]) -> int:
    """``trigger``'s arguments (after the word ``trigger``); returns the exit code."""
    return trigger(trigger_parser().parse_args(list(argv)))


def trigger(options: argparse.Namespace) -> int:
    try:
        targets = replicas(options.urls, options.all_addresses)
    except BadTarget as exc:
        print(f"reload-middleware trigger: {exc}", file=sys.stderr)
        return 2
    if options.batch < 1 or options.max_failures < 0:
        print("reload-middleware trigger: --batch must be at least 1, --max-failures at least 0", file=sys.stderr)
        return 2
    rollout = Rollout(
        token=options.token,
        force=options.force,
        admin_path=options.admin_path,
        timeout=options.timeout,
        batch=options.batch,
        check=options.check,
        max_failures=options.max_failures,
    )
    single = len(targets) == 1 and not options.json

    def report(result: Result) -> None:
        if single:  # one server: its answer, as a person reads it
            stream = sys.stderr if result.outcome.unreached else sys.stdout
            print(
                result.message if not result.outcome.unreached else f"reload-middleware trigger: {result.message}",
                file=stream,
            )
        elif not options.json:
            print(_summary_line(result), flush=True)

    results = roll_out(targets, rollout, report)
    code = _exit_code(results)
    if options.json:
        print(json.dumps({"exit_code": code, "replicas": [result.as_dict() for result in results]}, indent=2))
    elif not single:
        for result in results:
            if result.outcome is ReplicaOutcome.SKIPPED:
                print(_summary_line(result))
        done = sum(result.outcome.ok for result in results)
        print(f"{done} of {len(results)} replica(s) reloaded" + ("" if code == 0 else "; the roll-out stopped"))
    return code


def _summary_line(result: Result) -> str:
    """One replica: its address, versions before and after, outcome, time, and what it said."""
    before = "?" if result.before is None else result.before
    after = "?" if result.after is None else result.after
    message = result.message or "not reloaded: the roll-out stopped before it"
    took = f"{result.seconds * 1000:.0f} ms"
    return f"{result.replica.url}  v{before} -> v{after}  {result.outcome.value}  {took}  {message}"


def _exit_code(results: list[Result]) -> int:
    """2 if a replica refused or could not be reached, else 1 if one failed, else 0."""
    if any(result.outcome.unreached for result in results):
        return 2
    return 0 if all(result.outcome.ok or result.outcome is ReplicaOutcome.SKIPPED for result in results) else 1
