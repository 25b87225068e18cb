"""The coordinator: holds the output directory's lock, continues its timeline, plans the shards, runs them on a
process pool, commits the parts and the state, and writes the manifest last.

Workers write into `<out>/_staging/<run_id>/` (hidden from Hive-style readers by its leading underscore). Only
when every shard has succeeded are the parts and the run's state renamed into place and the manifest written. A
run that fails or is interrupted removes its own staging files and writes no manifest (a crashed one's staging is
removed by the next run). With an uploader, each part goes to S3 as soon as its shard reports; after the local
commit the run takes its position in the S3 timeline and writes the S3 manifest, last of all.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator import manifest, sidecar, timeline
from generator.config import ConfigError, RunConfig
from generator.core.shard import (
    ORDER_STRIDE,
    GenConfig,
    Pending,
    Shard,
    cut_point_sampled,
    early_until,
    first_stop,
    grid,
    last_stop,
    next_stop,
    plan,
)
from generator.launch import STOP_GRACE_S, Gate, stop_pool, usable_cpus, worker_context, worker_init
from generator.parts import (
    SIM_DIR,
    CutAt,
    ShardResult,
    SimResult,
    WriteBehind,
    cached_reissues,
    make_dirs,
    make_part,
    read_final_ts,
    save_reissues,
    set_reissues_event,
    simulate_and_write,
    simulate_part,
    sync_dir,
    sync_file,
)

if TYPE_CHECKING:  # boto3 is imported only when a run uploads
    from generator.uploader import Uploader

STAGING_DIR = "_staging"


class RunError(RuntimeError):
    """The run could not complete (a worker died, the disk filled up); nothing was committed."""


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    shards: tuple[Shard, ...]
    workers: int
    events: int  # exact, or expected for a run sized by time
    by_time: bool = False  # sized by --duration: each shard simulates and writes in one step


@dataclass(frozen=True)
class RunSummary:
    manifest: dict
    manifest_path: Path
    seconds: float
    peak_worker_rss_kib: int
    uploaded_bytes: int = 0


class Listener:
    """Receives the coordinator's progress; the CLI's dashboard implements it. Methods run in the parent."""

    def started(self, run: RunPlan) -> None: ...

    def simulated(self, result: SimResult) -> None:
        """A shard's first step is done (its simulation is spilled)."""

    def writing(self, events: int, end_us: int, exact: bool = True) -> None:
        """The run's end is known: `events` events before `end_us` (or about that many) are now written."""

    def shard_done(self, result: ShardResult) -> None: ...

    def voided(self, results: list[ShardResult]) -> None:
        """These early parts, reported done, are left out: the run ended before their instant (`_two_steps`)."""

    def committing(self) -> None: ...

    def upload_progress(self, bytes_sent: int, parts_done: int, in_flight: int) -> None: ...


def _warm_worker(coordinator: int, reissues_ready=None) -> None:
    """Prepare a worker: signals left to the coordinator, an exit when the coordinator is gone (`worker_init`),
    the event that says the run's e-mail reissues are written (`parts.set_reissues_event`), freed memory kept for
    reuse, and the reference data loaded once."""
    worker_init(coordinator)
    set_reissues_event(reissues_ready)
    from generator.core.behaviour import default_behaviour
    from generator.core.nigeria import default_pools

    _keep_freed_memory()
    default_behaviour()
    default_pools()


def _keep_freed_memory() -> None:
    """Ask glibc to serve arrays up to 32 MiB from its heap and to keep freed memory instead of unmapping it, in
    one heap for all the process's threads.

    A shard allocates and frees hundreds of megabytes of short-lived numpy arrays; by default each large one is
    a fresh mmap whose pages fault in again on first touch. Measured with `perf/bench_core.py`: minor faults
    fall about fourfold and a one-worker run gains 5-10%. One heap (one arena): the write-behind thread's freed
    arrays are reused by the next shard instead of kept apart in a heap of its own (a one-worker run of 5,000,000
    events peaked at 254-269 MiB instead of 274-279 in two series of interleaved runs, as fast). A no-op where glibc
    is absent."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1024 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-2, 256 * 1024 * 1024)  # M_TOP_PAD
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def run(
    cfg: RunConfig,
    listener: Listener | None = None,
    shard_fn: Callable[..., ShardResult] = make_part,
    uploader: Uploader | None = None,
    keep_local: bool = True,
) -> RunSummary:
    """Generate the next window of the timeline in `cfg.out`, commit it locally (parts, state, manifest last),
    and with an uploader upload the parts as shards finish and commit in S3 last. Holds the directory's lock."""
    with timeline.lock(cfg.out):
        return _run_locked(cfg, listener or Listener(), shard_fn, uploader, keep_local)


def _run_locked(
    cfg: RunConfig,
    listener: Listener,
    shard_fn: Callable[..., ShardResult],
    uploader: Uploader | None,
    keep_local: bool,
) -> RunSummary:
    out = cfg.out
    if manifest.manifest_path(out, cfg.run_id).exists():
        raise ConfigError(f"--run-id: run {cfg.run_id!r} is already committed in {str(out)!r}")
    history = timeline.load(out)
    cfg = cfg.resolve(history.last, history.began)
    pending = history.pending()
    gen = cfg.gen()
    shards = plan(gen)
    workers = min(cfg.workers, len(shards))
    listener.started(RunPlan(cfg.run_id, tuple(shards), workers, gen.planned_events, gen.events is None))
    # Staging left by runs that crashed is nobody's: this run holds the lock.
    shutil.rmtree(out / STAGING_DIR, ignore_errors=True)
    staging = out / STAGING_DIR / cfg.run_id
    try:
        staging.mkdir(parents=True)
    except OSError as e:
        raise ConfigError(f"--out: cannot create {str(staging)!r} ({e.strerror or e})") from None
    t0 = time.perf_counter()
    syncer = _Syncer(staging)
    committed = False
    in_process = workers == 1 and uploader is None
    try:
        with _Workers(workers, in_process) as pool:
            # From an earlier run here, or worked out now and kept for later ones; once for all the workers.
            pool.share_reissues(out, staging, gen)
            slices = {s.index: pending.of_customers(s.first_customer, s.customers).columns() for s in shards}
            results: list[ShardResult] = []

            def done(result: ShardResult) -> None:
                results.append(result)
                syncer.add(result)
                if uploader:
                    for p in result.parts:
                        uploader.submit(staging / p.path, p.path, p.sha256)
                    listener.upload_progress(*uploader.stats())
                listener.shard_done(result)

            if gen.events is None:
                # Sized by time: the end is known, so every shard is simulated, cut and written in one step; each
                # takes its orders' serials from a block of its own.
                end = gen.end_us
                serial = cfg.orders_before + len(shards) * ORDER_STRIDE
                listener.writing(gen.planned_events, end, exact=False)
                first = [cfg.orders_before + i * ORDER_STRIDE for i in range(len(shards))]
                args = [(gen, s, str(staging), cfg.run_id, cfg.partition_by, slices[s.index]) for s in shards]
                pool.each([(simulate_and_write, (*a, f)) for a, f in zip(args, first, strict=True)], done)
                if max((r.new_orders for r in results), default=0) > ORDER_STRIDE:
                    raise RunError(f"a shard placed more than {ORDER_STRIDE:,} orders; use a smaller --shard-size")
            else:
                end, serial = _two_steps(cfg, gen, shards, slices, staging, pool, listener, shard_fn, done, results)
        shutil.rmtree(staging / SIM_DIR, ignore_errors=True)
        results.sort(key=lambda r: (r.shard, r.piece))
        carried = Pending.concat([Pending.from_columns(r.carried) for r in results if r.carried])
        try:
            state = timeline.write_state(staging, cfg.run_id, carried)
            faults = (
                sidecar.write(staging, cfg.run_id, results, cfg.behaviour.faults)
                if cfg.behaviour.faults.any()
                else None
            )
        except OSError as e:
            raise RunError(f"could not write the run's state: {e}; nothing was committed") from None
        listener.committing()
        with Gate():  # Ctrl-C and SIGTERM act after these, not inside a thread pool's locks
            syncer.wait()
            if uploader:
                uploader.submit(staging / state["path"], state["path"], state["sha256"])
                if faults:
                    uploader.submit(staging / faults["path"], faults["path"], faults["sha256"])
        s3, upload_error = None, None
        if uploader:
            from generator.uploader import UploadError

            try:
                checksums = uploader.wait(listener.upload_progress)
                # The run's own objects: not the early parts of a run that ended before their instant.
                kept = {p.path for r in results for p in r.parts} | {state["path"]}
                kept |= {faults["path"]} if faults else set()
                s3 = uploader.describe({rel: c for rel, c in checksums.items() if rel in kept})
            except UploadError as e:
                upload_error = e
        place = {
            "ordinal": cfg.ordinal,
            "previous": cfg.previous,
            "orders_before": cfg.orders_before,
            "orders_after": serial,
            "carried_in": len(pending),
            "carried_out": len(carried),
            "state": state,
        }
        doc = manifest.build(
            cfg.run_id,
            cfg.options(),
            results,
            time.perf_counter() - t0,
            s3,
            (cfg.start_us, end),
            place,
            cfg.scenario_doc,
            faults,
        )
        with _signals_deferred():
            path = _commit(staging, out, results, doc)
        committed = True
        if uploader:
            if upload_error:
                uploader.abort(cfg.run_id)  # no multipart upload of this run is left open
                raise UploadFailed(cfg.run_id, out, uploader.target.url(), upload_error)
            from generator.uploader import TimelineTaken, UploadError

            try:
                uploader.claim(cfg.ordinal, cfg.run_id, cfg.previous)
                uploader.put_manifest(manifest.relative_path(cfg.run_id), manifest.dumps(doc))
            except TimelineTaken:
                raise
            except UploadError as e:
                raise UploadFailed(cfg.run_id, out, uploader.target.url(), e) from None
            _publish(uploader, out, doc, cfg.previous)
            if not keep_local:
                _remove_local(out, doc)
    except BaseException:
        if uploader and not committed:
            uploader.abort(cfg.run_id)
        raise
    finally:
        syncer.close()
        if uploader:
            uploader.close()
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(out / STAGING_DIR)
    sent = uploader.stats()[0] if uploader else 0
    return RunSummary(doc, path, time.perf_counter() - t0, max(r.peak_rss_kib for r in results), sent)


def _two_steps(
    cfg: RunConfig,
    gen: GenConfig,
    shards: list[Shard],
    slices: dict[int, dict[str, np.ndarray]],
    staging: Path,
    pool: _Workers,
    listener: Listener,
    shard_fn: Callable[..., ShardResult],
    done: Callable[[ShardResult], None],
    results: list[ShardResult],
) -> tuple[int, int]:
    """A run of exactly `gen.events` events. Step 1 simulates every shard over the shared grid and writes its
    events before `early_until` at once (piece 0: before the run's end, wherever it falls), spilling the rest.
    The run's last instant is then found from all shards' times, and step 2 cuts every shard's rest there and
    writes it (piece 1). In the rare run that ends before the early instant, the early parts are void: they are
    left out, and every shard is simulated again and written whole (piece 2). Each shard numbers its new orders
    from a block of ORDER_STRIDE serials. Returns the run's end and the next free serial."""
    sims: dict[int, SimResult] = {}
    first = {s.index: cfg.orders_before + i * ORDER_STRIDE for i, s in enumerate(shards)}
    stop = first_stop(gen)
    early = early_until(gen)
    if early is not None and not gen.start_us < early <= grid(gen, stop)[-1]:
        early = None  # a tiny run, or not inside what the first round simulates: nothing is written early
    written_before, skip_before = early, None
    while True:

        def simulated(result: SimResult) -> None:
            sims[result.shard] = result
            listener.simulated(result)
            if result.early is not None:
                done(result.early)

        common = (cfg.run_id, cfg.partition_by)
        jobs = [
            (
                simulate_part,
                (gen, s, str(staging), slices[s.index], stop, *common, first[s.index], written_before, skip_before),
            )
            for s in shards
        ]
        pool.each(jobs, simulated)
        point = _end_of_run(gen, shards, sims, staging)
        if point is not None:
            break
        # Some shard's simulation ends before the run's end: take them all further along the grid.
        if stop >= last_stop(gen):
            raise RunError(f"the population made too few events for --events {gen.events}; nothing was committed")
        stop = min(next_stop(stop, gen.events, gen.events, sum(r.final for r in sims.values())), last_stop(gen))
        written_before, skip_before = None, early  # the early events are the same, and written already
    last_ts, takes = point
    end = last_ts + 1
    listener.writing(gen.events, end)
    void = early is not None and early > last_ts
    if void:
        listener.voided([r for r in results if r.piece == 0])
        results[:] = [r for r in results if r.piece != 0]  # their files stay in staging, which goes
    jobs = []
    for s, take in zip(shards, takes, strict=True):
        again = (slices[s.index], stop) if void else None
        jobs.append(
            (
                shard_fn,
                (gen, s, str(staging), cfg.run_id, cfg.partition_by, CutAt(last_ts, take, first[s.index], again)),
            )
        )
    pool.each(jobs, done)
    if max((r.new_orders for r in results), default=0) > ORDER_STRIDE:
        raise RunError(f"a shard placed more than {ORDER_STRIDE:,} orders; use a smaller --shard-size")
    return end, cfg.orders_before + len(shards) * ORDER_STRIDE


def _end_of_run(gen: GenConfig, shards: list[Shard], sims: dict[int, SimResult], staging: Path):
    """The run's last instant and each shard's take at it (see `cut_point`), or None when some shard has not
    simulated far enough to know (or all of them together hold too few events)."""
    if gen.events is None:
        return gen.end_us - 1, [np.iinfo(np.int64).max] * len(shards)
    results = [sims[s.index] for s in shards]
    point = cut_point_sampled(
        [r.sample for r in results],
        [r.final for r in results],
        gen.events,
        lambda i, lo, hi: read_final_ts(staging, shards[i].index, lo, hi),
    )
    if point is None or point[0] >= min(sims[s.index].until for s in shards):
        return None
    return point


class UploadFailed(RunError):
    """The run is committed locally, but not (yet) in S3."""

    def __init__(self, run_id: str, out: Path, url: str, cause: Exception):
        super().__init__(
            f"upload to {url} failed: {cause}; no manifest was written to S3. The run is committed locally: "
            f"finish the upload with `gen upload --run-id {run_id} --out {out}` and the same --bucket/--prefix"
        )


def upload_committed(out: Path, run_id: str, uploader: Uploader, listener: Listener | None = None) -> dict:
    """Finish the upload of a run committed locally: parts already in S3 with the right checksum are skipped;
    the manifest goes last. Returns the manifest as uploaded (with its S3 checksums)."""
    listener = listener or Listener()
    doc = manifest.read(manifest.manifest_path(out, run_id))
    try:
        state = doc["timeline"]["state"]
        with Gate():  # Ctrl-C and SIGTERM act after these, not inside the upload pool's locks
            for p in [*doc["parts"], state, *([doc["faults"]] if "faults" in doc else [])]:
                uploader.submit(out / p["path"], p["path"], p["sha256"])
        doc = doc | {"s3": uploader.describe(uploader.wait(listener.upload_progress))}
        uploader.claim(doc["timeline"]["ordinal"], run_id, doc["timeline"].get("previous"))
        uploader.put_manifest(manifest.relative_path(run_id), manifest.dumps(doc))
        _publish(uploader, out, doc)
    except BaseException:
        uploader.abort(run_id)
        raise
    finally:
        uploader.close()
    return doc


class IndexFailed(RunError):
    """The run is committed in S3, but its entries in the committed-parts index are not all there."""

    def __init__(self, run_id: str, out: Path, url: str, cause: Exception):
        super().__init__(
            f"run {run_id!r} is committed in {url} (its manifest is there), but writing its entries in the "
            f"committed-parts index failed: {cause}. `gen upload --run-id {run_id} --out {out}` with the same "
            "--bucket/--prefix writes them; so does the next run there"
        )


def _publish(uploader: Uploader, out: Path, doc: dict, previous: str | None = None) -> None:
    """After the commit in S3: the run's entries in the committed-parts index, and again its predecessor's when
    that run was committed in the same bucket and prefix (written once; already there is fine), so a run that
    stopped between its manifest and its index is listed by the next one."""
    from generator.uploader import UploadError

    try:
        uploader.put_index(doc)
        before = manifest.manifest_path(out, previous) if previous else None
        if before is not None and before.is_file():
            prior = manifest.read(before)
            here = {"bucket": uploader.target.bucket, "prefix": uploader.target.prefix}
            if {k: prior.get("s3", {}).get(k) for k in here} == here:
                uploader.put_index(prior)
    except (OSError, manifest.ManifestError, UploadError) as e:
        raise IndexFailed(doc["run_id"], out, uploader.target.url(), e) from None


def _remove_local(out: Path, doc: dict) -> None:
    """--no-keep-local: once S3 holds the run and its manifest, its local parts go. The manifest and the state
    stay (a few kilobytes to megabytes), so the next run here continues the timeline."""
    for p in doc["parts"]:
        (out / p["path"]).unlink(missing_ok=True)


class _Syncer:
    """fsyncs staged parts on background threads as shards finish, so the commit finds them already durable."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fsync")
        self.pending: list[Future] = []

    def add(self, result: ShardResult) -> None:
        self.pending += [self.pool.submit(sync_file, self.staging / p.path) for p in result.parts]

    def wait(self) -> None:
        try:
            for f in self.pending:
                f.result()
        except OSError as e:
            raise RunError(f"could not sync a part to disk: {e}; nothing was committed") from None

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Workers:
    """The run's worker processes (or this process, for one worker with nothing to upload), kept for both steps.

    `each` runs jobs and hands each result to `on_done` in this process as soon as it arrives."""

    def __init__(self, workers: int, in_process: bool):
        self.in_process = in_process
        self.pool = None
        self.behind = None
        if in_process:
            # One worker and nothing to upload: generate in this process, and write each shard's parts behind
            # while the next one generates, where a second CPU is there to do it. With uploads, even one worker
            # runs in a child, so the upload threads here are not starved of the interpreter lock by generation.
            _keep_freed_memory()
            if usable_cpus() > 1:
                self.behind = WriteBehind()
        else:
            ctx = worker_context()
            self.reissues_ready = ctx.Event()
            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_warm_worker,
                initargs=(os.getpid(), self.reissues_ready),
            )
        self.reissues: Future | None = None

    def __enter__(self) -> _Workers:
        return self

    def share_reissues(self, out: Path, staging: Path, gen: GenConfig) -> None:
        """Work out the population's e-mail reissues (or take them from the cache) on a thread of this process,
        while the workers simulate, and write them to the staging for all of them: a worker waits for them only
        when it first builds identities. In this process, for one worker, they are worked out before anything."""
        if self.pool is None:
            cached_reissues(out, gen, usable_cpus())
            return

        def share() -> None:
            try:
                cached_reissues(out, gen, usable_cpus())
                save_reissues(staging, gen)
            except OSError as e:
                raise RunError(f"could not stage the e-mail reissues: {e}; nothing was committed") from None
            finally:
                self.reissues_ready.set()  # without the file, a waiting worker fails at once (this error is raised)

        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reissues")
        self.reissues = thread.submit(share)
        thread.shutdown(wait=False)

    def each(self, jobs: list[tuple[Callable, tuple]], on_done: Callable) -> None:
        """Ctrl-C and SIGTERM take effect between results (in this process: between jobs, a shard's time), never
        inside the pool's machinery (see `launch.Gate`)."""
        with Gate() as gate:
            if self.pool is None:
                self._each_here(gate, jobs, on_done)
                return
            self._each(gate, jobs, on_done)

    def _each_here(self, gate: Gate, jobs: list[tuple[Callable, tuple]], on_done: Callable) -> None:
        """Jobs one after another in this process; a job's parts, written behind, are settled once the next job
        has generated (so the two overlap), and its result handed on in the order of the jobs."""
        held = None
        for fn, args in jobs:
            result = _environment_errors(fn, *args)
            if held is not None:
                on_done(_settled(gate, held))
            held = result
            gate.deliver()
        if held is not None:
            on_done(_settled(gate, held))

    def _each(self, gate: Gate, jobs: list[tuple[Callable, tuple]], on_done: Callable) -> None:
        try:
            futures = [self.pool.submit(fn, *args) for fn, args in jobs]
            gate.watch(futures)
            for _ in futures:
                on_done(gate.next_done().result())
        except BrokenProcessPool as e:
            raise RunError(f"a worker process died ({e}); nothing was committed") from None
        except OSError as e:
            raise RunError(f"a worker could not write its part: {e}; nothing was committed") from None

    def __exit__(self, exc_type, *exc) -> None:
        try:
            self._stop(exc_type)
        finally:
            if self.reissues is not None:
                self.reissues.result()  # its error is the run's (a worker that found no reissues failed for it)

    def _stop(self, exc_type) -> None:
        if self.pool is None:
            if self.behind is not None:  # the part being written is finished, those queued dropped on an error
                with Gate():
                    self.behind.close(cancel=exc_type is not None)
            return
        if exc_type is None:  # every worker is idle
            self.pool.shutdown(wait=True)
            return
        # On an error, Ctrl-C or SIGTERM: drop the queued shards, let each worker finish the shard it is on (a
        # fraction of a second) and leave; kill those still busy after STOP_GRACE_S, and every worker at once when
        # one has died (the pool is broken).
        stop_pool(self.pool, STOP_GRACE_S)


def _settled(gate: Gate, result: ShardResult | SimResult | Future):
    """A job's result with its parts written: waits for the write behind, if there is one."""
    written = result.early if isinstance(result, SimResult) else result
    if not isinstance(written, Future):
        return result
    gate.watch([written])
    while gate.next_done() is not written:
        pass
    written = _environment_errors(written.result)
    return dataclasses.replace(result, early=written) if isinstance(result, SimResult) else written


def _environment_errors(fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        raise RunError(f"could not write a part: {e}; nothing was committed") from None


@contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM while the run commits (milliseconds of renames), so that a commit is never cut
    in half; a signal that arrives meanwhile is ignored, since by then the run is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)


def _commit(staging: Path, out: Path, results: list[ShardResult], doc: dict) -> Path:
    """Move the staged parts and the state into place, then write the manifest; on any failure, move them back."""
    moves = [(staging / p.path, out / p.path) for r in results for p in r.parts]
    state = doc["timeline"]["state"]["path"]
    moves.append((staging / state, out / state))
    if "faults" in doc:  # the ground truth of the data faults injected, beside the state
        moves.append((staging / doc["faults"]["path"], out / doc["faults"]["path"]))
    clash = [str(dest) for _, dest in moves if dest.exists()]
    if clash:
        raise RunError(f"refusing to overwrite existing part {clash[0]}")
    body = manifest.dumps(doc)  # serialised before anything moves: nothing is put in place that it cannot list
    done: list[tuple[Path, Path]] = []
    path = manifest.manifest_path(out, doc["run_id"])
    try:
        for src, dest in moves:
            make_dirs(dest.parent)
            os.replace(src, dest)
            done.append((src, dest))
        for d in sorted({dest.parent for _, dest in moves}):
            sync_dir(d)
        return manifest.write(out, doc, body)
    except OSError as e:
        if path.is_file():  # renamed into place: the run is committed, and its parts must stay where it lists them
            raise RunError(
                f"run {doc['run_id']!r} is committed in {str(out)!r}, but making it durable failed: {e}; its files "
                "are in place (a power cut before the disk's own flush could still lose them)"
            ) from None
        for src, dest in reversed(done):
            os.replace(dest, src)
        raise RunError(f"could not commit the run: {e}; nothing was committed") from None


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
