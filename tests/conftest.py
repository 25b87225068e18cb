"""Shared fixtures: small runs that finish in a second or two on two cores."""

from __future__ import annotations

import contextlib
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from generator.config import RunConfig
from generator.coordinator import run

# Generation, not the property, sets an example's time: no per-example deadline (a loaded CI machine would trip
# it on the first call's warm-up), and slow examples are expected.
settings.register_profile("project", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("project")


def small_config(out: Path, **kw) -> RunConfig:
    base = dict(events=6_000, workers=1, seed=7, out=out, run_id="r1", customers=20_000, shard_size=2_000)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="session")
def committed_run(tmp_path_factory):
    """One committed multi-shard run, shared by the read-only tests."""
    out = tmp_path_factory.mktemp("run")
    summary = run(small_config(out, events=20_000, workers=2, shard_size=5_000))
    return out, summary


@contextmanager
def reaping_semaphores():
    """Around a `gen` process group killed with SIGKILL: its resource tracker dies with it, so the named semaphores of
    its process pool stay in /dev/shm; remove the ones that appeared meanwhile and that no live process has open
    (the group is dead by then; another process's, a test run or `gen` beside this one, must stay: removing one
    under it made its exit print a traceback and a leaked-semaphore warning)."""
    shm = Path("/dev/shm")

    def names() -> set[str]:
        return {p.name for p in shm.glob("sem.mp-*")} if shm.is_dir() else set()

    before = names()
    try:
        yield
    finally:
        for name in names() - before - _mapped_semaphores():
            (shm / name).unlink(missing_ok=True)


def _mapped_semaphores() -> set[str]:
    """Names of the /dev/shm semaphores that some live process has mapped (an open named semaphore is a mapping of
    its file, listed in /proc/PID/maps under the temporary name glibc created it with, so matched by inode)."""
    inodes = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # gone, or not ours to read
            continue
        inodes.update(int(line.split()[4]) for line in text.splitlines() if "/dev/shm/sem." in line)
    found = set()
    for p in Path("/dev/shm").glob("sem.mp-*"):
        with contextlib.suppress(OSError):
            if p.stat().st_ino in inodes:
                found.add(p.name)
    return found
