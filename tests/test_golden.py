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
        "32093b32-968f-47e7-8333-279eb8e39446",
        "2025-11-01 00:00:02.599310+00:00",
        "OPEN",
        "NG000061734",
        "Rahama Danladi",
        "+2348076656349",
        "42 Old Airport Street, Katampe, Abuja, FCT",
        "rahamadanladi773@gmail.com",
        "ANDROID",
        264,
    ),
    (
        "1a42d1cc-72ea-492b-b6d1-7c06ebcfe9aa",
        "2025-11-01 00:00:02.641845+00:00",
        "SHIPPED",
        "NG000013122",
        "Kunle Oladipo",
        "+2349033582434",
        "2 Freetown Street, Onikan, Lagos Island, Lagos State",
        "kunle_oladipo@yahoo.com",
        "ANDROID",
        700,
    ),
    (
        "c2ee1c37-6cb6-4123-a219-d34b2162f923",
        "2025-11-01 00:00:03.121005+00:00",
        "OPEN",
        "NG000127847",
        "Murjanatu Salihu",
        "+2347053004929",
        "81 Quarry Close, Kawo, Kaduna, Kaduna State",
        "murjanatu.salihu41@gmail.com",
        "ANDROID",
        390,
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
    "OPEN": 72,
    "USER_LOGIN": 47,
    "PRODUCT_VIEW": 102,
    "ADD_TO_CART": 7,
    "CHECKOUT_STARTED": 1,
    "PACKED": 6,
    "SHIPPED": 7,
    "DELIVERED": 8,
}


def test_default_configuration_first_rows_are_pinned():
    cfg = RunConfig(events=1000, out=Path("unused"), run_id="golden").gen()
    shards = plan(cfg)
    assert [(s.events, s.customers) for s in shards] == [(250, 250_000)] * 4
    table = decoded(shard_table(cfg, shards[0]))
    rows = [tuple(str(r[f]) if f in ("event_id", "event_ts") else r[f] for f in FIELDS) for r in table.to_pylist()[:3]]
    assert rows == FIRST_ROWS
    assert collections.Counter(table.column("event_type").to_pylist()) == COUNTS
