"""The append-only timeline: runs continue where the last ended, carry their pending events forward, commit their
state before their manifest, refuse conflicts and concurrent writers, and replay to the same bytes."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from generator import coordinator, manifest, timeline
from generator.cli import main
from generator.config import parse_start
from generator.coordinator import RunError, run
from generator.core import population
from generator.core import shard as shard_module
from generator.core.events import DAY
from generator.core.shard import ORDER_STRIDE, cut_point, cut_point_sampled, time_sample
from generator.parts import read_part
from generator.validate import check_table, validate

from .conftest import reaping_semaphores, small_config

# 2,000 customers make about 3,000 events a day: the 6,000- and 5,000-event runs cover about two days each and the
# third a week, so orders placed in the first run are packed, shipped and delivered (about eight days on) later.
TIMELINE = dict(customers=2_000, shard_size=2_000)


def _files(out: Path) -> dict[str, str]:
    """Every data and state file under `out` with its sha256 (manifests aside: they hold timings)."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for d in ("events", timeline.STATE_DIR)
        if (out / d).exists()
        for p in (out / d).rglob("*")
        if p.is_file()
    }


def _three_runs(out: Path, workers: int = 2) -> Iterator[dict]:
    """r1 and r2 sized by events, r3 by time (a week); r2 and r3 take seed and population from the timeline."""
    sizes = {"r1": {"events": 6_000}, "r2": {"events": 5_000}, "r3": {"events": None, "duration_us": 7 * DAY}}
    for run_id, size in sizes.items():
        own = TIMELINE if run_id == "r1" else {"seed": None, "customers": None, "shard_size": 2_000}
        yield run(small_config(out, run_id=run_id, workers=workers, **own, **size)).manifest


def _events(out: Path, doc: dict) -> pa.Table:
    return pa.concat_tables([read_part(out / p["path"]) for p in doc["parts"]])


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    out = tmp_path_factory.mktemp("timeline")
    snapshots = []
    docs = []
    for i, d in enumerate(_three_runs(out)):
        docs.append(d)
        snapshots.append(_files(out))
        assert i == d["timeline"]["ordinal"]
    return out, docs, snapshots


def test_windows_are_contiguous_and_events_exact(history):
    out, docs, _ = history
    assert docs[0]["window"]["start"] == "2025-11-01T00:00:00.000000Z"
    for a, b in itertools.pairwise(docs):
        assert b["window"]["start"] == a["window"]["end"]
        assert b["timeline"]["previous"] == a["run_id"]
        assert b["timeline"]["orders_before"] == a["timeline"]["orders_after"]
        assert b["timeline"]["carried_in"] == a["timeline"]["carried_out"]
    assert [d["events"] for d in docs[:2]] == [6_000, 5_000]
    # The third run is sized by time: exactly a week, and every event of it.
    r3 = docs[2]
    assert manifest.parse_iso(r3["window"]["end"]) - manifest.parse_iso(r3["window"]["start"]) == 7 * DAY
    assert r3["options"]["events"] is None and r3["options"]["duration"] == "7d"
    # Written in one step per shard, each taking its orders' serials from a block of its own.
    assert r3["timeline"]["orders_after"] == r3["timeline"]["orders_before"] + r3["shards"] * ORDER_STRIDE
    placed = pa.concat_tables([_events(out, d) for d in docs]).filter(pc.equal(pc.field("event_type"), "ORDER_PLACED"))
    assert placed.num_rows > 50
    assert pc.count_distinct(placed["tracking_number"]).as_py() == placed.num_rows, "one tracking number per order"
    for d in docs:
        ts = _events(out, d).column("event_ts").cast(pa.int64()).to_numpy()
        lo, hi = manifest.parse_iso(d["window"]["start"]), manifest.parse_iso(d["window"]["end"])
        assert ts.min() >= lo and ts.max() < hi
    assert [r.runs for r in (validate(out),)] == [["r1", "r2", "r3"]]


def test_earlier_runs_files_are_never_touched(history):
    _, _, snapshots = history
    for before, after in itertools.pairwise(snapshots):
        assert {k: v for k, v in after.items() if k in before} == before
        assert len(after) > len(before)


def test_the_whole_timeline_validates_and_lifecycles_span_runs(history):
    out, docs, _ = history
    report = validate(out, whole=True)
    assert report.ok, dict(report.violations)
    assert "windows contiguous and non-overlapping" in report.checked
    assert validate(out).ok, "each run alone, with the sessions and orders it continues"
    tables = [
        _events(out, d).append_column("run", pa.array([i] * _events(out, d).num_rows)) for i, d in enumerate(docs)
    ]
    t = pa.concat_tables(tables)
    placed = t.filter(pc.and_(pc.equal(t["event_type"], "ORDER_PLACED"), pc.equal(t["run"], 0)))
    delivered = t.filter(pc.and_(pc.equal(t["event_type"], "DELIVERED"), pc.greater(t["run"], 0)))
    both = placed.select(["tracking_number", "event_ts"]).join(
        delivered.select(["tracking_number", "event_ts", "run"]),
        "tracking_number",
        right_suffix="_delivered",
        join_type="inner",
    )
    # r1's 27 orders of 1-2 November reach their doors from about a week later: the few delivered before r3 ends
    # on the 11th (4 with the weekend and payday curves) are the tail of a small sample
    assert both.num_rows >= 3, "orders placed in run 1 are delivered in later runs"
    assert pc.all(pc.less(both["event_ts"], both["event_ts_delivered"])).as_py()
    assert 2 in both["run"].to_pylist(), "some reach run 3"
    # Sessions going on at a run's end continue in the next run: the first run alone fails the strict rules there.
    strict = check_table(_events(out, docs[1]), docs[1]["options"]["latency_threshold_ms"])
    assert strict.violations["session events in funnel order"] > 0
    assert check_table(_events(out, docs[1]), 2000, continued=True).ok


def test_state_is_committed_with_the_run(history):
    out, docs, _ = history
    for d in docs:
        info = d["timeline"]["state"]
        data = (out / info["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]
        assert info["rows"] == d["timeline"]["carried_out"] > 0
    assert timeline.load(out).pending().events.ts.min() >= manifest.parse_iso(docs[-1]["window"]["end"])


def test_replaying_the_runs_gives_the_same_bytes_whatever_the_workers(history, tmp_path):
    _, _, snapshots = history
    list(_three_runs(tmp_path / "again", workers=1))
    assert _files(tmp_path / "again") == snapshots[-1]


def test_a_killed_run_is_redone_and_the_history_is_the_same(tmp_path):
    """SIGKILL the whole `gen run` process group mid-run: nothing is committed, the lock dies with it, and the next
    attempt redoes the window to the bytes of a history that was never interrupted."""
    second = {"run_id": "r2", "seed": None, "customers": None, "events": 60_000, "shard_size": 6_000, "workers": 2}
    calm, crash = tmp_path / "calm", tmp_path / "crash"
    for out in (calm, crash):
        run(small_config(out, run_id="r1", events=6_000, workers=2, **TIMELINE))
    calm_r2 = run(small_config(calm, **second)).manifest
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    args = [sys.executable, "-m", "generator", "run", "--out", str(crash), "--run-id", "r2", "--events", "60000"]
    with reaping_semaphores():
        proc = subprocess.Popen(
            [*args, "--workers", "2", "--shard-size", "6000", "-q"], env=env, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while not list((crash / "_staging").glob("r2/_sim/*.npy")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it was seen mid-run (its spills last ~0.3 s)"
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert [d["run_id"] for d in timeline.load(crash).runs] == ["r1"], "the killed run committed nothing"
    assert (crash / "_staging" / "r2").exists(), "it was killed mid-run"
    # The next attempt redoes the same window from the same state (and clears the dead run's staging).
    assert run(small_config(crash, **second)).manifest["window"] == calm_r2["window"]
    assert not (crash / "_staging").exists()
    assert _files(crash) == _files(calm)


def _refused(out: Path, capsys, *args: str) -> str:
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["run", "--out", str(out), "--quiet", *args]) == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before, "nothing written"
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("gen: error: ")
    return err


def test_conflicting_runs_are_refused(tmp_path, capsys):
    run(small_config(tmp_path, events=3_000, **TIMELINE))
    assert "inside the window" in _refused(tmp_path, capsys, "--start", "2025-11-01T06:00:00Z")
    early = _refused(tmp_path, capsys, "--start", "2025-01-01T00:00:00Z")
    assert "2025-01-01T00:00:00Z is before the beginning of the timeline" in early, early
    assert "which starts at 2025-11-01T00:00:00" in early and "inside" not in early
    assert "after the end" in _refused(tmp_path, capsys, "--start", "2026-01-01")
    assert "--seed: 8 differs from 7" in _refused(tmp_path, capsys, "--seed", "8")
    assert "--customers: 10 differs" in _refused(tmp_path, capsys, "--customers", "10")
    assert "either --events or --duration" in _refused(tmp_path, capsys, "--duration", "1h", "--events", "5")
    assert "--duration: not a duration" in _refused(tmp_path, capsys, "--duration", "soon")
    # Continuing explicitly at the end is not a conflict.
    end = timeline.load(tmp_path).last["window"]["end"]
    assert main(["run", "--out", str(tmp_path), "--events", "1000", "--quiet", "--start", end, "--workers", "1"]) == 0


@pytest.mark.parametrize("scheme", [None, 1, 3])
def test_a_timeline_of_an_earlier_identity_scheme_is_not_continued(tmp_path, capsys, scheme):
    """A timeline begun by a generator that drew identities another way (0.1: no field in its manifests; 0.9:
    scheme 3, shorter name lists) would give its customers new names, phones and addresses in the next run:
    refused, exit 2, nothing written."""
    run(small_config(tmp_path, events=1_000, **TIMELINE))
    path = tmp_path / "_manifests" / "r1.json"
    doc = orjson.loads(path.read_bytes())
    assert doc["identity_scheme"] == population.IDENTITY_SCHEME
    if scheme is None:
        del doc["identity_scheme"]
        doc["generator_version"] = "0.1.0"
    else:
        doc["identity_scheme"] = scheme
    path.write_bytes(orjson.dumps(doc))
    err = _refused(tmp_path, capsys, "--events", "1000")
    was, now = scheme or 1, population.IDENTITY_SCHEME
    assert f"whose customers have other identities (scheme {was}, this generator's {now})" in err, err


@pytest.mark.parametrize("layout", ["none", "hour"])
def test_a_continuing_run_keeps_the_timelines_partition_layout(tmp_path, capsys, layout):
    """Every run of a timeline writes its parts in the first run's layout, so one glob (or a hive dataset) over
    events/ reads them all: a run without --partition-by takes it, and another --partition-by is refused."""
    base = ["run", "--out", str(tmp_path), "--quiet", "--workers", "1", "--events", "1500"]
    assert main([*base, "--customers", "2000", "--partition-by", layout, "--run-id", "a"]) == 0
    other = "date"
    err = _refused(tmp_path, capsys, "--partition-by", other, "--events", "1500")
    assert f"--partition-by: {other} differs from {layout}, the layout of the timeline in" in err, err
    assert main([*base, "--dry-run"]) == 0
    assert orjson.loads(capsys.readouterr().out)["options"]["partition_by"] == layout
    assert main([*base, "--run-id", "b"]) == 0
    assert main([*base, "--run-id", "c", "--partition-by", layout]) == 0, "the timeline's own layout, spelled out"
    docs = timeline.load(tmp_path).runs
    assert [d["options"]["partition_by"] for d in docs] == [layout] * 3
    depth = {"none": 2, "hour": 4}[layout]  # events/part, events/dt=/hour=/part
    paths = [p["path"] for d in docs for p in d["parts"]]
    assert {len(Path(p).parts) for p in paths} == {depth}, paths
    on_disk = {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "events").rglob("*.parquet")}
    assert on_disk == set(paths)


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path, capsys):
    run(small_config(tmp_path, events=2_000, **TIMELINE))
    with timeline.lock(tmp_path):
        assert (tmp_path / timeline.LOCK_FILE).read_text().strip() == str(os.getpid())
        err = _refused(tmp_path, capsys)
        assert f"another gen run (pid {os.getpid()}) is writing" in err
    # Released with its holder: the next run goes ahead.
    assert main(["run", "--out", str(tmp_path), "--events", "1000", "--quiet", "--workers", "1"]) == 0


def test_a_running_gen_holds_the_lock_against_another_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    cmd = [sys.executable, "-m", "generator", "run", "--out", str(tmp_path), "--quiet", "--workers", "2"]
    first = subprocess.Popen([*cmd, "--events", "1500000", "--customers", "200000"], env=env)  # a few seconds
    deadline = time.monotonic() + 60
    while not (tmp_path / "_staging").exists() and time.monotonic() < deadline:
        assert first.poll() is None, "the first run ended before it staged anything"
        time.sleep(0.005)
    # Staging is made under the lock. The first run is held still meanwhile: the second one's start (~1 s, more on
    # a loaded machine) must not race the first one's end (~1.5 s after staging here).
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run([*cmd, "--events", "1000"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait(timeout=120) == 0
    assert second.returncode == 2 and "another gen run" in second.stderr, second.stderr
    assert len(timeline.load(tmp_path).runs) == 1


@pytest.mark.parametrize("content", [b"{not json", orjson.dumps({"format": "someone-else/1", "run_id": "x"})])
def test_a_corrupted_or_foreign_manifest_stops_the_next_run(tmp_path, capsys, content):
    run(small_config(tmp_path, events=2_000, **TIMELINE))
    bad = tmp_path / manifest.MANIFEST_DIR / "zz.json"
    bad.write_bytes(content)
    assert str(bad) in _refused(tmp_path, capsys)


def test_a_state_that_does_not_match_its_manifest_stops_the_next_run(tmp_path, capsys):
    doc = run(small_config(tmp_path, events=2_000, **TIMELINE)).manifest
    state = tmp_path / doc["timeline"]["state"]["path"]
    state.write_bytes(state.read_bytes()[:-10])
    assert "does not match its manifest" in _refused(tmp_path, capsys)


def test_gen_runs_lists_the_timeline(history, capsys):
    out, docs, _ = history
    assert main(["runs", str(out), "--json"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["run_id"], r["start"], r["end"], r["events"]) for r in rows] == [
        (d["run_id"], d["window"]["start"], d["window"]["end"], d["events"]) for d in docs
    ]
    assert main(["runs", str(out)]) == 0
    assert "3 committed run(s)" in capsys.readouterr().out


def test_gen_runs_parts_lists_every_committed_part_for_readers(history, capsys):
    """`gen runs --parts`: every committed run's part files, one a line, which DuckDB reads as the timeline's
    events; --json gives their records; --s3 refuses runs that were never uploaded, and needs --parts."""
    import duckdb

    out, docs, _ = history
    assert main(["runs", str(out), "--parts"]) == 0
    paths = capsys.readouterr().out.splitlines()
    assert paths == [str(out / p["path"]) for d in docs for p in d["parts"]]
    count = duckdb.sql(f"select count(*) from read_parquet({paths!r})").fetchall()[0][0]
    assert count == sum(d["events"] for d in docs)
    assert main(["runs", str(out), "--parts", "--json"]) == 0
    records = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in records] == paths and sum(r["rows"] for r in records) == count
    for args, named in ((["--parts", "--s3"], "was not uploaded"), (["--s3"], "only with --parts")):
        assert main(["runs", str(out), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gen: error: --s3:") and named in err and err.count("\n") == 1


def _bracket(samples: list[np.ndarray], events: int, k: int) -> tuple[int | None, int | None]:
    """The sample values `cut_point_sampled` brackets the run's last instant by, as its docstring defines them: the
    largest with fewer than `events` times at or below it even by the samples' upper bounds (k*c + k - 1 for a
    shard with c samples at or below), and the smallest with at least `events` by their lower bounds (k*c); None
    where there is none."""
    values = np.unique(np.concatenate(samples))
    at_or_below = [sum(int(np.searchsorted(s, v, side="right")) for s in samples) for v in values.tolist()]
    lo = [v for v, c in zip(values, at_or_below, strict=True) if k * c + (k - 1) * len(samples) < events]
    hi = [v for v, c in zip(values, at_or_below, strict=True) if k * c >= events]
    return (int(max(lo)) if lo else None), (int(min(hi)) if hi else None)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 40), max_size=60), min_size=1, max_size=6),
    st.integers(1, 150),
    st.sampled_from([1, 2, 3, 5, 8, 64]),
)
@example(values=[[0] * 9], events=1, every=2)  # one instant: the whole shard is the bracket's upper end
@example(values=[list(range(100)), [50] * 300], events=120, every=8)  # 300 at 50 in (47, 50]: all read, 7 of the rest
def test_the_cut_takes_exactly_the_first_events_across_shards(values, events, every):
    """Ties included, and whatever the sampling that brackets it: the run's last instant and the takes give
    exactly `events`, never one after a later one. The shards' times are read only around the bracket, two sample
    values lo < last <= hi: each shard's read holds its times in (lo, hi] and at most every - 1 more on either
    side. That is a few `every` per shard, save where many times are one instant inside the bracket: the one read
    per shard holds all of them (the takes count them), as in the explicit examples."""
    shards = [np.sort(np.array(v, np.int64)) for v in values]
    reads = {}

    def read(s, i, j):
        reads[s] = j - i
        return shards[s][i:j]

    samples = [time_sample(a, every) for a in shards]
    point = cut_point_sampled(samples, [a.size for a in shards], events, read, every)
    total = sum(a.size for a in shards)
    if total < events:
        assert point is None
        return
    last, takes = point
    below = sum(int((a < last).sum()) for a in shards)
    assert below + sum(takes) == events
    assert all(0 <= k <= int((a == last).sum()) for k, a in zip(takes, shards, strict=True))
    assert sum(int((a <= last).sum()) for a in shards) >= events > below
    assert point == cut_point(shards, events, every)
    lo, hi = _bracket(samples, events, every)
    assert (lo is None or lo < last) and (hi is None or last <= hi)
    for s, a in enumerate(shards):
        inside = (a > (np.iinfo(np.int64).min if lo is None else lo)) & (
            a <= (np.iinfo(np.int64).max if hi is None else hi)
        )
        assert reads[s] <= int(inside.sum()) + 2 * (every - 1), "only the bracket is read"


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32), st.integers(200, 3_000), st.integers(200, 3_000), st.integers(300, 5_000))
def test_any_two_runs_form_one_valid_timeline(tmp_path_factory, seed, first, second, customers):
    out = tmp_path_factory.mktemp("prop")
    a = run(small_config(out, run_id="a", seed=seed, customers=customers, events=first, shard_size=700)).manifest
    b = run(small_config(out, run_id="b", seed=None, customers=None, events=second, shard_size=900)).manifest
    assert (a["events"], b["events"]) == (first, second)
    assert b["window"]["start"] == a["window"]["end"]
    report = validate(out, whole=True)
    assert report.ok, dict(report.violations)
    # Checked in ranges of customer blocks by three processes (the runs' shards cut across the ranges): the same.
    three = validate(out, whole=True, workers=3)
    assert (three.checked, dict(three.violations), three.rows) == (report.checked, dict(report.violations), report.rows)


SCENARIOS = Path(__file__).parent.parent / "scenarios"


def test_a_scenario_is_recorded_and_continued_until_another_is_given(tmp_path, capsys):
    outage = SCENARIOS / "payment-outage.toml"
    first = small_config(tmp_path, events=3_000, scenario=outage, start=parse_start("2025-11-03T06:00:00Z"), **TIMELINE)
    a = run(first).manifest
    assert a["options"]["scenario"] == str(outage)
    assert [i["kind"] for i in a["scenario"]["incidents"]] == ["payment_outage"]
    b = run(small_config(tmp_path, run_id="r2", seed=None, customers=None, events=2_000)).manifest
    assert b["options"]["scenario"] is None and b["scenario"] == a["scenario"], "continued without --scenario"
    c = run(
        small_config(
            tmp_path, run_id="r3", seed=None, customers=None, events=2_000, scenario=SCENARIOS / "default.toml"
        )
    )
    assert c.manifest["scenario"]["incidents"] == []
    assert validate(tmp_path, whole=True).ok
    bad = tmp_path / "bad.toml"
    bad.write_text("[payment.failure]\nCARD = 1.7\n")
    err = _refused(tmp_path, capsys, "--scenario", str(bad))
    assert err == f"gen: error: {bad}: payment.failure.CARD: 1.7 is not a probability in [0, 1]"


def test_quiet_windows_commit_with_empty_shards_and_even_no_event(tmp_path):
    """A run ends at one instant for every shard, so a shard may have nothing before it, and a short window of a
    small population may hold no event at all: both commit, and the timeline goes on."""
    quiet = run(small_config(tmp_path, run_id="q", events=None, duration_us=1_000_000, customers=50, shard_size=10))
    doc = quiet.manifest
    assert doc["events"] == 0 and doc["parts"] == [] and doc["window"]["first_event_ts"] is None
    assert doc["timeline"]["carried_out"] > 0, "the warm start's parcels are still on their way"
    busy = small_config(tmp_path, run_id="b", seed=None, customers=None, events=40, shard_size=10, workers=2)
    doc = run(busy).manifest
    assert doc["events"] == 40 and doc["shards"] == 4
    assert validate(tmp_path, whole=True).ok


def _pieces(doc: dict) -> set[str]:
    return {p["path"].rsplit("/", 1)[-1].split("-")[2] for p in doc["parts"]}


def test_a_run_writes_most_of_its_events_while_it_simulates(tmp_path):
    """Events before the early instant go out in step 1 (piece 0), the rest after the end is known (piece 1)."""
    doc = run(small_config(tmp_path, events=20_000, shard_size=5_000, workers=2)).manifest
    assert _pieces(doc) == {"0", "1"}
    early = sum(p["rows"] for p in doc["parts"] if "-0-" in p["path"])
    assert 0.8 * 20_000 < early < 20_000
    assert validate(tmp_path).ok


def test_the_early_instant_leaves_room_for_a_small_runs_sessions():
    """Events come in sessions, so a small run's count before the early instant varies EVENT_DISPERSION times more
    than a count of single events; the margin allows four of those standard deviations. EVENT_DISPERSION covers the
    default funnel's E[X^2]/E[X] of a session's events X, and 2,000-event runs of 3,000 customers never have their
    2,000th event before the early instant (with 4/sqrt(N), 3 seeds in 30 did, and wrote every shard again)."""
    from generator.core.events import SECOND
    from generator.core.sessions import simulate

    b = shard_module.default_behaviour()
    n = 200_000
    starts = 1_761_955_200_000_000 + np.arange(n, dtype=np.int64) * 3600 * SECOND
    customer = np.arange(n, dtype=np.int64)
    last_end = np.full(n, np.iinfo(np.int64).min // 2, np.int64)
    ev, _ = simulate(np.random.default_rng(1), b, starts, customer, np.zeros(n, np.int8), customer, last_end, 0)
    x = np.bincount(ev.customer, minlength=n).astype(float)
    assert (x**2).mean() / x.mean() <= shard_module.EVENT_DISPERSION
    for seed in range(20):
        gen = small_config(Path("unused"), seed=seed, events=2_000, customers=3_000, shard_size=3_000).gen()
        early = shard_module.early_until(gen)
        stop = shard_module.first_stop(gen)
        sims = [shard_module.simulate_shard(gen, s, None, stop) for s in shard_module.plan(gen)]
        before = sum(int((sim.events.ts < early).sum()) for sim in sims)
        assert before < 2_000, (seed, before)


def test_more_simulation_rounds_give_the_same_bytes(tmp_path, monkeypatch):
    """A first round too short for the run's end (forced here) simulates again; the early parts written in the
    first round are the same events as when one round is enough, and the whole run has the same bytes."""
    one = tmp_path / "one"
    run(small_config(one, events=20_000, shard_size=5_000))
    monkeypatch.setattr(coordinator, "first_stop", lambda gen: shard_module.DEFAULT_STOP - 1)
    rounds = []
    monkeypatch.setattr(coordinator, "_end_of_run", _counting(coordinator._end_of_run, rounds))
    two = tmp_path / "two"
    run(small_config(two, events=20_000, shard_size=5_000))
    assert rounds == [False, True], "the first round fell short"
    assert _files(two) == _files(one)


def test_a_small_run_falling_short_jumps_along_the_grid_in_one_round(tmp_path, monkeypatch):
    """A cold start's first minutes hold far fewer events than expected (no sessions are going on yet), so a run
    of a thousand events falls short of its first round; the next round goes as far as the shortfall says, not
    one grid point (three more rounds before), and the bytes are those of stepping point by point. (Runs this
    short now start further along the grid, `first_stop`; the first round is held at DEFAULT_STOP here.)"""
    cfg = dict(events=1_000, customers=1_000_000, shard_size=250)
    monkeypatch.setattr(coordinator, "first_stop", lambda gen: shard_module.DEFAULT_STOP)
    rounds = []
    monkeypatch.setattr(coordinator, "_end_of_run", _counting(coordinator._end_of_run, rounds))
    run(small_config(tmp_path / "jump", **cfg))
    assert rounds == [False, True]
    stepped = []
    monkeypatch.setattr(coordinator, "next_stop", lambda stop, *_: stop + 1)
    monkeypatch.setattr(coordinator, "_end_of_run", _counting(coordinator._end_of_run, stepped))
    run(small_config(tmp_path / "step", **cfg))
    assert len(stepped) > 2 and stepped[-1] and not any(stepped[:-1]), "stepping takes more rounds"
    assert _files(tmp_path / "jump") == _files(tmp_path / "step")


def test_a_shard_on_its_own_that_never_reaches_its_events_gives_up(monkeypatch):
    """`shard_cut` (tests, benchmarks) gives up at the grid's last point, as a run does, instead of simulating
    further and further for ever."""
    stops = []

    class NoEvents:
        def final_ts(self):
            return np.zeros(0, np.int64)

    def simulate(cfg, shard, stop, pools=None):
        stops.append(stop)
        if len(stops) > 100:
            raise AssertionError(f"still simulating at grid point {stop}")
        return NoEvents()

    monkeypatch.setattr(shard_module, "simulate_shard", simulate)
    cfg = shard_module.GenConfig(
        seed=1, events=500, start_us=1_761_955_200_000_000, shard_size=500, latency_threshold_ms=2000, customers=1_000
    )
    with pytest.raises(ValueError, match="too few events"):
        shard_module.shard_cut(cfg, shard_module.plan(cfg)[0])
    assert stops[-1] == shard_module.last_stop(cfg)
    assert shard_module.grid(cfg, stops[-1])[-1] == shard_module.grid_cap(cfg), "ten years simulated"


# Seed 396 gives customer 0 an activity of 1.1e-5 sessions a day (the population's mean is 0.3): alone, it needs
# some 30,000 times its expected window for 500 events.
_IDLE = dict(seed=396, customers=1, events=500)


def test_a_population_far_below_its_expectation_is_refused_within_ten_years_of_simulation(tmp_path):
    """Its grid stops at ten years from the start (it went on to 2**24 times the expected window, whose hourly
    traffic curve alone needed tens of gigabytes): the shard on its own raises, a run exits with nothing
    committed."""
    cfg = shard_module.GenConfig(start_us=1_761_955_200_000_000, shard_size=500, latency_threshold_ms=2000, **_IDLE)
    with pytest.raises(ValueError, match="too few events"):
        shard_module.shard_cut(cfg, shard_module.plan(cfg)[0])
    with pytest.raises(RunError, match="too few events"):
        run(small_config(tmp_path, shard_size=500, **_IDLE))
    assert not (tmp_path / "_manifests").exists() or not any((tmp_path / "_manifests").iterdir())


@given(
    stop=st.integers(shard_module.DEFAULT_STOP - 1, shard_module.MAX_STOP),
    events=st.integers(1, 10**9),
    wanted=st.integers(1, 10**9),
    simulated=st.integers(0, 10**9),
)
def test_next_stop_moves_on_and_covers_the_shortfall(stop, events, wanted, simulated):
    k = shard_module.next_stop(stop, events, wanted, simulated)
    assert stop < k <= max(stop + 1, shard_module.MAX_STOP)
    need = shard_module.grid_multiple(stop, events) * min(wanted / max(simulated, 1), 4.0)
    if k < shard_module.MAX_STOP:
        assert shard_module.grid_multiple(k, events) >= need
    if k > stop + 1:
        assert shard_module.grid_multiple(k - 1, events) < need, "no further than the shortfall needs"


def test_a_run_that_ends_before_its_early_instant_is_written_again(tmp_path, monkeypatch):
    """If the population runs ahead of its expectation and the run ends before the early instant (forced here by
    moving that instant past the end), the early parts are void: every shard is written again, whole. The
    progress shown counts the run's events once (not the void parts too)."""
    import io

    from rich.console import Console

    from generator.dashboard import LogLines

    cfg = small_config(tmp_path, events=20_000, shard_size=5_000)
    late = shard_module._time_of(cfg.resolve(None).gen(), 1.01 * 20_000)
    monkeypatch.setattr(coordinator, "early_until", lambda gen: late)
    screen = io.StringIO()
    log = LogLines(Console(file=screen, width=200))
    doc = run(cfg, log).manifest
    assert _pieces(doc) == {"2"} and doc["events"] == 20_000
    assert log.events == 20_000 and sum(w[1] for w in log.per_worker.values()) == 20_000
    assert log.bytes == doc["bytes"]
    assert "gen: 20,000/20,000 events (100%)" in screen.getvalue()
    assert not (tmp_path / "_staging").exists()
    assert validate(tmp_path, whole=True).ok
    assert sorted(p.name for p in (tmp_path / "events").rglob("*.parquet")) == sorted(
        p["path"].rsplit("/", 1)[-1] for p in doc["parts"]
    ), "the void early parts were never committed"


def _counting(fn, seen):
    def wrapped(*args):
        point = fn(*args)
        seen.append(point is not None)
        return point

    return wrapped


def test_a_short_first_run_simulates_once(tmp_path, monkeypatch):
    """A 10,000-event first run from the default start (01:00 WAT, no parcels moving at night) falls short of
    the expectation by more than the grid's margin in its first minutes; it starts far enough along the grid to
    need one round, with the same bytes as from the default stop (the grid is the same). From the default stop
    it took two rounds while traffic stepped at the hour; with the smooth curve one or two."""
    rounds = []
    monkeypatch.setattr(coordinator, "_end_of_run", _counting(coordinator._end_of_run, rounds))
    run(small_config(tmp_path / "first", events=10_000, customers=1_000_000, shard_size=None))
    assert len(rounds) == 1 and rounds[0]
    cfg = small_config(tmp_path / "x", events=10_000, customers=1_000_000, shard_size=None).resolve(None).gen()
    assert shard_module.first_stop(cfg) > shard_module.DEFAULT_STOP
    monkeypatch.setattr(coordinator, "first_stop", lambda gen: shard_module.DEFAULT_STOP)
    rounds.clear()
    run(small_config(tmp_path / "stepped", events=10_000, customers=1_000_000, shard_size=None))
    assert len(rounds) in (1, 2)
    assert _files(tmp_path / "first") == _files(tmp_path / "stepped")
