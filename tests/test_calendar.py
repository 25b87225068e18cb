"""The sales calendar: yearly promotions ([calendar] promotions) become flash sales of their dates for every span a
run or a report covers, and weekends and public holidays have their own hourly shape ([traffic] weekend_hourly_wat);
a scenario recorded without these keys (an older run's manifest) keeps its traffic exactly.

Statistical tolerances: counts of sessions are Poisson given the population (each customer's count is Poisson), so a
ratio of two counts has the relative standard error sqrt(1/N1 + 1/N2) and a share of a day type's sessions the
binomial one; a realised value must be within Z = 5 standard errors of its target (chance alone: ~6e-7 per check,
whatever seed CI draws) and, where the law makes a contrast, more than Z standard errors from what it would be
without the law.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from generator.config import parse_start
from generator.coordinator import run
from generator.core.behaviour import (
    Behaviour,
    Promotion,
    black_friday,
    default_behaviour,
    default_scenario,
    instant_us,
)
from generator.core.events import DAY, EPOCH_WEEKDAY, HOUR, WAT_OFFSET
from generator.core.incidents import promotion_sales, with_recurring
from generator.core.sessions import intensity
from generator.core.shard import WARM_UP, GenConfig
from generator.report import report
from tests.conftest import small_config

Z = 5.0
Y2024, Y2031 = instant_us("2024-01-01T00:00:00+01:00"), instant_us("2031-01-01T00:00:00+01:00")


def _wat_day(d: date) -> int:
    """00:00 WAT of `d` in microseconds since the epoch (UTC)."""
    return (d - date(1970, 1, 1)).days * DAY - WAT_OFFSET


def _expected_windows(b: Behaviour, t0: int, t1: int) -> list[tuple[int, int, float, float, str]]:
    """The promotions' windows overlapping [t0, t1), worked out from their definitions day by day."""
    out = []
    for year in range(1969 + t0 // (365 * DAY), 1972 + t1 // (365 * DAY)):
        for p in b.promotions:
            first = date(year, p.month, p.day) if p.month else black_friday(year) + timedelta(days=p.day)
            start, end = _wat_day(first), _wat_day(first + timedelta(days=p.days))
            if end > t0 and start < t1:
                out.append((start, end, p.traffic_factor, p.conversion_factor, p.name))
    return sorted(out)


@given(st.integers(1971, 2400))
@example(2025)
def test_black_friday_is_the_friday_after_the_fourth_thursday_of_november(year):
    d = black_friday(year)
    assert d.month == 11 and 23 <= d.day <= 29 and d.weekday() == 4
    thursdays = [x for x in range(1, d.day) if date(year, 11, x).weekday() == 3]
    assert len(thursdays) == 4 and thursdays[-1] == d.day - 1
    assert black_friday(2025) == date(2025, 11, 28) and black_friday(2024) == date(2024, 11, 29)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(Y2024 // HOUR, Y2031 // HOUR - 24),
    st.integers(1, 400 * 24),
    st.integers(0, 400 * 24),
    st.integers(0, 400 * 24),
)
@example(instant_us("2025-11-08T00:00:00Z") // HOUR, 21 * 24, 0, 0)  # 11.11 and Black Friday
@example(instant_us("2025-12-31T23:30:00Z") // HOUR, 2, 24 * 40, 0)  # a span in January sees no December window
def test_promotions_are_a_pure_function_of_the_dates(hour, hours, before, after):
    """The flash sales of a span are those of any larger span that overlap it (so every run of a timeline, its warm
    start and the report over any of them see the same ones), each from 00:00 WAT of its first day for its days,
    with its promotion's factors and name."""
    b = default_behaviour()
    t0, t1 = hour * HOUR, (hour + hours) * HOUR
    sales = promotion_sales(b, t0, t1)
    assert all(s["kind"] == "flash_sale" for s in sales)
    got = sorted(
        (instant_us(s["start"]), instant_us(s["end"]), s["traffic_factor"], s["conversion_factor"], s["promotion"])
        for s in sales
    )
    assert got == _expected_windows(b, t0, t1)
    wider = promotion_sales(b, t0 - before * HOUR, t1 + after * HOUR)
    assert [s for s in wider if instant_us(s["end"]) > t0 and instant_us(s["start"]) < t1] == sales
    for start, end, *_ in got:
        assert (start + WAT_OFFSET) % DAY == 0 and (end - start) % DAY == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(Y2024 // HOUR, Y2031 // HOUR - 1))
@example(instant_us("2025-11-11T19:00:00Z") // HOUR)  # 11.11, 20:00 WAT
@example(instant_us("2025-11-28T12:00:00Z") // HOUR)  # Black Friday (and a payday)
@example(instant_us("2025-12-01T12:00:00Z") // HOUR)  # Cyber Monday and the December run-up: they multiply
def test_inside_a_promotion_the_intensity_is_the_usual_times_its_factor(hour):
    """The behaviour a run simulates (with the calendar's promotions expanded over all it can reach) has, at every
    hour, the intensity of the plain calendar times the traffic factors of the promotions covering it, and the
    checkout probability times their conversion factors."""
    from generator.core.incidents import conversion_factor

    b = default_behaviour()
    h = np.array([hour * HOUR], np.int64)
    cfg = GenConfig(
        seed=3, events=None, start_us=int(h[0]) - 3 * DAY, end_us=int(h[0]) + 3 * DAY, shard_size=1_000,
        latency_threshold_ms=2000, customers=1_000,
    )  # fmt: skip
    covering = [w for w in _expected_windows(b, int(h[0]), int(h[0]) + HOUR)]
    traffic = math.prod(w[2] for w in covering)
    conversion = math.prod(w[3] for w in covering)
    assert intensity(cfg.behaviour, h)[0] == pytest.approx(intensity(b, h)[0] * traffic, rel=1e-12)
    assert conversion_factor(cfg.behaviour, h)[0] == pytest.approx(conversion, rel=1e-12)
    # the warm start's weeks are covered too
    early = h - 3 * DAY - WARM_UP + HOUR
    covering = _expected_windows(b, int(early[0]), int(early[0]) + HOUR)
    expected = intensity(b, early)[0] * math.prod(w[2] for w in covering)
    assert intensity(cfg.behaviour, early)[0] == pytest.approx(expected, rel=1e-12)


def _ordinary_week(k: int) -> int:
    """Monday 00:00 WAT of the k-th week from 5 January 2026 whose days are all from the 6th to the 24th (past the
    payday curve), none a public holiday and none in a promotion (by the default calendar)."""
    b = default_behaviour()
    monday = date(2026, 1, 5) + timedelta(weeks=k)
    while True:
        days = [monday + timedelta(days=i) for i in range(7)]
        t0 = _wat_day(monday)
        ok = all(6 <= d.day < b.payday_from_day for d in days) and not promotion_sales(b, t0, t0 + 7 * DAY)
        ok &= not np.isin((t0 + WAT_OFFSET) // DAY + np.arange(7), b.holidays).any()
        if ok:
            return t0
        monday += timedelta(weeks=1)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 40), st.integers(0, 23))
def test_weekend_days_have_their_own_hourly_shape_and_the_same_day_total(week, hour):
    """A Saturday's and a Sunday's hour is the weekend curve's (scaled to the weekday curve's mean) times
    weekend_factor, against a weekday's hour of the weekday curve; over the day the weekend's total is the
    weekday's times weekend_factor, as before the weekend curve (the curve sets the shape only)."""
    b = default_behaviour()
    monday = _ordinary_week(week)
    assert (((monday + WAT_OFFSET) // DAY + EPOCH_WEEKDAY) % 7) == 0
    friday, saturday, sunday = (monday + k * DAY + hour * HOUR for k in (4, 5, 6))
    f = intensity(b, np.array([friday, saturday, sunday]))
    scaled = np.array(default_scenario()["traffic"]["weekend_hourly_wat"])
    scaled = scaled * np.mean(b.hourly_wat) / scaled.mean()
    ratio = scaled[hour] / b.hourly_wat[hour] * b.weekend_factor
    assert f[1] / f[0] == pytest.approx(ratio, rel=1e-12) and f[2] / f[0] == pytest.approx(ratio, rel=1e-12)
    days = monday + 4 * DAY + HOUR * np.arange(72)
    per_day = intensity(b, days).reshape(3, 24).sum(axis=1)
    assert per_day[1] / per_day[0] == pytest.approx(b.weekend_factor, rel=1e-12)
    assert per_day[2] / per_day[0] == pytest.approx(b.weekend_factor, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.integers(0, 23))
@example(date(2025, 11, 28), 20)  # the 28th: the peak
@example(date(2026, 3, 3), 9)  # after a February of 28 days
@example(date(2025, 12, 31), 12)  # the 31st
def test_payday_traffic_follows_the_days_since_the_25th(day, hour):
    """A day's payday factor is 1 + (payday_factor - 1) x the curve at the days since the last 25th (this month's,
    or the month before's: the curve runs on into the next month), 1 past its end; the intensity carries it, with a
    norm that keeps the year's mean at 1 (each day since a payday comes 12 times a year)."""
    b = default_behaviour()
    last = day.replace(day=25) if day.day >= 25 else (day.replace(day=1) - timedelta(days=1)).replace(day=25)
    k = (day - last).days
    curve = list(default_scenario()["traffic"]["payday_curve"])
    expected = 1 + (b.payday_factor - 1) * (curve[k] if k < len(curve) else 0.0)
    h = np.array([_wat_day(day) + hour * HOUR], np.int64)
    weekend = day.weekday() >= 5 or np.isin((int(h[0]) + WAT_OFFSET) // DAY, b.holidays)
    shape = (b.weekend_hourly_wat if weekend else b.hourly_wat)[hour] * (b.weekend_factor if weekend else 1.0)
    paydays = sum(curve) * 12 / 365.25
    norm = b.hourly_wat.mean() * (5 + 2 * b.weekend_factor) / 7 * (1 + paydays * (b.payday_factor - 1))
    assert intensity(b, h)[0] == pytest.approx(shape * expected / norm, rel=1e-12)
    if 27 <= day.day <= 28:
        assert expected == pytest.approx(b.payday_factor)  # the peak
    if 1 <= day.day <= 3:
        assert expected > 1  # the fade into the next month, where a step stopped on the 1st


def _without_calendar(doc: dict) -> dict:
    """A scenario as recorded before the calendar's keys (an older run's manifest)."""
    doc["traffic"].pop("weekend_hourly_wat")
    doc["traffic"].pop("payday_curve")
    doc["calendar"].pop("promotions")
    return doc


def _old_intensity(b: Behaviour, hour_starts: np.ndarray) -> np.ndarray:
    """The intensity as it was before the calendar's laws (generator 0.7.0), written out independently."""
    wat = hour_starts + WAT_OFFSET
    days = (wat // DAY).astype("datetime64[D]")
    weekend = ((wat // DAY + EPOCH_WEEKDAY) % 7 >= 5) | np.isin(wat // DAY, b.holidays)
    day_of_month = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    f = b.hourly_wat[(wat // HOUR) % 24] * np.where(weekend, b.weekend_factor, 1.0)
    f = f * np.where(day_of_month >= b.payday_from_day, b.payday_factor, 1.0)
    paydays = (31 - b.payday_from_day + 1) * 12 / 365.25
    return f / (b.hourly_wat.mean() * (5 + 2 * b.weekend_factor) / 7 * (1 + paydays * (b.payday_factor - 1)))


@settings(max_examples=30, deadline=None)
@given(st.integers(Y2024 // HOUR, Y2031 // HOUR - 24 * 40))
@example(instant_us("2025-11-08T00:00:00Z") // HOUR)
def test_a_scenario_without_the_calendar_keys_keeps_its_traffic(hour):
    """An older run's scenario has no weekend curve, no payday curve and no promotions: every day the weekday shape,
    a payday step and no flash sale of the calendar, in the behaviour a run (and its warm start) simulates and in the
    report's, byte for byte."""
    old = Behaviour.from_dict(_without_calendar(default_scenario()))
    assert old.promotions == () and np.array_equal(old.weekend_hourly_wat, old.hourly_wat)
    assert old.payday_curve is None
    hours = hour * HOUR + HOUR * np.arange(24 * 40, dtype=np.int64)
    assert np.array_equal(intensity(old, hours), _old_intensity(old, hours))
    cfg = GenConfig(
        seed=3, events=None, start_us=int(hours[0]), end_us=int(hours[-1]), shard_size=1_000,
        latency_threshold_ms=2000, customers=1_000, behaviour=old,
    )  # fmt: skip
    assert len(cfg.behaviour.incidents.traffic) == len(cfg.behaviour.incidents.conversion) == 0
    assert np.array_equal(intensity(cfg.behaviour, hours), intensity(old, hours))
    _, drawn = with_recurring(old, 3, int(hours[0]), int(hours[-1]))
    assert all(d["kind"] == "payment_outage" for d in drawn)
    # the default scenario differs (the law is there)
    assert not np.array_equal(intensity(default_behaviour(), hours), intensity(old, hours))


def test_a_promotion_reads_as_its_first_day_each_year():
    p = Promotion.of({"name": "x", "start": "black-friday-6", "days": 6, "traffic_factor": 1.3, "conversion_factor": 1})
    assert p.first_day(2025) == date(2025, 11, 22) and p.first_day(2026) == date(2026, 11, 21)
    p = Promotion.of({"name": "y", "start": "12-11", "days": 14, "traffic_factor": 1.3, "conversion_factor": 1.1})
    assert p.first_day(2025) == date(2025, 12, 11)
    # a window crossing the new year is seen from January
    late = {"name": "z", "start": "12-30", "days": 5, "traffic_factor": 2.0, "conversion_factor": 1.0}
    doc = default_scenario()
    doc["calendar"]["promotions"] = [late]
    b = Behaviour.from_dict(doc)
    (sale,) = promotion_sales(b, instant_us("2026-01-02T12:00:00Z"), instant_us("2026-01-02T13:00:00Z"))
    assert sale["start"] == "2025-12-29T23:00:00Z" and sale["end"] == "2026-01-03T23:00:00Z"


# -- in the data ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def november(tmp_path_factory):
    """Monday 3 to Saturday 29 November 2025 (WAT), 6,000 customers (~1,800 sessions an ordinary weekday): 11.11
    on a Tuesday, the Black Friday week, Black Friday (a payday) and four weekends."""
    out = tmp_path_factory.mktemp("november")
    start = parse_start("2025-11-03T00:00:00+01:00")
    cfg = small_config(
        out, start=start, events=None, duration_us=26 * DAY, customers=6_000, workers=2, shard_size=3_000
    )
    run(cfg)
    table = ds.dataset(out / "events", format="parquet").to_table(columns=["event_ts", "event_type"])
    opens = table.filter(pc.equal(table.column("event_type"), "OPEN")).column("event_ts").cast("int64").to_numpy()
    return out, opens


def _day_count(opens: np.ndarray, d: date) -> int:
    t0 = _wat_day(d)
    return int(((opens >= t0) & (opens < t0 + DAY)).sum())


def _day_intensity(b: Behaviour, d: date) -> float:
    return float(intensity(b, _wat_day(d) + HOUR * np.arange(24, dtype=np.int64)).sum())


@pytest.mark.parametrize(
    ("day", "ordinary", "factor"),
    [
        (date(2025, 11, 11), (date(2025, 11, 4), date(2025, 11, 18)), 1.6),  # 11.11 against ordinary Tuesdays
        (date(2025, 11, 28), (date(2025, 11, 14), date(2025, 11, 21)), 2.0),  # Black Friday against Fridays
    ],
)
def test_sessions_on_a_promotions_day_against_ordinary_days_of_the_same_weekday(november, day, ordinary, factor):
    """Sessions on the day over the mean of the same weekday's ordinary days: the ratio of their intensities (the
    promotion's factor, times the payday factor for Black Friday), within Z Poisson standard errors; and more than
    Z from what the calendar without promotions gives (1, or the payday's 1.2)."""
    _, opens = november
    b = default_behaviour()
    n_day = _day_count(opens, day)
    n_usual = sum(_day_count(opens, d) for d in ordinary)
    plain = _day_intensity(b, day) / np.mean([_day_intensity(b, d) for d in ordinary])  # no promotion
    target = plain * factor
    ratio = n_day / (n_usual / len(ordinary))
    se = target * math.sqrt(1 / n_day + 1 / n_usual)
    assert abs(ratio - target) <= Z * se, (ratio, target, se)
    assert abs(ratio - plain) > Z * se, (ratio, plain, se)


def test_weekend_sessions_start_later_in_the_morning_than_weekday_ones(november):
    """06:00-09:59 WAT holds a smaller share of a weekend day's sessions than of a weekday's: each day type's share
    within Z binomial standard errors of the share its curve gives, and the two shares more than Z apart."""
    _, opens = november
    b = default_behaviour()
    wat = opens + WAT_OFFSET
    weekend = (wat // DAY + EPOCH_WEEKDAY) % 7 >= 5
    morning = ((wat // HOUR) % 24 >= 6) & ((wat // HOUR) % 24 < 10)
    weekday_curve = b.hourly_wat / b.hourly_wat.sum()
    weekend_curve = b.weekend_hourly_wat / b.weekend_hourly_wat.sum()
    shares = {}
    for is_weekend, curve in ((False, weekday_curve), (True, weekend_curve)):
        mine = weekend == is_weekend
        n, target = int(mine.sum()), float(curve[6:10].sum())
        shares[is_weekend] = (float((mine & morning).sum() / n), n, target)
        value = shares[is_weekend][0]
        assert abs(value - target) <= Z * math.sqrt(target * (1 - target) / n), (is_weekend, value, target, n)
    (wd, n_wd, t_wd), (we, n_we, t_we) = shares[False], shares[True]
    se = math.sqrt(t_wd * (1 - t_wd) / n_wd + t_we * (1 - t_we) / n_we)
    assert wd - we > Z * se, (wd, we, se)


def test_the_report_targets_the_promotions_and_the_weekend_shape(november):
    """`gen report` lists each promotion of the data's span as a flash sale under its name, with its traffic and
    conversion factors as targets, and the morning and evening shares of weekdays' and weekends' sessions against
    their curves; every row with a standard error within Z of its target."""
    out, _ = november
    s = report(out)
    names = sorted({i.params["promotion"] for i in s.incidents if "promotion" in i.params})
    assert names == ["11.11", "Black Friday", "Black Friday week"]
    (eleven,) = [
        r for r in s.section("traffic").rows if r.label.startswith("promotion 11.11 2025-11-10T23:00: traffic")
    ]
    assert eleven.target == pytest.approx(1.6)
    conversion = [r for r in s.section("funnel").rows if r.label.startswith("promotion Black Friday 2025-11-27")]
    (factor,) = [r for r in conversion if "conversion factor" in r.label]
    assert factor.target == pytest.approx(1.25)
    shape = [r for r in s.section("traffic").rows if "of the day type's sessions" in r.label]
    assert len(shape) == 4
    morning = {r.label.split(":")[0]: r for r in shape if "morning" in r.label}
    assert morning["weekdays"].target - morning["weekends and holidays"].target > 0.04
    for section in ("traffic", "funnel"):
        for r in s.section(section).rows:
            if r.z is not None:
                assert abs(r.z) <= Z, (section, r)


def _warm_orders(b: Behaviour, start: int, customers: int) -> int:
    """Orders a timeline's warm start places in the 28 days before `start` (one shard of `customers`)."""
    from generator.core.nigeria import default_pools
    from generator.core.shard import Shard, _Stream

    cfg = GenConfig(
        seed=11, events=None, start_us=start, end_us=start + HOUR, shard_size=customers, latency_threshold_ms=2000,
        customers=customers, behaviour=b,
    )  # fmt: skip
    s = _Stream(cfg, Shard(0, 0, 0, customers), default_pools())
    s.warm()
    return s.orders


def test_the_warm_start_places_orders_at_the_flash_sales_conversion():
    """A flash sale in the weeks before a timeline's start (as the calendar's promotions are for a start in
    December) raises the warm start's orders as it raises a run's: with carts going to checkout twice as often in
    the last 14 of the 28 days, the orders number the intensity-weighted mean factor times those without it, within
    Z Poisson standard errors, and more than Z from the count without it (a sale ignored by the warm start)."""
    start = instant_us("2026-03-02T00:00:00+01:00")  # no promotion in the four weeks before
    doc = default_scenario()
    doc["calendar"]["promotions"] = []
    plain = Behaviour.from_dict(doc)
    sale = {"kind": "flash_sale", "start": "2026-02-16T00:00:00+01:00", "end": "2026-03-02T00:00:00+01:00"}
    b = Behaviour.from_dict(doc | {"incidents": [sale | {"traffic_factor": 1.0, "conversion_factor": 2.0}]})
    hours = start - WARM_UP + HOUR * np.arange(28 * 24, dtype=np.int64)
    weight = intensity(plain, hours)
    target = float((weight * np.where(hours >= instant_us(sale["start"]), 2.0, 1.0)).sum() / weight.sum())
    n_plain, n_sale = _warm_orders(plain, start, 20_000), _warm_orders(b, start, 20_000)
    ratio = n_sale / n_plain
    se = target * math.sqrt(1 / n_sale + 1 / n_plain)
    assert n_plain > 2_000 and abs(ratio - target) <= Z * se, (n_plain, n_sale, target)
    assert abs(ratio - 1.0) > Z * se
