"""The validator: re-reads committed runs through their manifests and checks every rule of the event model.

`check_table` holds the row-level rules (a pure function over an Arrow table, also used by the property
tests); `validate_run` adds what only files can break: checksums, sizes, counts, sort order and partitions.
Rows are checked a customer block at a time (a customer's sessions and orders never leave its shard), so memory
holds one block plus 8 bytes per event for the id uniqueness check, however long the run or timeline.
Rules come from `generator.schema`; none is restated here. Data faults a run lists in its sidecar are expected: each
rule they break skips exactly the listed events (and counts them), and a listed fault must be in the data.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from generator import manifest, sidecar, timeline
from generator.core.events import DAY, HOUR
from generator.core.faults import FAULT_KINDS
from generator.core.population import customer_index
from generator.core.shard import split
from generator.launch import Gate
from generator.parts import EVENTS_DIR, partition_dir
from generator.schema import (
    COLUMNS,
    EVENT_CODE,
    EVENT_TYPES,
    INVALID_LATENCY,
    ORDER_STAGES,
    PAYMENT_STATUS_BY_TYPE,
    SESSION_EVENTS,
    SESSION_NEXT,
    arrow_schema,
    decoded,
)

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

PHONE = r"^\+234[789][01][0-9]{8}$"
EMAIL = r"^[a-z0-9][a-z0-9._]*@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
IDENTITY = ("name", "phone_number", "address", "email")


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)  # rule names, in the order checked
    violations: Counter = field(default_factory=Counter)  # rule -> violating rows (or items)
    examples: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    only_in_s3: list[str] = field(default_factory=list)  # runs uploaded to S3 whose parts are not in this directory
    rows: int = 0
    expected: Counter = field(default_factory=Counter)  # fault kind -> faults injected and listed in a sidecar
    # Rows left out of the session and order rules: their customers' shard lost a part (missing or unreadable, a
    # violation of its own), so their sessions and orders are incomplete here, not wrong.
    unchecked: int = 0

    def rule(self, name: str, bad: int, example: str = "") -> None:
        if name not in self.checked:
            self.checked.append(name)
        if bad:
            self.violations[name] += int(bad)
            self.examples.setdefault(name, example)

    @property
    def ok(self) -> bool:
        return not self.violations

    def merge(self, other: Report) -> None:
        """Add the rules another report checked (of a later block: its rules and examples come after ours)."""
        for name in other.checked:
            if name not in self.checked:
                self.checked.append(name)
        self.violations.update(other.violations)
        for name, example in other.examples.items():
            self.examples.setdefault(name, example)
        self.rows += other.rows
        self.unchecked += other.unchecked


def _codes(table: pa.Table) -> np.ndarray:
    """event_type as integer codes (-1 for unknown types)."""
    idx = pc.index_in(table.column("event_type"), value_set=pa.array(EVENT_TYPES))
    return idx.fill_null(-1).to_numpy().astype(np.int64)


def _count_false(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(pc.invert(mask.fill_null(False))).as_py() or 0)


def _first_row(table: pa.Table, bad: np.ndarray, cols=("event_id", "event_type")) -> str:
    i = int(np.flatnonzero(bad)[0])
    return ", ".join(f"{c}={table.column(c)[i].as_py()}" for c in cols)


def _ids(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A UUID column as 16-byte strings (comparable and sortable by numpy)."""
    storage = col.combine_chunks().storage if isinstance(col, pa.ChunkedArray) else col.storage
    return np.frombuffer(storage.buffers()[1], "S16", len(storage), storage.offset * 16)


def _listed(ids: np.ndarray, faults: pa.Table | None, kind: str, column: str | None = None) -> np.ndarray:
    """Per row, whether its event is listed in `faults` as `kind` (altering `column`, when given)."""
    if faults is None or not faults.num_rows:
        return np.zeros(ids.size, bool)
    mask = pc.equal(faults.column("kind"), kind)
    if column is not None:
        mask = pc.and_(mask, pc.equal(faults.column("column"), column).fill_null(False))
    return np.isin(ids, _ids(faults.column("event_id").filter(mask)))


def _without_listed_copies(table: pa.Table, faults: pa.Table | None) -> pa.Table:
    """`table` with the extra copies of the duplicates listed in `faults` dropped (each listed event kept once)."""
    if faults is None or not faults.num_rows or table.schema.get_field_index("event_id") < 0:
        return table
    ids = _ids(table.column("event_id"))
    dup = np.flatnonzero(_listed(ids, faults, "duplicate"))
    if not dup.size:
        return table
    _, first = np.unique(ids[dup], return_index=True)
    keep = np.ones(ids.size, bool)
    keep[dup] = False
    keep[dup[first]] = True
    return table.filter(pa.array(keep))


def _in_ranges(x: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Whether each of `x` lies in one of the half-open `ranges` (rows [a, b), in any order, may overlap)."""
    inside = np.zeros(x.size, bool)
    for a, b in ranges:
        inside |= (x >= a) & (x < b)
    return inside


def check_table(
    table: pa.Table,
    threshold_ms: int,
    report: Report | None = None,
    continued: bool = False,
    faults: pa.Table | None = None,
    contacts: Contacts | None = None,
    incomplete: np.ndarray | None = None,
) -> Report:
    """Every row-level rule of the event model over `table` (one run, any part of one, or a whole timeline).

    `continued`: the table is a run that continues a timeline, so it may open with the rest of sessions and
    orders begun in the run before (a customer's first events need not start with OPEN, an order's with its
    authorisation); checking the whole timeline at once (`gen validate --all`) holds those to the full rule.
    `faults`: the sidecar rows of the runs in `table`; the listed events are expected to break the rules their
    fault breaks (a listed duplicate's copies are dropped first; a listed altered value skips that column's rules).
    `contacts`: collects each customer's e-mail and phone, for the rules across blocks (`Contacts.check`).
    `incomplete`: ranges of customer indices [a, b) (rows of two) whose histories are not all here, because a part
    of their shard is missing or unreadable: the session and order rules leave their rows out (`unchecked`)."""
    r = report or Report()
    table = decoded(table)
    r.rows += table.num_rows
    table = _without_listed_copies(table, faults)
    ids = _ids(table.column("event_id")) if table.schema.get_field_index("event_id") >= 0 else np.zeros(0, "S16")
    altered = {
        c: _listed(ids, faults, "missing_pii", c) | _listed(ids, faults, "malformed_contact", c) for c in IDENTITY
    }
    schema = arrow_schema()
    r.rule("schema", 0 if table.schema.remove_metadata().equals(schema) else 1, f"got {table.schema}")
    if not table.schema.remove_metadata().equals(schema):
        return r
    codes = _codes(table)
    for c in COLUMNS:
        col = table.column(c.name)
        if not c.nullable:
            r.rule(f"{c.name} never null", col.null_count, "")
        if c.values:
            r.rule(
                f"{c.name} in its value set",
                _count_false(pc.is_in(col, value_set=pa.array(c.values))) - col.null_count,
            )
        if c.populated_on is not None:
            expected = np.isin(codes, [EVENT_CODE[t] for t in c.populated_on])
            bad = expected != col.is_valid().to_numpy(zero_copy_only=False)
            r.rule(
                f"{c.name} set exactly on its event types",
                bad.sum(),
                _first_row(table, bad) if bad.any() else "",
            )

    status = table.column("payment_status").to_numpy(zero_copy_only=False)
    want = np.array([PAYMENT_STATUS_BY_TYPE.get(t) for t in EVENT_TYPES] + [None], dtype=object)[codes]
    bad = status != want
    r.rule("payment_status matches event_type", bad.sum(), _first_row(table, bad) if bad.any() else "")

    latency = table.column("latency_ms").to_numpy(zero_copy_only=False)
    error = pc.equal(table.column("error_code"), INVALID_LATENCY).fill_null(False).to_numpy(zero_copy_only=False)
    bad = (latency > threshold_ms) != error
    r.rule(
        f"error_code iff latency_ms > {threshold_ms}",
        bad.sum(),
        _first_row(table, bad, ("event_id", "latency_ms")) if bad.any() else "",
    )
    r.rule("latency_ms positive", int((latency <= 0).sum()))

    bad = table.column("carrier").is_valid().to_numpy(zero_copy_only=False) != table.column(
        "tracking_number"
    ).is_valid().to_numpy(zero_copy_only=False)
    r.rule("tracking_number set exactly when carrier is", bad.sum())

    amount = table.column("total_amount")
    r.rule(
        "total_amount positive",
        _count_false(pc.greater(amount, pa.scalar(0, amount.type))) - amount.null_count,
    )

    r.rule("event_id unique", _duplicates(_ids(table.column("event_id"))))
    for c, rule, pattern in (("phone_number", "is +234 E.164 mobile", PHONE), ("email", "well-formed", EMAIL)):
        values = table.column(c).filter(pa.array(~altered[c]))
        r.rule(f"{c} {rule}", _rows_not_matching(values, pattern))

    per_customer = table.group_by("customer_id").aggregate([(c, "count_distinct") for c in IDENTITY])
    for c in IDENTITY:
        if altered[c].any():  # without the listed altered values
            kept = table.select(["customer_id", c]).filter(pa.array(~altered[c]))
            per_customer = kept.group_by("customer_id").aggregate([(c, "count_distinct")])
        r.rule(
            f"{c} fixed per customer",
            int(pc.sum(pc.greater(per_customer.column(f"{c}_count_distinct"), 1)).as_py() or 0),
        )
    if contacts is not None:
        contacts.add(table, altered)

    if incomplete is not None and len(incomplete):
        keep = ~_in_ranges(customer_index(table.column("customer_id")), incomplete)
        r.unchecked += int((~keep).sum())
        table, codes = table.filter(pa.array(keep)), codes[keep]
    _check_orders(table, codes, r, continued)
    _check_sessions(table, codes, r, continued)
    return r


class Contacts:
    """Each customer's e-mail and phone number, gathered block by block (one row per customer and value), for the
    rules that look across blocks: an e-mail address, and a phone number, belongs to one customer."""

    COLUMNS = ("email", "phone_number")

    def __init__(self) -> None:
        self.tables: dict[str, list[pa.Table]] = {c: [] for c in self.COLUMNS}

    def add(self, table: pa.Table, altered: dict[str, np.ndarray]) -> None:
        for c in self.COLUMNS:
            pairs = table.select(["customer_id", c])
            if altered[c].any():  # an injected fault's value is expected to be anyone's
                pairs = pairs.filter(pa.array(~altered[c]))
            self.tables[c].append(pairs.group_by(["customer_id", c]).aggregate([]))

    def merge(self, other: Contacts) -> None:
        for c in self.COLUMNS:
            self.tables[c].extend(other.tables[c])

    def check(self, report: Report, population: int) -> None:
        for c in self.COLUMNS:
            if c == "phone_number" and population > PHONES_UNIQUE_UP_TO:
                continue  # subscriber numbers are a permutation of the first ten million customers only
            tables = self.tables[c]
            if not tables:
                continue
            pairs = pa.concat_tables(tables).group_by(["customer_id", c]).aggregate([])
            owners = pairs.group_by(c).aggregate([("customer_id", "count")])
            shared = pc.greater(owners.column("customer_id_count"), 1)
            example = owners.filter(shared).column(c)[0].as_py() if pc.any(shared).as_py() else ""
            report.rule(f"{c} belongs to one customer", int(pc.sum(shared).as_py() or 0), example)


PHONES_UNIQUE_UP_TO = 10_000_000


def _duplicates(ids: np.ndarray) -> int:
    """How many of the 16-byte ids repeat one before them: sorted by their first eight bytes, only ids that share
    those are compared whole (hashing every id was the slowest rule)."""
    prefix = _prefix(ids)
    order = np.argsort(prefix)
    sorted_prefix = prefix[order]
    shared = np.flatnonzero(sorted_prefix[1:] == sorted_prefix[:-1])
    if not shared.size:
        return 0
    rows = order[np.unique(np.concatenate([shared, shared + 1]))]
    return int(rows.size - np.unique(ids[rows]).size)


def _rows_not_matching(values: pa.ChunkedArray | pa.Array, pattern: str) -> int:
    """Rows whose value does not match `pattern` (nulls count as not matching); the pattern runs once per
    distinct value (identities repeat on every event of their customer)."""
    encoded = pc.dictionary_encode(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
    if not len(encoded):
        return 0
    bad_value = pc.invert(pc.match_substring_regex(encoded.dictionary, pattern)).to_numpy(zero_copy_only=False)
    per_value = np.bincount(encoded.indices.fill_null(-1).to_numpy().astype(np.int64) + 1, minlength=bad_value.size + 1)
    return int(per_value[0] + per_value[1:][bad_value].sum())


def _kobo(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A decimal money column as exact integers (hundredths), nulls as the least int64 (not as Decimal objects,
    which compare one by one in Python)."""
    hundredths = pc.cast(pc.multiply(col, pa.scalar(100, pa.int64())), pa.int64())
    return pc.fill_null(hundredths, np.iinfo(np.int64).min).to_numpy()


def _dense(col: pa.ChunkedArray) -> np.ndarray:
    """A code per row, equal where the values are (-1 for null, so two nulls compare equal as None did)."""
    return col.combine_chunks().dictionary_encode().indices.fill_null(-1).to_numpy().astype(np.int64)


def _ts(table: pa.Table) -> np.ndarray:
    return table.column("event_ts").combine_chunks().view(pa.int64()).to_numpy(zero_copy_only=False)


def _check_orders(table: pa.Table, codes: np.ndarray, r: Report, continued: bool = False) -> None:
    """Along one tracking number: stages in order without gaps, one carrier, one customer, one amount/method."""
    rows = np.flatnonzero(table.column("tracking_number").is_valid().to_numpy(zero_copy_only=False))
    stage_of = np.full(len(EVENT_TYPES) + 1, -1)
    for i, t in enumerate(ORDER_STAGES):
        stage_of[EVENT_CODE[t]] = i
    columns = ["tracking_number", "event_ts", "carrier", "customer_id", "total_amount", "payment_method"]
    sub = table.select(columns).take(pa.array(rows))
    key = _dense(sub.column("tracking_number"))
    stage = stage_of[codes[rows]]
    order = np.lexsort((stage, _ts(sub), key))
    key, stage = key[order], stage[order]
    same = np.r_[False, key[1:] == key[:-1]]
    # The first event of an order in the data is its authorisation, or (for orders placed before the timeline's
    # start) a fulfilment stage, or in a continuing run any stage; every later one is the next stage.
    first_ok = np.ones(stage.size, bool) if continued else (stage == 0) | (stage >= 2)
    bad = np.where(same, stage != np.r_[-9, stage[:-1]] + 1, ~first_ok)
    r.rule(
        "order stages in time order",
        bad.sum(),
        f"tracking_number={sub.column('tracking_number')[int(order[np.argmax(bad)])]}" if bad.any() else "",
    )
    for col in ("carrier", "customer_id", "total_amount", "payment_method"):
        vals = _dense(sub.column(col))[order] if col in ("carrier", "customer_id") else None
        if vals is None:
            # amount and method are set on PAYMENT_AUTHORIZED and ORDER_PLACED only; they must agree.
            v = (_kobo(sub.column(col)) if col == "total_amount" else _dense(sub.column(col)))[order]
            pair = same & (stage == 1) & (np.r_[-1, stage[:-1]] == 0)
            bad = pair & (v != np.r_[v[:1], v[:-1]])
            r.rule(f"{col} same on PAYMENT_AUTHORIZED and ORDER_PLACED", bad.sum())
        else:
            bad = same & (vals != np.r_[vals[:1], vals[:-1]])
            r.rule(f"{col.replace('_id', '')} fixed per order", bad.sum())


_NEXT = np.zeros((len(EVENT_TYPES), len(EVENT_TYPES)), bool)
for _a, _bs in SESSION_NEXT.items():
    for _b in _bs:
        _NEXT[EVENT_CODE[_a], EVENT_CODE[_b]] = True


def _check_sessions(table: pa.Table, codes: np.ndarray, r: Report, continued: bool = False) -> None:
    """Per customer in time order, session events follow the session grammar; a payment keeps its checkout's amount.
    In a continuing run, a customer's events before their first OPEN may be the rest of an earlier session."""
    rows = np.flatnonzero(np.isin(codes, [EVENT_CODE[t] for t in SESSION_EVENTS]))
    sub = table.select(["event_id", "event_type", "event_ts", "customer_id", "total_amount"]).take(pa.array(rows))
    cust = _dense(sub.column("customer_id")) if rows.size else np.zeros(0, np.int64)
    order = np.lexsort((rows, _ts(sub), cust))
    c, t = cust[order], codes[rows][order]
    same = np.r_[False, c[1:] == c[:-1]]
    prev = np.r_[0, t[:-1]]
    is_open = t == EVENT_CODE["OPEN"]
    # Events of a customer before their first OPEN here: the tail of a session from the run before.
    seen = np.cumsum(is_open)
    opened = seen - np.maximum.accumulate(np.where(~same, seen - is_open, 0))
    lead = continued & (opened == 0)
    bad = np.where(same, ~_NEXT[prev, t], ~is_open & ~lead)
    r.rule(
        "session events in funnel order",
        bad.sum(),
        _first_row(sub, np.isin(np.arange(len(order)), order[bad])) if bad.any() else "",
    )

    # A checkout needs an add to cart earlier in its session (since its customer's last OPEN).
    is_chk = t == EVENT_CODE["CHECKOUT_STARTED"]
    carts = np.cumsum(t == EVENT_CODE["ADD_TO_CART"])
    last_open = np.maximum.accumulate(np.where(is_open, np.arange(t.size), -1)) if t.size else t
    in_session = (last_open >= 0) & (c == c[np.maximum(last_open, 0)])
    bad = is_chk & np.where(in_session, carts == carts[np.maximum(last_open, 0)], ~lead)
    r.rule(
        "a checkout follows an add to cart in its session",
        bad.sum(),
        _first_row(sub, np.isin(np.arange(len(order)), order[bad])) if bad.any() else "",
    )

    amount = _kobo(sub.column("total_amount"))[order]
    last_chk = np.maximum.accumulate(np.where(is_chk, np.arange(t.size), -1)) if t.size else t
    paying = np.isin(t, [EVENT_CODE[k] for k in ("PAYMENT_FAILED", "PAYMENT_AUTHORIZED", "ORDER_PLACED")])
    ok = (last_chk >= 0) & (c == c[np.maximum(last_chk, 0)])
    bad = paying & np.where(ok, amount != amount[np.maximum(last_chk, 0)], ~lead)
    r.rule("total_amount fixed from CHECKOUT_STARTED to ORDER_PLACED", bad.sum())


def _read_faults(out: Path, doc: dict, report: Report) -> pa.Table | None:
    """A run's fault sidecar, checked against its manifest and counted as expected; None when it injects none."""
    info = doc.get("faults")
    if not info:
        return None
    f = out / info["path"]
    data = f.read_bytes() if f.is_file() else b""
    report.rule(
        "fault sidecar exists and matches manifest",
        hashlib.sha256(data).hexdigest() != info["sha256"],
        info["path"],
    )
    if not data:
        return None
    try:
        faults = sidecar.read(f)
    except (pa.ArrowException, OSError):
        report.rule("fault sidecar reads as Parquet", True, info["path"])
        return None
    counts = Counter(faults.column("kind").to_pylist())
    report.rule(
        "fault counts match manifest",
        sum(abs(counts.get(k, 0) - info["counts"].get(k, 0)) for k in FAULT_KINDS),
        info["path"],
    )
    report.expected.update({k: counts[k] for k in FAULT_KINDS if counts[k]})
    return faults


def _faults_present(t: pa.Table, ts: np.ndarray, where: tuple[str, str, str], faults: pa.Table, r: Report) -> None:
    """Every fault listed for one part (`where`: partitioning, the part's partition, its path) is in it: a listed
    duplicate twice, a late event outside the part's partition, a moved row below the one before it, an altered
    value empty (missing_pii) or malformed (malformed_contact)."""
    partition_by, part_dir, path = where
    ids = _ids(t.column("event_id"))
    present = 0
    for kind in FAULT_KINDS:
        mine = faults.filter(pc.equal(faults.column("kind"), kind))
        rows = np.flatnonzero(np.isin(ids, _ids(mine.column("event_id"))))
        if kind == "duplicate":
            present += int((np.unique(ids[rows], return_counts=True)[1] >= 2).sum())
        elif kind == "late_arrival":
            unit = DAY if partition_by == "date" else HOUR
            keys, inverse = np.unique(ts[rows] // unit, return_inverse=True)
            dirs = np.array([partition_dir(int(k) * unit, partition_by) for k in keys] or [""])
            present += int((dirs[inverse] != part_dir).sum())
        elif kind == "out_of_order":
            present += int(((rows > 0) & (ts[rows] < ts[np.maximum(rows - 1, 0)])).sum())
        else:
            for c in IDENTITY:
                listed = _ids(mine.filter(pc.equal(mine.column("column"), c).fill_null(False)).column("event_id"))
                values = t.column(c).take(pa.array(np.flatnonzero(np.isin(ids, listed))))
                if kind == "missing_pii":
                    present += int(pc.sum(pc.equal(values, "")).as_py() or 0)
                elif c in ("phone_number", "email"):
                    pattern = PHONE if c == "phone_number" else EMAIL
                    present += _count_false(pc.match_substring_regex(values, pattern))
    r.rule("listed faults present in their parts", faults.num_rows - present, path)


def _check_part(out: Path, doc: dict, p: dict, report: Report, faults: pa.Table | None) -> pa.Table | None:
    """File-level checks of one part of a run (listed, size, checksum, rows, order, window, partition); its rows."""
    partition_by = doc["options"]["partition_by"]
    lo, hi = manifest.parse_iso(doc["window"]["start"]), manifest.parse_iso(doc["window"]["end"])
    f = out / p["path"]
    report.rule("parts listed in the manifest exist", not f.is_file(), p["path"])
    if not f.is_file():
        return None
    data = f.read_bytes()
    report.rule("part size matches manifest", len(data) != p["bytes"], p["path"])
    report.rule("part sha256 matches manifest", hashlib.sha256(data).hexdigest() != p["sha256"], p["path"])
    try:
        t = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError):  # truncated, overwritten, not Parquet: none of its rows can be checked
        t = None
    report.rule("parts read as Parquet", t is None, p["path"])
    if t is None:
        return None
    report.rule("part rows match manifest", t.num_rows != p["rows"], p["path"])
    ts = _ts(t)
    here = None if faults is None else faults.filter(pc.equal(faults.column("path"), p["path"]))
    if here is not None and here.num_rows:
        where = PurePosixPath(p["path"]).parent.relative_to(EVENTS_DIR).as_posix()
        _faults_present(t, ts, (partition_by, "" if where == "." else where, p["path"]), here, report)
    ids = _ids(t.column("event_id"))
    moved = _listed(ids, here, "out_of_order")[1:]
    report.rule("rows sorted by event_ts in each part", int(((np.diff(ts) < 0) & ~moved).sum()), p["path"])
    late = _listed(ids, here, "late_arrival")
    report.rule("events inside their run's window", int(((ts < lo) | (ts >= hi)).sum()), p["path"])
    if ts.size:
        report.rule(
            "part time range matches manifest",
            (manifest.iso(int(ts.min())), manifest.iso(int(ts.max()))) != (p["min_event_ts"], p["max_event_ts"]),
            p["path"],
        )
    if ts[~late].size:  # late arrivals listed in the sidecar sit in a later partition than their time
        on_time = ts[~late]
        want = {partition_dir(int(x), partition_by) for x in (on_time.min(), on_time.max())}
        got = PurePosixPath(p["path"]).parent.relative_to(EVENTS_DIR).as_posix()
        report.rule("part sits in its events' partition", want != {"" if got == "." else got}, p["path"])
    return t


def _check_run_files(
    out: Path, doc: dict, report: Report, counts: Counter, rows: int, faults: pa.Table | None, lost: int = 0
) -> None:
    """What only the whole of a run's parts can show: its state file, counts by type and total events. `lost` rows
    are those of parts that were missing or could not be read, each already a violation of its own: counts short
    by exactly them are not counted again."""
    state = doc["timeline"]["state"]
    f = out / state["path"]
    report.rule(
        "run state exists and matches manifest",
        not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != state["sha256"],
        state["path"],
    )
    if not doc["parts"]:
        return
    listed = doc["counts_by_type"]
    short = {k: v - counts.get(k, 0) for k, v in listed.items()}
    off = sum(abs(d) for d in short.values()) + sum(c for k, c in counts.items() if k not in listed)
    if lost and off == lost and min(short.values(), default=0) >= 0:
        off = 0  # short by the unreadable parts' rows alone
    report.rule("counts by type match manifest", off)
    wanted = doc["options"]["events"]
    # --events counts each event once; a listed duplicate is written twice
    copies = 0 if faults is None else int(pc.sum(pc.equal(faults.column("kind"), "duplicate")).as_py() or 0)
    report.rule(
        "total events match manifest (and --events)",
        abs(rows + lost - doc["events"]) + (abs(doc["events"] - copies - wanted) if wanted is not None else 0),
    )


class _Groups:
    """The rows of one or more runs, checked a customer block at a time, so that memory holds one block (of every
    run) rather than the runs: a customer's sessions and orders never leave its block. Blocks are the shards of
    the run with the most of them; a shard of another run is read once, when its first block comes up, and its
    rows for later blocks wait in memory until theirs."""

    def __init__(self, out: Path, docs: list[dict], report: Report, faults: dict[str, pa.Table | None]):
        self.out, self.docs, self.report, self.faults = out, docs, report, faults
        customers = docs[0]["options"]["customers"]
        widest = max(docs, key=lambda d: d["shards"])
        self.bounds = np.array(
            [split(customers, max(widest["shards"], 1), i)[0] for i in range(max(widest["shards"], 1))] + [customers]
        )
        self.counts = {d["run_id"]: Counter() for d in docs}
        self.rows = dict.fromkeys(self.counts, 0)
        self.lost = dict.fromkeys(self.counts, 0)  # rows of parts missing or unreadable (each reported on its own)
        # The customers [a, b) of every shard read so far that lost a part: when a block comes up, every shard with
        # customers in it has been read (a shard is read with the block of its first customer, or before).
        self.incomplete: list[tuple[int, int]] = []
        # (first block, run, shard, its customers [a, b)) for every shard that wrote parts, in block order
        self.shards = []
        for r, d in enumerate(docs):
            for i in sorted({p["shard"] for p in d["parts"]}):
                a, size = split(customers, max(d["shards"], 1), i)
                self.shards.append((self._block(a), r, i, a, a + size))
        self.shards.sort()

    def _block(self, customer: int | np.ndarray):
        """The block of each customer index (the last block for one past the population: reported, not lost)."""
        return np.minimum(np.searchsorted(self.bounds, customer, side="right") - 1, self.bounds.size - 2)

    def __iter__(self):
        """(block, the rows of every run in it, as one table) in block order; file rules checked on the way."""
        return self.blocks(range(self.bounds.size - 1))

    def blocks(self, wanted: range):
        """As iterating, for a contiguous range of blocks only. A shard that begins before the range and reaches
        into it is read again for its rows there; its file rules and counts belong to the range it begins in."""
        waiting: dict[int, list[pa.Table]] = {}
        if not len(wanted):
            return
        first = wanted[0]
        for block, r, i, a, b in self.shards:
            if block < first <= self._block(b - 1):
                for g, rows in self._split_shard(r, i, a, b, block, Report(), count=False).items():
                    if g >= first:
                        waiting.setdefault(g, []).append(rows)
        k = 0
        for block in wanted:
            while k < len(self.shards) and self.shards[k][0] < block:
                k += 1
            while k < len(self.shards) and self.shards[k][0] == block:
                _, r, i, a, b = self.shards[k]
                k += 1
                for g, rows in self._split_shard(r, i, a, b, block, self.report).items():
                    waiting.setdefault(g, []).append(rows)
            tables = waiting.pop(block, [])
            if tables:
                yield block, pa.concat_tables(tables)

    def _split_shard(self, r: int, i: int, a: int, b: int, block: int, report: Report, count: bool = True):
        """Shard `i` of run `r` (customers [a, b), first block `block`) read and checked into `report`, its rows by
        block; customers outside [a, b) are reported and checked with the shard's first block."""
        t = self._read_shard(r, i, (a, b), report, count)
        if t is None or not t.num_rows:
            return {}
        customer = customer_index(t.column("customer_id"))
        outside = (customer < a) | (customer >= b)
        report.rule(
            "customers in their shard's block",
            int(outside.sum()),
            f"run {self.docs[r]['run_id']} shard {i}" if outside.any() else "",
        )
        where = np.where(outside, block, self._block(customer))
        blocks = np.flatnonzero(np.bincount(where - block)) + block
        if blocks.size == 1:
            return {int(blocks[0]): t}
        return {int(g): t.filter(pa.array(where == g)) for g in blocks}

    def _read_shard(
        self, r: int, shard: int, customers: tuple[int, int], report: Report, count: bool = True
    ) -> pa.Table | None:
        """Shard `shard` of run `r`, its parts read and checked; the shard's `customers` are `incomplete` when one
        of its parts is missing or unreadable."""
        doc = self.docs[r]
        faults = self.faults[doc["run_id"]]
        tables = []
        for p in doc["parts"]:
            if p["shard"] != shard:
                continue
            t = _check_part(self.out, doc, p, report, faults)
            if t is None:
                if customers not in self.incomplete:
                    self.incomplete.append(customers)
                if count:
                    self.lost[doc["run_id"]] += int(p["rows"])
                continue
            if count:
                mix = pc.value_counts(t.column("event_type"))
                self.counts[doc["run_id"]].update(
                    dict(zip(mix.field("values").to_pylist(), mix.field("counts").to_pylist(), strict=True))
                )
                self.rows[doc["run_id"]] += t.num_rows
            tables.append(t)
        return pa.concat_tables(tables) if tables else None

    def incomplete_ranges(self) -> np.ndarray:
        """`incomplete` as rows of [a, b), for `check_table`."""
        return np.array(self.incomplete, np.int64).reshape(-1, 2)

    def finish(self) -> None:
        for doc in self.docs:
            rid = doc["run_id"]
            _check_run_files(
                self.out, doc, self.report, self.counts[rid], self.rows[rid], self.faults[rid], self.lost[rid]
            )


class _IdPrefixes:
    """The first eight bytes of each block's event ids, end to end in one array sized from the manifests:
    8 bytes per event, where the rows themselves are held a block at a time."""

    def __init__(self, capacity: int):
        self.values = np.empty(capacity, np.uint64)
        self.size = 0

    def add(self, ids: np.ndarray) -> None:
        self.add_prefixes(_prefix(ids))

    def add_prefixes(self, prefixes: np.ndarray) -> None:
        self.values[self.size : self.size + prefixes.size] = prefixes
        self.size += prefixes.size

    def shared(self) -> np.ndarray:
        """The prefixes found more than once (sorts the array in place): in two blocks, or twice in one (a
        duplicate its block has counted already, which `cross_block_duplicates` tells apart)."""
        every = self.values[: self.size]
        every.sort()
        return np.unique(every[1:][every[1:] == every[:-1]])


def _prefix(ids: np.ndarray) -> np.ndarray:
    return np.frombuffer(ids.tobytes(), "<u8")[::2] if ids.size else np.zeros(0, np.uint64)


def cross_block_duplicates(candidates: np.ndarray, full_ids: Callable[[np.ndarray], list[np.ndarray]]) -> int:
    """Event ids found in more than one block (each block's own duplicates are counted where it is checked).

    `candidates` are the id prefixes seen in two blocks or more (`_IdPrefixes.shared`); `full_ids(candidates)`
    reads the whole ids with those prefixes back, one array per block, and those decide."""
    if not candidates.size:
        return 0
    per_block = [np.unique(ids) for ids in full_ids(candidates)]
    every_id = np.sort(np.concatenate(per_block)) if per_block else np.zeros(0, "S16")
    return int((every_id[1:] == every_id[:-1]).sum())


class ValidationStopped(Exception):
    """A worker's range left unfinished: the validation was interrupted."""


class WorkerDied(RuntimeError):
    """A validation worker process died (the OOM killer, a segfault): the validation could not finish."""


_stop = None  # in a validation worker: set when the coordinator is interrupted


def _validation_worker(coordinator: int, stop) -> None:
    from generator.launch import worker_init

    global _stop
    worker_init(coordinator)
    _stop = stop


@contextmanager
def _validation_pool(workers: int) -> Iterator[tuple[ProcessPoolExecutor, Event]]:
    """`workers` processes for `check_blocks`, and the flag that stops them. Ctrl-C, SIGTERM or an error here
    sets the flag (the workers ignore the signals): each worker leaves its range at the next block, and
    `stop_pool` kills any still busy after STOP_GRACE_S, or all of them at once when one has died."""
    from generator.launch import stop_pool, worker_context

    ctx = worker_context()
    stop = ctx.Event()
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_validation_worker, initargs=(os.getpid(), stop))
    try:
        yield pool, stop
    except BaseException as e:
        stop.set()
        stop_pool(pool)
        if isinstance(e, BrokenProcessPool):
            raise WorkerDied(f"a worker process died ({e})") from None
        raise
    pool.shutdown(wait=True)


def _check_block(
    table: pa.Table,
    threshold: int,
    report: Report,
    continued: bool,
    listed: pa.Table | None,
    contacts: Contacts,
    incomplete: np.ndarray,
) -> np.ndarray:
    """One block's row rules, into `report` and `contacts`; returns its event ids (listed duplicates' copies left
    out), for the rule across blocks."""
    check_table(table, threshold, report, continued, listed, contacts, incomplete)
    return _ids(_without_listed_copies(decoded(table), listed).column("event_id"))


def check_blocks(
    out: Path, docs: list[dict], faults: dict[str, pa.Table | None], continued: bool, lo: int, hi: int
) -> tuple[Report, np.ndarray, Contacts, dict[str, Counter], dict[str, int], dict[str, int]]:
    """Customer blocks lo..hi-1 of the runs, on their own (in a worker process): their rules in a report of their
    own, their event ids' prefixes, their customers' contacts, and each run's counts by type, rows, and rows of
    parts that could not be read, of the shards that begin in them."""
    report = Report()
    groups = _Groups(out, docs, report, faults)
    listed = [f for f in faults.values() if f is not None]
    listed = pa.concat_tables(listed) if listed else None
    threshold = int(docs[0]["options"]["latency_threshold_ms"])
    prefixes = []
    contacts = Contacts()
    for _, table in groups.blocks(range(lo, hi)):
        if _stop is not None and _stop.is_set():
            raise ValidationStopped
        prefixes.append(
            _prefix(_check_block(table, threshold, report, continued, listed, contacts, groups.incomplete_ranges()))
        )
    prefixes = np.concatenate(prefixes) if prefixes else np.zeros(0, np.uint64)
    return report, prefixes, contacts, groups.counts, groups.rows, groups.lost


def _check_groups(
    out: Path,
    docs: list[dict],
    report: Report,
    faults: dict[str, pa.Table | None],
    continued: bool,
    workers: int = 1,
) -> None:
    groups = _Groups(out, docs, report, faults)
    listed = [f for f in faults.values() if f is not None]
    listed = pa.concat_tables(listed) if listed else None
    threshold = int(docs[0]["options"]["latency_threshold_ms"])
    prefixes = _IdPrefixes(sum(p["rows"] for d in docs for p in d["parts"]))
    contacts = Contacts()
    n = groups.bounds.size - 1
    if workers > 1 and n > 1:
        # Contiguous ranges of blocks, twice as many as workers (the last ones even out); a shard that straddles two
        # ranges is read by both (a run alone never straddles: its shards are the blocks).
        cuts = np.linspace(0, n, min(2 * workers, n) + 1).round().astype(int)
        # Ctrl-C and SIGTERM act between results, never inside the futures' locks (see `launch.Gate`)
        with _validation_pool(min(workers, cuts.size - 1)) as (pool, _), Gate() as gate:
            futures = [
                pool.submit(check_blocks, out, docs, faults, continued, int(lo), int(hi))
                for lo, hi in itertools.pairwise(cuts)
                if hi > lo
            ]
            gate.watch(futures)
            for f in futures:  # in block order: rules and examples come out as they would one block at a time
                while not f.done():
                    gate.next_done()
                part, block_prefixes, block_contacts, counts, rows, lost = f.result()
                report.merge(part)
                prefixes.add_prefixes(block_prefixes)
                contacts.merge(block_contacts)
                for rid in counts:
                    groups.counts[rid].update(counts[rid])
                    groups.rows[rid] += rows[rid]
                    groups.lost[rid] += lost[rid]
    else:
        for _, table in groups:
            prefixes.add(
                _check_block(table, threshold, report, continued, listed, contacts, groups.incomplete_ranges())
            )
    groups.finish()
    contacts.check(report, max(int(d["options"]["customers"]) for d in docs))

    def full_ids(candidates: np.ndarray) -> list[np.ndarray]:
        quiet = _Groups(out, docs, Report(), faults)  # the same rows again; their file rules are counted already
        found = []
        for _, table in quiet:
            ids = _ids(_without_listed_copies(decoded(table), listed).column("event_id"))
            found.append(ids[np.isin(_prefix(ids), candidates)])
        return found

    report.rule("event_id unique", cross_block_duplicates(prefixes.shared(), full_ids))


def validate_run(out: Path, doc: dict, report: Report, workers: int = 1) -> None:
    """One committed run on its own: its files, then the row rules over its rows, a customer block at a time."""
    if _only_in_s3(out, doc):
        report.only_in_s3.append(doc["run_id"])
        return
    report.runs.append(doc["run_id"])
    faults = {doc["run_id"]: _read_faults(out, doc, report)}
    _check_groups(out, [doc], report, faults, doc["timeline"]["ordinal"] > 0, workers)


def _only_in_s3(out: Path, doc: dict) -> bool:
    """No part of the run is here, and it went to S3: uploaded with --no-keep-local, or pulled (`gen pull` brings
    the manifests and state, never the parts) from a timeline written on another machine."""
    return "s3" in doc and bool(doc["parts"]) and not any((out / p["path"]).exists() for p in doc["parts"])


def not_here(out: Path, docs: list[dict]) -> str:
    """Why runs whose parts are only in S3 cannot be checked in `out`, and how they can be: one sentence."""
    s3 = docs[0]["s3"]
    where = f"s3://{s3['bucket']}/{s3['prefix'] + '/' if s3['prefix'] else ''}"
    which = ", ".join(repr(d["run_id"]) for d in docs[:3]) + (f" and {len(docs) - 3} more" if len(docs) > 3 else "")
    return (
        f"run(s) {which} have no parts in {str(out)!r} (they are in {where}: pulled with gen pull, which brings only "
        "manifests and state, or uploaded with --no-keep-local); gen validate reads local parts: run it where the "
        f"parts were written, or copy them from S3 into {str(out)!r} under the same paths"
    )


def validate_timeline(out: Path, docs: list[dict], report: Report, workers: int = 1) -> None:
    """The whole timeline: every run's files, contiguous windows, then the row rules over all runs at once (a
    customer block of every run at a time), so sessions and orders that span runs are checked across the boundary
    and no event id may repeat."""
    remote = [d for d in docs if _only_in_s3(out, d)]
    if remote:
        raise manifest.ManifestError(f"--all needs the parts of every run: {not_here(out, remote)}")
    problems = timeline.chain_problems(out, docs)
    report.rule("windows contiguous and non-overlapping", len(problems), problems[0] if problems else "")
    report.runs.extend(d["run_id"] for d in docs)
    faults = {d["run_id"]: _read_faults(out, d, report) for d in docs}
    _check_groups(out, docs, report, faults, False, workers)


def validate(out: Path, run_id: str | None = None, whole: bool = False, workers: int = 1) -> Report:
    """Check the committed runs in `out`: each on its own, or with `whole` the timeline as one; or one run. Up to
    `workers` processes check contiguous ranges of customer blocks side by side; the report is the same."""
    report = Report()
    docs = timeline.committed_runs(out)
    if run_id:
        docs = [d for d in docs if d["run_id"] == run_id]
    if not docs:
        raise manifest.ManifestError(f"{out}: no committed run{f' {run_id!r}' if run_id else ''} (no manifest)")
    if whole:
        validate_timeline(out, docs, report, workers)
    else:
        for doc in docs:
            validate_run(out, doc, report, workers)
        if not report.runs:  # every run's parts are elsewhere: nothing was checked, which is not a pass
            remote = [d for d in docs if d["run_id"] in report.only_in_s3]
            raise manifest.ManifestError(f"nothing to validate here: {not_here(out, remote)}")
    return report
