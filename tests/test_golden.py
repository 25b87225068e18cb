"""Golden rows: the first events of the default configuration are pinned, so any change to the generated data is
a decision (update these values in the same commit and say why), never an accident."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds

from generator.config import RunConfig, parse_start
from generator.coordinator import run
from generator.core.shard import plan, shard_table
from generator.schema import decoded

FIRST_ROWS = [
    (
        "32093b32-968f-47e7-8333-279eb8e39446",
        "2025-11-01 00:00:00.997730+00:00",
        "OPEN",
        "NG000073404",
        "Ebuka Okonkwo",
        "+2349079027085",
        "28 Eke Avenue, Eke, Udi, Enugu State",
        "eokonkwo9@gmail.com",
        "ANDROID",
        279,
    ),
    (
        "1a42d1cc-72ea-492b-b6d1-7c06ebcfe9aa",
        "2025-11-01 00:00:03.347649+00:00",
        "USER_LOGIN",
        "NG000073404",
        "Ebuka Okonkwo",
        "+2349079027085",
        "28 Eke Avenue, Eke, Udi, Enugu State",
        "eokonkwo9@gmail.com",
        "ANDROID",
        792,
    ),
    (
        "c2ee1c37-6cb6-4123-a219-d34b2162f923",
        "2025-11-01 00:00:09.767545+00:00",
        "OPEN",
        "NG000149853",
        "Olusegun Adejumo",
        "+2348084449107",
        "63 Mangvwat Street, Kutunku, Gwagwalada, FCT",
        "olusegun.adejumo67@yahoo.com",
        "IOS",
        306,
    ),
]
FIELDS = (
    "event_id",
    "event_ts",
    "event_type",
    "customer_id",
    "name",
    "phone_number",
    "address",
    "email",
    "platform",
    "latency_ms",
)
COUNTS = {
    "OPEN": 94,
    "USER_LOGIN": 55,
    "PRODUCT_VIEW": 98,
    "ADD_TO_CART": 3,
}
# The run above ends at 01:00 WAT, before any fulfilment stage opens; a first run starting at 11:00 WAT on a Monday
# pins the first PACKED, SHIPPED and DELIVERED rows (its warm start's orders) and its counts.
DAYTIME_START = "2025-11-03T10:00:00Z"
FIRST_FULFILMENT = [
    ("2025-11-03 10:00:02.678930+00:00", "PACKED", "NG000145746", "Speedaf", "SPD4452547410301"),
    ("2025-11-03 10:00:00.492110+00:00", "SHIPPED", "NG000103471", "Speedaf", "SPD9834338264394"),
    ("2025-11-03 10:00:00.746307+00:00", "DELIVERED", "NG000236280", "Speedaf", "SPD0184273208003"),
]
DAYTIME_COUNTS = {
    "SHIPPED": 103,
    "DELIVERED": 8,
    "OPEN": 73,
    "PACKED": 4,
    "USER_LOGIN": 48,
    "PRODUCT_VIEW": 14,
}


def test_default_configuration_first_rows_are_pinned():
    cfg = RunConfig(events=1000, out=Path("unused"), run_id="golden").gen()
    shards = plan(cfg)
    assert [(s.events, s.customers) for s in shards] == [(250, 250_000)] * 4
    table = decoded(shard_table(cfg, shards[0]))
    rows = [tuple(str(r[f]) if f in ("event_id", "event_ts") else r[f] for f in FIELDS) for r in table.to_pylist()[:3]]
    assert rows == FIRST_ROWS
    assert collections.Counter(table.column("event_type").to_pylist()) == COUNTS


def test_daytime_fulfilment_rows_are_pinned():
    cfg = RunConfig(events=1000, out=Path("unused"), run_id="golden", start=parse_start(DAYTIME_START)).gen()
    rows = decoded(shard_table(cfg, plan(cfg)[0])).to_pylist()
    first = [next(r for r in rows if r["event_type"] == t) for t in ("PACKED", "SHIPPED", "DELIVERED")]
    fields = ("event_type", "customer_id", "carrier", "tracking_number")
    assert [(str(r["event_ts"]), *(r[f] for f in fields)) for r in first] == FIRST_FULFILMENT
    assert collections.Counter(r["event_type"] for r in rows) == DAYTIME_COUNTS


def test_the_readme_sample_row_is_what_the_generator_writes(tmp_path):
    """README shows the first ORDER_PLACED row of `gen run --events 20000 --run-id demo`; it is that row."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    block = text.split("The first ORDER_PLACED row of `gen run --events 20000 --run-id demo`", 1)[1]
    block = block.split("```text\n", 1)[1].split("```", 1)[0]
    shown = dict(pair.split("=", 1) for pair in re.split(r"  +|\n", block.strip()))
    run(RunConfig(events=20_000, workers=1, out=tmp_path, run_id="demo"))
    table = ds.dataset(tmp_path / "events", format="parquet", partitioning="hive").to_table().sort_by("event_ts")
    first = table.filter(pc.equal(table.column("event_type"), "ORDER_PLACED")).slice(0, 1).to_pylist()[0]
    assert shown == {k: str(first[k]) for k in shown}
