"""Never a half-written or uncommitted part where readers look: killed workers, killed and interrupted runs."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from generator import coordinator
from generator.coordinator import RunError, run
from generator.launch import Gate, stop_pool, worker_context, worker_init
from generator.uploader import Uploader
from generator.validate import validate

from . import faults
from .conftest import reaping_semaphores, small_config


def _visible(out: Path) -> list[Path]:
    """Files a Hive-style reader (Athena, Spark, DuckDB globbing events/) would pick up."""
    events = out / "events"
    return [p for p in events.rglob("*") if p.is_file() and not p.name.startswith(".")] if events.exists() else []


@pytest.mark.parametrize("workers", [1, 3])
def test_worker_killed_mid_run_commits_nothing(tmp_path, workers):
    cfg = small_config(tmp_path, events=10_000, shard_size=1_000, workers=workers)
    if workers == 1:
        # In-process, the SIGKILL would take the test down with it: the shard fails with a disk error instead.
        def boom(gen, shard, *args):
            if shard.index == 2:
                raise OSError(28, "No space left on device")
            return faults.make_part(gen, shard, *args)

        fn, said = boom, "could not write a part: .*No space left on device; nothing was committed"
    else:
        fn, said = faults.die_on_shard_two, "a worker process died .*; nothing was committed"
    with pytest.raises(RunError, match=said):
        run(cfg, shard_fn=fn)
    assert not (tmp_path / "_manifests").exists()
    assert _visible(tmp_path) == []
    assert not (tmp_path / "_staging").exists(), "the failed run's own staging files are removed"


def test_a_part_that_cannot_be_written_behind_commits_nothing(tmp_path, monkeypatch):
    """One worker writes its parts on a second thread (`parts.WriteBehind`): a disk error there ends the run as
    one in line would (nothing committed, staging removed) and leaves no thread behind."""
    from generator import parts

    real = parts.write_atomic

    def full_disk(path, data, durable=True):
        if "part-00002-" in path.name:
            raise OSError(28, "No space left on device")
        return real(path, data, durable)

    monkeypatch.setattr(parts, "write_atomic", full_disk)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    cfg = small_config(tmp_path, events=10_000, shard_size=1_000, workers=1)
    with pytest.raises(RunError, match=r"could not write a part: .*No space left on device"):
        run(cfg)
    assert not (tmp_path / "_manifests").exists()
    assert _visible(tmp_path) == []
    assert not (tmp_path / "_staging").exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("write-behind")]
    assert parts.WriteBehind._open is None


def _gen(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "generator",
            "run",
            "--out",
            str(out),
            "--run-id",
            "big",
            "--workers",
            "2",
            "--events",
            "3000000",
            "--shard-size",
            "20000",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _wait_for_staged_parts(out: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        staged = list((out / "_staging").rglob("*.parquet")) if (out / "_staging").exists() else []
        if len(staged) >= 2:
            return
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    pytest.fail("no part was staged within 60 s")


@pytest.mark.slow
def test_killed_run_leaves_nothing_visible_and_can_be_redone(tmp_path):
    with reaping_semaphores():
        proc = _gen(tmp_path)
        _wait_for_staged_parts(tmp_path, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "_manifests").exists()
    assert _visible(tmp_path) == []
    # The same run, redone from scratch, commits normally (the dead attempt's staging is discarded).
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator",
            "run",
            "--out",
            str(tmp_path),
            "--run-id",
            "big",
            "--workers",
            "2",
            "--events",
            "20000",
            "--shard-size",
            "5000",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert validate(tmp_path).ok
    assert not (tmp_path / "_staging").exists()


def _session_members(leader: int) -> list[int]:
    """The processes of a session other than its leader (here: the forkserver, the workers, resource trackers)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        pid, sid = int(stat.parent.name), int(fields[3])
        if sid == leader and pid != leader:
            members.append(pid)
    return members


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_workers_leave_ctrl_c_and_sigterm_to_the_coordinator(tmp_path, sig):
    """Ctrl-C reaches every process of the group, a service manager's stop SIGTERMs every process of the
    service; only the coordinator acts on them. A signal that reaches the workers alone (busy or between two
    shards) neither stops the run nor prints a traceback."""
    proc = _gen(tmp_path, "--events", "1000000")
    _wait_for_staged_parts(tmp_path, proc)
    members = _session_members(proc.pid)
    assert members, "the run has worker processes"
    for pid in members:
        with contextlib.suppress(ProcessLookupError):  # one that has just ended
            os.kill(pid, sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode(), err.decode()
    manifest = json.loads((tmp_path / "_manifests" / "big.json").read_text())
    assert manifest["events"] == 1_000_000
    assert sum(p["rows"] for p in manifest["parts"]) == 1_000_000
    assert not (tmp_path / "_staging").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_never_outlive_a_killed_coordinator(tmp_path):
    """The coordinator alone killed (the OOM killer's pick, a `kill -9` of the main process): the worker server
    sees it go and exits, and the workers die with the server instead of waiting forever for shards."""
    with reaping_semaphores():
        proc = _gen(tmp_path)
        _wait_for_staged_parts(tmp_path, proc)
        members = _session_members(proc.pid)
        assert len(members) >= 3, "a server and two workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while _alive(members) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(members) == [], "processes of the run outlived it"


def _alive(pids: list[int]) -> list[int]:
    """The processes among `pids` still running (zombies, already dead and waiting for their reaper, are not)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_an_interrupted_pool_lets_its_workers_leave_on_their_own(tmp_path):
    """Ctrl-C in the coordinator while shards run: the queued shards are dropped, the running ones finish and
    the workers leave through the pool's own protocol (exit code 0), not killed mid-way (a worker killed while
    it sends its result can leave the pool waiting for the rest); the pool's manager thread has ended, so
    nothing is left for the interpreter's exit to wait on."""
    pool = coordinator._Workers(2, in_process=False)
    seen: dict[str, object] = {}

    def done(result):
        seen["processes"] = list(pool.pool._processes.values())
        seen["manager"] = pool.pool._executor_manager_thread  # shutdown() forgets it
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), pool:
        pool.each([(faults.busy_shard, (str(tmp_path), i)) for i in range(40)], done)
    assert [p.exitcode for p in seen["processes"]] == [0, 0]
    assert not seen["manager"].is_alive()
    started = {p.name.split("-")[1] for p in tmp_path.glob("started-*")}
    assert len(started) < 40, "the queued shards were dropped"
    assert {p.name.split("-")[1] for p in tmp_path.glob("finished-*")} == started, "the running shards finished"


_WORKER_DIES = """
import sys, time
from pathlib import Path
from tests import faults

path, root = sys.argv[1:]
# A third job: Python 3.11's pool starts the second worker after waking its manager for the second job, so
# without a later wake-up the manager could go on watching the first worker alone, and miss the second's death.
jobs = [(faults.die_now, (root,)), (faults.large_result_once_broken, (10_000_000,)), (int, ())]
try:
    if path == "run":
        from generator.coordinator import _Workers

        with _Workers(2, in_process=False) as pool:
            pool.each(jobs, lambda result: None)
    else:
        from generator.validate import _validation_pool

        with _validation_pool(2) as (pool, _):
            for f in [pool.submit(fn, *args) for fn, args in jobs]:
                f.result()
except Exception as e:
    print(type(e).__name__, e, flush=True)
print(f"died {time.time() - (Path(root) / 'died').stat().st_mtime:.2f}", flush=True)
"""


@pytest.mark.parametrize(("path", "error"), [("run", "RunError a worker process died"), ("validate", "WorkerDied")])
def test_a_worker_that_dies_ends_the_pool_at_once(tmp_path, path, error):
    """A worker killed abruptly (the OOM killer, a segfault): the pool's own cleanup SIGTERMs the others, which
    ignore it, finish their job and would wait forever to send a result larger than the pipe holds. `gen run`
    fails, and `gen validate` stops, within a second or two with the error, and the process exits."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER_DIES, path, str(tmp_path)],
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # hung: the workers leave with it (their coordinator watch)
        raise
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(error), out
    seconds = float(lines[-1].split()[1])
    assert seconds < 7, f"ended {seconds:.1f} s after the worker died"  # it took 10 s (run) or for ever


def test_a_worker_killed_half_way_through_its_result_leaves_nothing_waiting(tmp_path):
    """A worker killed while it sends its result (here: one that sent a part and then hangs until it is
    killed) leaves the pool's reader waiting for the rest; stopping the pool ends that wait too, or the
    interpreter's exit would join the reader forever."""
    pool = ProcessPoolExecutor(1, mp_context=worker_context(), initializer=worker_init, initargs=(os.getpid(),))
    pool.submit(faults.half_sent_result, str(tmp_path))
    manager, results = pool._executor_manager_thread, pool._result_queue
    deadline = time.monotonic() + 30
    while not (tmp_path / "half-sent").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        t0 = time.monotonic()
        stop_pool(pool, grace_s=0.5)
        assert not manager.is_alive()
        assert time.monotonic() - t0 < 8  # the grace, then the kill; it waited for ever
    finally:
        if manager.is_alive():  # let this test process exit all the same
            results._writer.close()


class _SignalAtLine:
    """A tracer for this thread that sends this process SIGTERM as it runs its `k`-th line inside the futures
    library or `threading`: a signal arriving at exactly that point."""

    LIBRARY = (os.path.dirname(concurrent.futures.__file__), threading.__file__)

    def __init__(self, k: int):
        self.k, self.lines, self.sent = k, 0, False

    def __call__(self, frame, event, arg):
        return self._line if frame.f_code.co_filename.startswith(self.LIBRARY) else None

    def _line(self, frame, event, arg):
        if event == "line":
            self.lines += 1
            if self.lines == self.k:
                self.sent = True
                signal.raise_signal(signal.SIGTERM)
        return self._line


def _sweep_signal_lines(wait_on, prepare=lambda pool: pool) -> int:
    """Send SIGTERM at each line, in turn, that the main thread runs in the futures library while
    `wait_on(prepare(pool))` waits for six jobs of a thread pool. Each time the command's Terminated must come out
    of it, and no future may be left locked (its worker thread would block on it for ever, and the interpreter's
    exit join that thread). Returns how many points were tried."""
    from generator.cli import Terminated, _terminated

    saved = signal.signal(signal.SIGTERM, _terminated)
    try:
        k, tried = 1, 0
        while True:
            pool = ThreadPoolExecutor(2)
            prepared = prepare(pool)
            tracer = _SignalAtLine(k)
            outcome = None
            sys.settrace(tracer)
            try:
                wait_on(prepared)
            except Terminated:
                outcome = "terminated"
            finally:
                sys.settrace(None)
            pool.shutdown(wait=False, cancel_futures=True)
            for t in list(pool._threads):
                t.join(timeout=5)
                assert not t.is_alive(), f"signal at line {k}: a pool thread is blocked on a future's lock"
            if not tracer.sent:  # the wait ended before its k-th line: every point was tried
                return tried
            assert outcome == "terminated", f"signal at line {k}: lost"
            assert signal.getsignal(signal.SIGTERM) is _terminated
            k, tried = k + 1, tried + 1
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_a_gate_holds_a_signal_until_its_end_and_does_not_nest():
    from generator.cli import Terminated, _terminated

    saved = signal.signal(signal.SIGTERM, _terminated)
    reached = []
    try:
        with pytest.raises(Terminated), Gate():
            signal.raise_signal(signal.SIGTERM)
            reached.append("after the signal")  # only noted: the code under the gate goes on
        assert reached == ["after the signal"]
        assert signal.getsignal(signal.SIGTERM) is _terminated
        with Gate(), pytest.raises(RuntimeError, match="do not nest"), Gate():
            pass
        assert signal.getsignal(signal.SIGTERM) is _terminated
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_a_signal_anywhere_in_the_wait_for_shards_leaves_no_future_locked():
    """The run's wait for its shards' results (CI once hung for ever after `gen: terminated`: the SIGTERM had
    come while `concurrent.futures.wait` held some of its futures' locks)."""

    def wait_on(pool):
        workers = coordinator._Workers.__new__(coordinator._Workers)
        workers.in_process, workers.pool = False, pool
        workers.each([(time.sleep, (0.002,)) for _ in range(6)], lambda result: None)

    assert _sweep_signal_lines(wait_on) > 50


def test_a_signal_anywhere_in_the_wait_for_parts_written_behind_leaves_no_future_locked():
    """One worker in this process waits, between shards, for the previous shard's parts (`parts.WriteBehind`)."""

    def wait_on(pool):
        workers = coordinator._Workers.__new__(coordinator._Workers)
        workers.in_process, workers.pool = True, None
        write = lambda: pool.submit(time.sleep, 0.002)  # noqa: E731  (a job whose parts are written behind)
        workers.each([(write, ()) for _ in range(6)], lambda result: None)

    assert _sweep_signal_lines(wait_on) > 20


def test_a_signal_while_a_part_is_written_behind_acts_at_once():
    """Ctrl-C or SIGTERM while one worker waits for a slow write behind (a stalled disk) ends the wait at once."""
    from generator.cli import Terminated, _terminated

    saved = signal.signal(signal.SIGTERM, _terminated)
    release = threading.Event()
    pool = ThreadPoolExecutor(1)
    workers = coordinator._Workers.__new__(coordinator._Workers)
    workers.in_process, workers.pool = True, None
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(Terminated):
            workers.each([(lambda: pool.submit(release.wait, 10), ())], lambda result: None)
        assert time.monotonic() - t0 < 5, "the signal waited for the write to finish"
    finally:
        release.set()
        pool.shutdown(wait=True)
        signal.signal(signal.SIGTERM, saved)


def test_a_signal_anywhere_in_the_wait_for_uploads_leaves_no_future_locked():
    def submit(pool):  # the parts were submitted within the wait for shards (tested above)
        part = lambda: time.sleep(0.002) or ("part", "checksum")  # noqa: E731
        return SimpleNamespace(futures=[pool.submit(part) for _ in range(6)], stats=lambda: (0, 0, 0))

    assert _sweep_signal_lines(Uploader.wait, submit) > 50


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["2", "1"])  # one: shards in the coordinator, parts written behind
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_exits_cleanly(tmp_path, sig, workers):
    proc = _gen(tmp_path, "--workers", workers)
    _wait_for_staged_parts(tmp_path, proc)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], err.decode()
    assert "nothing was committed" in err.decode(), err.decode()
    assert "Traceback" not in err.decode(), err.decode()
    assert not (tmp_path / "_manifests").exists()
    assert _visible(tmp_path) == []
    assert not (tmp_path / "_staging").exists()


def test_a_failure_after_the_manifests_rename_keeps_the_run_whole(tmp_path, monkeypatch):
    """The manifest's rename is the commit: when making its directory durable fails after it, the run says it is
    committed and leaves every part where the manifest lists them (moving them back would leave a manifest
    without its parts), and the timeline goes on."""
    from generator import parts

    real = parts.sync_dir

    def failing(path):
        if path.name == "_manifests":
            raise OSError(5, "Input/output error")
        real(path)

    monkeypatch.setattr(parts, "sync_dir", failing)
    with pytest.raises(RunError, match=r"run 'r1' is committed in .* but making it durable failed: .*Input/output"):
        run(small_config(tmp_path, events=3_000))
    monkeypatch.setattr(parts, "sync_dir", real)
    assert validate(tmp_path).ok
    run(small_config(tmp_path, events=3_000, run_id="r2", seed=None, customers=None))
    assert validate(tmp_path, whole=True).ok


def test_a_manifest_that_cannot_be_serialised_puts_nothing_in_place(tmp_path, monkeypatch):
    """The manifest is serialised before any part moves out of the staging: a manifest that cannot be (a bug: a
    value JSON cannot hold) fails the run with no part, state or manifest where readers look, and the same run id
    can run again (a run of 0.6 moved its parts into events/ first and left them there)."""
    from generator import manifest

    real = manifest.dumps

    def unserialisable(doc):
        raise TypeError("Integer exceeds 64-bit range")

    monkeypatch.setattr(manifest, "dumps", unserialisable)
    with pytest.raises(TypeError):
        run(small_config(tmp_path, events=3_000))
    assert _visible(tmp_path) == []
    assert not list(tmp_path.glob("_state/*")) and not list(tmp_path.glob("_manifests/*"))
    monkeypatch.setattr(manifest, "dumps", real)
    run(small_config(tmp_path, events=3_000))
    assert validate(tmp_path).ok


def test_what_cannot_be_written_leaves_no_temporary_file_and_new_folders_are_made_durable(tmp_path, monkeypatch):
    from generator import parts

    synced = []
    monkeypatch.setattr(parts, "sync_dir", lambda path: synced.append(path.relative_to(tmp_path).as_posix()))
    parts.write_atomic(tmp_path / "a" / "b" / "f.json", b"{}")
    assert synced == [".", "a", "a/b"], "each new folder's parent, then the file's folder"
    assert (tmp_path / "a" / "b" / "f.json").read_bytes() == b"{}"

    def full(src, dest):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parts.os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        parts.write_atomic(tmp_path / "a" / "g.json", b"{}")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"], "no temporary file left"


def test_a_state_that_cannot_be_written_or_a_staging_in_the_way_is_one_line(tmp_path, monkeypatch, capsys):
    from generator import timeline
    from generator.cli import main

    def full(*args):
        raise OSError(28, "No space left on device")

    args = ["run", "--events", "2000", "--customers", "3000", "-q"]
    with monkeypatch.context() as m:
        m.setattr(timeline, "write_state", full)
        assert main([*args, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write the run's state: " in err and "nothing was committed" in err
    assert not (tmp_path / "a" / "_manifests").exists() and _visible(tmp_path / "a") == []
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "_staging").write_text("a file where the staging folder goes")
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out: cannot create" in err and "_staging" in err, err
