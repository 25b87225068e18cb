"""The shipped example scenarios produce what they promise: for each one, a run whose window covers its incidents
has realised statistics (computed by `generator.report.summarise`) within stated tolerances of the scenario's
targets, and the contrast the incident creates is there (inside its window against outside it).

The default scenario is covered by tests/test_report.py (`test_default_run_within_tolerance_of_targets`,
`test_latency_percentiles_within_tolerance`, `test_session_event_mix_within_tolerance`,
`test_orders_and_delivery_within_tolerance`): every share of independent trials within MAX_Z binomial standard errors
of its target, latency percentiles, the event mix and orders by state; it is not repeated here.

Tolerances. Every checked row carries a standard error: binomial shares of independent trials (checkouts,
carts, events' latencies) sqrt(p(1 - p)/n) at the target p; the inferred first-attempt failure rate of a method
sqrt(p(1 - p)/n)/mix with p = mix·(1 - f) (a binomial count divided by a constant); ratios of session counts
(Poisson given the population) target·sqrt(1/N₁ + 1/N₂) and of two binomial shares
target·sqrt((1 - p₁)/(n₁p₁) + (1 - p₂)/(n₂p₂)) (delta method); Kaplan-Meier medians Greenwood's standard error of
the survival at the median over the target density there (delta method). A realised value must be within
MAX_Z = 4.5 of its standard errors of the target: by chance alone |z| > 4.5 has probability ~7e-6 per row, so with
~60-90 rows per run a failure is a real mismatch. A contrast must be at least MAX_Z standard errors away from what
the run would show without the incident, which is how each test fails when the incident is not applied.

Every run is seeded (small_config's seed 7), so the outcome is deterministic; the tolerances say it would pass for
nearly every seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from generator.config import parse_start
from generator.coordinator import run
from generator.core.events import DAY, HOUR
from generator.report import Row, Summary, lognormal_sf, report
from generator.report_render import html_page
from generator.scenario import load_scenario
from generator.schema import PAYMENT_METHODS, PLATFORMS
from generator.validate import validate
from tests.conftest import small_config
from tests.test_report import MAX_Z

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SECTIONS = ("funnel", "payments", "latency", "traffic", "delivery")


def _run(tmp_path_factory, name: str, start: str, hours: float, customers: int) -> Summary:
    out = tmp_path_factory.mktemp(name)
    cfg = small_config(
        out,
        scenario=SCENARIOS / f"{name}.toml",
        start=parse_start(start),
        events=None,
        duration_us=round(hours * HOUR),
        customers=customers,
        workers=2,
        shard_size=customers // 2,
    )
    run(cfg)
    return report(out)


def _row(s: Summary, key: str, *parts: str) -> Row:
    found = [r for r in s.section(key).rows if all(p in r.label for p in parts)]
    assert len(found) == 1, (key, parts, [r.label for r in s.section(key).rows])
    return found[0]


def _all_within_tolerance(s: Summary, minimum: int) -> None:
    """Every row with a standard error (the aggregate targets account for the incidents too) within MAX_Z."""
    checked = []
    for key in SECTIONS:
        for r in s.section(key).rows:
            if r.z is not None:
                assert abs(r.z) <= MAX_Z, (key, r)
                checked.append(r)
    assert len(checked) >= minimum, len(checked)


def _within(r: Row, target: float) -> None:
    """The row's target is the scenario's number (to 1e-3: a target weighs the data's partial first hour), and the
    realised value is within MAX_Z standard errors of it."""
    assert r.target == pytest.approx(target, rel=1e-3), r
    assert r.se is not None or r.z is not None, r
    assert abs(r.z) <= MAX_Z, r


def _se(r: Row) -> float:
    if r.se is not None:
        return r.se
    return math.sqrt(r.target * (1 - r.target) / r.n)


def _away(r: Row, without: float) -> None:
    """The realised value is more than MAX_Z standard errors from what it would be without the incident."""
    assert abs(r.value - without) > MAX_Z * _se(r), (r, without)


# -- payment outage ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outage(tmp_path_factory) -> Summary:
    """05:00-17:00 UTC on 3 November 2025 around the CARD outage (08:00-14:00 UTC), a population of 300,000:
    ~1,000 settled checkouts inside the window, ~4 times fewer per hour in the early morning outside it."""
    return _run(tmp_path_factory, "payment-outage", "2025-11-03T05:00:00Z", 12, 300_000)


def test_payment_outage_card_fails_inside_the_window(outage):
    b = load_scenario(SCENARIOS / "payment-outage.toml")
    (inc,) = outage.incidents
    assert inc.kind == "payment_outage" and inc.params["method"] == "CARD"
    normal = float(b.method_failure[PAYMENT_METHODS.index("CARD")])
    assert normal == pytest.approx(0.18)
    tag = "CARD outage 2025-11-03T08:00"
    # CARD's own failure rate per attempt, inferred from first attempts: the outage's inside, the usual outside.
    inside = _row(outage, "payments", tag, "CARD failure per first attempt inside")
    outside = _row(outage, "payments", tag, "CARD failure per first attempt outside")
    _within(inside, inc.params["failure_rate"])
    _within(outside, normal)
    _away(inside, normal)
    assert inside.n >= 300 and outside.n >= 300  # enough first attempts for the checks above to mean something
    # All methods together: the failure per attempt jumps inside, and CARD's share of authorised payments drops as
    # customers switch to transfers and USSD.
    per_attempt = {w: _row(outage, "payments", tag, f"failure per attempt {w}") for w in ("inside", "outside")}
    share = {w: _row(outage, "payments", tag, f"CARD share of authorised {w}") for w in ("inside", "outside")}
    for w in ("inside", "outside"):
        assert abs(per_attempt[w].z) <= MAX_Z and abs(share[w].z) <= MAX_Z, (per_attempt[w], share[w])
    _away(per_attempt["inside"], per_attempt["outside"].target)
    _away(share["inside"], share["outside"].target)
    _all_within_tolerance(outage, 40)


# -- Black Friday --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def black_friday(tmp_path_factory) -> Summary:
    """Thursday 27 and Friday 28 November 2025 (WAT; both paydays, neither a weekend, so the day before is a normal
    day with the same intensity), and one hour more so that the sale's last sessions settle; 100,000 customers:
    ~40,000 sessions and ~4,000 carts on the Thursday."""
    return _run(tmp_path_factory, "black-friday", "2025-11-26T23:00:00Z", 49, 100_000)


def _own_sale(s: Summary):
    """The scenario's flash sale (the calendar's promotions are flash sales too, named by `promotion`)."""
    (sale,) = [i for i in s.incidents if i.kind == "flash_sale" and "promotion" not in i.params]
    return sale


def _combined(s: Summary, start: int, end: int, key: str) -> float:
    """The factor of all flash sales covering [start, end) together (overlapping sales multiply)."""
    return math.prod(i.params[key] for i in s.incidents if i.kind == "flash_sale" and i.start <= start and i.end >= end)


def test_black_friday_traffic(black_friday):
    """The scenario's sale on top of the calendar's Black Friday: 1.25 x 2.0 = 2.5 times the usual traffic, and the
    day before in the calendar's Black Friday week (1.3)."""
    sale = _own_sale(black_friday)
    assert sale.params["traffic_factor"] == 1.25 and sale.end - sale.start == DAY
    factor = _combined(black_friday, sale.start, sale.end, "traffic_factor")
    before = _combined(black_friday, sale.start - DAY, sale.end - DAY, "traffic_factor")
    assert factor == pytest.approx(2.5) and before == pytest.approx(1.3)
    tag = "flash sale 2025-11-27T23:00"
    # Sessions on the day against the same hours of the day before (both paydays and weekdays).
    same_hours = _row(black_friday, "traffic", tag, "same hours one day earlier")
    _within(same_hours, factor / before)
    _away(same_hours, factor / before / sale.params["traffic_factor"])  # the calendar's Black Friday alone
    # Sessions per unit of the intensity without the scenario's sale (the calendar's stays in it), inside against
    # outside it: the sale's own factor.
    normalised = _row(black_friday, "traffic", tag, "traffic factor")
    _within(normalised, sale.params["traffic_factor"])
    _away(normalised, 1.0)


def test_black_friday_conversion(black_friday):
    sale = _own_sale(black_friday)
    factor = _combined(black_friday, sale.start, sale.end, "conversion_factor")
    assert factor == pytest.approx(1.5)
    tag = "flash sale 2025-11-27T23:00"
    inside = _row(black_friday, "funnel", tag, "checkout of carts inside")
    outside = _row(black_friday, "funnel", tag, "checkout of carts outside")
    checkout = load_scenario(SCENARIOS / "black-friday.toml").checkout
    _within(inside, checkout * factor)
    _away(inside, checkout)
    # Outside it: the Thursday, in the calendar's Black Friday week (x1.1), and the first hour of Saturday, in its
    # weekend (x1.15).
    assert checkout * 1.1 <= outside.target <= checkout * 1.15
    _within(outside, outside.target)
    # Checkouts per unit of the probability without the scenario's sale, inside against outside it: its own factor.
    ratio = _row(black_friday, "funnel", tag, "conversion factor")
    _within(ratio, sale.params["conversion_factor"])
    _away(ratio, 1.0)


def test_black_friday_latency_and_card_failures(black_friday):
    """INVALID LATENCY of Android and the web jumps inside their degradation window, iOS stays as usual; card
    failures inside the gateway overload window are at its rate (too few checkouts in two hours for a contrast at
    MAX_Z: that contrast is the payment-outage test's)."""
    b = load_scenario(SCENARIOS / "black-friday.toml")
    degraded = [i for i in black_friday.incidents if i.kind == "latency_degradation"]
    assert sorted(i.params["platform"] for i in degraded) == ["ANDROID", "WEB"]
    for inc in degraded:
        tag = f"{inc.params['platform']} degradation 2025-11-28T18:00"
        inside = _row(black_friday, "latency", tag, "INVALID LATENCY inside")
        outside = _row(black_friday, "latency", tag, "INVALID LATENCY outside")
        assert abs(inside.z) <= MAX_Z and abs(outside.z) <= MAX_Z, (inside, outside)
        assert inside.target > 3 * outside.target
        _away(inside, outside.target)
    ios = _row(black_friday, "latency", "IOS: INVALID LATENCY")
    assert ios.z is not None and abs(ios.z) <= MAX_Z, ios
    p = PLATFORMS.index("IOS")
    # IOS is not degraded: its target is its own law's, the round trips lengthening only with the sale's crowds
    # (latency is a round trip of 79-120 ms when idle plus a lognormal server time).
    idle = lognormal_sf(2000 - b.latency_network_ms.min(), b.latency_server_ms[p], b.latency_sigma[p])
    assert idle < ios.target < 2 * idle, (idle, ios.target)
    card = _row(black_friday, "payments", "CARD outage 2025-11-28T19:00", "CARD failure per first attempt inside")
    _within(card, 0.40)
    _all_within_tolerance(black_friday, 60)
    page = html_page(black_friday)
    assert "conversion factor" in page and "traffic factor" in page


# -- carrier delay -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def carrier_delay(tmp_path_factory) -> Summary:
    """1-25 November 2025 with 6,000 customers: parcels shipped from 1 to 10 November are inside the Speedaf
    delay's window (20 October - 10 November), those shipped later outside; ~150 Speedaf parcels each side."""
    return _run(tmp_path_factory, "carrier-delay", "2025-11-01T00:00:00Z", 24 * 24, 6_000)


def test_carrier_delay_speedaf_only(carrier_delay):
    b = load_scenario(SCENARIOS / "carrier-delay.toml")
    (inc,) = [i for i in carrier_delay.incidents if i.kind == "carrier_delay"]
    extra = inc.params["extra_days"]
    tag = "Speedaf delay 2025-10-20T00:00"
    inside = _row(carrier_delay, "delivery", tag, "Speedaf median", "shipped inside")
    outside = _row(carrier_delay, "delivery", tag, "Speedaf median", "shipped outside")
    # The model: the median transit shifts by the extra days (to a quarter of a day: the parcels inside and outside
    # ship at different instants, so their waits for delivery hours differ a little).
    assert inside.target - outside.target == pytest.approx(extra, abs=0.25)
    for r in (inside, outside):
        assert r.n >= 80 and abs(r.z) <= MAX_Z, r
    _away(inside, outside.target)
    # The realised shift is the scenario's, within the errors of the two medians added in quadrature.
    shift_se = math.hypot(inside.se, outside.se)
    assert abs((inside.value - outside.value) - extra) <= MAX_Z * shift_se, (inside, outside)
    # The other carriers' parcels shipped inside the window travel as usual.
    for name in b.carriers.names:
        if name == "Speedaf":
            continue
        r = _row(carrier_delay, "delivery", tag, f"{name} median", "shipped inside")
        if r.n >= 30:
            usual = float(b.carriers.transit_days[b.carriers.names.index(name)])
            # No extra days in the target: the transit, longer outside the hubs, plus under a day's wait for
            # delivery hours at the median.
            assert usual < r.target < usual * b.outside_hubs_factor + 1, r
            assert abs(r.z) <= MAX_Z, r
    _all_within_tolerance(carrier_delay, 40)


# -- launch ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def launch(tmp_path_factory) -> tuple[Path, Summary]:
    """The launch's first two weeks (from midnight WAT on 1 November 2025), a population of 20,000."""
    out = tmp_path_factory.mktemp("launch")
    cfg = small_config(
        out,
        scenario=SCENARIOS / "launch.toml",
        start=parse_start("2025-11-01T00:00:00+01:00"),
        events=None,
        duration_us=14 * DAY,
        customers=20_000,
        workers=2,
        shard_size=10_000,
    )
    run(cfg)
    return out, report(out)


def test_launch_traffic_grows_with_the_ramp(launch):
    """Sessions per WAT day follow the ramp: each day's OPEN events within MAX_Z Poisson standard errors of the
    activity of the customers signed up (the ramp is sign-ups: the population's own draw of the ramp's factor) times
    the day's mature intensity (the launch sale, weekends, 11.11; the same curve without the ramp would put the
    first days several times higher), and the second week's days well above the first's (from 0.2 at the start to
    0.47 of the mature curve by day 14)."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from generator.core.behaviour import Behaviour
    from generator.core.incidents import with_recurring
    from generator.core.population import activity, sign_ups, signed_up_share
    from generator.core.sessions import intensity
    from generator.scenario import effective_scenario

    out, summary = launch
    b = load_scenario(SCENARIOS / "launch.toml")
    flat_doc = effective_scenario(SCENARIOS / "launch.toml")
    flat_doc["traffic"] = flat_doc["traffic"] | {"ramp_first_factor": 1.0}
    flat = Behaviour.from_dict(flat_doc)
    t = ds.dataset(out / "events", format="parquet").to_table(columns=["event_type", "event_ts"])
    opens = t.filter(pc.equal(t["event_type"], "OPEN"))["event_ts"].combine_chunks().cast("int64").to_numpy()
    start = 1_761_951_600_000_000  # 2025-11-01T00:00:00+01:00
    day = (opens - start) // DAY
    seen = np.bincount(day[(day >= 0) & (day < 14)], minlength=14)
    per_hour = float(activity(7, np.arange(20_000), b).sum()) / 24  # sessions an hour at intensity 1
    hours = start + np.arange(14 * 24, dtype=np.int64) * HOUR
    # as the run simulates them, with the calendar's promotions (11.11 on day 10)
    b, flat = (with_recurring(x, 7, start, start + 14 * DAY)[0] for x in (b, flat))
    population = np.arange(20_000, dtype=np.int64)
    joined = signed_up_share(sign_ups(7, population, b), activity(7, population, b))
    assert b.ramp_sign_ups and joined is not None
    expected = (per_hour * intensity(b, hours, ramp=False) * joined(hours + HOUR // 2)).reshape(14, 24).sum(axis=1)
    without = (per_hour * intensity(flat, hours)).reshape(14, 24).sum(axis=1)
    assert (np.abs(seen - expected) <= MAX_Z * np.sqrt(expected)).all(), (seen, expected.round())
    assert (np.abs(seen[1:5] - without[1:5]) > MAX_Z * np.sqrt(without[1:5])).all()
    assert seen[8:14].mean() > 1.5 * seen[1:7].mean()
    _all_within_tolerance(summary, 30)
    assert validate(out).ok  # every rule of the event model holds across the ramp and the sale


def test_launch_customers_sign_up_through_the_ramp(launch):
    """The ramp is sign-ups: the share of the population seen, and first seen in the later half of the two weeks,
    within MAX_Z of each customer's law from its sign-up on; against the law of the same traffic carried by every
    customer from the start (`ramp_sign_ups = false`), fewer customers seen, and other numbers first seen in the
    second week (fewer: the multiplier's customers, slow at first, turn up then in numbers), each by more than MAX_Z
    standard errors."""
    from generator.report import load, summarise

    out, summary = launch
    seen = _row(summary, "traffic", "customers seen")
    new = _row(summary, "traffic", "first seen from")
    for r in (seen, new):
        assert abs(r.z) <= MAX_Z, r
    loaded = load(out)
    for doc in loaded.docs:
        doc["scenario"]["traffic"]["ramp_sign_ups"] = False
    multiplier = summarise(loaded)
    assert seen.value < _row(multiplier, "traffic", "customers seen").target - MAX_Z * seen.se
    assert abs(new.value - _row(multiplier, "traffic", "first seen from").target) > MAX_Z * new.se
