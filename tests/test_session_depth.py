"""Conversion by session depth (`[funnel] carted_views_factor`): a session that adds to its cart has browsed more,
so deeper sessions convert better; the views' law, the run's sizing and `gen report`'s rows by depth follow it,
and a scenario recorded before the key draws its sessions as before."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.core.behaviour import Behaviour, default_behaviour, default_scenario
from generator.core.events import SECOND
from generator.core.sessions import (
    adds_per_carted_session,
    cart_given_views,
    carted_extra_views,
    expected_events_per_session,
    extra_views,
    mean_cart_probability,
    simulate,
    views_law,
    views_per_browsing_session,
)
from generator.report import DEPTHS, basket_law, report
from generator.schema import EVENT_CODE

from .conftest import small_config

MAX_Z = 5.0
START = 1_761_955_200_000_000  # 2025-11-01T00:00:00Z
VIEW, CART = EVENT_CODE["PRODUCT_VIEW"], EVENT_CODE["ADD_TO_CART"]


def _behaviour(factor: float, mean: float = 3.5, shape: float = 1.2, add_to_cart: float = 0.15) -> Behaviour:
    b = default_behaviour()
    return dataclasses.replace(
        b,
        carted_views_factor=factor,
        extra_views_mean=mean,
        extra_views_shape=shape,
        add_to_cart=add_to_cart,
        propensity_sigma=0.0,
        cart_factor=np.ones_like(b.cart_factor),
    )


def _simulate(b: Behaviour, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` sessions of as many customers on ANDROID: each browsing session's product views and whether it added."""
    starts = START + np.arange(n, dtype=np.int64) * 3600 * SECOND
    customer = np.arange(n, dtype=np.int64)
    last_end = np.full(n, np.iinfo(np.int64).min // 2, np.int64)
    ev, _ = simulate(np.random.default_rng(seed), b, starts, customer, np.zeros(n, np.int8), customer, last_end, 0)
    views = np.bincount(ev.customer[ev.type == VIEW], minlength=n)
    carted = np.bincount(ev.customer[ev.type == CART], minlength=n) > 0
    browsing = views > 0
    return views[browsing], carted[browsing]


@settings(max_examples=12, deadline=None)
@given(
    factor=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    mean=st.sampled_from([1.0, 3.5, 6.0]),
    shape=st.sampled_from([0.7, 1.2, math.inf]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_session_that_adds_has_browsed_more_and_deeper_sessions_convert_better(factor, mean, shape, seed):
    """Simulated sessions against the law: the share adding is add_to_cart at any factor (the views follow the
    decision); the mean extra views of those that add are factor x those of the others; and by depth, the share
    adding is the mean of `cart_given_views` over the sessions of each depth, within MAX_Z binomial errors."""
    b = _behaviour(factor, mean, shape)
    views, carted = _simulate(b, 60_000, seed)
    p = b.add_to_cart
    assert abs(carted.mean() - p) <= MAX_Z * math.sqrt(p * (1 - p) / carted.size)
    for added, scale in ((True, factor), (False, 1.0)):
        v = views[carted == added] - 1
        # the extra views' sd: a negative binomial's variance is mean + mean^2 / shape (Poisson: the mean)
        m = mean * scale
        sd = math.sqrt(m + (m * m / (shape * scale) if math.isfinite(shape) else 0.0))
        assert abs(v.mean() - m) <= MAX_Z * sd / math.sqrt(v.size) + 1e-9, (added, v.mean(), m)
    for lo, hi in DEPTHS:
        mine = (views >= lo) & (views <= (hi or np.iinfo(np.int64).max))
        if mine.sum() < 200:
            continue
        target = float(cart_given_views(b, np.full(int(mine.sum()), p), views[mine]).mean())
        got = float(carted[mine].mean())
        assert abs(got - target) <= MAX_Z * math.sqrt(target * (1 - target) / mine.sum()) + 1e-9, (lo, got, target)
    if factor > 1 and mean >= 3.5:  # conversion rises with depth
        shallow, deep = carted[views == 1].mean(), carted[views >= 8].mean()
        assert deep > 2 * shallow


@pytest.mark.parametrize("shape", [0.7, 1.2, math.inf])
@pytest.mark.parametrize("factor", [1.0, 2.0, 3.5])
def test_the_views_law_is_the_generators_draws(shape, factor):
    """`views_law` sums to 1 and is the law of 1 + extra_views + carted_extra_views (a Monte Carlo of 400,000 for
    the carted law, within MAX_Z errors at every depth up to 12), and the mean views are those the sizing uses."""
    b = _behaviour(factor, 3.5, shape)
    depth = np.arange(1, 400)
    for carted in (True, False):
        law = views_law(b, depth, carted)
        assert law.sum() == pytest.approx(1.0, abs=1e-9)
        assert (law * depth).sum() == pytest.approx(1 + 3.5 * (factor if carted else 1.0), rel=1e-6)
    r = np.random.default_rng(3)
    n = 400_000
    v = 1 + extra_views(r, b, n) + carted_extra_views(r, b, n)
    law = views_law(b, depth, True)
    for d in range(1, 13):
        got = float((v == d).mean())
        assert abs(got - law[d - 1]) <= MAX_Z * math.sqrt(law[d - 1] * (1 - law[d - 1]) / n) + 1e-9, d
    assert views_per_browsing_session(b, 0.2) == pytest.approx(0.8 * (1 + 3.5) + 0.2 * (1 + 3.5 * factor))


def test_a_scenario_recorded_before_the_key_draws_its_sessions_as_before():
    """Without `carted_views_factor` (an older run's manifest) the factor is 1: nothing more is drawn (the
    generator's state is untouched, so every later draw is as it was), a session's views do not depend on its
    cart, and the views and adds per session are those of before."""
    doc = default_scenario()
    del doc["funnel"]["carted_views_factor"]
    b = Behaviour.from_dict(doc)
    assert b.carted_views_factor == 1.0
    r = np.random.default_rng(9)
    state = r.bit_generator.state
    assert carted_extra_views(r, b, 1000).tolist() == [0] * 1000
    assert r.bit_generator.state == state
    p = mean_cart_probability(b)
    assert views_per_browsing_session(b, p) == 1 + b.extra_views_mean
    assert adds_per_carted_session(b) == 1 + b.extra_views_mean * b.add_more
    assert cart_given_views(b, np.full(3, 0.2), np.array([1, 5, 30])).tolist() == [0.2] * 3


def test_the_default_keeps_a_carts_items_and_sizes_the_run_by_its_views():
    """The default (factor 2, add_more 0.075) keeps 1.5 items a cart as before it (factor 1, add_more 0.15), so
    baskets are as they were; the run's sizing counts the extra views of the sessions that add."""
    b = default_behaviour()
    assert b.carted_views_factor == 2.0
    before = dataclasses.replace(b, carted_views_factor=1.0, add_more=0.15)
    assert adds_per_carted_session(b) == pytest.approx(adds_per_carted_session(before)) == pytest.approx(1.525)
    items, _ = basket_law(dataclasses.replace(b, top_up=0.0), 200_000)  # the carts alone, before any top-up
    assert items.mean() == pytest.approx(1.525, abs=0.01)
    p = mean_cart_probability(b)
    extra = (1 - b.bounce) * p * b.extra_views_mean * (b.carted_views_factor - 1)
    assert expected_events_per_session(b) == pytest.approx(expected_events_per_session(before) + extra)


def test_the_report_judges_add_to_cart_by_depth(tmp_path):
    """`gen report` has a row per depth: the share of browsing sessions adding to their carts, against the mean
    of each session's P(added | views); within MAX_Z, and rising with depth."""
    from generator.coordinator import run

    run(small_config(tmp_path, events=120_000, customers=20_000, shard_size=30_000))
    rows = {r.label: r for r in report(tmp_path).section("funnel").rows if r.label.startswith("add to cart, sess")}
    assert len(rows) == len(DEPTHS)
    values = [r.value for r in rows.values()]
    targets = [r.target for r in rows.values()]
    assert all(t is not None for t in targets) and targets == sorted(targets)
    assert targets[-1] > 3 * targets[0]
    for r in rows.values():
        assert r.z is not None and abs(r.z) <= MAX_Z, r
    assert values[-1] > values[0]


@pytest.mark.parametrize("bad", [0.5, 25, "2", True])
def test_a_carted_views_factor_outside_1_to_20_is_refused_by_name(bad):
    """The factor only adds views to a session that adds to its cart (from 1, as before the key, to 20)."""
    from generator.scenario import ScenarioError, validated

    doc = default_scenario()
    doc["funnel"]["carted_views_factor"] = bad
    with pytest.raises(ScenarioError, match=r"funnel\.carted_views_factor"):
        validated(doc, "x.toml")
