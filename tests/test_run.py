"""Whole runs through the coordinator: exact counts, byte-identical parts whatever the worker count, the
manifest as the commit, and readers we did not write (pyarrow, DuckDB) seeing the declared types."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from generator.config import ConfigError, RunConfig
from generator.coordinator import run
from generator.schema import COLUMN_NAMES, EVENT_TYPES, arrow_schema
from generator.validate import validate

from .conftest import small_config


def _digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)).replace("-r1.parquet", ""): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "events").rglob("*.parquet"))
    }


def test_same_bytes_whatever_the_worker_count(tmp_path):
    digests = []
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}"
        run(small_config(out, workers=workers, events=9_000, shard_size=1_500))
        digests.append(_digests(out))
    assert len(digests[0]) >= 6
    assert digests[0] == digests[1] == digests[2]


def test_exact_count_and_manifest(committed_run):
    out, summary = committed_run
    doc = orjson.loads((out / "_manifests" / "r1.json").read_bytes())
    assert doc == summary.manifest
    assert doc["events"] == 20_000 == sum(p["rows"] for p in doc["parts"])
    assert sum(doc["counts_by_type"].values()) == 20_000
    assert list(doc["counts_by_type"]) == list(EVENT_TYPES)
    assert doc["options"]["latency_threshold_ms"] == 2000
    assert doc["seed"] == 7 and doc["generator_version"]
    assert [c["name"] for c in doc["schema"]] == list(COLUMN_NAMES)
    for p in doc["parts"]:
        f = out / p["path"]
        assert f.stat().st_size == p["bytes"]
        assert hashlib.sha256(f.read_bytes()).hexdigest() == p["sha256"]
        assert p["path"].startswith("events/dt=") and p["path"].endswith("-r1.parquet")
    assert not (out / "_staging").exists()
    assert validate(out).ok


def test_parts_read_back_with_pyarrow(committed_run):
    out, _ = committed_run
    dataset = ds.dataset(out / "events", format="parquet", partitioning="hive")
    assert dataset.schema.remove_metadata().equals(arrow_schema().append(pa.field("dt", pa.string())))
    assert dataset.count_rows() == 20_000
    for f in (out / "events").rglob("*.parquet"):
        t = pq.read_table(f)
        assert t.schema.equals(arrow_schema())
        meta = pq.ParquetFile(f).metadata
        chunks = {name: meta.row_group(0).column(i) for i, name in enumerate(COLUMN_NAMES)}
        plain = {"event_id", "event_ts"}  # random ids and delta-packed times: zstd finds nothing to take out
        assert {n: c.compression for n, c in chunks.items()} == {
            n: "UNCOMPRESSED" if n in plain else "ZSTD" for n in COLUMN_NAMES
        }
        for name in ("event_ts", "latency_ms"):
            assert "DELTA_BINARY_PACKED" in chunks[name].encodings, name
        assert str(meta.schema.column(0).logical_type) == "UUID"
        # min/max only where they can skip a row group: times, not codes every row group holds all of
        assert chunks["event_ts"].statistics.has_min_max
        assert chunks["latency_ms"].statistics.has_min_max
        for name in ("event_id", "event_type", "platform", "name"):
            assert chunks[name].statistics is None or not chunks[name].statistics.has_min_max, name


def test_duckdb_reads_uuid_timestamptz_decimal(committed_run):
    out, _ = committed_run
    con = duckdb.connect()
    glob = str(out / "events" / "*" / "*.parquet")
    types = dict(
        con.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning=true)").fetchall()[i][:2]
        for i in range(17)
    )
    assert types["event_id"] == "UUID"
    assert types["event_ts"] == "TIMESTAMP WITH TIME ZONE"
    assert types["total_amount"] == "DECIMAL(12,2)"
    assert types["latency_ms"] == "INTEGER"
    assert types["dt"] in ("DATE", "VARCHAR")
    n, distinct, first_dt = con.execute(
        f"SELECT count(*), count(DISTINCT event_id), min(dt) FROM read_parquet('{glob}', hive_partitioning=true)"
    ).fetchone()
    assert n == distinct == 20_000
    assert str(first_dt).startswith("2025-11-01")
    # DuckDB's own view of the order rules: one amount per authorised order, and no REFUNDED outside failures.
    bad = con.execute(
        f"""SELECT count(*) FROM (
              SELECT tracking_number FROM read_parquet('{glob}')
              WHERE event_type IN ('PAYMENT_AUTHORIZED', 'ORDER_PLACED')
              GROUP BY tracking_number HAVING count(DISTINCT total_amount) > 1)"""
    ).fetchone()[0]
    assert bad == 0
    refunded = con.execute(
        f"SELECT count(*) FROM read_parquet('{glob}') "
        "WHERE payment_status = 'REFUNDED' AND event_type <> 'PAYMENT_FAILED'"
    ).fetchone()[0]
    assert refunded == 0


def _readme_python_after(marker: str) -> str:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    return text.split(marker, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_committed_parts_read_as_the_readme_shows(committed_run, monkeypatch, capsys):
    """The README's `gen runs --parts` snippet, run as written on this run's folder: DuckDB reads the listed parts,
    every event of the run."""
    out, summary = committed_run
    code = _readme_python_after("### `gen runs")
    shown = '["gen", "runs", "--parts"]'
    assert shown in code
    code = code.replace(shown, f'["gen", "runs", {str(out)!r}, "--parts"]')
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # `gen`
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the README's own example
    assert scope["parts"] == [str(out / p["path"]) for p in summary.manifest["parts"]]
    assert f"{summary.manifest['events']}" in capsys.readouterr().out


def test_spark_reads_the_parts_as_the_readme_shows(committed_run, monkeypatch):
    """The README's PySpark snippet, run as written (on this run's folder, Spark local): Spark, given the schema
    that `gen schema --spark` prints, reads every event with its id, time, amount and latency as pyarrow does."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime")
    out, summary = committed_run
    code = _readme_python_after("With Spark (PySpark 4)")
    local = 'SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()'
    for shown, here in (('"shards/events"', repr(str(out / "events"))), ("SparkSession.builder.getOrCreate()", local)):
        assert shown in code
        code = code.replace(shown, here)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # `gen`
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the README's own example
    spark, events = scope["spark"], scope["events"]
    try:
        assert events.columns == [*COLUMN_NAMES, "dt"]
        counts = {r["event_type"]: r["count"] for r in events.groupBy("event_type").count().collect()}
        assert counts == {t: n for t, n in summary.manifest["counts_by_type"].items() if n}
        seen = events.selectExpr("event_id", "unix_micros(event_ts)", "total_amount", "latency_ms", "dt").collect()
        table = ds.dataset(out / "events", format="parquet", partitioning="hive").to_table()
        expected = zip(
            map(str, table.column("event_id").to_pylist()),
            table.column("event_ts").cast(pa.int64()).to_pylist(),
            table.column("total_amount").to_pylist(),
            table.column("latency_ms").to_pylist(),
            table.column("dt").to_pylist(),
            strict=True,
        )
        assert sorted((*r[:4], str(r[4])) for r in seen) == sorted(expected)
    finally:
        spark.stop()


@pytest.mark.parametrize("partition_by", ["hour", "none"])
def test_other_partitionings(tmp_path, partition_by):
    out = tmp_path / partition_by
    run(small_config(out, partition_by=partition_by, events=4_000))
    paths = [str(p.relative_to(out / "events")) for p in (out / "events").rglob("*.parquet")]
    if partition_by == "hour":
        assert all(p.startswith("dt=") and "/hour=" in p for p in paths)
    else:
        assert all("/" not in p for p in paths)
    assert validate(out).ok


def test_runs_never_overwrite(tmp_path):
    run(small_config(tmp_path, events=2_000))
    before = _digests(tmp_path)
    with pytest.raises(ConfigError, match="already committed"):
        run(small_config(tmp_path, events=3_000))
    run(small_config(tmp_path, events=2_000, run_id="r2"))
    after = _digests(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert len(after) > len(before)
    assert validate(tmp_path).ok and len(validate(tmp_path).runs) == 2


def test_the_coordinator_reports_shards_as_they_finish(tmp_path):
    from generator.coordinator import Listener

    from . import faults

    class Marker(Listener):
        def shard_done(self, result):
            (tmp_path / "_staging" / f"reported-{result.shard}").touch()

    cfg = small_config(tmp_path, workers=2, events=6_000, shard_size=1_000)
    summary = run(cfg, Marker(), shard_fn=faults.wait_for_first_report)
    assert summary.manifest["events"] == 6_000


@pytest.mark.parametrize("duration", [False, True])
def test_one_worker_writes_behind_with_the_same_bytes_and_order(tmp_path, monkeypatch, duration):
    """One worker in the coordinator's process encodes and writes each shard's parts on a second thread while it
    generates the next (where it has a second CPU): the same files, and the results reported in shard order."""
    from generator import parts
    from generator.coordinator import Listener

    class Order(Listener):
        def __init__(self):
            self.done = []

        def shard_done(self, result):
            assert not isinstance(result, parts.Future), "a result is reported before its parts are written"
            assert all((tmp_path / name / "_staging" / "r1" / p.path).is_file() for p in result.parts)
            self.done.append((result.shard, result.piece))

    submitted = []
    real_submit = parts.WriteBehind.submit
    monkeypatch.setattr(parts.WriteBehind, "submit", lambda self, *a: submitted.append(1) or real_submit(self, *a))
    sized = {"duration_us": 6 * 3_600_000_000, "events": None, "shard_size": 500} if duration else {"events": 9_000}
    digests, orders = [], []
    for name, cpus in (("behind", {0, 1}), ("in-line", {0})):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, cpus=cpus: cpus)
        listener = Order()
        run(small_config(tmp_path / name, **({"shard_size": 1_500} | sized)), listener)
        digests.append(_digests(tmp_path / name))
        orders.append(listener.done)
        if name == "behind":
            assert len(submitted) == len(listener.done) >= 2, "each shard's parts are written behind"
            submitted.clear()
    assert not submitted, "one CPU: nothing is written behind"
    assert len(digests[0]) >= 3 and digests[0] == digests[1]
    assert orders[0] == orders[1]
    assert parts.WriteBehind._open is None


@pytest.mark.parametrize("start", [None, "2025-11-01T05:30:00+01:00"])
def test_a_short_first_run_keeps_the_parts_it_wrote_early(tmp_path, start):
    """A run writes its events before `early_until` while it simulates; the instant comes from the traffic curve
    the sessions are drawn from. Placed by hour means, it fell after a 10,000-event first run's end (the curve at
    01:00 WAT sits 15% above that hour's mean), the early parts were void, and every shard was simulated twice."""
    from generator.config import parse_start
    from generator.coordinator import Listener

    class Pieces(Listener):
        def __init__(self):
            self.rows = {}

        def shard_done(self, result):
            self.rows[result.piece] = self.rows.get(result.piece, 0) + result.rows

    listener = Pieces()
    kw = {} if start is None else {"start": parse_start(start)}
    run(RunConfig(events=10_000, workers=1, out=tmp_path, run_id="r1", **kw), listener)
    assert 2 not in listener.rows, "the early parts were void"
    assert listener.rows[0] >= 5_000 and listener.rows[0] + listener.rows[1] == 10_000


def test_later_runs_take_the_email_reissues_from_the_cache_with_the_same_bytes(tmp_path, monkeypatch):
    """The first run in a directory works out which customers' e-mail addresses take another number and keeps
    that in `_cache/`; a later run there reads it instead (no address of the population is hashed) and writes the
    same bytes as a run that worked it out again. A cache file whose contents do not match its name is ignored."""
    from generator.core import population

    hashed = []
    real = population._address_hashes
    monkeypatch.setattr(population, "_address_hashes", lambda *a, **k: hashed.append(1) or real(*a, **k))

    def run_fresh(out: Path, run_id: str) -> dict[str, str]:
        population._reissued.clear()  # as a new process would start
        hashed.clear()
        run(small_config(out, run_id=run_id, events=4_000))
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "events").rglob(f"*-{run_id}.parquet")
        }

    a, b = tmp_path / "a", tmp_path / "b"
    run_fresh(a, "r1")
    assert hashed, "the first run works the reissues out"
    (kept,) = (a / "_cache").glob("email-reissues-*.npy")
    second = run_fresh(a, "r2")
    assert not hashed, "the second run takes them from the cache"
    run_fresh(b, "r1")
    shutil.rmtree(b / "_cache")
    assert run_fresh(b, "r2") == second and hashed
    data = bytearray(kept.read_bytes())
    data[-1] ^= 0xFF  # one byte of the contents changed: the name's sha256 no longer matches
    kept.write_bytes(bytes(data))
    shutil.rmtree(b / "_cache")
    assert run_fresh(a, "r3") == run_fresh(b, "r3")
    assert hashed, "a cache file that does not match its name is ignored"
    assert len(list((a / "_cache").glob("email-reissues-*.npy"))) == 1  # the good one replaced the bad one


def test_workers_wait_for_the_reissues_the_coordinator_works_out_meanwhile(tmp_path, monkeypatch):
    """With a pool, the coordinator works the e-mail reissues out on a thread while the workers simulate; a worker
    waits for them before it builds identities and takes the coordinator's, never its own. Here they come a second
    late and unmistakable (every customer's number is 10,000,000 + its index): every address carries them."""
    import time

    import numpy as np

    from generator import coordinator, parts

    def late(root: Path, gen) -> None:
        time.sleep(1.0)
        idx = np.arange(gen.customers, dtype=np.int64)
        np.save(root / parts.REISSUES_FILE, np.stack([idx, 10_000_000 + idx]), allow_pickle=False)

    monkeypatch.setattr(coordinator, "save_reissues", late)
    run(small_config(tmp_path, workers=2, events=4_000, shard_size=1_000))
    t = ds.dataset(tmp_path / "events", format="parquet").to_table(columns=["customer_id", "email"]).to_pylist()
    assert len(t) == 4_000
    for row in t:
        assert row["email"].split("@")[0].endswith(str(10_000_000 + int(row["customer_id"][2:]))), row


def test_reissues_the_coordinator_cannot_stage_stop_the_run_with_that_error(tmp_path, monkeypatch):
    """A disk error while the coordinator stages the reissues ends the run with that error (exit 1, one line):
    the workers waiting for them stop, nothing is committed and no staging is left."""
    from generator import coordinator
    from generator.coordinator import RunError

    def full(root: Path, gen) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(coordinator, "save_reissues", full)
    with pytest.raises(RunError, match=r"could not stage the e-mail reissues: .*No space left on device"):
        run(small_config(tmp_path, workers=2, events=4_000, shard_size=1_000))
    assert not list(tmp_path.glob("_manifests/*.json")) and not list(tmp_path.rglob("*.parquet"))
    assert not (tmp_path / "_staging").exists()


def test_workers_default_to_the_cpus_the_process_may_use(monkeypatch):
    """`taskset -c 0-2 gen run` (or a container's cpuset) runs three workers, whatever the machine has; where the
    system has no CPU affinity (macOS) the CPU count decides, and so does it whether one worker writes behind."""
    from generator import coordinator
    from generator.launch import usable_cpus, wants_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cpus() == 3 and RunConfig().workers == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert RunConfig().workers == 1 and not wants_workers(["run", "--events", "1000"])
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert usable_cpus() == 4
    workers = coordinator._Workers(1, in_process=True)
    try:
        assert workers.behind is not None
    finally:
        workers.__exit__(None, None, None)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert coordinator._Workers(1, in_process=True).behind is None
