"""Data faults: injected at their rates, listed exactly in the ground-truth sidecar (checked here independently,
with SQL over the parts), expected by `gen validate`, deterministic, and off by default without changing a byte."""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator import manifest, sidecar
from generator.cli import main
from generator.config import RunConfig
from generator.coordinator import run
from generator.core.faults import FAULT_KINDS, PII_COLUMNS, fault_rng, inject
from generator.core.shard import plan, shard_rows
from generator.parts import _slices, partition_dir
from generator.validate import EMAIL, PHONE, validate
from tests.conftest import small_config

RATES = {"duplicate": 0.02, "late_arrival": 0.03, "out_of_order": 0.02, "missing_pii": 0.015, "malformed_contact": 0.02}
EVENTS = 20_000


def _scenario(tmp: Path, rates: dict[str, float]) -> Path:
    path = tmp / "faults.toml"
    path.write_text("[faults]\n" + "".join(f"{k} = {v!r}\n" for k, v in rates.items()))
    return path


def _config(out: Path, scenario: Path, **kw) -> RunConfig:
    base = dict(events=EVENTS, customers=5_000, shard_size=5_000, partition_by="hour", scenario=scenario)
    return small_config(out, **(base | kw))


@pytest.fixture(scope="module")
def tamper_src(tmp_path_factory):
    """One small run with faults, in daily partitions (few parts: quick to copy, tamper with and validate)."""
    tmp = tmp_path_factory.mktemp("tamper")
    out = tmp / "out"
    doc = run(_config(out, _scenario(tmp, RATES), events=8_000, partition_by="date")).manifest
    return out, doc, None


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """Two runs of one timeline with every fault on, two workers: (out, first manifest, second manifest)."""
    tmp = tmp_path_factory.mktemp("faulty")
    scenario = _scenario(tmp, RATES)
    out = tmp / "out"
    first = run(_config(out, scenario, workers=2)).manifest
    second = run(_config(out, None, workers=2, run_id="r2", events=5_000)).manifest  # continues the scenario
    return out, first, second


def _sql(out: Path, query: str) -> list[tuple]:
    """`query` over every part of `out` as the view `events` (with filename and file_row_number)."""
    con = duckdb.connect()
    con.execute(
        f"create view events as select * from read_parquet('{out}/events/**/*.parquet', filename = true, "
        "file_row_number = true, hive_partitioning = false)"
    )
    return con.execute(query).fetchall()


def _listed(out: Path, doc: dict, kind: str, column: str | None = None) -> set[tuple[str, str]]:
    t = sidecar.read(out / doc["faults"]["path"]).to_pylist()
    return {
        (str(f["event_id"]), f["path"]) for f in t if f["kind"] == kind and (column is None or f["column"] == column)
    }


def _rel(out: Path, filename: str) -> str:
    return Path(filename).relative_to(out).as_posix()


def test_the_manifest_lists_the_sidecar_with_its_checksum_and_counts(faulty):
    out, doc, _ = faulty
    info = doc["faults"]
    data = (out / info["path"]).read_bytes()
    assert info["path"] == f"_faults/{doc['run_id']}.parquet"
    assert hashlib.sha256(data).hexdigest() == info["sha256"] and len(data) == info["bytes"]
    table = sidecar.read(out / info["path"])
    assert table.num_rows == info["rows"] == sum(info["counts"].values())
    assert info["rates"] == RATES
    assert set(table.column("path").to_pylist()) <= {p["path"] for p in doc["parts"]}


def _within(observed: int, trials: int, p: float) -> None:
    """Binomial(trials, p) within 5 standard deviations: a correct rate fails this about once in 1.7 million seeds,
    while a rate off by a quarter (or a fault injected twice as often) is far outside it at these sizes."""
    sd = math.sqrt(trials * p * (1 - p))
    assert abs(observed - trials * p) <= 5 * sd, (observed, trials * p, sd)


def test_injected_counts_match_their_rates(faulty):
    out, doc, _ = faulty
    counts = doc["faults"]["counts"]
    # duplicate, missing_pii and malformed_contact: every event is a trial (one uniform per event picks its fault).
    for kind in ("duplicate", "missing_pii", "malformed_contact"):
        _within(counts[kind], EVENTS, RATES[kind])
    # late_arrival: only events outside their shard's last partition of the run can arrive later (counted here
    # from the data: distinct events of a shard in an hour before the shard's last hour).
    ((eligible,),) = _sql(
        out,
        f"""with e as (select distinct event_id, event_ts, regexp_extract(filename, 'part-(\\d+)-', 1) as shard
                       from events where filename like '%{doc["run_id"]}%')
            select count(*) from e join (select shard, max(date_trunc('hour', event_ts)) as last from e group by shard)
            using (shard) where date_trunc('hour', event_ts) < last""",
    )
    _within(counts["late_arrival"], eligible, RATES["late_arrival"])
    # out_of_order: a row is swapped only when the next row of its part has no fault (about 1 - sum of rates, the
    # copies of duplicates included) and is strictly later; the trials are the events times that share.
    clean = 1 - sum(RATES.values()) - RATES["duplicate"]
    _within(counts["out_of_order"], round(EVENTS * clean), RATES["out_of_order"])


def test_duplicates_found_by_sql_are_the_listed_ones(faulty):
    out, doc, second = faulty
    found = _sql(
        out,
        "select event_id::varchar, any_value(filename), count(distinct filename) from events "
        "group by event_id having count(*) > 1",
    )
    listed = _listed(out, doc, "duplicate") | _listed(out, second, "duplicate")
    assert {(i, _rel(out, f)) for i, f, _ in found} == listed
    assert all(files == 1 for *_, files in found)  # the copy is in its original's part
    assert len(found) == doc["faults"]["counts"]["duplicate"] + second["faults"]["counts"]["duplicate"]


def test_rows_out_of_order_found_by_sql_are_the_listed_ones(faulty):
    out, doc, second = faulty
    found = _sql(
        out,
        """select event_id::varchar, filename from (
             select event_id, filename, event_ts,
                    lag(event_ts) over (partition by filename order by file_row_number) as before from events)
           where event_ts < before""",
    )
    assert {(i, _rel(out, f)) for i, f in found} == _listed(out, doc, "out_of_order") | _listed(
        out, second, "out_of_order"
    )
    assert doc["faults"]["counts"]["out_of_order"] > 0


def test_late_arrivals_found_by_sql_are_the_listed_ones(faulty):
    out, doc, second = faulty
    found = _sql(
        out,
        """select event_id::varchar, filename from events
           where strftime(event_ts at time zone 'UTC', 'dt=%Y-%m-%d/hour=%H')
                 <> regexp_extract(filename, 'events/(.*)/part-', 1)""",
    )
    listed = _listed(out, doc, "late_arrival") | _listed(out, second, "late_arrival")
    assert {(i, _rel(out, f)) for i, f in found} == listed and listed
    # each arrived in a later partition than its own, never an earlier one
    assert all(
        strftime < part
        for strftime, part in _sql(
            out,
            """select strftime(event_ts at time zone 'UTC', 'dt=%Y-%m-%d/hour=%H'),
                      regexp_extract(filename, 'events/(.*)/part-', 1) from events
               where strftime(event_ts at time zone 'UTC', 'dt=%Y-%m-%d/hour=%H') <>
                     regexp_extract(filename, 'events/(.*)/part-', 1)""",
        )
    )


@pytest.mark.parametrize(
    ("column", "pattern"), [("phone_number", PHONE), ("email", EMAIL), ("name", None), ("address", None)]
)
def test_altered_values_found_by_sql_are_the_listed_ones(faulty, column, pattern):
    out, doc, second = faulty
    empty = _sql(out, f"select event_id::varchar, filename from events where {column} = ''")
    missing = _listed(out, doc, "missing_pii", column) | _listed(out, second, "missing_pii", column)
    assert {(i, _rel(out, f)) for i, f in empty} == missing and missing
    if pattern is None:
        return
    bad = _sql(
        out,
        f"select event_id::varchar, filename from events "
        f"where {column} <> '' and not regexp_matches({column}, '{pattern}')",
    )
    listed = _listed(out, doc, "malformed_contact", column) | _listed(out, second, "malformed_contact", column)
    assert {(i, _rel(out, f)) for i, f in bad} == listed and listed


def test_malformed_contacts_look_like_real_bad_data(faulty):
    out, *_ = faulty
    phones = {
        p for (p,) in _sql(out, f"select phone_number from events where not regexp_matches(phone_number, '{PHONE}')")
    }
    assert any(p.startswith("080") or p.startswith("090") or p.startswith("070") for p in phones)  # local format
    assert any(" " in p for p in phones)
    emails = {e for (e,) in _sql(out, f"select email from events where not regexp_matches(email, '{EMAIL}')")}
    assert any(e and "@" not in e for e in emails)
    assert any(e.endswith(".") for e in emails)


def test_validate_expects_the_listed_faults(faulty, capsys):
    out, doc, second = faulty
    report = validate(out)  # each run on its own, as `gen validate DIR`
    assert report.ok, report.violations
    totals = {k: doc["faults"]["counts"][k] + second["faults"]["counts"][k] for k in FAULT_KINDS}
    assert dict(report.expected) == {k: v for k, v in totals.items() if v}
    assert main(["validate", str(out), "--all"]) == 0
    text = capsys.readouterr().out
    for kind in FAULT_KINDS:
        assert f"fault {kind}" in text
    assert "injected (expected)" in text


def _rewrite(out: Path, doc: dict, rel: str, table: pa.Table) -> None:
    """Replace one part and make its manifest agree, so only the row rules can notice what changed."""
    pq.write_table(table, out / rel)
    data = (out / rel).read_bytes()
    entry = next(p for p in doc["parts"] if p["path"] == rel)
    entry["events_delta"] = table.num_rows - entry["rows"]
    doc["events"] += entry.pop("events_delta")
    entry |= {"rows": table.num_rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (out / manifest.relative_path(doc["run_id"])).write_bytes(manifest.dumps(doc))


def _unlisted_row(out: Path, doc: dict) -> tuple[str, pa.Table, int]:
    """A part with faults and the position of a row in it that no fault lists (nor its neighbours)."""
    faults = sidecar.read(out / doc["faults"]["path"])
    rel = faults.column("path")[0].as_py()
    t = pq.read_table(out / rel)
    listed = set(faults.column("event_id").to_pylist())
    ids = t.column("event_id").to_pylist()
    i = next(i for i in range(1, t.num_rows - 1) if not {ids[i - 1], ids[i], ids[i + 1]} & listed)
    return rel, t, i


@pytest.mark.parametrize("fault", ["duplicate", "out_of_order", "missing_pii", "malformed_contact"])
def test_a_fault_the_sidecar_does_not_list_is_a_violation(tamper_src, tmp_path, fault):
    src, doc, _ = tamper_src
    out = tmp_path / "out"
    shutil.copytree(src, out)
    doc = orjson.loads((out / manifest.relative_path(doc["run_id"])).read_bytes())
    rel, t, i = _unlisted_row(out, doc)
    idx = np.arange(t.num_rows)
    if fault == "duplicate":
        t, rule = t.take(np.insert(idx, i, i)), "event_id unique"
        doc["counts_by_type"][t.column("event_type")[i].as_py()] += 1
    elif fault == "out_of_order":
        idx[[i, i + 1]] = idx[[i + 1, i]]
        t, rule = t.take(idx), "rows sorted by event_ts in each part"
    else:
        column = "phone_number"
        value = "" if fault == "missing_pii" else "0" + t.column(column)[i].as_py()[4:]
        values = t.column(column).to_pylist()
        values[i] = value
        t = t.set_column(t.schema.get_field_index(column), t.schema.field(column), pa.array(values))
        rule = "phone_number is +234 E.164 mobile"
    _rewrite(out, doc, rel, t)
    assert validate(out, doc["run_id"]).violations[rule] >= 1


def test_a_listed_fault_missing_from_the_data_is_a_violation(tamper_src, tmp_path):
    src, doc, _ = tamper_src
    out = tmp_path / "out"
    shutil.copytree(src, out)
    doc = orjson.loads((out / manifest.relative_path(doc["run_id"])).read_bytes())
    rel, t, i = _unlisted_row(out, doc)
    faults = sidecar.read(out / doc["faults"]["path"])
    claim = pa.table(
        {
            "event_id": t.column("event_id").combine_chunks().take([i]),
            "kind": ["duplicate"],
            "path": [rel],
            "column": [None],
        },
        schema=sidecar.SCHEMA,
    )
    pq.write_table(pa.concat_tables([faults, claim]), out / doc["faults"]["path"])
    data = (out / doc["faults"]["path"]).read_bytes()
    doc["faults"] |= {"rows": faults.num_rows + 1, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    doc["faults"]["counts"]["duplicate"] += 1
    (out / manifest.relative_path(doc["run_id"])).write_bytes(manifest.dumps(doc))
    report = validate(out, doc["run_id"])
    assert set(report.violations) == {
        "listed faults present in their parts",
        "total events match manifest (and --events)",
    }


def _digests(doc: dict) -> list:
    return [(p["path"], p["sha256"]) for p in doc["parts"]] + [doc.get("faults", {}).get("sha256")]


def test_same_inputs_give_the_same_bytes_whatever_the_worker_count(faulty, tmp_path):
    _, doc, _ = faulty
    scenario = _scenario(tmp_path, RATES)
    again = run(_config(tmp_path / "one", scenario, workers=1)).manifest
    assert _digests(again) == _digests(doc)
    assert again["faults"]["counts"] == doc["faults"]["counts"]


def test_rates_of_zero_change_no_byte_and_write_no_sidecar(tmp_path):
    zero = _scenario(tmp_path, dict.fromkeys(FAULT_KINDS, 0.0))
    with_zero = run(_config(tmp_path / "zero", zero, events=6_000)).manifest
    default = run(_config(tmp_path / "default", None, events=6_000)).manifest
    assert _digests(with_zero) == _digests(default)
    assert "faults" not in with_zero and not (tmp_path / "zero" / "_faults").exists()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[faults]\nduplicate = 1.5\n", "faults.duplicate"),
        ("[faults]\nlate_arrival = -0.1\n", "faults.late_arrival"),
        ("[faults]\nout_of_order = 'often'\n", "faults.out_of_order"),
        ("[faults]\ntypo = 0.1\n", "faults.typo"),
        ("[faults]\nmissing_pii = 0.6\nmalformed_contact = 0.6\n", "faults"),
    ],
)
def test_invalid_rates_exit_2_naming_the_key(tmp_path, capsys, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "out"
    args = ["run", "--out", str(out), "--scenario", str(path), "--events", "1000", "--customers", "500", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{path}: {key}:" in err.replace("\n", "")
    assert not (out / "_manifests").exists()


# The pure injection, on one shard's rows: whatever the rates and stream, the faults listed are exactly the ones
# in the rows, and a kind at rate 0 never appears.
_CFG = RunConfig(events=3_000, customers=2_000, shard_size=3_000, seed=11).resolve(None).gen()
_ROWS = shard_rows(_CFG, plan(_CFG)[0])
_PARTS = _slices(_ROWS.ts, "hour")
_TRUTH = _ROWS.table()


@settings(max_examples=20)
@given(
    rates=st.lists(st.sampled_from([0.0, 0.01, 0.05, 0.2]), min_size=5, max_size=5).filter(lambda r: sum(r) <= 1),
    stream=st.integers(0, 2**32),
)
def test_inject_lists_exactly_the_faults_in_the_rows(rates, stream):
    f = inject(_ROWS, _PARTS, np.array(rates), fault_rng(stream, 0, 0))
    ids = f.rows.fixed["event_id"].storage.to_pylist()
    kinds = {k: set(f.at[f.kind == i].tolist()) for i, k in enumerate(FAULT_KINDS)}
    for i, k in enumerate(FAULT_KINDS):
        assert rates[i] > 0 or not kinds[k]
    # every original event is there, a listed duplicate twice (its copy right after it), nothing else twice
    assert len(ids) == len(_ROWS) + len(kinds["duplicate"])
    assert {a for a in range(1, len(ids)) if ids[a] == ids[a - 1]} == kinds["duplicate"]
    assert len(set(ids)) == len(_ROWS)
    # descents inside a part are exactly the rows listed out of order
    ts, descents = f.rows.ts, set()
    for lo, hi in f.bounds:
        descents |= set((lo + 1 + np.flatnonzero(np.diff(ts[lo:hi]) < 0)).tolist())
    assert descents == kinds["out_of_order"]
    # rows in a later partition than their time are exactly the late ones
    late = set()
    for (lo, hi), (olo, _) in zip(f.bounds, _PARTS, strict=True):
        own = partition_dir(int(_ROWS.ts[olo]), "hour")
        late |= {a for a in range(lo, hi) if partition_dir(int(ts[a]), "hour") < own}
    assert late == kinds["late_arrival"]
    # altered values: exactly the rows listed for a column differ from their customer's identity there
    table = f.rows.table()
    customers = table.column("customer_id").to_pylist()
    for c in PII_COLUMNS:
        truth = dict(zip(_TRUTH.column("customer_id").to_pylist(), _TRUTH.column(c).to_pylist(), strict=True))
        differ = {
            a
            for a, (cust, v) in enumerate(zip(customers, table.column(c).to_pylist(), strict=True))
            if truth[cust] != v
        }
        assert differ == set(f.at[f.column == PII_COLUMNS.index(c)].tolist())


def test_runs_checked_a_shard_per_worker_give_the_same_report(faulty):
    """`gen validate --workers N` checks ranges of customer blocks in N processes, run by run or (--all) the
    timeline at once: the report is the one of checking them one after another, faults and all (rules in the same
    order, the same counts, examples and rows)."""
    out = faulty[0]

    def summary(report):
        return report.checked, dict(report.violations), report.examples, report.rows, dict(report.expected)

    for whole in (False, True):
        one, three = validate(out, whole=whole, workers=1), validate(out, whole=whole, workers=3)
        assert one.ok
        assert summary(one) == summary(three)
        assert three.runs == one.runs
