"""Checkouts abandoned at the payment step (`[funnel] abandon_at_payment`): the share the key asks for ends at
CHECKOUT_STARTED with no payment attempt, the rest pay as before; the runs stay valid and the report reads them."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.coordinator import run
from generator.core.behaviour import Behaviour, default_behaviour, default_scenario
from generator.core.lifecycle import pay
from generator.core.sessions import checkouts_per_session, expected_events_per_session
from generator.report import payment_chain, report
from generator.scenario import ScenarioError, load_scenario
from generator.validate import validate

from .conftest import small_config

MAX_Z = 5.0


def behaviour(**funnel: float) -> Behaviour:
    doc = default_scenario()
    doc["funnel"].update(funnel)
    return Behaviour.from_dict(doc)


def test_the_default_keeps_cart_abandonment_and_conversion():
    """checkout x (1 - abandon_at_payment) is the 0.30 of carts that reached a payment attempt before the key
    existed: ~70% of carts end without an order, ~3% of sessions with one, 40-65% of checkouts with one."""
    b = default_behaviour()
    assert b.checkout * (1 - b.abandon_at_payment) == pytest.approx(0.30)
    won = float(payment_chain(b)["success"].sum())  # per checkout
    assert 0.40 <= won <= 0.65
    assert 1 - b.checkout * won == pytest.approx(0.70, abs=0.02)
    assert 0.025 <= checkouts_per_session(b) * won <= 0.035


@given(abandon=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_pay_abandons_the_share_the_key_asks_for(abandon, seed):
    """Abandoned checkouts (no failure, no success: they attempt nothing) are a Binomial(k, abandon) share."""
    b = behaviour(abandon_at_payment=abandon)
    k = 20_000
    fails, success, _ = pay(np.random.default_rng(seed), b, k)
    none = (fails == 0) & ~success
    se = math.sqrt(abandon * (1 - abandon) / k)
    # Without abandonment a checkout with no success has failed at least once: `none` is empty. Two checkouts of
    # slack: for a tiny share the count is Poisson, not normal (at 1e-6, one abandon in 20,000 happens 2% of the time).
    assert abs(none.mean() - abandon) <= MAX_Z * se + 2 / k
    if abandon == 0:
        assert not none.any()
    if abandon == 1:
        assert not success.any() and not fails.any()
    # Those that attempt pay as the chain of attempts says, whatever the abandonment.
    tried = ~none
    if tried.sum() > 2_000:
        per_try = payment_chain(behaviour(abandon_at_payment=0.0))["success"].sum()
        p = success[tried].mean()
        assert abs(p - per_try) <= MAX_Z * math.sqrt(per_try * (1 - per_try) / tried.sum())


@settings(max_examples=30, deadline=None)
@given(
    below=st.floats(0, 1), free=st.floats(0, 1), threshold=st.integers(1_000, 100_000), seed=st.integers(0, 2**32 - 1)
)
def test_a_basket_that_ships_free_is_abandoned_at_its_own_rate(below, free, threshold, seed):
    """Checkouts of baskets at or above `free_shipping_ngn` (no delivery fee shown) are abandoned at payment with
    `abandon_free_shipping`, the others with `abandon_at_payment` (each within MAX_Z binomial se); with no amount
    (the warm start) every checkout at `abandon_at_payment`."""
    doc = default_scenario()
    doc["funnel"].update(abandon_at_payment=below, abandon_free_shipping=free)
    doc["basket"]["free_shipping_ngn"] = threshold
    b = Behaviour.from_dict(doc)
    k = 20_000
    r = np.random.default_rng(seed)
    amount = r.integers(threshold // 2, 2 * threshold, k) * 100
    fails, success, _ = pay(r, b, k, amount=amount)
    none = (fails == 0) & ~success
    for mine, p in ((amount >= threshold * 100, free), (amount < threshold * 100, below)):
        n = int(mine.sum())
        assert abs(none[mine].mean() - p) <= MAX_Z * math.sqrt(p * (1 - p) / n) + 2 / n, (p, none[mine].mean())
    fails, success, _ = pay(r, b, k)
    assert abs(((fails == 0) & ~success).mean() - below) <= MAX_Z * math.sqrt(below * (1 - below) / k) + 2 / k


def test_the_chain_counts_abandoned_checkouts():
    b = behaviour(abandon_at_payment=0.25)
    plain = payment_chain(behaviour(abandon_at_payment=0.0))
    chain = payment_chain(b)
    assert float(chain["attempted"]) == pytest.approx(0.75)
    assert chain["success"] == pytest.approx(0.75 * plain["success"])
    assert chain["failed"] == pytest.approx(0.75 * plain["failed"])


def test_events_per_session_count_a_lone_checkout_for_an_abandoned_one():
    none, every = behaviour(abandon_at_payment=0.0), behaviour(abandon_at_payment=1.0)
    lost = checkouts_per_session(none) * (3.5 + 0.3)
    assert expected_events_per_session(none) - expected_events_per_session(every) == pytest.approx(lost)


def test_a_scenario_recorded_before_the_key_has_no_abandonment():
    doc = default_scenario()
    del doc["funnel"]["abandon_at_payment"]
    assert Behaviour.from_dict(doc).abandon_at_payment == 0.0


@pytest.mark.parametrize("value", [-0.1, 1.5, "half"])
def test_a_bad_value_is_refused_by_name(tmp_path, value):
    path = tmp_path / "x.toml"
    path.write_text(f"[funnel]\nabandon_at_payment = {value!r}\n".replace("'", '"'), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"funnel\.abandon_at_payment: "):
        load_scenario(path)


@pytest.fixture(scope="module")
def abandoning_run(tmp_path_factory):
    """A run where most checkouts are abandoned at payment (more of them to look at in a small run)."""
    out = tmp_path_factory.mktemp("abandon")
    scenario = out / "abandon.toml"
    scenario.write_text(
        "[funnel]\ncheckout = 0.9\nabandon_at_payment = 0.7\nabandon_free_shipping = 0.7\n", encoding="utf-8"
    )
    run(small_config(out, events=60_000, workers=2, shard_size=10_000, scenario=scenario))
    return out


def _session_rows(out) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    t = ds.dataset(out / "events", format="parquet").to_table()
    t = t.filter(pc.invert(pc.is_in(t.column("event_type"), pa.array(["PACKED", "SHIPPED", "DELIVERED"]))))
    t = t.sort_by([("customer_id", "ascending"), ("event_ts", "ascending")])
    types = t.column("event_type").to_numpy(zero_copy_only=False)
    customer = t.column("customer_id").to_numpy(zero_copy_only=False)
    new = (types == "OPEN") | np.r_[True, customer[1:] != customer[:-1]]
    return np.cumsum(new) - 1, types, t


def test_abandoned_checkouts_end_the_session_with_no_payment(abandoning_run):
    assert validate(abandoning_run).ok
    sid, types, t = _session_rows(abandoning_run)
    n = int(sid[-1]) + 1
    kinds = ("CHECKOUT_STARTED", "PAYMENT_FAILED", "PAYMENT_AUTHORIZED", "ORDER_PLACED")
    has = {k: np.bincount(sid[types == k], minlength=n) > 0 for k in kinds}
    last = np.r_[sid[1:] != sid[:-1], True]
    ends_at_checkout = np.zeros(n, bool)
    ends_at_checkout[sid[last]] = types[last] == "CHECKOUT_STARTED"
    # Drop sessions cut off by the end of the run: only those opening an hour before it.
    ts = t.column("event_ts").cast(pa.int64()).to_numpy()
    opened = np.zeros(n, np.int64)
    opened[sid[types == "OPEN"]] = ts[types == "OPEN"]
    settled = (opened > 0) & (opened < ts.max() - 3_600_000_000)
    chk = has["CHECKOUT_STARTED"] & settled
    abandoned = chk & ~has["PAYMENT_FAILED"] & ~has["PAYMENT_AUTHORIZED"]
    assert not (abandoned & has["ORDER_PLACED"]).any()
    assert (ends_at_checkout[abandoned]).all()  # CHECKOUT_STARTED is their last event
    k, m = int(abandoned.sum()), int(chk.sum())
    assert m > 500
    assert abs(k / m - 0.7) <= MAX_Z * math.sqrt(0.7 * 0.3 / m)
    # Their CHECKOUT_STARTED carries the basket and CAPTURED, but no method, order or carrier.
    rows = np.flatnonzero((types == "CHECKOUT_STARTED") & abandoned[sid])
    mine = t.take(pa.array(rows))
    assert pc.all(pc.greater(mine.column("total_amount").cast(pa.float64()), 0)).as_py()
    assert pc.all(pc.equal(mine.column("payment_status"), "CAPTURED")).as_py()
    for col in ("payment_method", "carrier", "tracking_number"):
        assert mine.column(col).null_count == len(mine), col


@pytest.fixture(scope="module")
def free_shipping_run(tmp_path_factory):
    """A run where half the baskets ship free (the threshold near the median basket) and those are rarely
    abandoned at payment, against most of the others."""
    out = tmp_path_factory.mktemp("free")
    scenario = out / "free.toml"
    scenario.write_text(
        "[funnel]\ncheckout = 0.9\nabandon_at_payment = 0.6\nabandon_free_shipping = 0.1\n"
        "[basket]\nfree_shipping_ngn = 9_500\n",
        encoding="utf-8",
    )
    run(small_config(out, events=60_000, workers=2, shard_size=10_000, scenario=scenario))
    return out


def test_free_shipping_checkouts_go_on_to_pay_and_the_report_follows(free_shipping_run):
    """In the data, checkouts of NGN 9,500 or more reach a payment attempt far more often (0.9 of them) than the
    others (0.4); `gen report`'s payment-attempted target is the mean of the checkouts' own chances, and every
    funnel and payments row is within MAX_Z of its target."""
    assert validate(free_shipping_run).ok
    sid, types, t = _session_rows(free_shipping_run)
    n = int(sid[-1]) + 1
    paid = np.zeros(n, bool)
    paid[sid[np.isin(types, ["PAYMENT_FAILED", "PAYMENT_AUTHORIZED"])]] = True
    chk = np.flatnonzero(types == "CHECKOUT_STARTED")
    amount = t.column("total_amount").cast(pa.float64()).to_numpy()[chk]
    tried = paid[sid[chk]]
    free = amount >= 9_500
    assert free.sum() > 300 and (~free).sum() > 300
    assert tried[free].mean() > 0.8 and tried[~free].mean() < 0.5, (tried[free].mean(), tried[~free].mean())
    s = report(free_shipping_run)
    rows = {r.label: r for r in s.section("funnel").rows}
    step = rows["payment attempted (of the step before)"]
    assert 0.45 < step.target < 0.85 and abs(step.z) <= MAX_Z, step
    for key in ("funnel", "payments"):
        for r in s.section(key).rows:
            if r.z is not None:
                assert abs(r.z) <= MAX_Z, (key, r)


def test_the_report_reads_the_abandonment(abandoning_run):
    s = report(abandoning_run)
    rows = {r.label: r for r in s.section("funnel").rows}
    step = rows["payment attempted (of the step before)"]
    assert step.target == pytest.approx(0.3)
    assert abs(step.z) <= MAX_Z, step
    for key in ("funnel", "payments"):
        for r in s.section(key).rows:
            if r.z is not None:
                assert abs(r.z) <= MAX_Z, (key, r)
