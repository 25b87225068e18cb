"""Shards: the plan that splits a run into units of work, and the pure function (config, shard) -> Arrow table.

A shard owns a block of customers and a number of events. It simulates its customers' timeline from the run's
start (already warm with the fulfilment of orders placed in the weeks before), block by block, until the first
`shard.events` events in time order are final, and returns exactly those, sorted by event_ts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.core.behaviour import Behaviour, default_behaviour
from generator.core.events import DAY, SECOND, Events, dictionary, distinct_positions, sparse_strings
from generator.core.lifecycle import Placed, fulfil, pay, tracking_numbers
from generator.core.nigeria import Pools, default_pools
from generator.core.population import activity, home_state, identities, primary_platform
from generator.core.sessions import (
    checkouts_per_session,
    expected_events_per_session,
    hour_buckets,
    simulate,
)
from generator.core.streams import QUANTILES, lognormal_quantiles, pick, rng
from generator.schema import (
    COLUMN_NAMES,
    EVENT_TYPES,
    INVALID_LATENCY,
    PAYMENT_METHODS,
    PAYMENT_STATUS_BY_TYPE,
    PAYMENT_STATUSES,
    PLATFORMS,
    encoded_schema,
)

ORDERS_PER_SHARD = 1 << 24
WARM_UP = 28 * DAY  # orders placed this long before the start still deliver inside the window
MAX_CUSTOMERS_PER_SHARD = 250_000
PART_ROWS_PER_DAY = 50_000
MIN_SHARD, MAX_SHARD = 50_000, 200_000
MAX_SHARDS = 50_000
MAX_WINDOW_DAYS = 3653


@dataclass(frozen=True)
class GenConfig:
    """Everything that decides the bytes of a run's parts."""

    seed: int
    events: int
    start_us: int
    shard_size: int
    latency_threshold_ms: int
    customers: int
    behaviour: Behaviour = field(default_factory=default_behaviour, compare=False, repr=False)


@dataclass(frozen=True)
class Shard:
    index: int
    events: int
    first_customer: int
    customers: int


def split(total: int, parts: int, i: int) -> tuple[int, int]:
    """Start and size of part i of `total` split into `parts`: sizes differ by at most one."""
    base, extra = divmod(total, parts)
    return i * base + min(i, extra), base + (1 if i < extra else 0)


def auto_shard_size(events: int, customers: int, b: Behaviour) -> int:
    """Events per shard when the user does not choose: about PART_ROWS_PER_DAY rows per daily partition.

    A shard's events spread over the whole window, one part per day, so shards grow with the window's length
    (fewer, fuller files for long runs), between MIN_SHARD and MAX_SHARD events (memory stays bounded)."""
    days = events / (customers * b.sessions_per_day * expected_events_per_session(b))
    return int(min(max(PART_ROWS_PER_DAY * days, MIN_SHARD), MAX_SHARD))


def shard_count(events: int, customers: int, shard_size: int) -> int:
    return max(math.ceil(events / shard_size), math.ceil(customers / MAX_CUSTOMERS_PER_SHARD))


def plan(cfg: GenConfig) -> list[Shard]:
    """Split the population and the event target into shards (independent of how many workers run them)."""
    # Every shard needs at least one customer: a tiny population makes fewer, larger shards.
    n = min(shard_count(cfg.events, cfg.customers, cfg.shard_size), cfg.customers)
    shards = []
    for i in range(n):
        first, count = split(cfg.customers, n, i)
        shards.append(Shard(i, split(cfg.events, n, i)[1], first, count))
    return shards


def window_days(cfg: GenConfig) -> float:
    """Expected days of traffic the run covers."""
    b = cfg.behaviour
    return cfg.events / (cfg.customers * b.sessions_per_day * expected_events_per_session(b))


def _block_end(b: Behaviour, t0: int, per_day_events: float, need: int) -> int:
    """The end of the next block: where the expected events since t0 reach a little above `need`."""
    target = need * 1.05 + 50
    horizon = t0
    done = 0.0
    while True:
        lo, length, f = hour_buckets(b, horizon, horizon + 30 * DAY)
        cum = done + np.cumsum(per_day_events * f * length / DAY)
        i = int(np.searchsorted(cum, target))
        if i < cum.size:
            before = cum[i - 1] if i else done
            frac = (target - before) / (cum[i] - before)
            return int(lo[i] + frac * length[i]) + SECOND
        done = float(cum[-1])
        horizon += 30 * DAY


class _Stream:
    """One shard's customers and their running simulation state."""

    def __init__(self, cfg: GenConfig, shard: Shard, pools: Pools):
        self.cfg, self.shard, self.pools, self.b = cfg, shard, pools, cfg.behaviour
        self.ids = np.arange(shard.first_customer, shard.first_customer + shard.customers, dtype=np.int64)
        self.activity = activity(cfg.seed, self.ids, self.b)
        self.primary = primary_platform(cfg.seed, self.ids, self.b)
        self.last_end = np.full(shard.customers, np.iinfo(np.int64).min // 2, np.int64)
        self.chunks: list[Events] = []
        self.carriers: list[np.ndarray] = []
        self.orders = 0

    def arrivals(self, r: np.random.Generator, t0: int, t1: int, per_session: float = 1.0):
        """Sessions (or checkouts, with per_session < 1) starting in [t0, t1): sorted start times, the block
        position of each one's customer, and the platform it uses.

        Each customer's count is Poisson with mean activity x the window's share of a day's intensity; the
        counts' total is spread over the hours by intensity. (Same law as a pooled Poisson process whose
        arrivals pick customers by activity, without a search per arrival.)"""
        lo, length, f = hour_buckets(self.b, t0, t1)
        weight = f * length
        counts = r.poisson(self.activity * (per_session * weight.sum() / DAY))
        local = r.permutation(np.repeat(np.arange(self.ids.size), counts))
        per_hour = r.multinomial(local.size, weight / weight.sum()) if weight.sum() > 0 else np.zeros(lo.size, int)
        starts = np.repeat(lo, per_hour) + (r.random(local.size) * np.repeat(length, per_hour)).astype(np.int64)
        starts.sort()
        other = pick(np.cumsum(self.b.platform_mix), r.random(local.size)).astype(np.int8)
        platform = np.where(r.random(local.size) < self.b.platform_loyalty, self.primary[local], other)
        return starts, local, platform

    def add_orders(self, r: np.random.Generator, placed: Placed) -> None:
        hub = self.pools.state_is_hub[home_state(self.cfg.seed, placed.customer, self.pools)]
        ev, carrier = fulfil(r, self.b, placed, self.orders, hub)
        self.chunks.append(ev)
        self.carriers.append(carrier)
        self.orders += carrier.size
        if self.orders >= ORDERS_PER_SHARD:
            raise OverflowError("a shard placed more orders than its tracking-number space holds")

    def warm(self) -> None:
        """Orders placed in the weeks before the start: only their fulfilment events from the start on."""
        start = self.cfg.start_us
        r = rng(self.cfg.seed, "warm", self.shard.index)
        t, local, platform = self.arrivals(r, start - WARM_UP, start, checkouts_per_session(self.b))
        _, success, _ = pay(r, self.b, t.size)
        placed = Placed(ts=t[success], customer=self.ids[local[success]], platform=platform[success], origin=t[success])
        self.add_orders(r, placed)
        self.chunks[-1] = self.chunks[-1].take(np.flatnonzero(self.chunks[-1].ts >= start))

    def block(self, i: int, t0: int, t1: int) -> None:
        r = rng(self.cfg.seed, "block", self.shard.index, i)
        starts, local, platform = self.arrivals(r, t0, t1)
        ev, placed = simulate(r, self.b, starts, self.ids[local], platform, local, self.last_end, self.orders)
        self.chunks.append(ev)
        self.add_orders(r, placed)

    def final_before(self, t: int) -> int:
        return sum(int(np.count_nonzero(c.ts < t)) for c in self.chunks)


def shard_events(cfg: GenConfig, shard: Shard, pools: Pools | None = None) -> tuple[Events, np.ndarray]:
    """The shard's first `shard.events` events in time order, and the carrier of each of its orders."""
    s = _Stream(cfg, shard, pools or default_pools())
    s.warm()
    per_day = s.activity.sum() * expected_events_per_session(cfg.behaviour)
    t0, i = cfg.start_us, 0
    while True:
        need = shard.events - s.final_before(t0)
        t1 = _block_end(cfg.behaviour, t0, per_day, need)
        s.block(i, t0, t1)
        t0, i = t1, i + 1
        if s.final_before(t0) >= shard.events:
            break
    every = Events.concat(s.chunks)
    final = np.flatnonzero(every.ts < t0)
    order = final[np.argsort(every.ts[final], kind="stable")[: shard.events]]
    carriers = np.concatenate(s.carriers) if s.carriers else np.zeros(0, np.int8)
    return every.take(order), carriers


_EVENT_TYPES = pa.array(EVENT_TYPES)
_PLATFORMS = pa.array(PLATFORMS)


# UUID octets 6 and 8 as bits of the two little-endian 64-bit words of each id.
_VERSION_MASK, _VERSION_4 = np.uint64(~(0xF0 << 48) & (2**64 - 1)), np.uint64(0x40 << 48)
_VARIANT_MASK, _VARIANT_RFC = np.uint64(~0xC0 & (2**64 - 1)), np.uint64(0x80)


@lru_cache(maxsize=8)
def _latency_table(median: tuple[float, ...], sigma: tuple[float, ...]) -> np.ndarray:
    rows = [np.clip(np.rint(m * lognormal_quantiles(s)), 1, 600_000) for m, s in zip(median, sigma, strict=True)]
    return np.concatenate(rows).astype(np.int32)


def latency_table(b: Behaviour) -> np.ndarray:
    """Latency in ms, flat-indexed by platform code * QUANTILES + quantile index (lognormal per platform)."""
    return _latency_table(tuple(b.latency_median_ms.tolist()), tuple(b.latency_sigma.tolist()))


_STATUS_OF_TYPE = np.array(
    [PAYMENT_STATUSES.index(PAYMENT_STATUS_BY_TYPE[t]) if t in PAYMENT_STATUS_BY_TYPE else -1 for t in EVENT_TYPES]
)


@dataclass(frozen=True, eq=False)
class ShardRows:
    """A shard's rows sorted by event_ts, ready to become tables for any row range (one per partition).

    `fixed` columns are Arrow arrays, sliced as they are. Keyed columns (the customer identities, tracking
    numbers) are per-row keys into per-shard strings; each range gets them as dictionaries holding only the
    values it uses, each once, so the Parquet writer stores codes without copying or hashing a string per row.
    """

    ts: np.ndarray
    fixed: dict[str, pa.Array]
    # (per-row key, number of keys, {column: (code of each key or None when keys are the codes, values)})
    keyed: tuple[tuple[np.ndarray, int, dict[str, tuple[np.ndarray | None, pa.Array]]], ...]

    def __len__(self) -> int:
        return self.ts.size

    def table(self, lo: int = 0, hi: int | None = None) -> pa.Table:
        hi = len(self) if hi is None else hi
        columns = {name: array.slice(lo, hi - lo) for name, array in self.fixed.items()}
        for key, universe, named in self.keyed:
            # key: per-row index into the shard's keys (customers, orders); each named column maps a key to a
            # code into its own distinct values, so equal strings (two Emeka Ezes) share one dictionary entry.
            used, position = distinct_positions(key[lo:hi], max(universe, 1))
            missing = position < 0
            for name, (code_of_key, values) in named.items():
                if code_of_key is None:  # values unique per key: the used keys are the kept values
                    kept, remap = used, np.arange(used.size)
                else:
                    kept, remap = distinct_positions(code_of_key[used], max(len(values), 1))
                if missing.any():
                    row_codes = np.where(missing, -1, remap[np.maximum(position, 0)] if used.size else -1)
                else:
                    row_codes = remap[position]
                columns[name] = dictionary(row_codes, values.take(pa.array(kept)))
        return pa.Table.from_arrays([columns[c] for c in COLUMN_NAMES], schema=encoded_schema())


def _distinct_codes(values: pa.Array) -> tuple[np.ndarray | None, pa.Array]:
    """Per value, a code into the distinct values (in first-seen order), and those distinct values; no codes
    (None) when the values are already distinct."""
    encoded = pc.dictionary_encode(values)
    if len(encoded.dictionary) == len(values):
        return None, values
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def shard_rows(cfg: GenConfig, shard: Shard, pools: Pools | None = None) -> ShardRows:
    """Generate the shard: its first `shard.events` events in time order, as columns."""
    pools = pools or default_pools()
    b = cfg.behaviour
    ev, carriers = shard_events(cfg, shard, pools)
    n = len(ev)
    r = rng(cfg.seed, "columns", shard.index)

    words = r.integers(0, np.iinfo(np.uint64).max, size=(n, 2), dtype=np.uint64, endpoint=True)
    words[:, 0] = (words[:, 0] & _VERSION_MASK) | _VERSION_4  # octet 6: version 4
    words[:, 1] = (words[:, 1] & _VARIANT_MASK) | _VARIANT_RFC  # octet 8: RFC 9562 variant
    storage = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(words)])
    event_id = pa.ExtensionArray.from_storage(pa.uuid(), storage)

    event_ts = pa.Array.from_buffers(pa.timestamp("us", tz="UTC"), n, [None, pa.py_buffer(ev.ts)])
    latency_ms = latency_table(b)[ev.platform.astype(np.int64) * QUANTILES + r.integers(0, QUANTILES, n)]
    slow = latency_ms > cfg.latency_threshold_ms

    active, cust_pos = distinct_positions(ev.customer - shard.first_customer, shard.customers)
    ident = identities(cfg.seed, shard.first_customer + active, pools)
    used_orders, order_pos = distinct_positions(ev.order, max(len(carriers), 1))
    tracking = tracking_numbers(cfg.seed, shard.index * ORDERS_PER_SHARD + used_orders, carriers[used_orders], b)
    carrier = np.where(ev.order >= 0, carriers[np.maximum(ev.order, 0)] if len(carriers) else -1, -1)

    amount_valid = ev.amount >= 0
    words = np.zeros((n, 2), np.int64)
    words[:, 0] = np.where(amount_valid, ev.amount, 0)
    validity = pa.array(amount_valid).buffers()[1]
    amount = pa.Array.from_buffers(
        pa.decimal128(12, 2), n, [validity, pa.py_buffer(words)], null_count=int(n - amount_valid.sum())
    )

    fixed = {
        "event_id": event_id,
        "event_ts": event_ts,
        "event_type": dictionary(ev.type, _EVENT_TYPES),
        "platform": dictionary(ev.platform, _PLATFORMS),
        "latency_ms": pa.array(latency_ms),
        "error_code": sparse_strings(np.where(slow, 0, -1), (INVALID_LATENCY,)),
        "total_amount": amount,
        "payment_method": sparse_strings(ev.method, PAYMENT_METHODS),
        "payment_status": sparse_strings(_STATUS_OF_TYPE[ev.type], PAYMENT_STATUSES),
        "carrier": sparse_strings(carrier, b.carriers.names),
    }
    keyed = (
        # customer ids are distinct by construction; names, phones, e-mails and addresses may repeat
        (cust_pos, active.size, {k: (None, v) if k == "customer_id" else _distinct_codes(v) for k, v in ident.items()}),
        (order_pos, used_orders.size, {"tracking_number": (None, tracking)}),  # one per order, never shared
    )
    return ShardRows(ts=ev.ts, fixed=fixed, keyed=keyed)


def shard_table(cfg: GenConfig, shard: Shard, pools: Pools | None = None) -> pa.Table:
    """The shard's part as one Arrow table in `encoded_schema()`, sorted by event_ts (`decoded()` gives it as
    readers see it)."""
    return shard_rows(cfg, shard, pools).table()
