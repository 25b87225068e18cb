"""Fulfilment in working hours (generator/core/lifecycle.py): PACKED, SHIPPED and DELIVERED land inside their
stage's hours in West Africa Time, never earlier than due and never out of order, as properties over seeds,
placement instants and schedules; and deliveries over three weeks follow the default hours."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.core.behaviour import (
    AROUND_THE_CLOCK,
    FULFILMENT_STAGES,
    Behaviour,
    Incidents,
    default_behaviour,
    default_scenario,
    working_hours,
)
from generator.core.events import DAY, HOUR
from generator.core.lifecycle import Placed, at_pickups, delivery_times, fulfil, in_working_hours
from generator.core.streams import rng

START_2025 = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z, a Wednesday
_DAY_2025 = START_2025 // (24 * 3600 * 10**6)
HALF_HOUR = HOUR // 2


_NO_HOLIDAYS = np.zeros(0, np.int64)


def _wat(ts: np.ndarray, holidays: np.ndarray = _NO_HOLIDAYS) -> tuple[np.ndarray, np.ndarray]:
    """The row of the week's hours each instant's WAT day keeps (its weekday, Monday = 0; Sunday's, 6, on a public
    holiday) and microseconds after midnight in WAT (UTC+1)."""
    local = ts + HOUR
    day = local // DAY
    return np.where(np.isin(day, holidays), 6, (day + 3) % 7), local - day * DAY  # 1970-01-01 was a Thursday


def _inside(ts: np.ndarray, hours: np.ndarray, holidays: np.ndarray = _NO_HOLIDAYS) -> np.ndarray:
    weekday, clock = _wat(ts, holidays)
    return (clock >= hours[weekday, 0]) & (clock < hours[weekday, 1])


def _first_opening_after(ts: np.ndarray, hours: np.ndarray, holidays: np.ndarray = _NO_HOLIDAYS) -> np.ndarray:
    """The first opening instant strictly after each instant, by looking at that day and the days after it (a week,
    and a week more for each holiday: one on the only open weekday puts the opening off by a week)."""
    local = ts + HOUR
    day = local // DAY
    candidates = []
    for k in range(7 * (holidays.size + 1) + 1):
        weekday = np.where(np.isin(day + k, holidays), 6, (day + k + 3) % 7)
        opening = (day + k) * DAY + hours[weekday, 0] - HOUR
        ok = (hours[weekday, 0] < hours[weekday, 1]) & (opening > ts)
        candidates.append(np.where(ok, opening, np.iinfo(np.int64).max))
    return np.min(candidates, axis=0)


# A week of hours: each day closed or open over [opening, closing) on the half hour, at least one day open.
_span = st.one_of(st.just((0, 0)), st.integers(0, 47).flatmap(lambda a: st.tuples(st.just(a), st.integers(a + 1, 48))))
schedules = (
    st.lists(_span, min_size=7, max_size=7)
    .filter(lambda days: any(a < b for a, b in days))
    .map(lambda days: np.array(days, np.int64) * HALF_HOUR)
)


@settings(max_examples=200)
@given(seed=st.integers(0, 2**63 - 1), hours=schedules)
def test_an_instant_moves_into_the_first_working_hours_not_before_it(seed, hours):
    """Inside its day's hours an instant stays; any other moves to the first opening after it, plus its uniform's
    share of that day's hours: so every result is inside the hours and never earlier. Openings, closings and the
    instant just before a closing are among the instants tried."""
    r = np.random.default_rng(seed)
    days = r.integers(0, 730, 300)
    weekday = (days + START_2025 // DAY + 3) % 7
    edges = START_2025 + days * DAY - HOUR + hours[weekday, r.integers(0, 2, days.size)] - r.integers(0, 2, days.size)
    ts = np.concatenate([r.integers(START_2025, START_2025 + 730 * DAY, 2_000), edges])
    u = r.random(ts.size)
    got = in_working_hours(ts, hours, u)
    assert _inside(got, hours).all()
    assert (got >= ts).all()
    stay = _inside(ts, hours)
    assert np.array_equal(got[stay], ts[stay])
    opening = _first_opening_after(ts[~stay], hours)
    weekday, _ = _wat(opening)
    length = hours[weekday, 1] - hours[weekday, 0]
    assert np.array_equal(got[~stay], opening + (u[~stay] * length).astype(np.int64))


def _first_pickup_at_or_after(ts: np.ndarray, hours: np.ndarray, pickups: np.ndarray, holidays: np.ndarray):
    """The first pickup instant at or after each instant, among its day's and the next 14 days' pickup times that
    lie inside their day's hours (a holiday keeping Sunday's); the maximum int64 where none is."""
    local = ts + HOUR
    day = local // DAY
    best = np.full(ts.size, np.iinfo(np.int64).max)
    for k in range(15):
        weekday = np.where(np.isin(day + k, holidays), 6, (day + k + 3) % 7)
        for p in pickups:
            at = (day + k) * DAY + p - HOUR
            ok = (hours[weekday, 0] <= p) & (p < hours[weekday, 1]) & (at >= ts)
            best = np.where(ok, np.minimum(best, at), best)
    return best


@settings(max_examples=200)
@given(
    seed=st.integers(0, 2**63 - 1),
    hours=schedules,
    pickups=st.lists(st.integers(0, 47), min_size=1, max_size=4, unique=True),
    holidays=st.lists(st.integers(0, 60), max_size=4, unique=True),
)
def test_a_parcel_ships_at_the_first_pickup_open_at_or_after_it(seed, hours, pickups, holidays):
    """Pickups: each instant goes to the first pickup time (on the half hour here) at or after it that lies inside
    its day's hours, on any day a fortnight on (a holiday keeping Sunday's), plus its own delay but before that
    day's closing; where there is none, into the working hours as before. Never earlier than the instant."""
    r = np.random.default_rng(seed)
    times = np.sort(np.array(pickups, np.int64) * HALF_HOUR)
    hol = np.sort(_DAY_2025 + np.array(holidays, np.int64))
    ts = np.concatenate([r.integers(START_2025, START_2025 + 60 * DAY, 2_000), START_2025 + times - HOUR])
    after = r.integers(0, 40 * 60 * 10**6, ts.size)
    got = at_pickups(ts, hours, times, after.astype(float), hol)
    want = _first_pickup_at_or_after(ts, hours, times, hol)
    found = want < np.iinfo(np.int64).max
    weekday, _ = _wat(np.where(found, want, ts), hol)
    closing = (want + HOUR) // DAY * DAY + hours[weekday, 1] - HOUR  # the pickup day's closing
    assert np.array_equal(got[found], np.minimum(want + after, closing - 1)[found])
    assert _inside(got[found], hours, hol).all()
    assert (got >= ts).all()
    assert np.array_equal(got[~found], in_working_hours(ts[~found], hours, np.zeros((~found).sum()), hol))


@settings(max_examples=200)
@given(seed=st.integers(0, 2**63 - 1), hours=schedules)
def test_a_delivery_round_takes_every_parcel_at_the_next_opening_spread_as_a_triangle(seed, hours):
    """Couriers' rounds: every instant, inside the hours or not, goes to the first opening after it and lands at
    the triangular quantile of its uniform over that day's hours (so inside them and never earlier); the spread of
    many such landings in one day is the triangle's (its mean at the middle of the hours)."""
    r = np.random.default_rng(seed)
    ts = r.integers(START_2025, START_2025 + 730 * DAY, 2_000)
    u = r.random(ts.size)
    got = in_working_hours(ts, hours, u, rounds=True)
    assert _inside(got, hours).all() and (got > ts).all()
    opening = _first_opening_after(ts, hours)
    weekday, _ = _wat(opening)
    length = hours[weekday, 1] - hours[weekday, 0]
    tri = np.where(u < 0.5, np.sqrt(u / 2), 1 - np.sqrt((1 - u) / 2))
    assert np.array_equal(got, opening + (tri * length).astype(np.int64))
    one_day = in_working_hours(np.full(20_000, ts[0]), hours, r.random(20_000), rounds=True)
    spread = (one_day - opening[0]) / length[0]
    # the triangle's variance is 1/24; 5.5 se as the property runs 200 examples a time
    assert abs(spread.mean() - 0.5) < 5.5 * np.sqrt(1 / 24 / 20_000), spread.mean()


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    hours=schedules,
    holidays=st.lists(st.integers(0, 60), max_size=12).map(lambda d: np.unique(np.array(d, np.int64)) + _DAY_2025),
)
def test_a_public_holiday_keeps_sundays_hours(seed, hours, holidays):
    """On a public holiday the hours are Sunday's: an instant moves into the first opening after it counting
    holidays (runs of them too) as Sundays, never earlier, and lands inside its day's hours; with no holiday among
    them, the days keep their weekdays' hours."""
    r = np.random.default_rng(seed)
    ts = np.concatenate([r.integers(START_2025, START_2025 + 70 * DAY, 2_000), holidays * DAY - HOUR + 1])
    u = r.random(ts.size)
    got = in_working_hours(ts, hours, u, holidays)
    assert _inside(got, hours, holidays).all()
    assert (got >= ts).all()
    stay = _inside(ts, hours, holidays)
    assert np.array_equal(got[stay], ts[stay])
    opening = _first_opening_after(ts[~stay], hours, holidays)
    weekday, _ = _wat(opening, holidays)
    assert np.array_equal(got[~stay], opening + (u[~stay] * (hours[weekday, 1] - hours[weekday, 0])).astype(np.int64))
    assert np.array_equal(in_working_hours(ts, hours, u, _NO_HOLIDAYS), in_working_hours(ts, hours, u))


def _behaviour(hours: np.ndarray | None = None, delay: dict | None = None) -> Behaviour:
    b = default_behaviour()
    changes = {}
    if hours is not None:
        changes["hours_wat"] = hours
    if delay is not None:
        changes["incidents"] = Incidents.from_list([delay], b.carriers.names)
    return dataclasses.replace(b, **changes)


def _placed(r: np.random.Generator, start: int, spread: int, k: int) -> Placed:
    ts = np.sort(start + r.integers(0, spread, k))
    return Placed(ts=ts, customer=np.arange(k), platform=np.zeros(k, np.int8), origin=ts)


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**63 - 1),
    start=st.integers(START_2025, START_2025 + 730 * DAY),
    spread=st.sampled_from([HOUR, DAY, 21 * DAY]),
    hours=st.one_of(st.none(), st.lists(schedules, min_size=3, max_size=3).map(np.stack)),
    delayed=st.booleans(),
)
def test_every_stage_lands_in_its_hours_and_an_order_never_goes_back(seed, start, spread, hours, delayed):
    """For orders placed at any instants, under the default hours or any others: PACKED, SHIPPED and DELIVERED each
    inside their stage's hours in WAT (Sunday's on the default calendar's public holidays), and placed <= PACKED <=
    SHIPPED <= DELIVERED. With a carrier delay, its
    parcels shipped inside the window still take at least its extra days from SHIPPED to DELIVERED."""
    delay = None
    if delayed:
        iso = np.datetime64(start + spread // 2, "us").astype(str) + "Z"
        end = np.datetime64(start + spread + 10 * DAY, "us").astype(str) + "Z"
        delay = {"kind": "carrier_delay", "start": iso, "end": end, "carrier": "Speedaf", "extra_days": 5.0}
    b = _behaviour(hours, delay)
    r = np.random.default_rng(seed)
    k = 1_500
    placed = _placed(r, start, spread, k)
    ev, carrier = fulfil(rng(seed, "fulfil-test"), b, placed, 0, np.where(r.random(k) < 0.5, 1.0, 1.25))
    stages = ev.ts.reshape(3, k)
    for i, name in enumerate(FULFILMENT_STAGES):
        assert _inside(stages[i], b.hours_wat[i], b.holidays).all(), name
    packed, shipped, delivered = stages
    assert (placed.ts <= packed).all() and (packed <= shipped).all() and (shipped <= delivered).all()
    if delayed:
        w = b.incidents.carrier_delay
        hit = (carrier == b.carriers.names.index("Speedaf")) & (shipped >= w.start_us[0]) & (shipped < w.end_us[0])
        assert (delivered[hit] - shipped[hit] >= 5 * DAY).all()


def test_deliveries_over_three_weeks_follow_the_default_hours():
    """200,000 orders placed at any hour over three weeks: no PACKED, SHIPPED or DELIVERED at 02:00-05:00 WAT, none
    shipped or delivered on a Sunday and none packed outside its Sunday shift (08:00-16:00); and every hour each
    stage is open, Monday to Saturday, holds its share of the events (the hours are used, not just respected):
    within half to twice the mean per open hour; SHIPPED, at the carrier's pickups, only in their minutes;
    DELIVERED, brought by couriers' rounds, spreads over its hours as a triangle (few at 08:00 and just before
    19:00, the most around 13:30): each hour's share of each day's deliveries within 4.5 binomial standard errors
    of the triangle's."""
    b = default_behaviour()
    k = 200_000
    r = np.random.default_rng(11)
    placed = _placed(r, START_2025, 21 * DAY, k)
    ev, _ = fulfil(rng(11, "fulfil-test"), b, placed, 0, np.where(r.random(k) < 0.5, 1.0, 1.25))
    for i, stage in enumerate(FULFILMENT_STAGES):
        ts = ev.ts[i * k : (i + 1) * k]
        weekday, clock = _wat(ts)
        hour = clock // HOUR
        assert not np.isin(hour, [2, 3, 4]).any(), stage
        sunday = weekday == 6
        if stage == "PACKED":
            assert ((hour[sunday] >= 8) & (hour[sunday] < 16)).all()
        else:
            assert not sunday.any(), stage
        counts = np.zeros((7, 24))
        np.add.at(counts, (weekday, hour), 1)
        week = working_hours(default_scenario()["fulfilment"]["hours_wat"])[i] // HOUR
        open_hours = np.array([[week[d, 0] <= h < week[d, 1] for h in range(24)] for d in range(7)])
        assert counts[~open_hours].sum() == 0, stage
        if stage == "SHIPPED":  # at the carrier's pickups (11:00 and 16:00 WAT), inside the hours: none at 16:00 on
            # Saturdays (closed at 14:00); each scan up to pickup_minutes after its pickup
            since = (clock - np.where(hour >= 16, 16, 11) * HOUR) / 60e6
            assert set(np.unique(hour)) == {11, 16} and not ((weekday == 5) & (hour == 16)).any()
            assert (since >= 0).all() and (since < b.pickup_spread / 60e6).all()
            assert (counts[:5, 16] > 0).all() and (counts[:6, 11] > 0).all()
            continue
        if stage == "DELIVERED":
            lo, hi = week[0]
            edges = (np.arange(lo, hi + 1) - lo) / (hi - lo)
            tri = np.where(edges < 0.5, 2 * edges**2, 1 - 2 * (1 - edges) ** 2)
            share = np.diff(tri)
            for d in range(6):
                n = counts[d].sum()
                want = n * share
                assert (np.abs(counts[d, lo:hi] - want) <= 4.5 * np.sqrt(want * (1 - share)) + 1).all(), (d, counts[d])
            continue
        mean = counts[open_hours].mean()
        assert (counts[:6][open_hours[:6]] > mean / 2).all() and (counts[open_hours] < 2 * mean).all(), stage


def test_a_scenario_recorded_before_working_hours_fulfils_around_the_clock():
    """An older run's manifest has no `fulfilment.hours_wat`: its timeline continues (and is reported) as it was
    generated, every stage at any hour."""
    raw = default_scenario()
    del raw["fulfilment"]["hours_wat"]
    b = Behaviour.from_dict(raw)
    assert np.array_equal(b.hours_wat, working_hours(AROUND_THE_CLOCK))
    ts = np.random.default_rng(0).integers(START_2025, START_2025 + 30 * DAY, 10_000)
    for i in range(3):
        assert np.array_equal(in_working_hours(ts, b.hours_wat[i], np.zeros(ts.size)), ts)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), digits=st.integers(2, 19))
def test_tracking_numbers_are_a_keyed_permutation_of_the_serials(seed, digits):
    """Each carrier's numbers are a bijection of [0, 10**digits) (checked whole up to five digits, on 20,000
    distinct serials above), so no two orders share one; and consecutive serials (one shard's orders) scatter over
    the number space instead of sharing their leading digits."""
    from generator.core.lifecycle import _permuted

    space = 10**digits
    if digits <= 5:
        x = np.arange(space, dtype=np.uint64)
        assert np.array_equal(np.sort(_permuted(seed, x, digits)), x)
        return
    r = np.random.default_rng(seed % 2**32)
    x = np.unique(r.integers(0, min(space, 2**63 - 1), 20_000, dtype=np.uint64))
    y = _permuted(seed, x, digits)
    assert np.unique(y).size == x.size and (y < np.uint64(space)).all()
    run = _permuted(seed, np.arange(1_000, 2_000, dtype=np.uint64), digits)
    leading = run // np.uint64(10 ** (digits - 2))  # the first two digits
    assert np.unique(leading).size > 50, np.unique(leading).size


def test_a_timeline_begun_before_permuted_tracking_numbers_keeps_its_numbering():
    """A scenario recorded before `fulfilment.tracking_permuted` (an older run's manifest): the serial times a
    constant plus an offset, the numbers 0.5 gave (pinned here), so an order pending across the upgrade keeps the
    number its earlier events carry; the default permutes."""
    from generator.core.lifecycle import tracking_numbers

    raw = default_scenario()
    del raw["fulfilment"]["tracking_permuted"]
    old = Behaviour.from_dict(raw)
    serial, carrier = np.arange(3), np.zeros(3, np.int8)
    assert tracking_numbers(7, serial, carrier, old).to_pylist() == [
        "SPD5177289618217",
        "SPD5177330109494",
        "SPD5177370600771",
    ]
    new = tracking_numbers(7, serial, carrier, default_behaviour()).to_pylist()
    assert len(set(new)) == 3 and {n[3:6] for n in new} != {"517"}


def test_a_scenario_recorded_before_pickups_ships_at_any_time_in_the_hours():
    """An older run's stored scenario has no `pickups_wat`: its parcels ship at any time of SHIPPED's hours, as
    they were generated (here over a week of weekdays: more than the two pickup hours used)."""
    scenario = default_scenario()
    del scenario["fulfilment"]["pickups_wat"], scenario["fulfilment"]["pickup_minutes"]
    b = Behaviour.from_dict(scenario)
    assert b.pickups_wat.size == 0
    k = 20_000
    r = np.random.default_rng(3)
    ev, _ = fulfil(rng(3, "fulfil-test"), b, _placed(r, START_2025, 7 * DAY, k), 0, np.ones(k))
    _, clock = _wat(ev.ts[k : 2 * k])
    assert np.unique(clock // HOUR).size >= 8


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), p=st.floats(0.01, 0.9))
def test_a_failed_delivery_attempt_goes_out_with_the_next_working_days_round(seed, p):
    """The same parcels with and without failed attempts: a share p of them (within 5 binomial se) are delivered
    later, each on the first day after its first attempt's that DELIVERED's hours keep open (Sunday closed, and the
    default calendar's holidays), inside those hours; the others at the same instant."""
    b0 = dataclasses.replace(default_behaviour(), failed_attempt=0.0)
    bp = dataclasses.replace(b0, failed_attempt=p)
    k = 20_000
    shipped = np.random.default_rng(seed).integers(START_2025, START_2025 + 60 * DAY, k)
    carrier = np.zeros(k, np.int8)
    first = delivery_times(rng(seed, "delivery-test"), b0, shipped, carrier, np.ones(k))
    got = delivery_times(rng(seed, "delivery-test"), bp, shipped, carrier, np.ones(k))
    later = got != first
    assert (got >= first).all()
    assert abs(later.mean() - p) <= 5 * math.sqrt(p * (1 - p) / k)
    hours = bp.hours_wat[2]
    assert _inside(got[later], hours, bp.holidays).all()
    day_first, day_got = (first[later] + HOUR) // DAY, (got[later] + HOUR) // DAY
    assert (day_got > day_first).all()
    # no open day in between
    for gap in range(1, 8):
        between = day_first + gap
        inside = between < day_got
        weekday = np.where(np.isin(between, bp.holidays), 6, (between + 3) % 7)
        assert not (inside & (hours[weekday, 0] < hours[weekday, 1])).any()
