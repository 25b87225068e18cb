"""The `gen` command's entry point, and the worker processes' server.

A run (or a validation) with worker processes forks them from a forkserver that has already imported the
generator (never from the coordinator, whose dashboard thread must not be forked mid-draw). Starting that server
takes as long as the coordinator's own imports, so `entry` starts it first, when the command line asks for
workers, and the two import side by side; everything else waits for the CLI. This module imports nothing heavy.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

PRELOAD = ["generator.parts"]  # what every worker needs, imported once in the server


def worker_context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_worker_server() -> None:
    """Start the forkserver now (it imports `PRELOAD` in the background); later pools of `worker_context` use it."""
    worker_context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


def wants_workers(argv: list[str]) -> bool:
    """Whether this command line works in worker processes: `gen run` with more than one worker (the default is
    one per CPU) or with a bucket (uploads keep generation out of the coordinator), or `gen validate` with more
    than one worker. A guess from the raw arguments; a wrong one costs an idle server, never a different result."""
    if not argv or argv[0] not in ("run", "validate") or {"--help", "--dry-run"} & set(argv):
        return False
    workers = None
    for i, arg in enumerate(argv):
        if arg == "--workers" and i + 1 < len(argv):
            workers = argv[i + 1]
        elif arg.startswith("--workers="):
            workers = arg.split("=", 1)[1]
    uploads = argv[0] == "run" and (
        "--bucket" in argv or any(a.startswith("--bucket=") for a in argv) or bool(os.environ.get("GEN_BUCKET"))
    )
    many = (os.cpu_count() or 1) > 1 if workers is None else workers.strip() != "1"
    return many or uploads


def entry() -> None:
    if wants_workers(sys.argv[1:]):
        start_worker_server()
    from generator.cli import entry as cli_entry

    cli_entry()
