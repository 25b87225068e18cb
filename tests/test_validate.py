"""The validator catches each kind of broken row: every rule is shown to fail on data that breaks it."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator import launch, manifest, timeline
from generator import validate as validate_module
from generator.coordinator import run
from generator.core.shard import GenConfig, plan, shard_table
from generator.schema import decoded
from generator.validate import _duplicates, _IdPrefixes, _prefix, check_table, cross_block_duplicates, validate

from .conftest import small_config

# From 01:00 WAT on Tuesday 4 November 2025 over about a day: orders are packed and then shipped inside it (from a
# Saturday, nothing packed in the window ships before Monday's hours).
CFG = GenConfig(
    seed=11, events=8_000, start_us=1_762_214_400_000_000, shard_size=8_000, latency_threshold_ms=2000, customers=4_000
)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    t = pa.concat_tables([decoded(shard_table(CFG, s)) for s in plan(CFG)])
    assert check_table(t, CFG.latency_threshold_ms).ok
    return t


def _set(t: pa.Table, column: str, row: int, value) -> pa.Table:
    values = t.column(column).to_pylist()
    values[row] = value
    field = t.schema.field(column)
    return t.set_column(t.schema.get_field_index(column), field, pa.array(values, field.type))


def _rows(t: pa.Table, event_type: str) -> np.ndarray:
    return np.flatnonzero(pc.equal(t.column("event_type"), event_type).to_numpy(zero_copy_only=False))


MUTATIONS = {
    # name: (event type of the row to break, column, new value or a function of the old one, rule expected to fire)
    "amount on a view": (
        "PRODUCT_VIEW",
        "total_amount",
        Decimal("100.00"),
        "total_amount set exactly on its event types",
    ),
    "no amount at checkout": ("CHECKOUT_STARTED", "total_amount", None, "total_amount set exactly on its event types"),
    "order amount differs": (
        "ORDER_PLACED",
        "total_amount",
        lambda v: v + Decimal("1.00"),
        "total_amount fixed from CHECKOUT_STARTED to ORDER_PLACED",
    ),
    "method on a failure": (
        "PAYMENT_FAILED",
        "payment_method",
        "CARD",
        "payment_method set exactly on its event types",
    ),
    "method changes at order": (
        "ORDER_PLACED",
        "payment_method",
        lambda v: "PAYPAL" if v != "PAYPAL" else "USSD",
        "payment_method same on PAYMENT_AUTHORIZED and ORDER_PLACED",
    ),
    "refund status on authorisation": (
        "PAYMENT_AUTHORIZED",
        "payment_status",
        "REFUNDED",
        "payment_status matches event_type",
    ),
    "status on a login": ("USER_LOGIN", "payment_status", "CAPTURED", "payment_status set exactly on its event types"),
    "carrier changes at order": (
        "ORDER_PLACED",
        "carrier",
        lambda v: "DHL" if v != "DHL" else "Speedaf",
        "carrier fixed per order",
    ),
    "tracking without carrier": ("PACKED", "carrier", None, "tracking_number set exactly when carrier is"),
    "carrier at checkout": ("CHECKOUT_STARTED", "carrier", "DHL", "carrier set exactly on its event types"),
    "slow but no error": ("PRODUCT_VIEW", "latency_ms", 9_999, "error_code iff latency_ms > 2000"),
    "error but fast": ("OPEN", "error_code", "INVALID LATENCY", "error_code iff latency_ms > 2000"),
    "misspelt platform": ("OPEN", "platform", "ANDRIOD", "platform in its value set"),
    "unknown event type": ("OPEN", "event_type", "APP_CRASH", "event_type in its value set"),
    "local phone format": ("OPEN", "phone_number", "08031234567", "phone_number is +234 E.164 mobile"),
    "email without domain": ("OPEN", "email", "ada.okafor@", "email well-formed"),
    "ordered before authorised": ("PAYMENT_AUTHORIZED", "event_type", "ORDER_PLACED", "order stages in time order"),
    "browsing after paying": ("PAYMENT_AUTHORIZED", "event_type", "PRODUCT_VIEW", "session events in funnel order"),
    "renamed customer": ("PRODUCT_VIEW", "name", "Somebody Else", "name fixed per customer"),
}


@settings(max_examples=3, deadline=None)
@pytest.mark.parametrize("name", sorted(MUTATIONS))
@given(pick=st.integers(0, 10**6))
def test_each_broken_rule_is_reported(table, name, pick):
    event_type, column, new, rule = MUTATIONS[name]
    rows = _rows(table, event_type)
    if rule.startswith("error_code iff"):  # break the rule on a row that keeps it: one not already slow
        rows = rows[table.column("error_code").is_null().to_numpy(zero_copy_only=False)[rows]]
    assert rows.size, f"the fixture has no {event_type}"
    row = int(rows[pick % rows.size])
    old = table.column(column)[row].as_py()
    broken = _set(table, column, row, new(old) if callable(new) else new)
    report = check_table(broken, CFG.latency_threshold_ms)
    assert rule in report.violations, (name, dict(report.violations))


@settings(max_examples=5, deadline=None)
@given(pick=st.integers(0, 10**6))
def test_a_checkout_without_an_add_to_cart_is_reported(table, pick):
    """A checkout may follow a product view, but only in a session that added to its cart: turning every
    ADD_TO_CART of one checkout's session into a PRODUCT_VIEW breaks that rule alone (each pair of events is
    still one the session grammar allows)."""
    chk = int(_rows(table, "CHECKOUT_STARTED")[pick % _rows(table, "CHECKOUT_STARTED").size])
    customer = table.column("customer_id")[chk].as_py()
    mine = table.filter(pc.equal(table.column("customer_id"), customer))
    ts, kind = mine.column("event_ts").to_pylist(), mine.column("event_type").to_pylist()
    at = ts.index(table.column("event_ts")[chk].as_py())
    opened = max(i for i in range(len(ts)) if kind[i] == "OPEN" and ts[i] <= ts[at])
    adds = {ts[i] for i in range(len(ts)) if kind[i] == "ADD_TO_CART" and ts[opened] <= ts[i] < ts[at]}
    assert adds
    own = pc.equal(table.column("customer_id"), customer).to_numpy(zero_copy_only=False)
    broken = table
    for row in np.flatnonzero(own):
        if (
            table.column("event_type")[int(row)].as_py() == "ADD_TO_CART"
            and table.column("event_ts")[int(row)].as_py() in adds
        ):
            broken = _set(broken, "event_type", int(row), "PRODUCT_VIEW")
    violations = check_table(broken, CFG.latency_threshold_ms).violations
    assert set(violations) == {"a checkout follows an add to cart in its session"}, dict(violations)


def test_duplicate_event_id_is_reported(table):
    ids = table.column("event_id").combine_chunks()
    dup = pa.concat_arrays([ids.slice(0, 1), ids.slice(0, table.num_rows - 1)])
    broken = table.set_column(0, table.schema.field(0), dup)
    assert check_table(broken, CFG.latency_threshold_ms).violations["event_id unique"] == 1


def test_wrong_type_is_reported(table):
    broken = table.set_column(9, pa.field("latency_ms", pa.int64(), nullable=False), table.column(9).cast(pa.int64()))
    assert "schema" in check_table(broken, CFG.latency_threshold_ms).violations


def test_shipping_before_packing_is_reported(table):
    """Moving a SHIPPED event before its PACKED breaks the order's time order."""
    packed = _rows(table, "PACKED")
    tracking = table.column("tracking_number")
    for row in packed:
        same = np.flatnonzero(pc.equal(tracking, tracking[int(row)]).to_numpy(zero_copy_only=False))
        shipped = [r for r in same if table.column("event_type")[int(r)].as_py() == "SHIPPED"]
        if shipped:
            earlier = table.column("event_ts")[int(row)].as_py() - timedelta(seconds=1)
            broken = _set(table, "event_ts", shipped[0], earlier)
            assert "order stages in time order" in check_table(broken, CFG.latency_threshold_ms).violations
            return
    pytest.fail("no order both packed and shipped in the fixture")


# -- whole runs, a customer block at a time ------------------------------------------------------------------------


@settings(max_examples=60)
@given(
    blocks=st.lists(st.lists(st.integers(0, 40), max_size=30), min_size=1, max_size=6),
    tail=st.integers(0, 3),
)
def test_repeated_ids_are_counted_exactly_within_and_across_blocks(blocks, tail):
    """Ids are drawn from few values: a handful of first eight bytes (the prefix the shortcut sorts and filters
    on), shared by ids whose last bytes differ or not, so both ways of the prefix shortcut are exercised (prefixes
    that collide without the ids being equal, and prefixes seen once): the counts equal the definitions over whole
    ids."""
    as_ids = [
        np.array([(v % 5).to_bytes(8, "big") + (v // (tail + 1)).to_bytes(8, "big") for v in block], "S16")
        for block in blocks
    ]
    for ids in as_ids:
        assert _duplicates(ids) == ids.size - np.unique(ids).size
    prefixes = _IdPrefixes(sum(ids.size for ids in as_ids))
    for ids in as_ids:
        prefixes.add(ids)
    in_blocks = Counter(v for ids in as_ids for v in set(ids.tolist()))
    expected = sum(n - 1 for n in in_blocks.values())
    found = cross_block_duplicates(prefixes.shared(), lambda c: [ids[np.isin(_prefix(ids), c)] for ids in as_ids])
    assert found == expected


def _rewrite(out: Path, doc: dict, rel: str, table: pa.Table) -> None:
    """Replace one part and make its manifest agree, so only the row rules can notice what changed."""
    pq.write_table(table, out / rel)
    data = (out / rel).read_bytes()
    entry = next(p for p in doc["parts"] if p["path"] == rel)
    entry |= {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (out / manifest.relative_path(doc["run_id"])).write_bytes(manifest.dumps(doc))


def _shard_part(doc: dict, shard: int) -> str:
    return next(p["path"] for p in doc["parts"] if p["shard"] == shard)


def _with_column(t: pa.Table, name: str, array: pa.Array) -> pa.Table:
    i = t.schema.get_field_index(name)
    return t.set_column(i, t.schema.field(i), array)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_event_id_repeated_in_another_shard_is_reported(tmp_path, workers):
    run(small_config(tmp_path, events=6_000, shard_size=2_000))
    doc = orjson.loads((tmp_path / "_manifests" / "r1.json").read_bytes())
    assert doc["shards"] >= 2
    first, second = (_shard_part(doc, s) for s in (0, 1))
    donor = pq.read_table(tmp_path / first).column("event_id").combine_chunks()
    t = pq.read_table(tmp_path / second)
    ids = t.column("event_id").combine_chunks()
    copied = pa.ExtensionArray.from_storage(
        pa.uuid(), pa.concat_arrays([donor.storage.slice(0, 1), ids.storage.slice(1)])
    )
    _rewrite(tmp_path, doc, second, _with_column(t, "event_id", copied))
    report = validate(tmp_path, workers=workers)
    assert dict(report.violations) == {"event_id unique": 1}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_customer_outside_its_shards_block_is_reported(tmp_path, workers):
    run(small_config(tmp_path, events=6_000, shard_size=2_000))
    doc = orjson.loads((tmp_path / "_manifests" / "r1.json").read_bytes())
    rel = _shard_part(doc, 0)
    t = pq.read_table(tmp_path / rel)
    stranger = f"NG{doc['options']['customers'] - 1:09d}"  # the population's last customer: the last shard's
    _rewrite(tmp_path, doc, rel, _set(t, "customer_id", 0, stranger))
    report = validate(tmp_path, workers=workers)
    assert report.violations["customers in their shard's block"] == 1


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("column", ["email", "phone_number"])
def test_a_contact_shared_by_two_customers_in_different_shards_is_reported(tmp_path, workers, column):
    """One customer of the second shard is given, on every one of its rows (so it stays fixed per customer), the
    e-mail or phone of a customer of the first shard: each rule sees one block only, the rule across blocks fires."""
    run(small_config(tmp_path, events=6_000, shard_size=2_000))
    doc = orjson.loads((tmp_path / "_manifests" / "r1.json").read_bytes())
    report = validate(tmp_path, workers=workers)
    assert report.ok and f"{column} belongs to one customer" in report.checked
    taken = pq.read_table(tmp_path / _shard_part(doc, 0)).column(column)[0].as_py()
    rel = _shard_part(doc, 1)
    t = pq.read_table(tmp_path / rel)
    mine = pc.equal(t.column("customer_id"), t.column("customer_id")[0]).to_numpy(zero_copy_only=False)
    values = np.array(t.column(column).to_pylist(), dtype=object)
    values[mine] = taken
    _rewrite(tmp_path, doc, rel, _with_column(t, column, pa.array(values.tolist(), pa.string())))
    report = validate(tmp_path, workers=workers)
    assert dict(report.violations) == {f"{column} belongs to one customer": 1}


def test_an_interrupted_parallel_validation_tells_its_workers_to_stop(committed_run, monkeypatch):
    """Validation workers leave Ctrl-C to the coordinator; interrupted, it sets the stop flag, and each worker
    leaves its range of blocks at the next block instead of finishing it."""
    out, _ = committed_run
    events = []

    class Recording:
        def __init__(self, ctx):
            self.ctx = ctx

        def Event(self):
            events.append(self.ctx.Event())
            return events[-1]

        def __getattr__(self, name):
            return getattr(self.ctx, name)

    monkeypatch.setattr(launch, "worker_context", lambda real=launch.worker_context: Recording(real()))

    def interrupted(self, other):
        raise KeyboardInterrupt

    monkeypatch.setattr(validate_module.Report, "merge", interrupted)
    with pytest.raises(KeyboardInterrupt):
        validate(out, workers=2)
    assert len(events) == 1 and events[0].is_set()


def test_a_stopped_worker_leaves_its_range_at_the_next_block(committed_run, monkeypatch):
    out, _ = committed_run
    docs = timeline.committed_runs(out)
    stop = multiprocessing.get_context("spawn").Event()
    monkeypatch.setattr(validate_module, "_stop", stop)
    faults = {d["run_id"]: None for d in docs}
    _, prefixes, _, _, _, _ = validate_module.check_blocks(out, docs, faults, False, 0, 2)
    assert prefixes.size > 0, "checks blocks while not stopped"
    stop.set()
    with pytest.raises(validate_module.ValidationStopped):
        validate_module.check_blocks(out, docs, faults, False, 0, 2)


def test_the_stop_flag_reaches_the_workers(committed_run):
    """The flag the coordinator sets when interrupted is the one each validation worker checks between blocks:
    a range submitted once it is set is left at its first block."""
    out, _ = committed_run
    docs = timeline.committed_runs(out)
    faults = {d["run_id"]: None for d in docs}
    with pytest.raises(validate_module.ValidationStopped), validate_module._validation_pool(1) as (pool, stop):
        assert pool.submit(validate_module.check_blocks, out, docs, faults, False, 0, 1).result()[1].size > 0
        stop.set()
        pool.submit(validate_module.check_blocks, out, docs, faults, False, 0, 2).result()
