"""Basket totals: sums of item prices on price points, one item per ADD_TO_CART, clipped to [min, max]; and
older runs' scenarios (one lognormal total per basket) still read."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.core.behaviour import REGIONS, Behaviour, default_behaviour, default_scenario, region_of
from generator.core.lifecycle import TOP_UP_OVER_NGN, basket_kobo, item_prices_ngn, spend_scale, top_up
from generator.core.nigeria import default_pools
from generator.core.population import home_state
from generator.core.sessions import cart_probability, carted_extra_views, extra_views
from generator.report import basket_law
from generator.schema import PLATFORMS

N = 100_000


def _naira(items: np.ndarray, seed: int = 7, b: Behaviour | None = None) -> np.ndarray:
    return basket_kobo(np.random.default_rng(seed), b or default_behaviour(), items) // 100


def _on_price_point(naira: np.ndarray) -> np.ndarray:
    return np.isin(naira % 100, (99, 50, 0))


def test_single_item_baskets_sit_on_price_points():
    one = _naira(np.ones(N, np.int64))
    assert _on_price_point(one).mean() >= 0.6  # the old single lognormal draw: ~3%
    assert 0.2 < (one % 100 == 99).mean() < 0.6, "about half the round hundreds end in 99"


def test_every_item_price_is_on_the_grid_of_its_range():
    price = item_prices_ngn(np.random.default_rng(3), default_behaviour(), N)
    assert _on_price_point(price).all()
    # Above NGN 10,000 the grid is NGN 500 (so 12,499, 12,500, 12,999, 13,000 but no 12,550).
    big = price[price > 10_050]
    assert big.size and np.isin((big + 1) % 500, (0, 1)).all()


def test_the_basket_grows_with_the_items_in_the_cart():
    one, three = _naira(np.ones(N, np.int64)), _naira(np.full(N, 3, np.int64), seed=8)
    assert np.median(three) > 2.5 * np.median(one)  # the old law: the same median whatever the cart


def _checkout_scales(b: Behaviour, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The price factors of `n` checkouts: customers of the default population (their regions) on platforms drawn
    as checkouts come (the mix weighted by each platform's cart probability); and those regions and platforms."""
    pools = default_pools()
    region = region_of(pools.state_is_hub, pools.state_zone)[home_state(7, np.arange(n), pools)]
    weight = cart_probability(b, np.arange(len(PLATFORMS))) * b.platform_mix
    platform = np.random.default_rng(2).choice(len(PLATFORMS), n, p=weight / weight.sum())
    return spend_scale(b, region, platform), region, platform


def test_the_median_order_value_stays_near_9500():
    """With the checkouts' regions and platforms: the factors raise the median item price by about 6% on average,
    which the default's lower median item price (5,950 instead of 6,300 before them) takes back."""
    b = default_behaviour()
    scale, _, _ = _checkout_scales(b, 200_000)
    assert 1.03 < scale.mean() < 1.09
    items, naira = basket_law(b, scales=scale)
    assert 1.4 < items.mean() < 1.65  # 1 + Poisson(3.5)·0.15 items in a cart that checks out
    assert 9_500 * 0.97 < np.median(naira) < 9_500 * 1.03


def test_what_customers_spend_follows_where_they_live_and_their_phone():
    """Lagos and the FCT spend most, the north-west and north-east least (NBS 2019 poverty by state); iOS more
    than Android; the regions' factors average about 1 over the population's demand."""
    b = default_behaviour()
    scale, region, platform = _checkout_scales(b, 200_000)
    ios, android = PLATFORMS.index("IOS"), PLATFORMS.index("ANDROID")
    factor = dict(zip(REGIONS, b.basket_region_factor, strict=True))
    assert factor["lagos_fct"] > factor["south_west"] > factor["north_central"] > factor["north_west"]
    assert factor["north_east"] == factor["north_west"] < 1.0
    assert 0.98 < b.basket_region_factor[region].mean() < 1.05
    assert b.basket_platform_factor[ios] == 1.2 * b.basket_platform_factor[android]
    _, on_ios = basket_law(b, scales=scale[platform == ios])
    _, on_android = basket_law(b, scales=scale[platform == android])
    assert np.median(on_ios) > 1.12 * np.median(on_android)
    _, lagos = basket_law(b, scales=scale[region == 0])
    _, north_west = basket_law(b, scales=scale[region == REGIONS.index("north_west")])
    assert np.median(lagos) > 1.25 * np.median(north_west)


@given(
    items=st.lists(st.integers(1, 4), min_size=1, max_size=50),
    scale=st.floats(0.2, 5.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_baskets_scale_multiplies_the_median_of_its_item_prices(items, scale, seed):
    """A scale of 1 everywhere is no scale at all (the same naira); any other moves each item's price before it
    is put on a price point, so a basket of one item costs scale times as much, within the price grid's step."""
    b = default_behaviour()
    k = np.array(items, np.int64)
    plain = basket_kobo(np.random.default_rng(seed), b, k)
    assert np.array_equal(basket_kobo(np.random.default_rng(seed), b, k, np.ones(k.size)), plain)
    one = np.ones(2_000, np.int64)
    base = basket_kobo(np.random.default_rng(seed), b, one) // 100
    scaled = basket_kobo(np.random.default_rng(seed), b, one, np.full(one.size, scale)) // 100
    inside = (base > 1_000) & (base < 200_000) & (scaled > 1_000) & (scaled < 200_000)  # clear of min and max
    ratio = scaled[inside] / base[inside]
    assert np.all(np.abs(ratio - scale) <= scale * 0.06 + 1_000 / base[inside]), "one price-point step at most"


def test_a_scenario_recorded_before_spending_factors_prices_alike_everywhere():
    doc = default_scenario()
    del doc["basket"]["region_factor"], doc["basket"]["platform_factor"]
    b = Behaviour.from_dict(doc)
    assert b.basket_region_factor.tolist() == [1.0] * len(REGIONS)
    assert b.basket_platform_factor.tolist() == [1.0] * len(PLATFORMS)


@given(
    items=st.lists(st.integers(1, 12), min_size=0, max_size=300),
    median=st.floats(1.0, 5e5),
    sigma=st.floats(0.0, 3.0),
    charm=st.floats(0.0, 1.0),
    low=st.integers(0, 50_000),
    width=st.integers(0, 3_000_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_amount_is_whole_naira_within_min_and_max(items, median, sigma, charm, low, width, seed):
    b = dataclasses.replace(
        default_behaviour(),
        basket_item_median=median,
        basket_item_sigma=sigma,
        basket_charm=charm,
        basket_min=low,
        basket_max=max(low + width, 1),
    )
    kobo = basket_kobo(np.random.default_rng(seed), b, np.array(items, np.int64))
    assert kobo.dtype == np.int64 and kobo.size == len(items)
    assert (kobo % 100 == 0).all()
    assert ((kobo >= 100 * b.basket_min) & (kobo <= 100 * b.basket_max)).all()


def test_a_scenario_recorded_before_item_prices_reads_as_one_lognormal_total():
    doc = default_scenario()
    doc["basket"] = {"median_ngn": 9_500, "sigma": 0.85, "min_ngn": 500, "max_ngn": 2_500_000}
    b = Behaviour.from_dict(doc)
    assert not b.basket_per_item and (b.basket_item_median, b.basket_item_sigma) == (9_500, 0.85)
    one, three = _naira(np.ones(N, np.int64), b=b), _naira(np.full(N, 3, np.int64), b=b)
    assert np.array_equal(one, three), "one draw per basket, whatever it holds, as those runs were made"
    assert abs(np.median(one) / 9_500 - 1) < 0.03


def test_the_reports_basket_law_draws_carts_as_sessions_do():
    """`gen report`'s basket targets come from carts drawn like the generator's: 1 + Binomial(extra views,
    add_more), the views negative binomial with a carted session's further ones (carted_views_factor). (A Poisson
    of the same mean gave too few big carts: P(4+ items) 1.6% instead of 3.8%, and a median basket target 2
    standard errors high at 3,000 checkouts.)"""
    b = dataclasses.replace(default_behaviour(), top_up=0.0)  # the carts alone (top-ups: the test below)
    k, _ = basket_law(b)
    r = np.random.default_rng(1)
    direct = 1 + r.binomial(extra_views(r, b, k.size) + carted_extra_views(r, b, k.size), b.add_more)
    for law in (k, direct):
        assert law.min() >= 1
    big, big_direct = float((k >= 4).mean()), float((direct >= 4).mean())
    se = (big_direct * (1 - big_direct) / k.size * 2) ** 0.5
    assert abs(big - big_direct) <= 6 * se, (big, big_direct)
    assert abs(k.mean() - direct.mean()) <= 6 * (direct.var() / k.size * 2) ** 0.5


@settings(max_examples=25, deadline=None)
@given(
    threshold=st.sampled_from([10_000, 40_000, 75_000]),
    gap=st.sampled_from([0, 2_000, 10_000, 30_000]),
    share=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_basket_short_of_free_shipping_is_topped_up_over_it(threshold, gap, share, seed):
    """`top_up`: only a basket short of the threshold by at most the gap grows, with probability `top_up` (within 5
    binomial errors), to a total that clears the threshold by less than NGN 2,000 plus a price step (on the grid:
    ending in 00 or 50); every other basket is left as it was, and with `top_up` 0 nothing is drawn."""
    b = dataclasses.replace(default_behaviour(), free_shipping_ngn=float(threshold), top_up=share, top_up_gap_ngn=gap)
    r = np.random.default_rng(seed)
    amount = r.integers(500, 2 * threshold, 40_000) * 100
    state = r.bit_generator.state
    total, grew = top_up(r, b, amount)
    if share == 0:
        assert r.bit_generator.state == state and not grew.any() and np.array_equal(total, amount)
        return
    short = threshold - amount // 100
    eligible = (short > 0) & (short <= gap)
    assert not (grew & ~eligible).any() and np.array_equal(total[~grew], amount[~grew])
    filler = (total - amount)[grew] // 100
    assert (total[grew] // 100 >= threshold).all()
    assert ((total[grew] // 100 - threshold) < TOP_UP_OVER_NGN + 500).all()
    assert np.isin(filler % 100, (0, 50)).all()
    k = int(eligible.sum())
    if k:
        assert abs(grew.sum() / k - share) <= 5 * math.sqrt(share * (1 - share) / k) + 1e-9


def test_totals_bunch_just_above_free_shipping_in_the_generator_and_the_law():
    """Simulated checkouts with the default scenario: the NGN 2,000 just above free shipping hold several times the
    checkouts of the NGN 2,000 just short of it, a topped-up checkout's session adds a last item (its view and
    its add) right before CHECKOUT_STARTED, and the report's basket law has the same shares within 5 binomial
    errors. Without the keys (an older run's manifest) nothing bunches."""
    from generator.core.events import SECOND
    from generator.core.sessions import simulate
    from generator.schema import EVENT_CODE

    def checkouts(b: Behaviour) -> tuple[np.ndarray, np.ndarray]:
        n = 400_000
        starts = 1_761_955_200_000_000 + np.arange(n, dtype=np.int64) * 3600 * SECOND
        cust = np.arange(n, dtype=np.int64)
        last = np.full(n, np.iinfo(np.int64).min // 2, np.int64)
        ev, _ = simulate(np.random.default_rng(11), b, starts, cust, np.zeros(n, np.int8), cust, last, 0)
        at = np.flatnonzero(ev.type == EVENT_CODE["CHECKOUT_STARTED"])
        return ev.amount[at] // 100, np.stack([ev.type[at - 2], ev.type[at - 1]], axis=1)

    b = default_behaviour()
    free = b.free_shipping_ngn
    naira, before = checkouts(b)
    above = float(((naira >= free) & (naira < free + 2_000)).mean())
    below = float(((naira >= free - 2_000) & (naira < free)).mean())
    assert above > 3 * below
    pair = (EVENT_CODE["PRODUCT_VIEW"], EVENT_CODE["ADD_TO_CART"])
    # Every basket short of free shipping topped up: none is left below it, and each that grew ends its cart with a
    # product view and its add right before CHECKOUT_STARTED.
    every = dataclasses.replace(b, top_up=1.0, top_up_gap_ngn=free)
    naira_all, before_all = checkouts(every)
    assert (naira_all >= free).all()
    ended_with_add = (before_all == pair).all(axis=1)
    assert ended_with_add.mean() > (before == pair).all(axis=1).mean() + 0.5 * float((naira < free).mean())
    _, law = basket_law(b)
    for got, lo, hi in ((above, free, free + 2_000), (below, free - 2_000, free)):
        target = float(((law >= lo) & (law < hi)).mean())
        assert abs(got - target) <= 5 * math.sqrt(target * (1 - target) / naira.size), (lo, got, target)
    doc = default_scenario()
    del doc["basket"]["top_up"], doc["basket"]["top_up_gap_ngn"]
    old = Behaviour.from_dict(doc)
    assert old.top_up == 0
    naira, _ = checkouts(old)
    above = float(((naira >= free) & (naira < free + 2_000)).mean())
    below = float(((naira >= free - 2_000) & (naira < free)).mean())
    assert above < 1.5 * below + 0.002
