"""A launch's ramp as customers signing up (`[traffic] ramp_sign_ups`): each customer's sign-up instant is a pure
function of (seed, customer) whose share signed up follows the ramp exactly, no customer has an event before it,
the rules hold, and a scenario without the key (an older run's manifest) keeps the ramp as a traffic multiplier,
byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from generator.core.behaviour import Behaviour, default_scenario
from generator.core.events import DAY, HOUR
from generator.core.population import NEVER, activity, customer_index, sign_ups, signed_up_share
from generator.core.sessions import ramp_factor
from generator.core.shard import GenConfig, plan, shard_table
from generator.core.streams import hash_uniform
from generator.parts import encode
from generator.scenario import effective_scenario
from tests.test_core_properties import drawn_shard_obeying_the_rules

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
RAMP_START = 1_761_951_600_000_000  # 2025-11-01T00:00:00+01:00, launch.toml's ramp_start


def _launch(sign_ups_key: bool | None = True, **traffic) -> Behaviour:
    doc = effective_scenario(SCENARIOS / "launch.toml")
    doc["traffic"] = doc["traffic"] | traffic
    if sign_ups_key is None:
        del doc["traffic"]["ramp_sign_ups"]
    else:
        doc["traffic"]["ramp_sign_ups"] = sign_ups_key
    return Behaviour.from_dict(doc)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    first=st.floats(0.05, 0.95),
    days=st.sampled_from([0.0, 1.5, 42.0]),
    offsets=st.lists(st.integers(-2 * DAY, 50 * DAY), min_size=1, max_size=8),
)
@example(seed=7, first=0.2, days=42.0, offsets=[0, DAY, 21 * DAY, 42 * DAY])
def test_the_share_signed_up_is_the_ramps_factor(seed, first, days, offsets):
    """A customer has signed up by instant t exactly when its uniform is below the ramp's factor at t: so the share
    signed up is the ramp's factor (the population's uniforms being uniform), and those before ramp_start are
    NEVER (signed up before any run); the rest sign up within [ramp_start, ramp_start + ramp_days]."""
    b = _launch(ramp_first_factor=first, ramp_days=days)
    idx = np.arange(5_000, dtype=np.int64)
    at = sign_ups(seed, idx, b)
    u = hash_uniform(seed, "sign_up", idx)
    assert ((at == NEVER) == (u < first)).all()
    later = at[at != NEVER]
    assert ((later >= RAMP_START) & (later <= RAMP_START + days * DAY)).all()
    for offset in offsets:
        t = RAMP_START + offset
        factor = ramp_factor(b, np.array([t]))[0]
        mismatch = (at <= t) != (u < factor)
        assert (np.abs(u[mismatch] - factor) < 1e-9).all(), (t, factor, u[mismatch])  # a microsecond's rounding
    assert np.array_equal(at, sign_ups(seed, idx[::-1], b)[::-1]), "a pure function of (seed, customer)"


def test_no_sign_ups_without_the_key_or_a_ramp():
    """None (every customer there all along) for the multiplier ramp, an older scenario without the key, and a ramp
    that starts at the whole population."""
    idx = np.arange(100, dtype=np.int64)
    assert sign_ups(7, idx, _launch(False)) is None
    assert sign_ups(7, idx, _launch(None)) is None
    assert sign_ups(7, idx, _launch(True, ramp_first_factor=1.0)) is None
    assert sign_ups(7, idx, _launch(True)) is not None
    assert signed_up_share(sign_ups(7, idx, _launch(False)), activity(7, idx, _launch(False))) is None


@given(seed=st.integers(0, 2**32), first=st.floats(0.05, 0.95))
def test_the_signed_up_share_of_activity_weighs_each_customer_by_its_activity(seed, first):
    """`signed_up_share` (the report's traffic targets) is the share of the population's activity signed up: 0
    before the first sign-up after ramp_start's, all of it after the ramp, and at any instant the activity of those
    signed up over the whole."""
    b = _launch(ramp_first_factor=first)
    idx = np.arange(2_000, dtype=np.int64)
    at, a = sign_ups(seed, idx, b), activity(seed, idx, b)
    share = signed_up_share(at, a)
    for t in (RAMP_START - DAY, RAMP_START + 7 * DAY + 3, RAMP_START + 30 * DAY, RAMP_START + 43 * DAY):
        assert share(np.array([t]))[0] == pytest.approx(a[at <= t].sum() / a.sum(), rel=1e-9, abs=1e-12)
    assert share(np.array([RAMP_START + 42 * DAY]))[0] == pytest.approx(1.0)


def _config(seed: int, b: Behaviour, start_day: int, customers: int, events: int) -> GenConfig:
    return GenConfig(
        seed=seed,
        events=events,
        start_us=RAMP_START + start_day * DAY + 7 * HOUR,
        shard_size=max(events // 3, 500),
        latency_threshold_ms=1_500,
        customers=customers,
        behaviour=b,
    )


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    start_day=st.integers(-3, 45),
    customers=st.integers(200, 6_000),
    events=st.integers(500, 5_000),
    data=st.data(),
)
def test_no_customer_has_an_event_before_signing_up(seed, start_day, customers, events, data):
    """Whatever the window (before, across or after the ramp): every event of a shard, the warm start's parcels
    included, belongs to a customer already signed up; the rows obey every rule and are as many as planned."""
    b = _launch()
    cfg = _config(seed, b, start_day, customers, events)
    table = drawn_shard_obeying_the_rules(cfg, data)
    idx = customer_index(table.column("customer_id").cast("string"))
    ts = table.column("event_ts").cast("int64").to_numpy()
    signed = sign_ups(seed, idx, b)
    assert (ts >= signed).all(), (ts[ts < signed][:3], signed[ts < signed][:3])


def test_customers_sign_up_through_the_window():
    """Not vacuous: a window in the middle of the ramp has events of customers who signed up inside it, each only
    after its sign-up, and none of the customers who sign up after it."""
    b = _launch()
    cfg = _config(11, b, 20, 3_000, 6_000)
    tables = [shard_table(cfg, s) for s in plan(cfg)]
    idx = np.concatenate([customer_index(t.column("customer_id").cast("string")) for t in tables])
    ts = np.concatenate([t.column("event_ts").cast("int64").to_numpy() for t in tables])
    signed = sign_ups(11, idx, b)
    inside = (signed > ts.min()) & (signed < ts.max())
    assert inside.sum() > 50, int(inside.sum())
    assert (ts >= signed).all()
    everyone = sign_ups(11, np.arange(3_000, dtype=np.int64), b)
    assert (everyone > ts.max()).sum() > 100  # customers still to sign up: none of theirs appear
    assert not np.isin(np.flatnonzero(everyone > ts.max()), idx).any()


def test_a_scenario_without_the_key_keeps_the_multiplier_byte_for_byte():
    """An older run's manifest (no ramp_sign_ups) generates what `false` does; `true` differs (the same window
    carried by fewer customers)."""
    without, off, on = _launch(None), _launch(False), _launch(True)
    assert not without.ramp_sign_ups and on.ramp_sign_ups
    parts = {}
    for name, b in (("without", without), ("off", off), ("on", on)):
        cfg = _config(5, b, 2, 2_000, 3_000)
        parts[name] = [encode(shard_table(cfg, s)) for s in plan(cfg)]
    assert all(x.equals(y) for x, y in zip(parts["without"], parts["off"], strict=True))
    assert not all(x.equals(y) for x, y in zip(parts["off"], parts["on"], strict=True))


def test_the_default_scenario_has_no_sign_ups():
    doc = default_scenario()
    assert doc["traffic"]["ramp_sign_ups"] is False
    assert doc["traffic"]["ramp_first_factor"] == 1.0
