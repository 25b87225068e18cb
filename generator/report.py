"""The run report: statistics of committed runs, each next to the target the scenario asked for.

`load` reads runs through their manifests; `summarise` computes every section from the rows (vectorised with
numpy and pyarrow) and derives the targets from the `Behaviour` the way the core uses it. Rendering lives in
`generator.report_render`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from generator import manifest
from generator.core.behaviour import OPERATORS, REGIONS, ZONES, Behaviour, default_behaviour, region_of
from generator.core.events import DAY, EPOCH_WEEKDAY, HOUR, SECOND, distinct_positions
from generator.core.incidents import (
    conversion_factor,
    latency_factor,
    method_failure_at,
    with_recurring,
)
from generator.core.incidents import traffic_factor as traffic_factor_at
from generator.core.lifecycle import (
    abandon_probability,
    basket_kobo,
    delivery_times,
    method_cell,
    method_table,
    spend_scale,
    stage_times,
    switch_weights,
    top_up,
    tops_up,
    transit_factors,
)
from generator.core.nigeria import default_pools
from generator.core.population import (
    activity,
    customer_index,
    home_state,
    network_quality,
    operators,
    platform_by_region,
    primary_platform,
    propensity,
    sign_ups,
    signed_up_share,
)
from generator.core.sessions import (
    WAT_OFFSET,
    adds_per_carted_session,
    cart_given_views,
    cart_probability,
    carted_extra_views,
    extra_views,
    hour_buckets,
    mean_cart_probability,
    views_per_browsing_session,
)
from generator.core.shard import network_ms
from generator.core.streams import pick
from generator.schema import EVENT_CODE, EVENT_TYPES, ORDER_STAGES, PAYMENT_METHODS, PLATFORMS

COLUMNS = (
    "event_ts",
    "event_type",
    "customer_id",
    "platform",
    "latency_ms",
    "error_code",
    "payment_method",
    "total_amount",
)
ORDER_COLUMNS = ("carrier", "tracking_number")
# Read as dictionaries (the parts store them so): each distinct string is coded once per row group, and the rows'
# strings are never materialised.
_AS_DICTIONARIES = ("event_type", "customer_id", "platform", "payment_method")
# Sessions opening this close to the end of the data may still be walking the funnel when the run stops;
# the funnel counts only sessions that had this long to finish (longer than any but a vanishing tail).
SETTLE = 30 * 60 * SECOND
# The basket section's targets: the scenario's basket law by Monte Carlo, this many draws from this seed.
BASKET_DRAWS, BASKET_SEED = 200_000, 20_251_128
STATES = ("authorised", "placed", "packed", "shipped", "delivered")
_C = EVENT_CODE
_OPEN, _VIEW, _CART, _CHECKOUT = _C["OPEN"], _C["PRODUCT_VIEW"], _C["ADD_TO_CART"], _C["CHECKOUT_STARTED"]
_FAILED, _AUTH, _ORDER = _C["PAYMENT_FAILED"], _C["PAYMENT_AUTHORIZED"], _C["ORDER_PLACED"]


@dataclass
class Row:
    """One statistic: the realised value, the scenario's target, and what the value is a share or mean of."""

    label: str
    value: float | None
    target: float | None
    # share (deviation in percentage points), ms, days, naira (an amount, shown whole), mean or count (relative
    # deviation)
    unit: str = "share"
    n: int | None = None
    # Whether the n behind a share are independent trials, so that the binomial standard error applies (not for
    # events, which cluster in sessions and by customer).
    binomial: bool = True
    # The standard error of the value where it is not a plain binomial share (a ratio, an inferred rate, a
    # quantile): derived in the section that makes the row (delta method), and used for z.
    se: float | None = None
    # The statistic z is taken from where it is not the value shown: a latency quantile shows the whole
    # milliseconds that SQL gives, and is judged by the quantile interpolated within its 1 ms class
    # (`_whole_ms_quantile`).
    estimate: float | None = None

    def __post_init__(self) -> None:  # plain floats (numpy scalars would not serialise)
        self.value = None if self.value is None else float(self.value)
        self.target = None if self.target is None else float(self.target)
        self.se = None if self.se is None else float(self.se)
        self.estimate = None if self.estimate is None else float(self.estimate)

    @property
    def deviation(self) -> float | None:
        """Points for shares, a relative difference otherwise; None when either side is missing."""
        if self.value is None or self.target is None:
            return None
        if self.unit == "share":
            return self.value - self.target
        return (self.value - self.target) / self.target if self.target else None

    @property
    def z(self) -> float | None:
        """The deviation in standard errors (how surprising it is by chance alone): the row's own `se` where it
        has one, else for a share of n independent trials the binomial one."""
        if self.se is not None and self.value is not None and self.target is not None:
            judged = self.value if self.estimate is None else self.estimate
            return (judged - self.target) / self.se if self.se > 0 else None
        if self.unit != "share" or not self.binomial or self.deviation is None or not self.n or not 0 < self.target < 1:
            return None
        return self.deviation / math.sqrt(self.target * (1 - self.target) / self.n)


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    chart: dict = field(default_factory=dict)  # what the HTML page draws; plain data


@dataclass
class Incident:
    kind: str
    start: int  # microseconds since the epoch
    end: int
    params: dict


@dataclass
class Summary:
    runs: list[str]
    events: int
    first_ts: int
    last_ts: int
    scenario: str
    incidents: list[Incident]
    sections: list[Section]

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def to_dict(self) -> dict:
        """As JSON: each row with its deviation, its z and whether it is flagged, and the report's flag level and
        how many rows pass it (a pipeline can gate on `flagged`, as a reader of the tables on the red)."""
        doc = asdict(self)
        level = flag_level(self)
        doc["flag_level"] = level
        doc["flagged"] = 0
        for s_doc, s in zip(doc["sections"], self.sections, strict=True):
            for r_doc, r in zip(s_doc["rows"], s.rows, strict=True):
                r_doc["deviation"] = r.deviation
                r_doc["z"] = r.z
                r_doc["flagged"] = flagged(r, level)
                doc["flagged"] += r_doc["flagged"]
        doc["first_ts"], doc["last_ts"] = manifest.iso(self.first_ts), manifest.iso(self.last_ts)
        for i in doc["incidents"]:
            i["start"], i["end"] = manifest.iso(i["start"]), manifest.iso(i["end"])
        return doc


# Deviations are marked beyond the number of standard errors that chance alone exceeds in about one report in a
# hundred, given how many statistics the report compares with a target (3.9 for the default run's 107; at least
# FLAG_Z): with 3 for each, about one default report in ten marked a statistic that was only chance.
FLAG_Z = 3.0
FAMILY_RATE = 0.01


def flag_level(s: Summary) -> float:
    n = sum(r.z is not None for sec in s.sections for r in sec.rows)
    return max(FLAG_Z, NormalDist().inv_cdf(1 - FAMILY_RATE / 2 / max(n, 1)))


def flagged(row: Row, level: float = FLAG_Z) -> bool:
    return row.z is not None and abs(row.z) > level


def scenario_of(docs: list[dict]) -> tuple[Behaviour, list[Incident], str]:
    """The behaviour the runs were generated with, their incidents, and a line saying which scenario it is."""
    scenarios = [d.get("scenario") for d in docs]
    raw = scenarios[0]
    note = "default scenario" if raw is None else f"scenario of run {docs[0]['run_id']}"
    if any(s != raw for s in scenarios):
        note += " (the runs differ in scenario: targets are this one's)"
    if raw is None:
        return default_behaviour(), [], note
    incidents = [
        Incident(str(i["kind"]), _us(i["start"]), _us(i["end"]), {k: v for k, v in i.items() if k not in _WINDOW})
        for i in raw.get("incidents", [])
    ]
    return Behaviour.from_dict(raw), incidents, note


_WINDOW = ("kind", "start", "end")


def _us(t: object) -> int:
    d = t if isinstance(t, datetime) else datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    return round(d.timestamp() * 1e6)


# -- the model's targets -----------------------------------------------------------------------------------------


def payment_chain(
    b: Behaviour, failure: np.ndarray | None = None, start: np.ndarray | None = None, switch: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Exact outcome probabilities of one checkout's payment attempts (core.lifecycle.settle as a Markov chain):
    `success[a, m]` succeeds on attempt a with method m, `failed[m]` is the expected failures with method m,
    `attempted` the probability of at least one attempt (the rest is abandoned at the payment step). Every entry
    is per checkout: divide by `attempted` for a checkout that attempts a payment. `start` is the first method's
    distribution (default: the mix), `switch[m]` that of the method a retry switches to from m (default: the
    others by the mix); every entry is linear in `start`, so a sum of starts gives the sum of their chains."""
    f = b.method_failure if failure is None else failure
    mix = b.method_mix
    k = mix.size
    if switch is None:
        switch = np.where(np.eye(k, dtype=bool), 0.0, mix[None, :] / np.maximum(1 - mix, 1e-12)[:, None])
    attempted = 1 - b.abandon_at_payment
    alive = (mix if start is None else start) * attempted
    success = np.zeros((b.max_attempts, k))
    failed = np.zeros(k)
    for a in range(b.max_attempts):
        success[a] = alive * (1 - f)
        failed += alive * f
        again = alive * f * b.retry
        alive = again * (1 - b.switch_method) + (again * b.switch_method) @ switch
    return {"success": success, "failed": failed, "attempted": np.array(attempted)}


@dataclass
class MethodLaw:
    """Per checkout session, what its payment's methods are drawn from (core.lifecycle.settle): `start` the first
    attempt's distribution, `row` its row of weights in `lifecycle.method_table` (where its customer lives, its
    platform, its basket above the USSD cap or not), `region` where its customer lives (a REGIONS index) and
    `capped` whether its basket is above the cap. Defined for the checkout sessions (the rest are zeros)."""

    start: np.ndarray
    row: np.ndarray
    region: np.ndarray
    capped: np.ndarray
    # The checkout's chance of a payment attempt relative to `abandon_at_payment`'s (its basket shipping free or
    # not: lifecycle.abandon_probability): the weight of its chain among the checkouts'.
    attempt: np.ndarray


def method_law(s: Sessions, b: Behaviour, seed: int) -> MethodLaw:
    n = s.open_ts.size
    chk = np.flatnonzero(s.reached[_CHECKOUT])
    pools = default_pools()
    customer = np.maximum(s.customer[chk], 0)  # a customer_id a data fault broke counts as customer 0's
    region = region_of(pools.state_is_hub, pools.state_zone)[home_state(seed, customer, pools)]
    capped = s.checkout_amount[chk] > b.ussd_max_ngn
    # Each customer's primary platform as the core draws it: from the mix of where it lives, where that tilts.
    tilt = None if b.platform_region_factor is None else platform_by_region(b, pools)
    primary = primary_platform(seed, customer, b, region, tilt)
    start, row = method_starts(b, region, s.platform[chk], primary, capped)
    law = MethodLaw(
        np.zeros((n, len(PAYMENT_METHODS))),
        np.zeros(n, np.int64),
        np.zeros(n, np.int64),
        np.zeros(n, bool),
        np.ones(n),
    )
    law.start[chk], law.row[chk], law.region[chk], law.capped[chk] = start, row, region, capped
    law.attempt[chk] = attempt_factor(b, s.checkout_amount[chk])
    return law


def attempt_factor(b: Behaviour, naira: np.ndarray) -> np.ndarray:
    """Per checkout of `naira` (-1: unknown), its chance of a payment attempt over `1 - abandon_at_payment`'s:
    `payment_chain` gives the chain of a checkout abandoned at `abandon_at_payment`, and every entry of it scales
    with the attempt's chance. An unknown amount counts as below free shipping."""
    known = np.where(naira >= 0, np.asarray(naira, np.int64) * 100, 0)
    attempt = 1 - np.broadcast_to(abandon_probability(b, known), known.shape)
    return attempt / max(1 - b.abandon_at_payment, 1e-12)


def method_starts(
    b: Behaviour, region: np.ndarray, platform: np.ndarray, primary: np.ndarray, capped: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Checkouts' first methods' distributions and their rows of `lifecycle.method_table`, given where their
    customers live, their platforms, their customers' primary platforms and whether their baskets are above the
    USSD cap: the usual method (drawn from the weights of the home region and the primary platform) with
    probability `method_loyalty`, USSD's share of it going to the checkout's own weights above the cap; else the
    checkout's own weights. (A customer's usual method is left random, as it is across customers: the shares are
    of checkouts by many customers.)"""
    table = method_table(b)
    m = len(PAYMENT_METHODS)
    if not b.methods_vary:  # every checkout by the mix (the table's last cell), as the generator draws them
        row = np.full(region.size, 2 * (table.shape[0] - 1), np.int64)
        return np.broadcast_to(b.method_mix / b.method_mix.sum(), (region.size, m)).copy(), row
    row = 2 * method_cell(b, region, platform) + capped
    weights = table.reshape(-1, m)[row]
    usual = table[method_cell(b, region, primary), 0]
    ussd = PAYMENT_METHODS.index("USSD")
    usual = np.where(capped[:, None], usual * (np.arange(m) != ussd) + usual[:, ussd : ussd + 1] * weights, usual)
    return b.method_loyalty * usual + (1 - b.method_loyalty) * weights, row


def checkout_chain(b: Behaviour, ts: np.ndarray, start: np.ndarray, row: np.ndarray) -> dict[str, np.ndarray]:
    """`payment_chain` averaged over checkouts at instants `ts` (outages change the failure rates) with first
    methods from `start` and weights `row` (a `MethodLaw`'s): the chains of each (failure rates, weights) group
    from its checkouts' summed starts, added up. Every target of the payments section is a ratio of sums of its
    entries, so this gives the exact targets of these checkouts."""
    ts = np.asarray(ts, np.int64)
    if ts.size == 0:
        return payment_chain(b)
    failure, which = failure_rows(b, ts)
    switch = switch_weights(method_table(b).reshape(-1, len(PAYMENT_METHODS)))
    groups, inverse = np.unique(np.stack([which, row]), axis=1, return_inverse=True)
    inverse = inverse.ravel()
    total = {"success": 0.0, "failed": 0.0}
    for g, (f, r) in enumerate(groups.T):
        one = payment_chain(b, failure[f], start[inverse == g].sum(axis=0) / ts.size, switch[r])
        total = {k: total[k] + one[k] for k in total}
    return {**total, "attempted": np.array(1 - b.abandon_at_payment)}


def failure_rows(b: Behaviour, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-attempt failure rates by method of checkouts at instants `ts` (payment outages change them): the
    distinct rows and the index of each checkout's one."""
    if not len(b.incidents.payment_outage) or ts.size == 0:
        return b.method_failure[None, :], np.zeros(ts.size, np.int64)
    f = method_failure_at(b, np.arange(len(PAYMENT_METHODS))[None, :], ts[:, None])
    distinct, inverse = np.unique(f, axis=0, return_inverse=True)
    return distinct, inverse.ravel()


def per_attempt_failure(chain: dict[str, np.ndarray]) -> float:
    return float(chain["failed"].sum() / (chain["failed"].sum() + chain["success"].sum()))


def lognormal_sf(x: float, median: float, sigma: float) -> float:
    """P(X > x) for a lognormal with this median and sigma."""
    return 0.5 * math.erfc(math.log(x / median) / (sigma * math.sqrt(2)))


def mixture_quantile(
    q: float, median: np.ndarray, weight: np.ndarray, sigma: float | np.ndarray, shift: np.ndarray | None = None
):
    """The q-quantile of a mixture of shifted lognormals (component i: shift[i] + median[i]·e^(sigma[i]·Z), weight
    weight[i]; one sigma for all or one each), and the mixture's density there, by bisection on the cdf."""
    median, weight = np.asarray(median, float), np.asarray(weight, float) / np.sum(weight)
    shift = np.zeros(median.size) if shift is None else np.asarray(shift, float)
    sigma = np.asarray(sigma, float)  # one for all components, or one each

    def z(x: float) -> np.ndarray:
        return np.log(np.maximum(x - shift, 1e-300) / median) / sigma

    lo, hi = float(shift.min()), float((shift + median).max() * math.exp(12 * sigma.max()))
    for _ in range(200):
        mid = (lo + hi) / 2
        cdf = float((weight * 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in z(mid)])).sum())
        lo, hi = (mid, hi) if cdf < q else (lo, mid)
    x = (lo + hi) / 2
    above = x > shift
    dens = weight * np.exp(-(z(x) ** 2) / 2) / (math.sqrt(2 * math.pi) * sigma * np.maximum(x - shift, 1e-300))
    return x, float(dens[above].sum())


def checkout_probability(b: Behaviour, ts: np.ndarray) -> np.ndarray:
    """Probability that a cart goes to checkout in a session opening at each instant (flash sales raise it)."""
    if not len(b.incidents.conversion):
        return np.full(np.shape(ts), b.checkout)
    return np.minimum(b.checkout * conversion_factor(b, ts), 1.0)


def chains_at(b: Behaviour, ts: np.ndarray) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """The payment chains of checkouts at each instant (payment outages change the failure rates): the distinct
    chains and the index of each checkout's one."""
    failure, inverse = failure_rows(b, np.asarray(ts, np.int64))
    return [payment_chain(b, f) for f in failure], inverse


def mean_chain(b: Behaviour, ts: np.ndarray) -> dict[str, np.ndarray]:
    """`payment_chain` averaged over checkouts at these instants: every target of the payments section is a ratio
    of sums of its entries, so averaging the chains gives the exact targets of a mix of normal and outage times."""
    chains, inverse = chains_at(b, ts)
    if len(chains) == 1:
        return chains[0]
    w = np.bincount(inverse, minlength=len(chains)) / inverse.size
    return {k: sum(wi * c[k] for wi, c in zip(w, chains, strict=True)) for k in ("success", "failed", "attempted")}


def success_probability(b: Behaviour, ts: np.ndarray) -> np.ndarray:
    """Probability that a checkout at each instant ends authorised (abandoned at payment or not)."""
    chains, inverse = chains_at(b, ts)
    return np.array([c["success"].sum() for c in chains])[inverse]


_Z = {50: 0.0, 95: 1.6448536269514722, 99: 2.3263478740408408}


def basket_law(
    b: Behaviour, n: int = BASKET_DRAWS, items: int | None = None, scales: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`n` baskets of the scenario's law by a fixed-seed Monte Carlo (the same draws every report): items in the
    cart (`items` each, else 1 + Binomial(extra views, add_more), the carts of a session that checks out, the
    extra views drawn by the generator's own `extra_views` and `carted_extra_views`), each basket's factor on
    item prices drawn from `scales` (the checkouts' own, where given: `lifecycle.spend_scale`), and the total in
    naira, by the generator's own `basket_kobo`, then `top_up` near free shipping. With `items`, the baskets that
    hold that many items at checkout: drawn so where baskets are topped up (one of `items` - 1 items that grew is
    one of them), else `items` each."""
    r = np.random.default_rng(BASKET_SEED)
    grows = tops_up(b)
    if items and not grows:
        k = np.full(n, items, np.int64)
    else:
        m = 8 * n if items else n  # enough to keep n of a given count after the top-ups
        k = 1 + r.binomial(extra_views(r, b, m) + carted_extra_views(r, b, m), b.add_more)
    scale = r.choice(scales, k.size) if scales is not None and scales.size else None
    kobo = basket_kobo(r, b, k, scale)
    if grows:
        kobo, grew = top_up(r, b, kobo)
        k = k + grew
        if items:
            keep = np.flatnonzero(k == items)[:n]
            k, kobo = k[keep], kobo[keep]
    return k, kobo // 100


def _median_se(law: np.ndarray, n: int) -> float:
    """The sample median's standard error for n baskets, sqrt(1/4n) / density, the density at the law's median
    read from the Monte Carlo draws over +-5% of it (wide enough to span several price points)."""
    m = float(np.median(law))
    density = np.count_nonzero(np.abs(law - m) <= 0.05 * m) / law.size / (0.1 * m) if m > 0 else 0.0
    return math.sqrt(0.25 / n) / density if density > 0 and n else float("nan")


def delay_samples(b: Behaviour, placed_ts: np.ndarray, n: int = 20_000) -> dict[str, np.ndarray]:
    """Sorted Monte Carlo samples (fixed seed) of an order's delays from ORDER_PLACED, in microseconds: to PACKED,
    to SHIPPED, and to DELIVERED per carrier, by the core's own `stage_times` for orders placed at instants drawn
    from `placed_ts` (working hours make the delays depend on when an order is placed), customers' states
    mixed by the population's shares (for a carrier, among the states it delivers to, by its orders' shares)."""
    r = np.random.default_rng(0)
    t = r.choice(placed_ts, n) if placed_ts.size else np.zeros(n, np.int64)
    transit = transit_draws(r, b, n)
    packed, shipped, _ = stage_times(r, b, t, np.zeros(n, np.int8), transit)
    out = {"packed": np.sort(packed - t), "shipped": np.sort(shipped - t)}
    for i, name in enumerate(b.carriers.names):
        theirs = transit_draws(r, b, n, i)
        out[name] = np.sort(delivery_times(r, b, shipped, np.full(n, i, np.int8), theirs) - t)
    return out


def reached_by(
    b: Behaviour, placed_ts: np.ndarray, carrier: np.ndarray, end: int, transit: np.ndarray, reps: int = 16
) -> dict[str, np.ndarray]:
    """Each order's probability of having been PACKED, SHIPPED and DELIVERED before `end`, given when it was placed,
    its carrier (a scenario carrier index; -1 for none) and its customer's `transit` factor: its fulfilment
    simulated `reps` times by the core's `stage_times` (fixed seed). The estimate of a sum over orders has variance
    1/reps of the data's own."""
    r = np.random.default_rng(0)
    k = placed_ts.size
    t = np.repeat(placed_ts, reps)
    transit = np.repeat(transit, reps)
    stages = stage_times(r, b, t, np.repeat(np.maximum(carrier, 0), reps).astype(np.int8), transit)
    out = {
        name: (ts < end).reshape(k, reps).mean(axis=1)
        for name, ts in zip(("packed", "shipped", "delivered"), stages, strict=True)
    }
    out["delivered"] = np.where(carrier >= 0, out["delivered"], 0.0)
    return out


def transit_draws(r: np.random.Generator, b: Behaviour, n: int, carrier: int | None = None) -> np.ndarray:
    """The transit factors (`transit_factors`) of `n` customers drawn by the population's state shares; of the
    customers of a `carrier`'s orders (a scenario carrier index), by those shares times the carrier's share of
    orders in each state's region."""
    pools = default_pools()
    cdf = pools.state_cdf
    if carrier is not None:
        share = b.carriers.in_region()[region_of(pools.state_is_hub, pools.state_zone), carrier]
        cdf = np.cumsum(np.diff(np.r_[0.0, pools.state_cdf]) * share)
    state = pick(cdf, r.random(n))
    return transit_factors(b, pools.state_is_hub, pools.state_zone)[state]


# -- the rows as arrays ---------------------------------------------------------------------------------------------


@dataclass
class Frame:
    ts: np.ndarray  # int64 us
    code: np.ndarray  # int8 event code
    customer: np.ndarray  # int64 customer index (from the id), -1 for an id of another shape
    platform: np.ndarray  # int8 platform code
    latency: np.ndarray  # int32 ms
    slow: np.ndarray  # bool: error_code is INVALID LATENCY
    method: np.ndarray  # int8 payment method code, -1 where null
    carrier: np.ndarray  # int8 code into `carriers`, -1 where null
    carriers: list[str]
    order: np.ndarray  # int32 code per tracking number, -1 where null
    amount: np.ndarray  # int32 whole naira, -1 where null


def _per_value(col: pa.ChunkedArray, code) -> np.ndarray:
    """`code(strings) -> int64 codes` applied to each row of a string column, where its chunks are dictionaries
    to each chunk's dictionary alone (then spread over the rows; a null row codes -1)."""
    out = []
    for chunk in col.chunks:
        if pa.types.is_dictionary(chunk.type):
            per_value = np.r_[code(chunk.dictionary), -1]
            out.append(per_value[chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)])
        else:
            out.append(code(chunk))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _codes(col: pa.ChunkedArray, values: list[str] | tuple[str, ...]) -> np.ndarray:
    lookup = pa.array(values, pa.string())
    return _per_value(
        col, lambda s: pc.index_in(s, value_set=lookup).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    )


def _dictionary(col: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    enc = pc.dictionary_encode(col.combine_chunks())
    return enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def frame(table: pa.Table) -> Frame:
    """The rows of `table` (the report's columns) as a Frame."""
    builder = _FrameBuilder(table.num_rows)
    builder.add(table)
    return builder.frame()


class _FrameBuilder:
    """Fills compact arrays part by part, sized up front from the manifests' row counts (no list of per-part
    arrays to concatenate at the end, which held every event twice): codes in the narrowest type, customers by
    their index, and only the few carrier and tracking strings (set on order events alone), coded once every part
    is in."""

    def __init__(self, rows: int) -> None:
        self.columns = {k: np.empty(rows, dtype) for k, dtype in _NUMERIC.items()}
        self.carrier: list[pa.Array] = []
        self.tracking: list[pa.Array] = []
        self.with_order: list[np.ndarray] = []  # rows (numbered over all parts) that carry an order
        self.rows = 0

    def add(self, table: pa.Table) -> np.ndarray:
        """Add one part; its event times."""
        lo, hi = self.rows, self.rows + table.num_rows
        if hi > self.columns["ts"].size:
            raise manifest.ManifestError(f"a part holds more rows than its manifest lists ({hi:,} so far)")
        ts = table.column("event_ts").cast(pa.int64()).to_numpy()
        cols = {
            "ts": ts,
            "code": _codes(table.column("event_type"), EVENT_TYPES),
            "customer": _per_value(table.column("customer_id"), customer_index),
            "platform": _codes(table.column("platform"), PLATFORMS),
            "latency": table.column("latency_ms").to_numpy(),
            "slow": table.column("error_code").is_valid().to_numpy(zero_copy_only=False),
            "method": _codes(table.column("payment_method"), PAYMENT_METHODS),
            "amount": pc.cast(table.column("total_amount"), pa.int32(), safe=False).fill_null(-1).to_numpy(),
        }
        for k, v in cols.items():
            self.columns[k][lo:hi] = v
        tracking = table.column("tracking_number").combine_chunks()
        has = tracking.is_valid().to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(has)
        self.with_order.append(rows + lo)
        self.tracking.append(tracking.filter(pa.array(has)))
        self.carrier.append(table.column("carrier").combine_chunks().take(pa.array(rows)))
        self.rows = hi
        return ts

    def frame(self) -> Frame:
        if self.rows != self.columns["ts"].size:
            raise manifest.ManifestError(
                f"the parts hold {self.rows:,} rows, their manifests list {self.columns['ts'].size:,}"
            )
        cols = self.columns
        rows = np.concatenate(self.with_order) if self.with_order else np.zeros(0, np.int64)
        order = np.full(self.rows, -1, np.int32)
        carrier = np.full(self.rows, -1, np.int8)
        carriers: list[str] = []
        if rows.size:
            order[rows] = _dictionary(pa.chunked_array(self.tracking))[0]
            codes, carriers = _dictionary(pa.chunked_array(self.carrier))
            carrier[rows] = codes
        return Frame(**cols, carrier=carrier, carriers=carriers, order=order)


_NUMERIC = {
    "ts": np.int64,
    "code": np.int8,
    "customer": np.int64,
    "platform": np.int8,
    "latency": np.int32,
    "slow": bool,
    "method": np.int8,
    "amount": np.int32,
}


@dataclass
class Loaded:
    frame: Frame  # every event of the runs, as compact arrays
    docs: list[dict]
    windows: list[tuple[int, int]]  # each run's first event and the end of its window


def load(out: Path, run_id: str | None = None) -> Loaded:
    """The committed runs under `out` (or the one named), read through their manifests a part at a time into
    compact arrays (the Frame: 33 bytes per event; the strings are not kept)."""
    if not out.is_dir():
        raise manifest.ManifestError(f"{out}: no such directory")
    if run_id:
        paths = [manifest.manifest_path(out, run_id)]
        if not paths[0].is_file():
            raise manifest.ManifestError(f"--run-id: no committed run {run_id!r} in {str(out)!r}")
    else:
        paths = manifest.committed(out)
        if not paths:
            raise manifest.ManifestError(f"{out}: no committed run (no manifest under {manifest.MANIFEST_DIR}/)")
    docs = []
    for doc in (manifest.read(p) for p in paths):
        missing = [p["path"] for p in doc["parts"] if not (out / p["path"]).is_file()]
        if missing and "s3" in doc and len(missing) == len(doc["parts"]):
            continue  # uploaded with --no-keep-local: its parts are only in S3
        if missing:
            raise manifest.ManifestError(f"{out / missing[0]}: part of run {doc['run_id']!r} is missing")
        if doc["parts"]:  # a run may hold no event (a quiet second)
            docs.append(doc)
    if not docs:
        raise manifest.ManifestError(f"{out}: no committed run with events here (parts only in S3, or none)")
    builder, windows = _FrameBuilder(sum(p["rows"] for doc in docs for p in doc["parts"])), []
    for doc in docs:
        first, last = [], []
        for p in doc["parts"]:
            try:
                part = pq.read_table(
                    out / p["path"], columns=[*COLUMNS, *ORDER_COLUMNS], read_dictionary=_AS_DICTIONARIES
                )
            except (pa.ArrowException, OSError) as e:
                raise manifest.ManifestError(
                    f"{out / p['path']}: part of run {doc['run_id']!r} does not read as Parquet ({e}); "
                    "`gen validate` checks the run"
                ) from None
            ts = builder.add(part)
            if ts.size:
                first.append(int(ts.min()))
                last.append(int(ts.max()))
        # The run's cut (every shard's events end there) where the manifest records it, else its last event.
        end = doc["window"].get("end")
        windows.append((min(first, default=0), _us(end) if end else max(last, default=0)))
    loaded = Loaded(builder.frame(), docs, windows)
    pa.default_memory_pool().release_unused()  # the parts' buffers, read and let go one at a time
    return loaded


@dataclass
class Sessions:
    """Sessions rebuilt per customer from OPEN events (the rows carry no session id)."""

    open_ts: np.ndarray
    customer: np.ndarray  # the customer's index (-1: an id of another shape)
    platform: np.ndarray  # the OPEN event's platform code
    reached: dict[int, np.ndarray]  # event code -> whether the session has one
    failures: np.ndarray  # PAYMENT_FAILED events per session
    method: np.ndarray  # the authorised payment's method, -1 without one
    carts: np.ndarray  # ADD_TO_CART events per session
    views: np.ndarray  # PRODUCT_VIEW events per session
    checkout_amount: np.ndarray  # CHECKOUT_STARTED's total_amount in naira, -1 without one
    orphans: int  # runs of session events with no OPEN before them in the data


SESSION_CHUNK = 2_000_000  # about this many session events sorted at a time (a range of customers: sessions never
# straddle it)
SESSION_BLOCK = 1 << 16  # rows counted and placed into their range at a time; the most groups customers are counted in


def sessions(fr: Frame) -> Sessions:
    """Sessions in (customer, start) order. Rows are sorted a range of customers at a time, each range holding
    about SESSION_CHUNK session events, so the sort's temporaries stay bounded however many events there are and
    however unevenly they fall on customers; the result is the same as one global sort's."""
    parts = [_sessions(fr, rows) for rows in _customer_ranges(fr)]
    return Sessions(
        np.concatenate([p.open_ts for p in parts]),
        np.concatenate([p.customer for p in parts]),
        np.concatenate([p.platform for p in parts]),
        {c: np.concatenate([p.reached[c] for p in parts]) for c in parts[0].reached},
        np.concatenate([p.failures for p in parts]),
        np.concatenate([p.method for p in parts]),
        np.concatenate([p.carts for p in parts]),
        np.concatenate([p.views for p in parts]),
        np.concatenate([p.checkout_amount for p in parts]),
        sum(p.orphans for p in parts),
    )


def _customer_ranges(fr: Frame) -> list[np.ndarray]:
    """The rows of the session events split by ranges of customers, each range's rows in ascending order.

    Session events are counted per group of customers (at most SESSION_BLOCK groups; one customer each up to that
    many customers), and a range ends where the count reaches the next multiple of SESSION_CHUNK: it holds fewer
    than SESSION_CHUNK events besides its first group's. The rows are then placed into their ranges by a counting
    sort. Both passes go SESSION_BLOCK rows at a time: the work is linear in the events, and besides temporaries
    bounded by SESSION_BLOCK, what is held is the placed rows, 4 bytes per session event (8 beyond 2**32 rows)."""
    of_sessions = fr.code <= _ORDER
    total = int(np.count_nonzero(of_sessions))
    if not total:
        return [np.zeros(0, np.int64)]
    first = int(fr.customer.min())
    span = int(fr.customer.max()) - first + 1
    width = -(-span // SESSION_BLOCK)  # customers per group
    blocks = range(0, fr.code.size, SESSION_BLOCK)

    def group(customer: np.ndarray) -> np.ndarray:
        return (customer - first) // width if width > 1 else customer - first

    held = np.zeros(-(-span // width), np.int64)  # session events per group
    for lo in blocks:
        part = slice(lo, lo + SESSION_BLOCK)
        held += np.bincount(group(fr.customer[part][of_sessions[part]]), minlength=held.size)
    np.cumsum(held, out=held)  # ... of the groups up to each
    cuts = np.searchsorted(held, np.arange(SESSION_CHUNK, total, SESSION_CHUNK), side="right")
    cuts = np.unique(cuts[cuts > 0])  # the first group of each range but the first (a heavy group is one range)
    number = np.min_scalar_type(cuts.size)  # uint8 or uint16 range numbers, which argsort radix-sorts
    range_of = np.repeat(np.arange(cuts.size + 1, dtype=number), np.diff(cuts, prepend=0, append=held.size))
    ends = np.r_[held[cuts - 1], total]  # where each range ends in `rows`
    free = ends - np.diff(ends, prepend=0)  # each range's next free slot
    rows = np.empty(total, np.uint32 if fr.code.size <= 2**32 else np.int64)
    for lo in blocks:
        block = np.flatnonzero(of_sessions[lo : lo + SESSION_BLOCK]) + lo  # its session events' rows
        r = range_of[group(fr.customer[block])]
        count = np.bincount(r, minlength=free.size)
        shift = free - (np.cumsum(count) - count)  # from a row's place among the block's, sorted by range
        rows[np.arange(r.size) + np.repeat(shift, count)] = block[np.argsort(r, kind="stable")]
        free += count
    return np.split(rows, ends[:-1])


def _sessions(fr: Frame, idx: np.ndarray) -> Sessions:
    """The sessions of the rows `idx` (whole customers' session events)."""
    idx = idx[np.lexsort((fr.ts[idx], fr.customer[idx]))]
    code, cust = fr.code[idx], fr.customer[idx]
    new = (code == _OPEN) | np.r_[True, cust[1:] != cust[:-1]]
    sid = np.cumsum(new) - 1
    n = int(sid[-1]) + 1 if sid.size else 0
    starts = np.flatnonzero(new)
    ok = code[starts] == _OPEN
    reached = {}
    for c in (_VIEW, _CART, _CHECKOUT, _FAILED, _AUTH, _ORDER):
        flag = np.zeros(n, bool)
        flag[sid[code == c]] = True
        reached[c] = flag[ok]
    method = np.full(n, -1, np.int64)
    auth = code == _AUTH
    method[sid[auth]] = fr.method[idx[auth]]
    failures = np.bincount(sid[code == _FAILED], minlength=n)
    carts = np.bincount(sid[code == _CART], minlength=n)
    views = np.bincount(sid[code == _VIEW], minlength=n)
    amount = np.full(n, -1, np.int64)
    chk = code == _CHECKOUT
    amount[sid[chk]] = fr.amount[idx[chk]]
    opens = idx[starts][ok]
    return Sessions(
        fr.ts[opens],
        fr.customer[opens],
        fr.platform[opens],
        reached,
        failures[ok],
        method[ok],
        carts[ok],
        views[ok],
        amount[ok],
        int((~ok).sum()),
    )


# -- the sections -----------------------------------------------------------------------------------------------


def _share(part: float, whole: float) -> float | None:
    return float(part / whole) if whole else None


def event_mix(fr: Frame, s: Sessions, b: Behaviour) -> Section:
    counts = np.bincount(fr.code[fr.code >= 0], minlength=len(EVENT_TYPES))
    # Flash sales and outages change the checkout and payment probabilities by the session's start.
    chain = mean_chain(b, s.open_ts[s.reached[_CHECKOUT]])
    browse = 1 - b.bounce
    p_checkout = float(checkout_probability(b, s.open_ts).mean()) if s.open_ts.size else b.checkout
    p_cart = mean_cart_probability(b)
    checkout = browse * p_cart * p_checkout
    won = chain["success"].sum()
    per_session = {
        "OPEN": 1.0,
        "USER_LOGIN": b.login,
        "PRODUCT_VIEW": browse * views_per_browsing_session(b, p_cart),
        "ADD_TO_CART": browse * p_cart * adds_per_carted_session(b),
        "CHECKOUT_STARTED": checkout,
        "PAYMENT_AUTHORIZED": checkout * won,
        "PAYMENT_FAILED": checkout * chain["failed"].sum(),
        **{k: checkout * won for k in ("ORDER_PLACED", "PACKED", "SHIPPED", "DELIVERED")},
    }
    expected = np.array([per_session[t] for t in EVENT_TYPES])
    expected /= expected.sum()
    total = int(counts.sum())
    rows = [
        Row(t, _share(c, total), float(e), n=total, binomial=False)
        for t, c, e in zip(EVENT_TYPES, counts, expected, strict=True)
    ]
    return Section(
        "events",
        "Event mix",
        rows,
        [
            "Targets are the steady-state shares per session; PACKED, SHIPPED and DELIVERED follow the traffic of "
            "earlier days, so a window of a few hours shows them off their share."
        ],
        {"kind": "bars", "labels": list(EVENT_TYPES), "values": [r.value for r in rows], "targets": expected.tolist()},
    )


def attempted(s: Sessions) -> np.ndarray:
    """Sessions with at least one payment attempt (PAYMENT_FAILED or PAYMENT_AUTHORIZED)."""
    return s.reached[_FAILED] | s.reached[_AUTH]


def funnel(fr: Frame, s: Sessions, b: Behaviour, end: int, incidents: list[Incident], seed: int) -> Section:
    settled = s.open_ts <= end - SETTLE
    total = int(settled.sum())
    # Checkout and payment success depend on when the session opened (flash sales, outages): each step's target
    # is the mean probability over the sessions that reached the step before, the expected counts the sums.
    # per browsing session, by its platform and its customer's propensity (1 for a customer id of another shape)
    known = s.customer >= 0
    factor = np.ones(s.customer.size)
    factor[known] = propensity(seed, s.customer[known], b)
    p_cart = cart_probability(b, s.platform, factor)
    p_checkout = checkout_probability(b, s.open_ts)
    base_success = success_probability(b, s.open_ts)  # per checkout abandoned at abandon_at_payment
    browsed = s.reached[_VIEW] & settled
    carted = s.reached[_CART] & settled
    checked = s.reached[_CHECKOUT] & settled
    tried = attempted(s) & settled
    # A checkout's chance of a payment attempt follows its basket (free shipping: no delivery fee shown). Per
    # session, it counts at the mean of the data's checkouts' (carts go to checkout whatever they hold, so the
    # checkouts' baskets are the carts'); per checkout, at its own basket's.
    own = attempt_factor(b, s.checkout_amount)
    mean_factor = float(own[checked].mean()) if checked.any() else 1.0
    p_success = base_success * mean_factor  # per session's checkout, abandoned at payment or not
    p_auth = 1 - b.abandon_at_payment
    p_attempt = p_auth * mean_factor
    cart_p = float(p_checkout[carted].mean()) if carted.any() else b.checkout
    chk_won = float((base_success * own)[checked].mean()) if checked.any() else float(payment_chain(b)["success"].sum())
    # Authorised of the checkouts that attempt a payment (abandonment depends on neither the time nor the method,
    # so dividing the chain's per-checkout probability by its attempt probability is exact).
    auth_p = float(base_success[tried].mean()) / p_auth if tried.any() else chk_won / max(p_attempt, 1e-12)
    cart_won = float((p_checkout * p_success)[carted].mean()) if carted.any() else cart_p * chk_won
    add_p = float(p_cart[browsed].mean()) if browsed.any() else mean_cart_probability(b)
    steps = [("product view", _VIEW, 1 - b.bounce), ("add to cart", _CART, add_p)]
    steps += [("checkout", _CHECKOUT, cart_p), ("payment attempted", None, p_attempt)]
    steps += [("payment authorised", _AUTH, auth_p), ("order placed", _ORDER, 1.0)]
    browse = 1 - b.bounce
    n_carts = browse * float(p_cart[settled].sum())
    n_checkouts = browse * float((p_cart * p_checkout)[settled].sum())
    won_each = browse * p_cart * p_checkout * p_success  # each session's probability of an order
    won = float(won_each[settled].sum())
    expected = [total, browse * total, n_carts, n_checkouts, n_checkouts * p_attempt, won, won]
    expected = [float(x) for x in expected]
    rows = [Row("sessions", float(total), None, "count")]
    counts, targets = [total], expected
    prev = total
    for label, c, p in steps:
        k = int(((attempted(s) if c is None else s.reached[c]) & settled).sum())
        rows.append(Row(f"{label} (of the step before)", _share(k, prev), float(p), n=prev))
        counts.append(k)
        prev = k
    n_cart, n_chk, n_order = counts[2], counts[3], counts[-1]
    rows.append(Row("session → order", _share(n_order, total), won / total if total else None, n=total))
    # Cart abandonment as Baymard measures it: carts that never become an order (before or inside checkout).
    rows.append(Row("cart abandonment", _share(n_cart - n_order, n_cart), 1 - cart_won, n=n_cart))
    rows.append(Row("checkout abandonment", _share(n_chk - n_order, n_chk), 1 - chk_won, n=n_chk))
    rows += _platform_rows(s, settled, won_each)
    rows += _depth_rows(s, b, browsed, p_cart)
    rows += _conversion_rows(s, b, settled, incidents)
    notes = [
        f"Sessions are rebuilt per customer from OPEN events; {int((~settled).sum()):,} sessions opening in the last "
        f"{SETTLE // (60 * SECOND)} minutes of the data are left out (they may not have finished).",
        "Cart abandonment counts carts that end without an order (Baymard's measure), checkout abandonment "
        "checkouts that end without one: abandoned at the payment step (no attempt) or after failed attempts.",
    ]
    if s.orphans:
        notes.append(f"{s.orphans:,} runs of session events start before the data does (no OPEN) and are left out.")
    labels = ["sessions"] + [label for label, _, _ in steps]
    return Section(
        "funnel", "Funnel", rows, notes, {"kind": "bars", "labels": labels, "values": counts, "targets": targets}
    )


def _tag(inc: Incident, name: str) -> str:
    if "promotion" in inc.params:  # a flash sale of the calendar's promotions, by its name
        name = f"promotion {inc.params['promotion']}"
    return f"{name} {manifest.iso(inc.start)[:16]}"


def _ratio_se(ratio: float, *relative_variances: float) -> float:
    """Delta method: the standard error of a ratio (or product) of independent estimates from their squared
    relative standard errors."""
    return ratio * math.sqrt(sum(relative_variances))


def _platform_rows(s: Sessions, settled: np.ndarray, won_each: np.ndarray) -> list[Row]:
    """Session to order on each platform (the apps convert better than the web), against the mean of its
    sessions' own probabilities."""
    rows = []
    for p, name in enumerate(PLATFORMS):
        mine = settled & (s.platform == p)
        n = int(mine.sum())
        won = float(won_each[mine].mean()) if n else None
        rows.append(Row(f"session → order on {name}", _share(int((mine & s.reached[_ORDER]).sum()), n), won, n=n))
    return rows


DEPTHS = ((1, 1), (2, 3), (4, 7), (8, 15), (16, None))  # product views of a session, for the rows by depth


def _depth_rows(s: Sessions, b: Behaviour, browsed: np.ndarray, p_cart: np.ndarray) -> list[Row]:
    """Add to cart by the session's depth (its product views): a session that adds has browsed more
    (`carted_views_factor`), so deeper sessions convert better. Each row's target is the mean over its sessions
    of P(added | views) by Bayes from each session's own probability of adding (`sessions.cart_given_views`)."""
    rows = []
    for lo, hi in DEPTHS:
        mine = browsed & (s.views >= lo) & (s.views <= (hi if hi is not None else np.iinfo(np.int64).max))
        n = int(mine.sum())
        target = float(cart_given_views(b, p_cart[mine], s.views[mine]).mean()) if n else None
        what = "1 product view" if lo == hi == 1 else f"{lo}-{hi} product views" if hi else f"{lo}+ product views"
        rows.append(
            Row(
                f"add to cart, sessions of {what}",
                _share(int(s.reached[_CART][mine].sum()), n),
                target,
                n=n,
            )
        )
    return rows


def _conversion_rows(s: Sessions, b: Behaviour, settled: np.ndarray, incidents: list[Incident]) -> list[Row]:
    """Per flash sale: carts going to checkout in sessions opening inside its window and outside it, against the mean
    checkout probability of each; and the realised conversion factor of the sale alone: checkouts per unit of the
    checkout probability without it (other sales, overlapping or not, stay in it), inside ÷ outside, whose target
    is the sale's factor (less where the probability reaches 1)."""
    sales = [i for i in incidents if i.kind == "flash_sale"]
    carted = s.reached[_CART] & settled
    p_checkout = checkout_probability(b, s.open_ts)
    base = b.checkout * conversion_factor(b, s.open_ts)  # before the cap at 1
    rows = []
    for inc in sales:
        tag = _tag(inc, "flash sale")
        window = (s.open_ts >= inc.start) & (s.open_ts < inc.end)
        inside, out = carted & window, carted & ~window
        n_in, k_in = int(inside.sum()), int((inside & s.reached[_CHECKOUT]).sum())
        n_out, k_out = int(out.sum()), int((out & s.reached[_CHECKOUT]).sum())
        p_in = float(p_checkout[inside].mean()) if n_in else b.checkout
        p_out = float(p_checkout[out].mean()) if n_out else b.checkout
        rows.append(Row(f"{tag}: checkout of carts inside", _share(k_in, n_in), p_in, n=n_in))
        rows.append(Row(f"{tag}: checkout of carts outside it", _share(k_out, n_out), p_out, n=n_out))
        if k_in and k_out:
            without = np.minimum(base[inside] / inc.params["conversion_factor"], 1.0)
            e_in, e_without, e_out = float(p_checkout[inside].sum()), float(without.sum()), float(p_checkout[out].sum())
            target = e_in / e_without
            var_in = float((p_checkout[inside] * (1 - p_checkout[inside])).sum()) / e_in**2
            var_out = float((p_checkout[out] * (1 - p_checkout[out])).sum()) / e_out**2
            value = (k_in / e_without) / (k_out / e_out)
            label = f"{tag}: conversion factor (checkouts per probability without it, inside ÷ outside it)"
            rows.append(Row(label, value, target, "mean", n_in, se=_ratio_se(target, var_in, var_out)))
    return rows


def _distinct_small(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` for integers spanning a small range (time buckets): one bincount
    instead of a sort of every event."""
    if not values.size:
        return values[:0], np.zeros(0, np.int64)
    low = int(values.min())
    offset = values - low
    present = np.bincount(offset) > 0
    return np.flatnonzero(present) + low, (np.cumsum(present) - 1)[offset]


def _bucket_width(first: int, last: int) -> int:
    return HOUR if last - first <= 3 * DAY else DAY


def payments(fr: Frame, s: Sessions, b: Behaviour, end: int, incidents: list[Incident], seed: int) -> Section:
    settled = (s.open_ts <= end - SETTLE) & s.reached[_CHECKOUT]
    law = method_law(s, b, seed)

    def chain_of(sel: np.ndarray) -> dict[str, np.ndarray]:
        """The mean chain of the settled checkouts `sel`: outages by the session's start, methods by `law`, each
        weighted by its chance of a payment attempt (free shipping)."""
        return checkout_chain(b, s.open_ts[sel], law.start[sel] * law.attempt[sel, None], law.row[sel])

    chain = chain_of(settled)
    attempts = (fr.code == _FAILED) | (fr.code == _AUTH)
    fails = int((fr.code == _FAILED).sum())
    n_att = int(attempts.sum())
    rows = [Row("failure rate per attempt", _share(fails, n_att), per_attempt_failure(chain), n=n_att)]
    n_chk = int(settled.sum())
    mean_fail = float(s.failures[settled].mean()) if n_chk else None
    rows.append(Row("failed attempts per checkout", mean_fail, float(chain["failed"].sum()), "mean", n_chk))
    auth = settled & (s.method >= 0)
    n_auth = int(auth.sum())
    won = chain["success"]
    for m, name in enumerate(PAYMENT_METHODS):
        mine = auth & (s.method == m)
        k = int(mine.sum())
        target = won[:, m].sum() / won.sum()
        se = _customer_clustered_se(s.customer, auth, mine, target)
        rows.append(Row(f"{name}: share of authorised payments", _share(k, n_auth), target, n=n_auth, se=se))
        retried = int((mine & (s.failures > 0)).sum())
        rows.append(
            Row(f"{name}: authorised after a failure", _share(retried, k), won[1:, m].sum() / won[:, m].sum(), n=k)
        )
    # Who pays and how much: the method's share where the customers live, on each platform, above the USSD cap.
    groups = [(f"in {label}", np.isin(law.region, where), "USSD") for label, where in _REGION_GROUPS]
    groups += [(f"on {name}", s.platform == p, m) for p, name in enumerate(PLATFORMS) for m in ("USSD", "PAYPAL")]
    if math.isfinite(b.ussd_max_ngn):
        groups.append((f"of baskets above NGN {b.ussd_max_ngn:,.0f}", law.capped, "USSD"))
    for label, sel, name in groups:
        m, mine = PAYMENT_METHODS.index(name), auth & sel
        n = int(mine.sum())
        ch = chain_of(settled & sel)["success"]
        target = ch[:, m].sum() / ch.sum() if ch.sum() else None
        hit = mine & (s.method == m)
        se = None if target is None else _customer_clustered_se(s.customer, mine, hit, target)
        rows.append(Row(f"{name}: share of authorised payments {label}", _share(int(hit.sum()), n),
                        target, n=n, se=se))  # fmt: skip
    notes = [
        "PAYMENT_FAILED carries no payment_method (the spec leaves it empty), so failure by method is inferred only "
        "through the checkouts that end authorised: the method's share of them, and how many needed a retry. A retry "
        f"may switch method (probability {b.switch_method:g}), so a failure before an authorised "
        "payment is not necessarily that method's.",
        "Per-attempt targets by method: "
        + ", ".join(f"{m} {f:.1%}" for m, f in zip(PAYMENT_METHODS, b.method_failure, strict=True))
        + ".",
        "Method targets follow each checkout: its customer's usual method (drawn from the weights of where it lives "
        f"and its primary platform) with probability {b.method_loyalty:g}, else the weights of where it lives and "
        "the session's platform, none of them USSD for a basket above the cap"
        + (f" (NGN {b.ussd_max_ngn:,.0f})." if math.isfinite(b.ussd_max_ngn) else " (this scenario has none)."),
    ]
    rows += _outage_rows(s, b, settled, incidents, law)
    if any(i.kind == "payment_outage" for i in incidents):
        notes.append(
            "Outages apply to the checkouts of sessions opening inside their window; the rows inside and outside an "
            "outage count the settled checkout sessions by their start. PAYMENT_FAILED carries no method, so the "
            "method's failure rate is inferred from first attempts: a checkout with no failure that ends authorised "
            "with the method tried it first and succeeded, which happens with probability p × (1 − failure) for a "
            "checkout that attempts a payment (p: the chance it tries the method first; those abandoned at the "
            "payment step are left out)."
        )
    width = _bucket_width(int(fr.ts.min()), int(fr.ts.max())) if fr.ts.size else HOUR
    bucket = fr.ts[attempts] // width
    keys, inv = _distinct_small(bucket)
    per = np.bincount(inv, weights=(fr.code[attempts] == _FAILED), minlength=keys.size)
    tot = np.bincount(inv, minlength=keys.size)
    x = (keys * width + width // 2).tolist()
    targets = [_failure_target_at(t, b, incidents, chain) for t in x]
    chart = {"kind": "line", "x": x, "values": (per / np.maximum(tot, 1)).tolist(), "targets": targets}
    chart["width"] = "hour" if width == HOUR else "day"
    return Section("payments", "Payments", rows, notes, chart)


def _customer_clustered_se(customer: np.ndarray, sel: np.ndarray, hit: np.ndarray, p: float) -> float | None:
    """The standard error of the share of `hit` among the `sel` sessions when a customer's payments are not
    independent (its usual method): sqrt(sum over customers of (hits - p x payments)^2) / payments, the ratio
    estimator's cluster-robust variance, but never below the binomial's sqrt(p(1 - p) / payments). A customer's
    payments sharing its usual method only add to the binomial variance; the robust estimate, made of the data's own
    residuals, falls far below it where the data strays from p by chance in a small sample (32 web payments none of
    them PayPal against a 7.4% target: 0.013 for the binomial's 0.046, which made a 1.6-error miss a 5-error one).
    Sessions are in customer order."""
    n = int(sel.sum())
    if not n:
        return None
    who = customer[sel]
    starts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])
    y = np.add.reduceat(hit[sel].astype(float), starts)
    m = np.diff(np.r_[starts, n]).astype(float)
    return max(float(np.sqrt(((y - p * m) ** 2).sum()) / n), math.sqrt(p * (1 - p) / n))


_REGION_GROUPS = (
    ("Lagos and the FCT", [0]),
    ("the south (south-west, south-south, south-east)", [1, 2, 3]),
    ("the north (north-central, north-west, north-east)", [4, 5, 6]),
)


def _outage_rows(
    s: Sessions, b: Behaviour, settled: np.ndarray, incidents: list[Incident], law: MethodLaw
) -> list[Row]:
    rows = []
    for inc in incidents:
        if inc.kind != "payment_outage" or inc.params.get("method") not in PAYMENT_METHODS:
            continue
        name = inc.params["method"]
        m = PAYMENT_METHODS.index(name)
        tag = _tag(inc, f"{name} outage")
        inside = (s.open_ts >= inc.start) & (s.open_ts < inc.end)
        for where, group in (("inside", settled & inside), ("outside", settled & ~inside)):
            ts = s.open_ts[group]
            ch = checkout_chain(b, ts, law.start[group] * law.attempt[group, None], law.row[group])
            n = int(group.sum())
            bad = int(s.failures[group].sum())
            method = s.method[group]
            paid = int((method >= 0).sum())
            rows.append(
                Row(
                    f"{tag}: failure per attempt {where}",
                    _share(bad, bad + paid),
                    per_attempt_failure(ch),
                    n=bad + paid,
                )
            )
            target = ch["success"][:, m].sum() / ch["success"].sum()
            share = _share(int((method == m).sum()), paid)
            rows.append(Row(f"{tag}: {name} share of authorised {where}", share, target, n=paid))
            # The method's own failure rate from first attempts: of the n checkouts that attempt a payment (those
            # abandoned at the payment step try no method), k ~ Binomial(n, p·(1 − f)) with p the mean chance they
            # try the method first, so f̂ = 1 − k/(p·n) has the standard error sqrt(p(1 − f)(1 − p(1 − f))/n)/p.
            first_ok = int(((s.failures[group] == 0) & (method == m)).sum())
            tried = attempted(s)[group]
            n, ts = int(tried.sum()), ts[tried]
            p = float(law.start[group][tried, m].mean()) if n else 0.0
            f = float(method_failure_at(b, np.full(ts.size, m), ts).mean()) if n else None
            value = 1 - first_ok / (p * n) if n and p else None
            se = math.sqrt(p * (1 - f) * (1 - p * (1 - f)) / n) / p if n and p else None
            rows.append(Row(f"{tag}: {name} failure per first attempt {where}", value, f, n=n, se=se))
    return rows


def _failure_target_at(t: int, b: Behaviour, incidents: list[Incident], chain: dict) -> float:
    for inc in incidents:
        if inc.kind == "payment_outage" and inc.start <= t < inc.end and inc.params.get("method") in PAYMENT_METHODS:
            f = b.method_failure.copy()
            f[PAYMENT_METHODS.index(inc.params["method"])] = float(inc.params.get("failure_rate", 0.0))
            return per_attempt_failure(payment_chain(b, f))
    return per_attempt_failure(chain)


def latency(fr: Frame, b: Behaviour, threshold: int, incidents: list[Incident], seed: int) -> Section:
    rows: list[Row] = []
    labels, values, targets = [], [], []
    n_all = fr.ts.size
    expected_slow = 0.0
    # Each event's latency is x·(network + server·e^(σZ)): its customer's round trip (whole ms, by operator and the
    # traffic at its instant, as the core works it out) and, inside a latency degradation's window, its factor x.
    # Targets are those of the mixture of these shifted lognormals, one per distinct (round trip, factor), weighted
    # by events. (An event whose customer_id a data fault broke counts as customer 0's.)
    # Operators and network qualities are worked out once per distinct customer, then spread over the events.
    customer = np.maximum(fr.customer, 0)
    ids, at = distinct_positions(customer, int(customer.max()) + 1 if n_all else 1)
    del customer
    operator = operators(seed, ids, default_pools()).astype(np.int8)[at]
    network = network_ms(b, operator, fr.ts, network_quality(seed, ids, b)[at])
    del at
    if not b.latency_fulfilment_round_trip:  # PACKED, SHIPPED, DELIVERED: server to server, no round trip
        network[np.isin(fr.code, [EVENT_CODE[t] for t in ("PACKED", "SHIPPED", "DELIVERED")])] = 0.0
    if len(b.incidents.latency_degradation):
        factors, factor_code = np.unique(latency_factor(b, fr.platform, fr.ts), return_inverse=True)
    else:
        factors, factor_code = np.ones(1), np.zeros(n_all, np.int64)
    # The server time's median and sigma of each event: its platform's, times its event type's factor.
    servers, server_code = np.unique(
        b.latency_server_ms[fr.platform] * b.latency_server_factor[np.maximum(fr.code, 0)], return_inverse=True
    )
    sigmas, sigma_code = np.unique(b.latency_sigma[fr.platform], return_inverse=True)
    # One key per distinct (round trip, factor, server median, sigma): round trips are whole ms.
    key = network.astype(np.int64)
    for codes, size in ((factor_code, factors.size), (server_code, servers.size), (sigma_code, sigmas.size)):
        key = key * size + codes.reshape(-1)

    def components(mask: np.ndarray) -> tuple[np.ndarray, ...]:
        """The distinct (round trip, factor, server median, sigma) of the masked events and how many events have
        each (a count per key: a few thousand round trips at most, times a few of each other)."""
        counts = np.bincount(key[mask])
        k = np.flatnonzero(counts)
        k, sig = np.divmod(k, sigmas.size)
        k, med = np.divmod(k, servers.size)
        net, x = np.divmod(k, factors.size)
        return net.astype(float), factors[x], servers[med], sigmas[sig], counts[np.flatnonzero(counts)]

    def slow(net: float, x: float, server: float, sigma: float) -> float:
        """P(latency > threshold) with round trip net, factor x and this server time: x·(net + server·e^(σZ))."""
        if threshold <= x * net:
            return 1.0
        return lognormal_sf(threshold - x * net, x * server, sigma)

    def slow_target(mask: np.ndarray) -> float:
        *parts, k = components(mask)
        return float(sum(c * slow(*v) for *v, c in zip(*parts, k, strict=True)) / k.sum())

    idle = float(b.latency_network_ms.mean())
    for p, name in enumerate(PLATFORMS):
        mine = fr.platform == p
        lat = fr.latency[mine]
        if lat.size:
            net, x, server, sig, k = components(mine)
        else:
            net, x, k = np.full(1, idle), np.ones(1), np.ones(1)
            server, sig = np.full(1, float(b.latency_server_ms[p])), np.full(1, float(b.latency_sigma[p]))
        rows.append(
            Row(f"{name}: share of events", _share(lat.size, n_all), float(b.platform_mix[p]), n=n_all, binomial=False)
        )
        got = np.percentile(lat, list(_Z)) if lat.size else [None] * len(_Z)
        for q, v in zip(_Z, got, strict=True):
            target, density = mixture_quantile(q / 100, server * x, k, sig, net * x)
            se = math.sqrt(q / 100 * (1 - q / 100) / lat.size) / density if lat.size and density > 0 else None
            rows.append(
                Row(
                    f"{name}: p{q}",
                    None if v is None else float(v),
                    target,
                    "ms",
                    int(lat.size),
                    se=se,
                    estimate=_whole_ms_quantile(lat, q / 100),
                )
            )
            labels.append(f"{name} p{q}")
            values.append(None if v is None else float(v))
            targets.append(target)
        sf = slow_target(mine) if lat.size else slow(idle, 1.0, server[0], sig[0])
        expected_slow += sf * lat.size
        rows.append(Row(f"{name}: INVALID LATENCY", _share(int(fr.slow[mine].sum()), lat.size), sf, n=int(lat.size)))
    rows.append(
        Row("INVALID LATENCY, all events", _share(int(fr.slow.sum()), n_all), _share(expected_slow, n_all), n=n_all)
    )
    for t, name in enumerate(EVENT_TYPES):  # the server factors: payments slower than a product page
        mine = fr.code == t
        k = int(mine.sum())
        if not k:
            continue
        net, x, server, sig, counts = components(mine)
        target, density = mixture_quantile(0.5, server * x, counts, sig, net * x)
        se = math.sqrt(0.25 / k) / density if density > 0 else None
        lat = fr.latency[mine]
        rows.append(
            Row(
                f"{name}: median latency",
                float(np.median(lat)),
                target,
                "ms",
                k,
                se=se,
                estimate=_whole_ms_quantile(lat, 0.5),
            )
        )
        rows.append(Row(f"{name}: INVALID LATENCY", _share(int(fr.slow[mine].sum()), k), slow_target(mine), n=k))
    for inc in incidents:
        if inc.kind != "latency_degradation" or inc.params.get("platform") not in PLATFORMS:
            continue
        p = PLATFORMS.index(inc.params["platform"])
        inside = (fr.ts >= inc.start) & (fr.ts < inc.end)
        tag = _tag(inc, f"{inc.params['platform']} degradation")
        for where, mine in (("inside", (fr.platform == p) & inside), ("outside", (fr.platform == p) & ~inside)):
            k = int(mine.sum())
            target = slow_target(mine) if k else None
            rows.append(Row(f"{tag}: INVALID LATENCY {where}", _share(int(fr.slow[mine].sum()), k), target, n=k))
    for o, name in enumerate(OPERATORS):
        mine = operator == o
        rows.append(Row(f"{name}: median latency", float(np.median(fr.latency[mine])) if mine.any() else None,
                        None, "ms", int(mine.sum())))  # fmt: skip
    notes = [
        "Latency is the customer's network round trip (its mobile operator's idle one, "
        + ", ".join(f"{o} {v:g}" for o, v in zip(OPERATORS, b.latency_network_ms, strict=True))
        + f" ms, times 1 + {b.latency_peak_load:g} x (traffic intensity - 1) while traffic is above its mean) plus a "
        "lognormal server time per platform (median, sigma from the scenario; the median times the event type's "
        "server factor)"
        + (
            ""
            if b.latency_fulfilment_round_trip
            else "; PACKED, SHIPPED and DELIVERED, server to server, have no round trip"
        )
        + ". Percentile targets are those of the "
        "mixture of the events' round trips; INVALID LATENCY is P(latency > "
        f"{threshold:,} ms), the run's threshold. Median latency by operator has no target: it shows the networks."
    ]
    width = _bucket_width(int(fr.ts.min()), int(fr.ts.max())) if fr.ts.size else HOUR
    keys, inv = _distinct_small(fr.ts // width)
    rate = np.bincount(inv, weights=fr.slow, minlength=keys.size) / np.maximum(np.bincount(inv), 1)
    over_time = {
        "x": (keys * width + width // 2).tolist(),
        "values": rate.tolist(),
        "target": _share(expected_slow, n_all),
    }
    chart = {"kind": "bars", "labels": labels, "values": values, "targets": targets, "over_time": over_time}
    return Section("latency", "Latency", rows, notes, chart)


def orders(fr: Frame, b: Behaviour, end: int, incidents: list[Incident], seed: int) -> tuple[Section, Section]:
    """Orders by the last stage reached per tracking number, and delivery time by carrier and by zone."""
    has = fr.order >= 0
    k = int(fr.order.max()) + 1 if has.any() else 0
    stage_of = {_C[s]: i for i, s in enumerate(ORDER_STAGES)}
    stage = np.full(fr.code.size, -1)
    for c, i in stage_of.items():
        stage[fr.code == c] = i
    last = np.full(k, -1)
    np.maximum.at(last, fr.order[has], stage[has])
    placed_ts = np.full(k, -1, np.int64)
    placed = fr.code == _ORDER
    placed_ts[fr.order[placed]] = fr.ts[placed]
    delivered_ts = np.full(k, -1, np.int64)
    done = fr.code == _C["DELIVERED"]
    delivered_ts[fr.order[done]] = fr.ts[done]
    shipped_ts = np.full(k, -1, np.int64)
    sent = fr.code == _C["SHIPPED"]
    shipped_ts[fr.order[sent]] = fr.ts[sent]
    carrier = np.full(k, -1)
    carrier[fr.order[has]] = fr.carrier[has]
    customer = np.full(k, -1, np.int64)
    customer[fr.order[has]] = fr.customer[has]
    names = fr.carriers
    pools = default_pools()
    home = home_state(seed, np.maximum(customer, 0), pools)  # (a customer_id a data fault broke: customer 0's)
    region = region_of(pools.state_is_hub, pools.state_zone)[home]

    # Orders placed inside the data: their expected state at the end of the data, given when they were placed.
    mine = placed_ts >= 0
    # The data's carrier codes as the scenario's (-1, also at index -1 for orders without one, where it has none).
    scenario_code = np.array([b.carriers.names.index(n) if n in b.carriers.names else -1 for n in names] + [-1])
    transit = transit_factors(b, pools.state_is_hub, pools.state_zone)[home]
    reached = reached_by(b, placed_ts[mine], scenario_code[carrier[mine]], end, transit[mine])
    delivered = reached["delivered"]
    samples = delay_samples(b, placed_ts[mine])
    expected = {
        "authorised": 0.0,
        "placed": float((1 - reached["packed"]).sum()),
        "packed": float((reached["packed"] - reached["shipped"]).sum()),
        "shipped": float((reached["shipped"] - delivered).sum()),
        "delivered": float(delivered.sum()),
    }
    counts = np.bincount(last[mine], minlength=len(STATES))
    carried = np.bincount(last[~mine & (last >= 0)], minlength=len(STATES))
    rows = [
        Row(f"placed in the data, now {st}", float(c), expected[st], "count")
        for st, c in zip(STATES, counts, strict=True)
    ]
    rows += [
        Row(f"placed before the data, now {st}", float(c), None, "count")
        for st, c in zip(STATES, carried, strict=True)
        if st not in ("authorised", "placed")
    ]
    state_section = Section(
        "orders",
        "Orders by last stage",
        rows,
        [
            "Last stage reached per tracking number at the end of the data. Targets: each order's chance of having "
            "reached each stage by then, given when it was placed (fulfilment delays and working hours from the "
            "scenario). Orders placed before the data show only their fulfilment events."
        ],
        {"kind": "bars", "labels": list(STATES), "values": counts.tolist(), "targets": list(expected.values())},
    )

    rows, ranges = [], []
    delays = [i for i in incidents if i.kind == "carrier_delay" and i.params.get("carrier") in b.carriers.names]
    delayed = {i.params["carrier"] for i in delays}
    # Carrier shares of the orders placed in the data: an order placed before it shows up only through its later
    # fulfilment events, more often for a slow carrier (or a delayed one), so those would over-represent it. The
    # target: the mean over those orders of the carrier's share where its customer lives.
    all_orders = mine & (carrier >= 0)
    n_orders = int(all_orders.sum())
    in_region = b.carriers.in_region()
    for i, name in enumerate(b.carriers.names):
        c = names.index(name) if name in names else -2
        rows.append(
            Row(
                f"{name}: share of orders placed in the data",
                _share(int((all_orders & (carrier == c)).sum()), n_orders),
                float(in_region[region[all_orders], i].mean()) if n_orders else float(b.carriers.share[i]),
                n=n_orders,
            )
        )
        sel = mine & (carrier == c)
        span = np.where(delivered_ts[sel] >= 0, delivered_ts[sel], end) - placed_ts[sel]
        got = _km_quantiles(span / DAY, delivered_ts[sel] >= 0, (0.1, 0.5, 0.9))
        want = [float(np.quantile(samples[name], q)) / DAY for q in (0.1, 0.5, 0.9)]
        if name in delayed:
            # Measured on transit below: the delay depends on when a parcel ships, and so does whether the data
            # ends before it arrives; Kaplan-Meier needs censoring independent of the delay.
            want = [None] * 3
        n_done = int((delivered_ts[sel] >= 0).sum())
        for q, g, w in zip((10, 50, 90), got, want, strict=True):
            rows.append(Row(f"{name}: p{q} days placed → delivered", g, w, "days", n_done))
        ranges.append({"label": name, "values": got, "targets": want})
    notes = [
        "Days from ORDER_PLACED to DELIVERED for orders placed in the data. Orders not yet delivered at the end "
        "are censored, not dropped: quantiles are Kaplan-Meier estimates (— where too few orders got that far). "
        "Targets: packing, shipping and transit delays from the scenario, each stage within its working hours "
        "(WAT), for orders placed when the data's were; customers' states mixed by the population's shares."
    ]
    rows += _zone_rows(b, seed, carrier, names, customer, shipped_ts, delivered_ts, end)
    notes.append(
        "By zone: days from SHIPPED to DELIVERED of the parcels shipped in the data, by the customer's home state "
        "(Lagos and the FCT, the hubs, apart): Kaplan-Meier medians, parcels still in transit censored at the end "
        "of the data. Targets: the core's transit for the same parcels (their SHIPPED instants and carriers) with "
        "the zone's states mixed by the population's shares."
    )
    if delays:
        rows += _carrier_delay_rows(b, delays, carrier, names, shipped_ts, delivered_ts, end)
        notes.append(
            "Carrier delays apply by SHIPPED time, so they are measured on transit (SHIPPED to DELIVERED) of the "
            "parcels shipped in the data, inside the window and outside it: Kaplan-Meier medians, parcels still in "
            "transit censored at the end of the data. Placed-to-delivered targets are left out for a delayed carrier."
        )
    delivery = Section(
        "delivery",
        "Delivery time by carrier and by zone",
        rows,
        notes,
        {"kind": "ranges", "rows": ranges},
    )
    return state_section, delivery


def _zone_rows(
    b: Behaviour,
    seed: int,
    carrier: np.ndarray,
    names: list[str],
    customer: np.ndarray,
    shipped_ts: np.ndarray,
    delivered_ts: np.ndarray,
    end: int,
) -> list[Row]:
    """Median transit (SHIPPED to DELIVERED) of the parcels shipped in the data, by the customer's zone, against
    the core's `delivery_times` for the same parcels with the zone's transit factors (`_transit_row`)."""
    pools = default_pools()
    code = np.array([b.carriers.names.index(n) if n in b.carriers.names else -1 for n in names] + [-1])
    sent = (shipped_ts >= 0) & (customer >= 0) & (code[carrier] >= 0)
    state = home_state(seed, np.maximum(customer, 0), pools)
    weights = np.diff(np.r_[0.0, pools.state_cdf])
    factors = transit_factors(b, pools.state_is_hub, pools.state_zone)
    regions = region_of(pools.state_is_hub, pools.state_zone)
    groups = [(label, regions == g) for g, label in enumerate(_REGION_LABELS)]
    r = np.random.default_rng(0)
    rows = []
    for label, states in groups:
        sel = sent & states[state]
        codes = code[carrier[sel]].astype(np.int8)
        cdf = np.cumsum(np.where(states, weights, 0.0))

        def model(at: np.ndarray, codes=codes, cdf=cdf) -> np.ndarray:
            transit = factors[pick(cdf, r.random(at.size))]
            return delivery_times(r, b, at, np.repeat(codes, at.size // max(codes.size, 1)), transit)

        label = f"{label}: median days shipped → delivered"
        rows.append(_transit_row(label, shipped_ts[sel], delivered_ts[sel], end, model))
    return rows


def _carrier_delay_rows(
    b: Behaviour,
    delays: list[Incident],
    carrier: np.ndarray,
    names: list[str],
    shipped_ts: np.ndarray,
    delivered_ts: np.ndarray,
    end: int,
) -> list[Row]:
    """Median transit of parcels shipped inside each carrier delay's window, per carrier (the delayed one should
    take extra_days longer, the others as usual), and of the delayed carrier's parcels shipped outside it.

    The target is the median of the core's own `delivery_times` for the same parcels (their SHIPPED instants, each
    simulated enough times for 20,000 draws, fixed seed; states by the population's shares): the carrier's
    transit, longer outside the hubs and further from Lagos, plus the extra days of the delays covering the SHIPPED
    time, moved into delivery hours (`_transit_row`)."""
    r = np.random.default_rng(0)
    codes = {name: b.carriers.names.index(name) for name in b.carriers.names}
    rows = []
    for inc in delays:
        tag = _tag(inc, f"{inc.params['carrier']} delay")
        inside = (shipped_ts >= inc.start) & (shipped_ts < inc.end)
        groups = [(name, "inside", inside) for name in b.carriers.names]
        groups.insert(1, (inc.params["carrier"], "outside", ~inside))
        for name, where, when in groups:
            sel = (shipped_ts >= 0) & when & (carrier == (names.index(name) if name in names else -2))

            def model(at: np.ndarray, name=name) -> np.ndarray:
                transit = transit_draws(r, b, at.size, codes[name])
                return delivery_times(r, b, at, np.full(at.size, codes[name], np.int8), transit)

            label = f"{tag}: {name} median days shipped → delivered, shipped {where}"
            rows.append(_transit_row(label, shipped_ts[sel], delivered_ts[sel], end, model))
    return rows


def _whole_ms_quantile(v: np.ndarray, q: float) -> float | None:
    """The q-quantile of whole-millisecond latencies `v` interpolated within its 1 ms class: m - 0.5 + (q n -
    #below m) / #at m, the grouped-data quantile. Latencies are rounded to the nearest ms, so a plain sample
    quantile lands on a whole number (or a half) up to half a ms from the continuous law's, which on a million
    events is many of its standard errors; the interpolated one estimates the law's without that bias."""
    if not v.size:
        return None
    k = min(int(q * v.size), v.size - 1)
    m = float(np.partition(v, k)[k])
    return m - 0.5 + (q * v.size - int((v < m).sum())) / int((v == m).sum())


def _transit_row(
    label: str, shipped: np.ndarray, delivered: np.ndarray, end: int, model: Callable[[np.ndarray], np.ndarray]
) -> Row:
    """The Kaplan-Meier median days SHIPPED to DELIVERED of parcels shipped at `shipped` (delivered at `delivered`,
    -1 where not yet: censored at `end`), against the median of the core's delivery instants `model(at)` for the
    same SHIPPED instants repeated to 20,000 draws. The median's standard error is Greenwood's for the survival
    there over the target density at the median (delta method), the density averaged over the day around it
    (deliveries come only in working hours, so it swings within a day on a scale finer than the median's spread)."""
    done = delivered >= 0
    t = (np.where(done, delivered, end) - shipped) / DAY
    if not t.size:
        return Row(label, None, None, "days", 0)
    at = np.repeat(shipped, -(-20_000 // t.size))
    days = np.sort(model(at) - at) / DAY
    target = float(np.quantile(days, 0.5))
    density = float(np.diff(_cdf(days, np.array([target - 0.5, target + 0.5])))[0])
    got, var = _km_median(t, done)
    se = math.sqrt(var) / density if got is not None and density > 0 else None
    # Deliveries come in daytime rounds, so the law has a gap every night: a sample median jumps a night when the
    # share delivered by the target crosses a half, however close it is. The test that holds is on that share:
    # z = (delivered by the target - 0.5) / its Greenwood error, and the row's error is set to give that z.
    share, share_var = _km_share_by(t, done, target)
    if got is not None and share_var > 0 and got != target:
        z = (share - 0.5) / math.sqrt(share_var)
        se = abs(got - target) / abs(z) if z else math.inf
    return Row(label, got, target, "days", int(done.sum()), se=se)


def _km_share_by(t: np.ndarray, observed: np.ndarray, x: float) -> tuple[float, float]:
    """The Kaplan-Meier share of durations ended by `x` (1 - survival there) and Greenwood's variance of it."""
    order = np.argsort(t, kind="stable")
    t, observed = t[order], observed[order]
    at_risk = t.size - np.arange(t.size)
    k = int(np.searchsorted(t, x, side="right"))
    if not k:
        return 0.0, 0.0
    survival = float(np.prod(1 - observed[:k] / np.maximum(at_risk[:k], 1)))
    terms = np.where(observed[:k], 1 / np.maximum(at_risk[:k] * (at_risk[:k] - 1.0), 1.0), 0.0)
    return 1 - survival, survival**2 * float(terms.sum())


def _km_median(t: np.ndarray, observed: np.ndarray) -> tuple[float | None, float]:
    """The Kaplan-Meier median of durations (censored where not observed) and Greenwood's variance of the
    survival estimate at it."""
    order = np.argsort(t, kind="stable")
    t, observed = t[order], observed[order]
    at_risk = t.size - np.arange(t.size)
    survival = np.cumprod(1 - observed / np.maximum(at_risk, 1))
    i = np.flatnonzero((survival <= 0.5 + 1e-9) & observed)
    if not i.size:
        return None, 0.0
    terms = np.where(observed, 1 / np.maximum(at_risk * (at_risk - 1.0), 1.0), 0.0)
    return float(t[i[0]]), float(survival[i[0]] ** 2 * terms[: i[0] + 1].sum())


def _cdf(sorted_samples: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_samples, x, side="right") / sorted_samples.size


def _km_quantiles(t: np.ndarray, observed: np.ndarray, qs: tuple[float, ...]) -> list[float | None]:
    """Kaplan-Meier quantiles of durations `t` where `observed` is False for censored ones."""
    order = np.argsort(t, kind="stable")
    t, observed = t[order], observed[order]
    at_risk = t.size - np.arange(t.size)
    survival = np.cumprod(1 - observed / np.maximum(at_risk, 1))
    out: list[float | None] = []
    for q in qs:
        i = np.flatnonzero((1 - survival >= q - 1e-9) & observed)
        out.append(float(t[i[0]]) if i.size else None)
    return out


def traffic(
    fr: Frame, b: Behaviour, windows: list[tuple[int, int]], incidents: list[Incident], seed: int, population: int
) -> Section:
    opens = fr.ts[fr.code == _OPEN]
    hour = ((opens + WAT_OFFSET) // HOUR) % 24
    counts = np.bincount(hour, minlength=24)
    expected = np.zeros(24)
    # Where the launch ramp is sign-ups, the traffic of the customers signed up: this population's own draw.
    idx = np.arange(population, dtype=np.int64)
    signed, a = sign_ups(seed, idx, b), activity(seed, idx, b)
    joined = signed_up_share(signed, a)
    for t0, t1 in windows:
        lo, length, f = hour_buckets(b, t0, t1 + 1, joined)
        np.add.at(expected, ((lo + WAT_OFFSET) // HOUR) % 24, f * length)
    expected /= max(expected.sum(), 1e-12)
    total = int(counts.sum())
    rows = [
        Row(f"{h:02d}:00 WAT", _share(c, total), float(e), n=total)
        for h, (c, e) in enumerate(zip(counts, expected, strict=True))
    ]
    rows += _day_shape_rows(opens, b, windows, joined)
    notes = [
        "Sessions (OPEN events) by hour of day in West Africa Time (UTC+1). Targets: the scenario's hourly curves "
        "(a weekday's, and a weekend day's for Saturdays, Sundays and public holidays) weighted by how much of each "
        "hour the data covers (weekend, payday and flash-sale factors included); then the share of the morning "
        f"({_MORNING[0]:02d}:00-{_MORNING[1] - 1:02d}:59) and of the evening peak ({_EVENING[0]:02d}:00-"
        f"{_EVENING[1] - 1:02d}:59) among the sessions of weekdays and among those of weekends and holidays."
    ]
    if joined is not None:
        notes.append(
            "The launch's ramp is sign-ups: targets are the mature curve times the share of this population's "
            "activity signed up at each hour (the ramp's factor, up to this population's own draw)."
        )
    sales = [i for i in incidents if i.kind == "flash_sale"]
    if sales:
        rows += _flash_sale_rows(opens, b, windows, sales, joined)
        notes.append(
            "Flash sales (a scenario's, and the calendar's promotions by name): sessions per unit of the intensity "
            "without the sale (the hourly curves with their weekend and payday factors, and any other sale) inside "
            "the sale against outside it, whose ratio is the realised traffic factor of the sale alone; and "
            "sessions inside against the same hours one day earlier, whose target is the ratio of the two "
            "intensities."
        )
    seen = _reach_rows(fr, b, windows, signed, a)
    if seen:
        rows += seen
        notes.append(
            "Customers seen: the share of the population with a session (an OPEN) in the data, and with its first "
            "one in the later half of the data's time (new customers). Targets: each customer's sessions are "
            "Poisson with its activity times the intensity over the data's hours (from its sign-up on, where the "
            "launch's ramp is sign-ups), so it is seen with probability 1 - exp(-mean); the standard error is "
            "sqrt(sum of p(1 - p)) over the population."
        )
    chart = {"kind": "bars", "labels": [f"{h:02d}" for h in range(24)], "values": [r.value for r in rows[:24]]}
    chart |= {"targets": expected.tolist(), "vertical": True}
    chart["over_time"] = _sessions_over_time(opens, b, windows, joined)
    return Section("traffic", "Traffic by hour of day (WAT)", rows, notes, chart)


_MORNING, _EVENING = (6, 10), (19, 23)  # WAT hours [from, to) whose share differs most between the day shapes


def _weekend(b: Behaviour, ts: np.ndarray) -> np.ndarray:
    """Whether each instant falls on a Saturday, a Sunday or a public holiday (WAT): a weekend day's hours."""
    day = (ts + WAT_OFFSET) // DAY
    return ((day + EPOCH_WEEKDAY) % 7 >= 5) | np.isin(day, b.holidays)


def _day_shape_rows(opens: np.ndarray, b: Behaviour, windows: list[tuple[int, int]], joined=None) -> list[Row]:
    """The morning's and the evening peak's share of the sessions of weekdays and of weekend days, against the
    shares the intensity gives them over the hours the data covers (binomial given the day type's sessions)."""
    pieces = [hour_buckets(b, t0, t1 + 1, joined) for t0, t1 in windows]
    lo = np.concatenate([p[0] for p in pieces])
    mass = np.concatenate([p[1] * p[2] for p in pieces])
    lo_hour = ((lo + WAT_OFFSET) // HOUR) % 24
    lo_weekend = _weekend(b, lo)
    hour = ((opens + WAT_OFFSET) // HOUR) % 24
    weekend = _weekend(b, opens)
    rows = []
    for label, is_weekend in (("weekdays", False), ("weekends and holidays", True)):
        mine, expected = weekend == is_weekend, lo_weekend == is_weekend
        n, whole = int(mine.sum()), float(mass[expected].sum())
        for what, (a, z) in (("morning", _MORNING), ("evening peak", _EVENING)):
            k = int((mine & (hour >= a) & (hour < z)).sum())
            target = float(mass[expected & (lo_hour >= a) & (lo_hour < z)].sum()) / whole if whole > 0 else None
            span = f"{a:02d}:00-{z - 1:02d}:59"
            rows.append(Row(f"{label}: {what} {span} WAT of the day type's sessions", _share(k, n), target, n=n))
    return rows


def _flash_sale_rows(
    opens: np.ndarray, b: Behaviour, windows: list[tuple[int, int]], sales: list[Incident], joined=None
) -> list[Row]:
    """Session counts are Poisson given the population (each customer's count is Poisson, spread over the hours in
    proportion to intensity × covered time), so a ratio of two counts has the relative variance 1/N₁ + 1/N₂."""
    pieces = [hour_buckets(b, t0, t1 + 1, joined) for t0, t1 in windows]
    lo = np.concatenate([p[0] for p in pieces])
    length = np.concatenate([p[1] for p in pieces])
    full = np.concatenate([p[2] for p in pieces])

    def covered(a: int, z: int) -> np.ndarray:
        return np.clip(np.minimum(lo + length, z) - np.maximum(lo, a), 0, None).astype(float)

    def opened(a: int, z: int) -> int:
        return int(np.searchsorted(opens, z) - np.searchsorted(opens, a))

    opens = np.sort(opens)
    rows = []
    for inc in sales:
        tag = _tag(inc, "flash sale")
        ov = covered(inc.start, inc.end)
        # the intensity without this sale (other sales, overlapping or not, stay in it on both sides)
        usual = full / traffic_factor_at(b, lo // HOUR * HOUR, only=(inc.start, inc.end, inc.params["traffic_factor"]))
        n_in, u_in, f_in = opened(inc.start, inc.end), float((usual * ov).sum()), float((full * ov).sum())
        n_out, u_out = int(opens.size) - n_in, float((usual * np.clip(length - ov, 0, None)).sum())
        if u_in > 0 and u_out > 0 and n_out:
            target = f_in / u_in
            value = (n_in / u_in) / (n_out / u_out)
            se = _ratio_se(target, 1 / max(n_in, 1), 1 / n_out)
            label = f"{tag}: traffic factor (sessions per intensity without it, inside ÷ outside it)"
            rows.append(Row(label, value, target, "mean", n_in, se=se))
        before = covered(inc.start - DAY, inc.end - DAY)
        n_before, f_before = opened(inc.start - DAY, inc.end - DAY), float((full * before).sum())
        if f_in > 0 and f_before > 0 and n_before:
            target = f_in / f_before
            se = _ratio_se(target, 1 / max(n_in, 1), 1 / n_before)
            label = f"{tag}: sessions inside ÷ the same hours one day earlier"
            rows.append(Row(label, n_in / n_before, target, "mean", n_in, se=se))
    return rows


def _sessions_over_time(opens: np.ndarray, b: Behaviour, windows: list[tuple[int, int]], joined=None) -> dict:
    """Sessions per hour (or day) against the scenario's intensity curve, scaled to the same total."""
    if not opens.size:
        return {"x": [], "values": [], "targets": []}
    width = _bucket_width(int(opens.min()), int(opens.max()))
    keys, inv = _distinct_small(opens // width)
    counts = np.bincount(inv, minlength=keys.size)
    expected = np.zeros(keys.size)
    for t0, t1 in windows:
        lo, length, f = hour_buckets(b, t0, t1 + 1, joined)
        at = np.minimum(np.searchsorted(keys, lo // width), keys.size - 1)
        ok = keys[at] == lo // width
        np.add.at(expected, at[ok], (f * length)[ok])
    expected *= counts.sum() / max(expected.sum(), 1e-12)
    return {"x": (keys * width + width // 2).tolist(), "values": counts.tolist(), "targets": expected.tolist()}


def _everyone(t: np.ndarray) -> np.ndarray:
    return np.ones(np.shape(t))


def _reach_rows(
    fr: Frame, b: Behaviour, windows: list[tuple[int, int]], signed: np.ndarray | None, a: np.ndarray
) -> list[Row]:
    """The share of the population seen (a session in the data), and first seen in the later half of the data's
    covered time, against each customer's Poisson law (`traffic`'s note), from each customer's sign-up instant
    (None: no sign-ups) and activity."""
    population = a.size
    if not windows or population <= 0:
        return []
    # The covered hours, in time order: each bucket's expected sessions per unit of activity (a day's sessions),
    # at the mature curve where the ramp is sign-ups (each customer from its own sign-up on).
    pieces = [hour_buckets(b, t0, t1 + 1, None if signed is None else _everyone) for t0, t1 in sorted(windows)]
    lo = np.concatenate([p[0] for p in pieces])
    length = np.concatenate([p[1] for p in pieces])
    mass = np.concatenate([p[2] * p[1] for p in pieces]) / DAY
    edges = np.stack([lo, lo + length], axis=1).ravel()
    running = np.cumsum(np.stack([np.zeros(lo.size), mass], axis=1).ravel())
    covered = np.cumsum(np.stack([np.zeros(lo.size), length.astype(float)], axis=1).ravel())
    if covered[-1] <= 0:
        return []
    half = int(np.interp(covered[-1] / 2, covered, edges))
    at_half, whole = float(np.interp(half, edges, running)), float(running[-1])
    since = np.zeros(population) if signed is None else np.interp(signed, edges, running)
    m1 = a * np.maximum(at_half - since, 0.0)
    m2 = a * (whole - np.maximum(at_half, since))
    p_seen = -np.expm1(-(m1 + m2))
    p_new = np.exp(-m1) * -np.expm1(-m2)
    opened = (fr.code == _OPEN) & (fr.customer >= 0) & (fr.customer < population)
    first = np.full(population, np.iinfo(np.int64).max)
    np.minimum.at(first, fr.customer[opened], fr.ts[opened])
    seen = first < np.iinfo(np.int64).max
    rows = []
    for label, k, p in (
        ("customers seen: a session in the data, share of the population", int(seen.sum()), p_seen),
        (
            f"customers first seen from {_day_label(half)} (the later half of the data's time), share of the "
            "population",
            int((seen & (first >= half)).sum()),
            p_new,
        ),
    ):
        se = math.sqrt(math.fsum(p * (1 - p))) / population
        rows.append(Row(label, k / population, math.fsum(p) / population, n=population, binomial=False, se=se))
    return rows


def _day_label(t: int) -> str:
    """An instant as its WAT date and time to the minute."""
    wat = np.datetime64(int(t + WAT_OFFSET), "us")
    return f"{str(wat)[:16].replace('T', ' ')} WAT"


def basket(s: Sessions, b: Behaviour, seed: int) -> Section:
    """Checkout totals (CHECKOUT_STARTED's total_amount) against the scenario's basket law, overall, by the number
    of ADD_TO_CART in the session that checked out, by its platform and by where its customer lives (the rebuilt
    sessions: a checkout whose session opened before the data is left out)."""
    chk = s.reached[_CHECKOUT] & (s.checkout_amount >= 0)
    amount, items = s.checkout_amount[chk], s.carts[chk]
    pools = default_pools()
    region = region_of(pools.state_is_hub, pools.state_zone)[home_state(seed, np.maximum(s.customer[chk], 0), pools)]
    platform = s.platform[chk]
    scale = spend_scale(b, region, platform)
    law_items, law = basket_law(b, scales=scale)
    rows = [
        Row("median basket, every checkout (NGN)", _median_or_none(amount), float(np.median(law)), "naira",
            amount.size, se=_median_se(law, amount.size)),
        Row("items in the cart at checkout (mean)", float(items.mean()) if items.size else None,
            float(law_items.mean()), "mean", items.size, se=float(law_items.std()) / math.sqrt(max(items.size, 1))),
    ]  # fmt: skip
    groups = [(f"{j} item{'s' if j > 1 else ''} in the cart", items == j, j) for j in (1, 2, 3)]
    groups += [(f"on {name}", platform == p, None) for p, name in enumerate(PLATFORMS)]
    groups += [(_REGION_LABELS[g], region == g, None) for g in range(len(REGIONS))]
    for label, sel, j in groups:
        mine, law_j = amount[sel], basket_law(b, BASKET_DRAWS // 4, items=j, scales=scale[sel])[1]
        rows.append(Row(f"median basket, {label} (NGN)", _median_or_none(mine), float(np.median(law_j)), "naira",
                        mine.size, se=_median_se(law_j, mine.size)))  # fmt: skip
    if math.isfinite(b.free_shipping_ngn):  # baskets topped up to free shipping bunch just above it
        free = b.free_shipping_ngn
        for what, lo, hi in (("just short of", free - 2_000, free), ("just above", free, free + 2_000)):
            rows.append(Row(f"checkouts {what} free shipping (NGN {lo:,.0f}-{hi - 1:,.0f})",
                            _share(int(((amount >= lo) & (amount < hi)).sum()), amount.size),
                            float(((law >= lo) & (law < hi)).mean()), n=amount.size))  # fmt: skip
    one, law_1 = amount[items == 1], basket_law(b, BASKET_DRAWS // 4, items=1, scales=scale[items == 1])[1]
    rows.append(Row("1-item baskets on a price point (ending in 99, 50 or 00)",
                    _share(int(np.isin(one % 100, (99, 50, 0)).sum()), one.size),
                    float(np.isin(law_1 % 100, (99, 50, 0)).mean()), n=one.size))  # fmt: skip
    notes = [
        "Totals of CHECKOUT_STARTED (whole naira), overall and by the ADD_TO_CART count, the platform of the session "
        "that checked out and where its customer lives. Targets: the scenario's basket law by a fixed-seed Monte "
        f"Carlo ({BASKET_DRAWS:,} baskets; {BASKET_DRAWS // 4:,} per row below the first): item prices on price "
        "points, their median times the factors of the checkouts' own regions and platforms, summed over the items "
        "in the cart and clipped to the basket's min and max; a median's standard error is sqrt(1/4n) over the law's "
        "density there."
    ]
    if tops_up(b):
        notes.append(
            f"Baskets short of free shipping (NGN {b.free_shipping_ngn:,.0f}) by at most NGN {b.top_up_gap_ngn:,.0f} "
            f"get one more item with probability {b.top_up:g} (the law's too): totals bunch just above it."
        )
    if not b.basket_per_item:
        notes.append("This scenario predates item prices: one lognormal total per basket, whatever the cart holds.")
    return Section("basket", "Basket totals", rows, notes)


_REGION_LABELS = ("Lagos and the FCT", *(z.replace("_", "-") for z in ZONES))


def _median_or_none(x: np.ndarray) -> float | None:
    return float(np.median(x)) if x.size else None


def summarise(loaded: Loaded) -> Summary:
    b, incidents, note = scenario_of(loaded.docs)
    fr = loaded.frame
    seed = int(loaded.docs[-1]["options"]["seed"])
    if fr.ts.size:  # the weekly random payment outages of the data's weeks, as the runs drew them
        b, drawn = with_recurring(b, seed, int(fr.ts.min()), int(fr.ts.max()) + 1)
        incidents = incidents + [
            Incident(str(i["kind"]), _us(i["start"]), _us(i["end"]), {k: v for k, v in i.items() if k not in _WINDOW})
            for i in drawn
        ]
    end = max((w[1] for w in loaded.windows), default=0)
    thresholds = {int(d["options"]["latency_threshold_ms"]) for d in loaded.docs}
    threshold = min(thresholds)
    s = sessions(fr)
    state, delivery = orders(fr, b, end, incidents, seed)
    sections = [
        event_mix(fr, s, b),
        funnel(fr, s, b, end, incidents, seed),
        payments(fr, s, b, end, incidents, seed),
        latency(fr, b, threshold, incidents, seed),
        state,
        delivery,
        traffic(fr, b, loaded.windows, incidents, seed, int(loaded.docs[-1]["options"]["customers"])),
        basket(s, b, seed),
    ]
    if len(thresholds) > 1:
        sections[3].notes.append(f"The runs use different thresholds {sorted(thresholds)}; targets use {threshold}.")
    first = int(fr.ts.min()) if fr.ts.size else 0
    return Summary([d["run_id"] for d in loaded.docs], int(fr.ts.size), first, end, note, incidents, sections)


def report(out: Path, run_id: str | None = None) -> Summary:
    return summarise(load(out, run_id))
