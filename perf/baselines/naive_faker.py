"""The conventional way this job is written, as a baseline: a row-by-row Python loop with Faker's en_NG locale
building one dict per event for the same 16-column schema, then one Parquet file.

    python perf/baselines/naive_faker.py --events 200000 --out /tmp/naive.parquet [--seed 42]

It follows the same rules as the generator (conditional columns, payment status by type, error code above the
threshold, one amount and method per order, carrier and tracking from authorisation to delivery), with a simple
session model, so that the comparison is like for like; prints one JSON line with its timing.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from faker import Faker

from generator.parts import WRITE_OPTIONS
from generator.schema import arrow_schema

PLATFORMS = ["ANDROID", "IOS", "WEB"]
METHODS = ["TRANSFER", "CARD", "USSD", "PAYPAL"]
CARRIERS = ["Speedaf", "GIG Logistics", "Dellyman", "DHL", "Red Star Express", "NIPOST EMS"]
THRESHOLD_MS = 2000


def customer(fake: Faker) -> dict:
    first, last = fake.first_name(), fake.last_name()
    return {
        "customer_id": f"NG{fake.unique.random_number(digits=9, fix_len=True)}",
        "name": f"{first} {last}",
        "phone_number": "+234" + random.choice(["803", "806", "802", "805", "809"]) + f"{random.randrange(10**7):07d}",
        "address": fake.address().replace("\n", ", "),
        "email": f"{first}.{last}{random.randint(1, 99)}@{fake.free_email_domain()}".lower(),
    }


def event(c: dict, ts: datetime, kind: str, platform: str, **extra) -> dict:
    latency = int(random.lognormvariate(5.77, 0.8))  # median ~320 ms
    row = {
        "event_id": uuid.uuid4().bytes,
        "event_ts": ts,
        "event_type": kind,
        **c,
        "platform": platform,
        "latency_ms": max(latency, 1),
        "error_code": "INVALID LATENCY" if latency > THRESHOLD_MS else None,
        "total_amount": None,
        "payment_method": None,
        "payment_status": None,
        "carrier": None,
        "tracking_number": None,
    }
    row.update(extra)
    return row


def session(c: dict, start: datetime, rows: list[dict]) -> None:
    platform = random.choice(PLATFORMS)
    ts = start
    rows.append(event(c, ts, "OPEN", platform))
    if random.random() < 0.7:
        ts += timedelta(seconds=random.expovariate(1 / 6))
        rows.append(event(c, ts, "USER_LOGIN", platform))
    if random.random() < 0.3:
        return
    carted = False
    for _ in range(1 + min(int(random.expovariate(1 / 3.5)), 30)):
        ts += timedelta(seconds=random.expovariate(1 / 35))
        rows.append(event(c, ts, "PRODUCT_VIEW", platform))
        if random.random() < 0.05:
            carted = True
            ts += timedelta(seconds=random.expovariate(1 / 15))
            rows.append(event(c, ts, "ADD_TO_CART", platform))
    if not carted or random.random() > 0.3:
        return
    amount = Decimal(max(500, int(random.lognormvariate(9.16, 0.85)))).quantize(Decimal("0.01"))
    ts += timedelta(seconds=random.expovariate(1 / 40))
    rows.append(event(c, ts, "CHECKOUT_STARTED", platform, total_amount=amount, payment_status="CAPTURED"))
    while random.random() < 0.09:
        ts += timedelta(seconds=random.expovariate(1 / 60))
        rows.append(event(c, ts, "PAYMENT_FAILED", platform, total_amount=amount, payment_status="REFUNDED"))
    method, carrier = random.choice(METHODS), random.choice(CARRIERS)
    tracking = f"TRK{uuid.uuid4().int % 10**12:012d}"
    paid = dict(
        total_amount=amount, payment_method=method, payment_status="CAPTURED", carrier=carrier, tracking_number=tracking
    )
    ts += timedelta(seconds=random.expovariate(1 / 55))
    rows.append(event(c, ts, "PAYMENT_AUTHORIZED", platform, **paid))
    ts += timedelta(seconds=2)
    rows.append(event(c, ts, "ORDER_PLACED", platform, **paid))
    for kind, hours in (("PACKED", 20), ("SHIPPED", 30), ("DELIVERED", 150)):
        ts += timedelta(hours=random.expovariate(1 / hours))
        rows.append(event(c, ts, kind, platform, carrier=carrier, tracking_number=tracking))


def generate(events: int, seed: int) -> list[dict]:
    random.seed(seed)
    fake = Faker("en_NG")
    Faker.seed(seed)
    customers = [customer(fake) for _ in range(max(events // 20, 10))]
    rows: list[dict] = []
    start = datetime(2025, 11, 1, tzinfo=UTC)
    while len(rows) < events:
        start += timedelta(seconds=random.expovariate(1 / 2))
        session(random.choice(customers), start, rows)
    rows = rows[:events]
    rows.sort(key=lambda r: r["event_ts"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = generate(args.events, args.seed)
    table = pa.Table.from_pylist(rows, schema=arrow_schema())
    pq.write_table(table, args.out, **WRITE_OPTIONS)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "events": args.events,
                "seconds": round(seconds, 3),
                "events_per_second": round(args.events / seconds),
                "bytes": args.out.stat().st_size,
            }
        )
    )


if __name__ == "__main__":
    main()
