"""Golden rows: the first events of the default configuration are pinned, so any change to the generated data is
a decision (update these values in the same commit and say why), never an accident."""

from __future__ import annotations

import collections
from pathlib import Path

from generator.config import RunConfig
from generator.core.shard import plan, shard_table
from generator.schema import decoded

FIRST_ROWS = [
    (
        "d86f314a-61ef-4204-9b94-fe19e68b9b10",
        "2025-11-01 00:00:00.388855+00:00",
        "OPEN",
        "NG000182204",
        "Rebecca Uzoma",
        "+2348104044647",
        "1 Chime Road, Galadimawa, Abuja, FCT",
        "rebecca_uzoma1998@gmail.com",
        "ANDROID",
        166,
    ),
    (
        "8e8f629d-6fa1-4315-995b-236b522f50d3",
        "2025-11-01 00:00:03.785226+00:00",
        "OPEN",
        "NG000145543",
        "Yewande Ayoola",
        "+2348185847435",
        "7 Quarry Lane, Igbona, Osogbo, Osun State",
        "yewandea2003@gmail.com",
        "ANDROID",
        303,
    ),
    (
        "e7b85a02-852d-4c0e-b59e-5647b77f9fa0",
        "2025-11-01 00:00:04.546809+00:00",
        "USER_LOGIN",
        "NG000182204",
        "Rebecca Uzoma",
        "+2348104044647",
        "1 Chime Road, Galadimawa, Abuja, FCT",
        "rebecca_uzoma1998@gmail.com",
        "ANDROID",
        393,
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
    "OPEN": 74,
    "USER_LOGIN": 47,
    "PRODUCT_VIEW": 102,
    "ADD_TO_CART": 3,
    "CHECKOUT_STARTED": 1,
    "PAYMENT_FAILED": 1,
    "PACKED": 10,
    "SHIPPED": 7,
    "DELIVERED": 5,
}


def test_default_configuration_first_rows_are_pinned():
    cfg = RunConfig(events=1000, out=Path("unused"), run_id="golden").gen()
    shards = plan(cfg)
    assert [(s.events, s.customers) for s in shards] == [(250, 250_000)] * 4
    table = decoded(shard_table(cfg, shards[0]))
    rows = [tuple(str(r[f]) if f in ("event_id", "event_ts") else r[f] for f in FIELDS) for r in table.to_pylist()[:3]]
    assert rows == FIRST_ROWS
    assert collections.Counter(table.column("event_type").to_pylist()) == COUNTS
