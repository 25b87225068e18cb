"""Incidents: what a scenario's time-windowed overrides do to the simulation, as pure functions over whole arrays.

Each function takes the behaviour and arrays of codes and instants (microseconds since the epoch, UTC) and returns
one value per element; a window [start, end) covers the instants inside it. With no incidents of a kind, every
result is the neutral value (the base rate, a factor of 1, no extra days). Overlapping windows combine: factors
multiply, extra days add, and an outage sets the highest of the covering failure rates.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np

from generator.core.behaviour import Behaviour, Incidents, Windows
from generator.core.events import DAY, EPOCH_WEEKDAY, HOUR, WAT_OFFSET
from generator.core.streams import hash_normal, hash_uniform
from generator.schema import PAYMENT_METHODS

WEEK = 7 * DAY
_MAX_PER_WEEK = 16  # the Poisson count's tail is cut here (a mean of a few a week)


def weekly_outages(seed: int, b: Behaviour, t0: int, t1: int) -> list[dict]:
    """The random payment outages (`[payment.outages]`) that overlap [t0, t1), weeks from Monday 00:00 WAT, as
    scenario incidents: a Poisson number a week (mean `outages_per_week`), each starting at a uniform
    instant of its week, lasting a lognormal of median `outage_hours` (sigma 0.5), on one method drawn by
    `outage_method`, failing at `outage_failure_rate`. A pure function of (seed, week): every run and report that
    covers a week sees the same ones."""
    if b.outages_per_week <= 0 or t1 <= t0:
        return []
    # from the week before: an outage drawn late in a week can last into the next (the filter below keeps those
    # that overlap the span; a week is far longer than any outage)
    first = ((t0 + WAT_OFFSET) // DAY + EPOCH_WEEKDAY) // 7 - 1
    last = ((t1 - 1 + WAT_OFFSET) // DAY + EPOCH_WEEKDAY) // 7
    weeks = np.arange(first, last + 1, dtype=np.int64)
    # Poisson counts by inverse cdf from one uniform a week
    u = hash_uniform(seed, "outage/count", weeks)
    term = np.exp(-b.outages_per_week)
    cdf, count = np.full(weeks.size, term), np.zeros(weeks.size, np.int64)
    for k in range(1, _MAX_PER_WEEK + 1):
        more = u >= cdf
        count += more
        term *= b.outages_per_week / k
        cdf = cdf + term
    week = np.repeat(weeks, count)
    key = week * _MAX_PER_WEEK + (np.arange(week.size) - np.repeat(np.cumsum(count) - count, count))
    week_start = (week * 7 - EPOCH_WEEKDAY) * DAY - WAT_OFFSET
    start = week_start + (hash_uniform(seed, "outage/start", key) * WEEK).astype(np.int64)
    length = (b.outage_hours * HOUR * np.exp(0.5 * hash_normal(seed, "outage/length", key))).astype(np.int64)
    cdf_m = np.cumsum(b.outage_method)
    pick_m = hash_uniform(seed, "outage/method", key) * cdf_m[-1]
    method = np.minimum(np.searchsorted(cdf_m, pick_m, "right"), len(PAYMENT_METHODS) - 1)
    second = 1_000_000  # windows in whole seconds, as the ISO instants that record them
    start, end = start // second * second, (start + length) // second * second
    return [
        {
            "kind": "payment_outage",
            "start": _iso(int(s)),
            "end": _iso(int(e)),
            "method": PAYMENT_METHODS[m],
            "failure_rate": b.outage_failure_rate,
        }
        for s, e, m in zip(start, end, method, strict=True)
        if e > t0 and s < t1
    ]


def promotion_sales(b: Behaviour, t0: int, t1: int) -> list[dict]:
    """The calendar's yearly promotions (`[[calendar.promotions]]`) that overlap [t0, t1), as flash-sale incidents
    from 00:00 WAT of their first day, named by `promotion`. Overlapping promotions multiply, as flash sales do."""
    if not b.promotions or t1 <= t0:
        return []
    first = _wat_date(t0).year - 1  # a window of the year before can reach into January
    out = []
    for year in range(first, _wat_date(t1 - 1).year + 1):
        for p in b.promotions:
            day = (p.first_day(year) - _EPOCH_DATE).days
            start, end = day * DAY - WAT_OFFSET, (day + p.days) * DAY - WAT_OFFSET
            if end > t0 and start < t1:
                out.append(
                    {
                        "kind": "flash_sale",
                        "start": _iso(start),
                        "end": _iso(end),
                        "traffic_factor": p.traffic_factor,
                        "conversion_factor": p.conversion_factor,
                        "promotion": p.name,
                    }
                )
    return sorted(out, key=lambda i: i["start"])  # ISO instants of one format sort as time


def with_recurring(
    b: Behaviour, seed: int, t0: int, t1: int, promotions: tuple[int, int] | None = None
) -> tuple[Behaviour, list[dict]]:
    """The behaviour with its scenario's incidents, the calendar's promotions (over `promotions`, a span; none:
    [t0, t1)) and the weekly outages overlapping [t0, t1); and those promotions and outages."""
    drawn = [*promotion_sales(b, *(promotions or (t0, t1))), *weekly_outages(seed, b, t0, t1)]
    if not drawn:
        return b, drawn
    incidents = Incidents.from_list([*b.raw.get("incidents", []), *drawn], b.carriers.names)
    return dataclasses.replace(b, incidents=incidents), drawn


_EPOCH_DATE = datetime(1970, 1, 1).date()


def _wat_date(ts_us: int):
    return datetime.fromtimestamp((ts_us + WAT_OFFSET) // 1_000_000, UTC).date()


def _iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us // 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _covers(w: Windows, i: int, ts_us: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    inside = (ts_us >= w.start_us[i]) & (ts_us < w.end_us[i])
    return inside if codes is None else inside & (codes == w.target[i])


def _live(w: Windows, lo, hi) -> np.ndarray:
    """The windows that can cover an instant in [lo, hi] (a timeline's years of promotions: most of them cannot;
    skipping one that covers nothing changes no product)."""
    return np.flatnonzero((w.start_us <= hi) & (w.end_us > lo))


def _product(w: Windows, ts_us: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    out = np.ones(np.shape(ts_us))
    if not out.size:
        return out
    for i in _live(w, np.min(ts_us), np.max(ts_us)):
        out = np.where(_covers(w, i, ts_us, codes), out * w.value[i], out)
    return out


def method_failure_at(b: Behaviour, method_codes: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Failure probability of a payment attempt with each method at each instant: the method's base rate, or
    inside a payment outage of that method the outage's failure rate."""
    method_codes = np.asarray(method_codes)
    w = b.incidents.payment_outage
    outage = np.full(np.broadcast_shapes(method_codes.shape, np.shape(ts_us)), np.nan)
    for i in range(len(w)):
        outage = np.fmax(outage, np.where(_covers(w, i, ts_us, method_codes), w.value[i], np.nan))
    return np.where(np.isnan(outage), b.method_failure[method_codes], outage)


def traffic_factor(b: Behaviour, hour_starts_us: np.ndarray, only: tuple[int, int, float] | None = None) -> np.ndarray:
    """Session intensity factor of each hour (given by its start) from flash sales: a sale covering part of an
    hour raises it in proportion to the part covered. `only`: that one sale's (start, end, factor) alone."""
    w = b.incidents.traffic
    if only is not None:
        w = Windows.of([(only[0], only[1], -1, only[2])])
    out = np.ones(np.shape(hour_starts_us))
    if not out.size:
        return out
    for i in _live(w, np.min(hour_starts_us), np.max(hour_starts_us) + HOUR - 1):
        overlap = np.minimum(hour_starts_us + HOUR, w.end_us[i]) - np.maximum(hour_starts_us, w.start_us[i])
        out = out * (1 + (w.value[i] - 1) * np.clip(overlap, 0, HOUR) / HOUR)
    return out


def conversion_factor(b: Behaviour, ts_us: np.ndarray) -> np.ndarray:
    """Factor on the checkout probability of sessions starting at `ts_us` (flash sales)."""
    return _product(b.incidents.conversion, ts_us)


def latency_factor(b: Behaviour, platform_codes: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Factor on the latency of events on each platform at each instant (latency degradations)."""
    return _product(b.incidents.latency_degradation, ts_us, np.asarray(platform_codes))


def extra_transit_days(b: Behaviour, carrier_codes: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Extra days in transit of parcels of each carrier shipped at each instant (carrier delays)."""
    w = b.incidents.carrier_delay
    carrier_codes = np.asarray(carrier_codes)
    out = np.zeros(np.broadcast_shapes(carrier_codes.shape, np.shape(ts_us)))
    for i in range(len(w)):
        out = out + np.where(_covers(w, i, ts_us, carrier_codes), w.value[i], 0.0)
    return out
