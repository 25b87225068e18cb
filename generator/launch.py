"""The `gen` command's entry point, and the worker processes' server.

A run (or a validation) with worker processes forks them from a forkserver that has already imported the
generator (never from the coordinator, whose dashboard thread must not be forked mid-draw). Starting that server
takes as long as the coordinator's own imports, so `entry` starts it first, when the command line asks for
workers, and the two import side by side; everything else waits for the CLI. This module imports nothing heavy.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import sys
import threading
import time

PRELOAD = ["generator.parts"]  # what every worker needs, imported once in the server


def worker_context() -> multiprocessing.context.BaseContext:
    """The context of every worker pool: the forkserver, preloaded, started if it is not running yet."""
    start_worker_server()
    return multiprocessing.get_context("forkserver")


def start_worker_server() -> None:
    """Start the forkserver now (it imports `PRELOAD` in the background); later pools of `worker_context` use it.

    It starts with SIGINT and SIGTERM ignored, and so do the workers it forks: a terminal's Ctrl-C reaches the
    whole process group and a service manager's stop SIGTERMs every process of the service, but only the
    coordinator acts on them (it lets the workers finish their shards and leave). A forkserver killed by the
    signal would lose track of live workers (their exits look immediate to the pool), and a worker killed while
    sending its result can leave the pool waiting forever for the rest."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()
        return
    # Dispositions set to "ignore" survive the server's exec; Python then keeps them (and the forkserver gives
    # its children the SIGINT disposition it started with).
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        forkserver.ensure_running()
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def worker_init(coordinator: int) -> None:
    """First thing in every worker: leave SIGINT and SIGTERM to the coordinator (in case the server was started
    elsewhere), and exit as soon as the coordinator is gone, however it ended (killed too). Nothing else would
    end it: the pool's queue it waits on never closes under it (each worker holds both ends), and the worker
    server stays up as long as any worker does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(coordinator,), name="coordinator-watch", daemon=True).start()


def _exit_with(pid: int) -> None:
    """Wait for process `pid` to end (a pidfd where the kernel has them, else a check a second), then leave."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or already gone
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:  # alive, someone else's (cannot be ours, but never mind)
                pass
            time.sleep(1)
    else:
        select.select([fd], [], [])
    os._exit(1)


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
