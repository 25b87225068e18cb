"""The `gen` command's entry point, and the worker processes' server.

A run (or a validation) with worker processes forks them from a forkserver that has already imported the
generator (never from the coordinator, whose dashboard thread must not be forked mid-draw). Starting that server
takes as long as the coordinator's own imports, so `entry` starts it first, when the command line asks for
workers, and the two import side by side; everything else waits for the CLI. `stop_pool` ends a pool of those
workers that was interrupted or broken, within a limit. `Gate` holds Ctrl-C and SIGTERM while the command waits
on futures, and acts on them where it is safe to. This module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import select
import signal
import sys
import threading
import time

PRELOAD = ["generator.parts"]  # what every worker needs, imported once in the server
STOP_GRACE_S = 10.0  # how long an interrupted pool's workers may take to finish their jobs before they are killed
KILL_WAIT_S = 5.0  # how long a pool whose workers were killed may take to notice and end


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
    sending its result leaves the pool waiting for the rest (`stop_pool` gets it out). The pool's own cleanup
    after a worker died abruptly SIGTERMs the others; they ignore that too, and `stop_pool` kills them."""
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


def stop_pool(pool, grace_s: float = STOP_GRACE_S) -> None:
    """Shut down a `ProcessPoolExecutor` of these workers after an error, Ctrl-C or SIGTERM, within a limit.

    Queued jobs are dropped, and each worker finishes the job it is on and leaves through the pool's own protocol
    (one killed while it sends its result would leave the pool's result reader waiting for the rest). Those still
    busy after `grace_s` seconds are killed, and so is every worker at once when the pool is broken (a worker died
    abruptly: the OOM killer, a segfault): a broken pool reads no more results, and its own cleanup waits without
    a limit for workers that ignore the SIGTERM it sends them, one of which may be blocked forever on a result
    larger than the pipe's buffer. Once the workers are killed, this process's end of the result pipe for writing
    is closed too, the last one: a reader left waiting for the rest of a result that a killed worker was sending
    sees the pipe end, takes the pool as broken and ends. Returns once the pool's manager thread has ended, so that
    the interpreter's exit has nothing to wait on (after `grace_s` + `KILL_WAIT_S` at most)."""
    manager = pool._executor_manager_thread  # None before the first job; shutdown() forgets it and the rest
    processes = list((pool._processes or {}).values())
    results = pool._result_queue
    pool.shutdown(wait=False, cancel_futures=True)  # the manager thread carries it out; joined here, with limits
    if manager is None:
        return
    try:
        deadline = time.monotonic() + grace_s
        while manager.is_alive() and not pool._broken and time.monotonic() < deadline:
            manager.join(timeout=0.05)
    finally:  # also when a second Ctrl-C cuts the wait short
        if manager.is_alive():
            for p in processes:
                with contextlib.suppress(OSError, ValueError):  # gone already, or closed
                    p.kill()
            results._writer.close()  # nobody else closes it: shutdown() was told not to wait
            manager.join(timeout=KILL_WAIT_S)
        if not manager.is_alive():
            results.close()  # as shutdown(wait=True) would have


_SIGNALLED = object()  # what a held signal puts on a gate's queue, to wake the thread waiting on it


class Gate:
    """Holds SIGINT and SIGTERM in the main thread while a command waits on futures, and acts on them between.

    Python raises a signal's exception (KeyboardInterrupt, the CLI's Terminated) at whatever line the main thread
    is on. Inside the futures library that can leave a future's lock taken for good (`concurrent.futures.wait`
    takes them one by one): the thread or process pool's manager then blocks on it when it finishes that job, and
    the interpreter's exit, which joins that manager, waits for ever after the command said it stopped. Within a
    gate a signal is only noted (and wakes `next_done`); `deliver` raises what its handler would have, at a line
    of ours, once the gate is put back. Futures handed to `watch` come back from `next_done` as they finish.
    Outside the main thread, where no handler runs, a gate holds nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._events: queue.SimpleQueue = queue.SimpleQueue()  # reentrant: safe to put on from a signal handler
        self._arrived: list[int] = []
        self._held: dict[int, object] = {}

    def __enter__(self) -> Gate:
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.getsignal(s) for s in self.SIGNALS}
            if any(isinstance(getattr(h, "__self__", None), Gate) for h in handlers.values()):
                raise RuntimeError("gates do not nest: the inner one would hold its signal back from the outer")
            for s, handler in handlers.items():
                if handler not in (signal.SIG_IGN, None):  # an ignored signal stays ignored
                    self._held[s] = signal.signal(s, self._note)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.deliver()  # a signal that came with the last result still counts
        self._open()

    def _note(self, signum: int, frame) -> None:
        self._arrived.append(signum)
        self._events.put(_SIGNALLED)

    def _open(self) -> None:
        held, self._held = self._held, {}
        for s, handler in held.items():
            signal.signal(s, handler)

    def deliver(self) -> None:
        """If a signal arrived, put the handlers back and act as the first one's would have: raise its exception
        (or end the process, for a signal left to its default action)."""
        if not self._arrived:
            return
        signum = self._arrived[0]
        self._arrived.clear()
        handler = self._held.get(signum, signal.SIG_DFL)
        self._open()
        if callable(handler):
            handler(signum, None)  # raises, as the default SIGINT handler and the CLI's SIGTERM handler do
        else:
            signal.raise_signal(signum)  # left to the default action: end the process as the signal would have

    def watch(self, futures) -> None:
        for f in futures:
            f.add_done_callback(self._events.put)

    def next_done(self, timeout: float | None = None):
        """The next watched future to finish (each once), or None after `timeout` seconds with none; a signal
        that arrived meanwhile is delivered here."""
        while True:
            self.deliver()
            try:
                item = self._events.get(timeout=timeout)
            except queue.Empty:
                return None
            if item is not _SIGNALLED:
                return item


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity where the system has one (Linux: `taskset -c 0-3` or a
    container's cpuset gives 4), else the machine's count (macOS). The default number of workers."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def wants_workers(argv: list[str]) -> bool:
    """Whether this command line works in worker processes: `gen run` with more than one worker (the default is
    one per CPU) or with a bucket (uploads keep generation out of the coordinator), or `gen validate` with more
    than one worker. A guess from the raw arguments; a wrong one costs an idle server, never a different result."""
    if not argv or argv[0] not in ("run", "validate") or {"--help", "-h", "--dry-run"} & set(argv):
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
    many = usable_cpus() > 1 if workers is None else workers.strip() != "1"
    return many or uploads


def entry() -> None:
    if wants_workers(sys.argv[1:]):
        start_worker_server()
    from generator.cli import entry as cli_entry

    cli_entry()
