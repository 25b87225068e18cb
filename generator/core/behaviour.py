"""The behavioural parameters of the simulation, from a scenario (the packaged `scenarios/default.toml` unless
another is given), as arrays the core uses.

Mixes keyed by a name in the schema (platforms, payment methods, event types) become arrays in the schema's code
order, so the core indexes them by the same integer codes it writes. Incidents become, per kind, arrays of
[start, end) windows in microseconds since the epoch (UTC) with their target codes and values; data faults, their
rates per event in FAULT_KINDS order. `from_dict` trusts its input: `generator.scenario` validates a scenario file
before it gets here.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources

import numpy as np

from generator.core.events import HOUR
from generator.core.faults import FAULT_KINDS
from generator.schema import EVENT_CODE, EVENT_TYPES, PAYMENT_METHODS, PLATFORMS

# The mobile network operators whose round trips `[latency] network_ms` gives (nigeria.json has their prefixes).
OPERATORS = ("MTN", "Airtel", "Glo", "9mobile")
# Nigeria's six geopolitical zones, in the order of `Behaviour.zone_factor` (each state's zone is in nigeria.json).
ZONES = ("south_west", "south_south", "south_east", "north_central", "north_west", "north_east")
# Where customers live, for what they spend: Lagos and the FCT (the hubs), then each zone outside them.
REGIONS = ("lagos_fct", *ZONES)


def region_of(is_hub: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """Each state's index in REGIONS: 0 for the hubs, else 1 + its zone's index."""
    return np.where(is_hub, 0, 1 + zone)


def _latency(lat: dict) -> dict:
    """The round trips and server times of a scenario's [latency]. One recorded before the operators' round
    trips (an older run's manifest) had one floor for every customer at every hour (none before 0.3) and gave the
    whole median: its server time's median is that less the floor."""
    if "network_ms" in lat:
        return {
            "latency_network_ms": _ordered(lat["network_ms"], OPERATORS, "latency.network_ms"),
            "latency_peak_load": float(lat["peak_load"]),
            "latency_customer_sigma": float(lat.get("customer_sigma", 0.0)),
            # A scenario recorded before the key existed (an older run's manifest): the customer's round trip on
            # every event, fulfilment included.
            "latency_fulfilment_round_trip": bool(lat.get("fulfilment_round_trip", True)),
            "latency_server_ms": _ordered(lat["server_median_ms"], PLATFORMS, "latency.server_median_ms"),
        }
    floor = float(lat.get("floor_ms", 0.0))
    return {
        "latency_network_ms": np.full(len(OPERATORS), floor),
        "latency_peak_load": 0.0,
        "latency_customer_sigma": 0.0,
        "latency_fulfilment_round_trip": True,
        "latency_server_ms": _ordered(lat["median_ms"], PLATFORMS, "latency.median_ms") - floor,
    }


def _ordered(mix: dict[str, float], names: tuple[str, ...], what: str) -> np.ndarray:
    unknown = set(mix) - set(names)
    if unknown:
        raise ValueError(f"{what}: unknown keys {sorted(unknown)}")
    return np.array([float(mix.get(n, 0.0)) for n in names])


def _factor_table(table: dict[str, dict[str, float]], rows: tuple[str, ...], what: str) -> np.ndarray:
    """Factors per payment method per row (a region, a platform) as a (rows, PAYMENT_METHODS) array; a row or a
    method left out is 1."""
    unknown = set(table) - set(rows)
    if unknown:
        raise ValueError(f"{what}: unknown keys {sorted(unknown)}")
    out = np.ones((len(rows), len(PAYMENT_METHODS)))
    for i, name in enumerate(rows):
        given = table.get(name, {})
        out[i] = _ordered({**dict.fromkeys(PAYMENT_METHODS, 1.0), **given}, PAYMENT_METHODS, f"{what}.{name}")
    return out


@dataclass(frozen=True, eq=False)
class Carriers:
    names: tuple[str, ...]
    share: np.ndarray
    transit_days: np.ndarray
    tracking_prefix: tuple[str, ...]
    tracking_digits: np.ndarray
    serves: np.ndarray  # bool (carrier, REGIONS): where each carrier delivers

    def in_region(self) -> np.ndarray:
        """(REGIONS, carrier): each carrier's share of the orders of customers in each region, its share among the
        carriers serving the region."""
        weights = self.share[None, :] * self.serves.T
        return weights / weights.sum(axis=1, keepdims=True)

    def region_cdf(self) -> np.ndarray:
        """`in_region` as a segmented cdf (region g spans [g, g + 1]) for `streams.segment_pick`."""
        p = self.in_region()
        return (np.arange(len(REGIONS))[:, None] + np.cumsum(p, axis=1)).ravel()


FULFILMENT_STAGES = ("PACKED", "SHIPPED", "DELIVERED")


# Working hours of a scenario recorded before they existed (an older run's manifest): around the clock, as its
# runs were generated, so `gen report` reads such a run against the targets it was generated with. (Continuing
# such a timeline is refused: its customers' identities were drawn another way, see IDENTITY_SCHEME.)
AROUND_THE_CLOCK = {
    stage: {days: [0, 24] for days in ("weekdays", "saturday", "sunday")} for stage in FULFILMENT_STAGES
}


def working_hours(table: dict) -> np.ndarray:
    """A scenario's `fulfilment.hours_wat` as [opening, closing) microseconds after midnight WAT, shaped (stage, day
    of the week, 2) with stages in FULFILMENT_STAGES order and days from Monday; an empty span is a closed day."""
    days = ("weekdays",) * 5 + ("saturday", "sunday")
    hours = [[table[stage][d] for d in days] for stage in FULFILMENT_STAGES]
    return np.rint(np.array(hours, dtype=float) * HOUR).astype(np.int64)


def holiday_days(dates: list) -> np.ndarray:
    """Public holidays (TOML dates or ISO strings, as a scenario or a stored manifest has them) as sorted WAT day
    numbers: days since 1970-01-01."""
    return np.array(sorted({instant_us(d) // (24 * HOUR) for d in dates}), np.int64)


def weekend_curve(hourly: list, weekend: list | None) -> np.ndarray:
    """A weekend day's hourly shape scaled to the weekday curve's mean, so that `weekend_factor` alone sets how much
    busier the whole day is; the weekday curve itself when the scenario has no weekend curve."""
    base = np.array(hourly, dtype=float)
    if weekend is None:
        return base
    w = np.array(weekend, dtype=float)
    return w * (base.mean() / w.mean())


_ANCHOR = "black-friday"  # the Friday after the fourth Thursday of November
_MONTH_DAY = re.compile(r"^(\d\d)-(\d\d)$")
_ANCHORED = re.compile(r"^black-friday(?:([+-])(\d{1,3}))?$")


@dataclass(frozen=True)
class Promotion:
    """A yearly sale (`[[calendar.promotions]]`): from 00:00 WAT of its first day for `days` days, sessions times
    `traffic_factor` and the checkout probability times `conversion_factor`. Its first day is a month and day
    ("11-11") or Black Friday with an offset in days ("black-friday", "black-friday+3")."""

    name: str
    month: int  # 0 for Black Friday
    day: int  # the day of the month, or the offset in days from Black Friday
    days: int
    traffic_factor: float
    conversion_factor: float

    @classmethod
    def of(cls, d: dict) -> Promotion:
        month, day = parse_promotion_start(str(d["start"]))
        return cls(
            str(d["name"]), month, day, int(d["days"]), float(d["traffic_factor"]), float(d["conversion_factor"])
        )

    def first_day(self, year: int) -> date:
        """Its first day (WAT) in `year`."""
        if self.month:
            return date(year, self.month, self.day)
        return black_friday(year) + timedelta(days=self.day)


def parse_promotion_start(text: str) -> tuple[int, int]:
    """(month, day) of "MM-DD", or (0, offset in days) of "black-friday[+-N]". Raises ValueError for anything else,
    and for a month and day some year lacks (29 February)."""
    if m := _MONTH_DAY.match(text):
        month, day = int(m[1]), int(m[2])
        try:
            date(2023, month, day)  # a year without 29 February
        except ValueError:
            raise ValueError(f"{text!r} is not a day of every year (MM-DD)") from None
        return month, day
    if m := _ANCHORED.match(text):
        return 0, (-1 if m[1] == "-" else 1) * int(m[2] or 0)
    raise ValueError(f"{text!r} is neither a month and day (MM-DD) nor black-friday with an offset (black-friday+3)")


def black_friday(year: int) -> date:
    """The Friday after the fourth Thursday of November (23 to 29 November)."""
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + timedelta(days=1)


def instant_us(value: datetime | date | str) -> int:
    """An instant as microseconds since the epoch: a TOML datetime or date, or an ISO 8601 string; UTC when it
    has no offset. Raises ValueError for anything else."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date or time") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise ValueError(f"{value!r} is not a date or time")
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return (value - _EPOCH) // _MICROSECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution


@dataclass(frozen=True, eq=False)
class Windows:
    """Incidents of one kind: [start_us, end_us) windows, the code each one targets (a payment method, platform or
    carrier; -1 when it targets everything) and its value (a failure rate, a factor, extra days)."""

    start_us: np.ndarray
    end_us: np.ndarray
    target: np.ndarray
    value: np.ndarray

    @classmethod
    def of(cls, rows: list[tuple[int, int, int, float]]) -> Windows:
        a = np.array(rows, dtype=object).reshape(len(rows), 4)
        return cls(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int64), a[:, 3].astype(float))

    def __len__(self) -> int:
        return self.start_us.size


@dataclass(frozen=True, eq=False)
class Incidents:
    """A scenario's incidents by kind; a flash sale is one window in `traffic` and the same one in `conversion`."""

    payment_outage: Windows  # target: payment method code; value: failure probability per attempt
    latency_degradation: Windows  # target: platform code; value: latency factor
    traffic: Windows  # flash sales: session intensity factor
    conversion: Windows  # flash sales: checkout probability factor
    carrier_delay: Windows  # target: carrier index; value: extra days in transit

    def __bool__(self) -> bool:
        return any(
            len(w)
            for w in (self.payment_outage, self.latency_degradation, self.traffic, self.conversion, self.carrier_delay)
        )

    @classmethod
    def from_list(cls, items: list[dict], carriers: tuple[str, ...]) -> Incidents:
        rows: dict[str, list[tuple[int, int, int, float]]] = {
            k: [] for k in ("payment_outage", "latency_degradation", "traffic", "conversion", "carrier_delay")
        }
        for inc in items:
            span = (instant_us(inc["start"]), instant_us(inc["end"]))
            kind = inc["kind"]
            if kind == "payment_outage":
                rows[kind].append((*span, PAYMENT_METHODS.index(inc["method"]), float(inc["failure_rate"])))
            elif kind == "latency_degradation":
                rows[kind].append((*span, PLATFORMS.index(inc["platform"]), float(inc["factor"])))
            elif kind == "flash_sale":
                rows["traffic"].append((*span, -1, float(inc["traffic_factor"])))
                rows["conversion"].append((*span, -1, float(inc["conversion_factor"])))
            elif kind == "carrier_delay":
                rows[kind].append((*span, carriers.index(inc["carrier"]), float(inc["extra_days"])))
            else:
                raise ValueError(f"unknown incident kind {kind!r}")
        return cls(**{k: Windows.of(v) for k, v in rows.items()})


@dataclass(frozen=True, eq=False)
class Behaviour:
    raw: dict
    customers: int
    sessions_per_day: float
    activity_shape: float
    platform_mix: np.ndarray
    platform_loyalty: float
    # (REGIONS, PLATFORMS): the mix's weights times these where the customer lives (population.platform_by_region);
    # None (a scenario before 0.7): the mix everywhere
    platform_region_factor: np.ndarray | None
    hourly_wat: np.ndarray
    # a weekend day's (and a public holiday's) hourly shape, scaled to hourly_wat's mean (the same day total)
    weekend_hourly_wat: np.ndarray
    weekend_factor: float
    payday_factor: float
    payday_from_day: int
    # By days since the payday (the 0th is payday_from_day): the share of payday_factor's rise each day has; none
    # (an older scenario): all of it from payday_from_day to the month's end, a step.
    payday_curve: np.ndarray | None
    # A launch's adoption: traffic times ramp_first before ramp_start_us, growing linearly to 1 over ramp_days.
    ramp_start_us: int
    ramp_days: float
    ramp_first: float
    # Whether the ramp is customers signing up (each customer's sessions from its own sign-up instant on, the share
    # signed up following the ramp) rather than every customer shopping at the ramp's factor of its rate.
    ramp_sign_ups: bool
    login: float
    bounce: float
    extra_views_mean: float
    extra_views_shape: float  # negative binomial shape of the extra views (inf: Poisson, as before the key)
    add_to_cart: float
    cart_factor: np.ndarray  # per platform: add_to_cart times this in its sessions (sessions.cart_probability)
    propensity_sigma: float  # a customer's own factor on add_to_cart: lognormal, mean 1 (population.propensity)
    add_more: float
    # A session that adds to its cart views this many times as many products beyond its first (its extra views
    # a negative binomial of shape and mean this many times the others'); 1 before the key (sessions.simulate)
    carted_views_factor: float
    cart_anywhere: bool  # adds after any of a session's views (sessions._carts_among_views); before 0.7 not
    checkout: float
    abandon_at_payment: float  # share of checkouts that end at CHECKOUT_STARTED, with no payment attempt
    # ... of those whose basket reaches free_shipping_ngn (no delivery fee shown): lifecycle.abandon_probability
    abandon_free_shipping: float
    free_shipping_ngn: float  # inf: no threshold (a scenario before 0.7)
    # A basket short of free_shipping_ngn by at most top_up_gap_ngn gets one more item with probability top_up
    # (lifecycle.top_up); 0 before the key
    top_up: float
    top_up_gap_ngn: float
    method_mix: np.ndarray
    method_loyalty: float  # share of checkouts paid first with the customer's usual method (population.usual_method)
    # A checkout's method weights: the mix times a factor per method where its customer lives (REGIONS, methods)
    # and one on its platform (PLATFORMS, methods), normalised (lifecycle.method_table); none of them USSD above
    # ussd_max_ngn (the banks' cap on a USSD transfer).
    method_region_factor: np.ndarray
    method_platform_factor: np.ndarray
    ussd_max_ngn: float
    # weekly random payment outages (incidents.weekly_outages): mean a week, median hours, failure rate, methods
    outages_per_week: float
    outage_hours: float
    outage_failure_rate: float
    outage_method: np.ndarray
    method_failure: np.ndarray
    retry: float
    switch_method: float
    max_attempts: int
    basket_per_item: bool  # a basket is the sum of its items' prices (False: one lognormal total, older runs)
    basket_item_median: float  # median item price (NGN; the median basket total where not per item)
    basket_item_sigma: float
    basket_charm: float  # share of item prices on a round hundred that end in 99 instead
    basket_min: int
    basket_max: int
    basket_region_factor: np.ndarray  # the median item price times this where the customer lives (REGIONS)
    basket_platform_factor: np.ndarray  # and times this on the session's platform
    packed_hours: float
    shipped_hours: float
    hours_sigma: float
    transit_sigma: float
    outside_hubs_factor: float
    zone_factor: np.ndarray  # outside the hubs, transit times a factor per geopolitical zone (ZONES order)
    carriers: Carriers
    hours_wat: np.ndarray  # when each fulfilment stage can happen: working_hours()
    pickups_wat: np.ndarray  # SHIPPED at these times of day (microseconds after midnight WAT), sorted; none: any time
    pickup_spread: float  # microseconds: SHIPPED a uniform time up to this after its pickup
    failed_attempt: float  # share of first delivery attempts that fail: DELIVERED with the next working day's round
    delivery_rounds: bool  # DELIVERED with the next day's round, spread over the hours (lifecycle.in_working_hours)
    tracking_permuted: bool  # tracking numbers a keyed permutation of the serial (lifecycle.tracking_numbers)
    holidays: np.ndarray  # public holidays, WAT day numbers (days since 1970-01-01), sorted: Sunday's hours
    promotions: tuple[Promotion, ...]  # yearly sales (incidents.promotion_sales expands them into flash sales)
    gap_seconds: np.ndarray  # median gap before each event type, indexed by event code
    gap_sigma: float
    retry_pause_seconds: float
    authorization_factor: np.ndarray  # per payment method: PAYMENT_AUTHORIZED's gap (above the floor) times this
    # Latency is the customer's network round trip (its operator's, longer when traffic is above its mean) plus the
    # platform's lognormal server time: `shard.network_ms`, `shard.latency_ms`.
    latency_network_ms: np.ndarray  # per OPERATORS: the idle round trip
    latency_peak_load: float  # the round trip times 1 + peak_load x (traffic intensity - 1) above the mean
    latency_customer_sigma: float  # each customer's own factor on it: lognormal, median 1 (population.network_quality)
    latency_fulfilment_round_trip: bool  # PACKED, SHIPPED, DELIVERED carry the customer's round trip too (before 0.6)
    latency_server_ms: np.ndarray  # per platform: the server time's median
    latency_server_factor: np.ndarray  # per event code: the server time's median times this (what the event asks)
    latency_sigma: np.ndarray
    latency_threshold_ms: int
    incidents: Incidents = field(default_factory=lambda: Incidents.from_list([], ()))
    faults: np.ndarray = field(default_factory=lambda: np.zeros(len(FAULT_KINDS)))  # rates per event, FAULT_KINDS

    @property
    def methods_vary(self) -> bool:
        """Whether a checkout's payment method depends on who pays and how much (else every checkout draws from
        the mix, as before these keys)."""
        factors = (self.method_region_factor != 1).any() or (self.method_platform_factor != 1).any()
        return bool(factors or math.isfinite(self.ussd_max_ngn))

    @classmethod
    def from_dict(cls, d: dict) -> Behaviour:
        p, t, f, pay, b, ful, s, lat = (
            d["population"],
            d["traffic"],
            d["funnel"],
            d["payment"],
            d["basket"],
            d["fulfilment"],
            d["session"],
            d["latency"],
        )
        car = ful["carriers"]
        names = tuple(car)
        gaps = np.zeros(len(EVENT_TYPES))
        for name, sec in s["gap_seconds"].items():
            gaps[EVENT_CODE[name]] = float(sec)
        return cls(
            raw=d,
            customers=int(p["customers"]),
            sessions_per_day=float(p["sessions_per_day"]),
            activity_shape=float(p["activity_shape"]),
            platform_mix=_ordered(d["platform"]["mix"], PLATFORMS, "platform.mix"),
            platform_loyalty=float(d["platform"]["loyalty"]),
            platform_region_factor=(
                np.array(
                    [_ordered(d["platform"]["region_factor"][g], PLATFORMS, "platform.region_factor") for g in REGIONS]
                )
                if "region_factor" in d["platform"]
                else None
            ),
            hourly_wat=np.array(t["hourly_wat"], dtype=float),
            # A scenario recorded before the key existed (an older run's manifest): every day the same shape.
            weekend_hourly_wat=weekend_curve(t["hourly_wat"], t.get("weekend_hourly_wat")),
            weekend_factor=float(t["weekend_factor"]),
            payday_factor=float(t["payday_factor"]),
            payday_from_day=int(t["payday_from_day"]),
            # A scenario recorded before the key existed (an older run's manifest): a step at payday_from_day.
            payday_curve=np.array(t["payday_curve"], dtype=float) if "payday_curve" in t else None,
            # A scenario recorded before the ramp (an older run's manifest) has none: traffic at its full curve.
            ramp_start_us=instant_us(t.get("ramp_start", "1970-01-01")),
            ramp_days=float(t.get("ramp_days", 0.0)),
            ramp_first=float(t.get("ramp_first_factor", 1.0)),
            # A scenario recorded before the key (an older run's manifest): every customer at the ramp's factor.
            ramp_sign_ups=bool(t.get("ramp_sign_ups", False)),
            login=float(f["login"]),
            bounce=float(f["bounce"]),
            extra_views_mean=float(f["extra_views_mean"]),
            extra_views_shape=float(f.get("extra_views_shape", math.inf)),  # runs written before it: Poisson
            add_to_cart=float(f["add_to_cart"]),
            # A scenario recorded before the key existed (an older run's manifest): every platform alike.
            cart_factor=_ordered(
                f.get("add_to_cart_factor", dict.fromkeys(PLATFORMS, 1.0)), PLATFORMS, "funnel.add_to_cart_factor"
            ),
            # A scenario recorded before the key existed (an older run's manifest): every customer alike.
            propensity_sigma=float(f.get("propensity_sigma", 0.0)),
            add_more=float(f["add_more"]),
            # A scenario recorded before the key existed (an older run's manifest): views whatever the cart.
            carted_views_factor=float(f.get("carted_views_factor", 1.0)),
            # A scenario recorded before the key existed (an older run's manifest): the adds after the plain views.
            cart_anywhere=bool(f.get("cart_anywhere", False)),
            checkout=float(f["checkout"]),
            # A scenario recorded before the key existed (an older run's manifest) had no abandonment at payment.
            abandon_at_payment=float(f.get("abandon_at_payment", 0.0)),
            # A scenario recorded before the keys existed (an older run's manifest): one abandonment for all.
            abandon_free_shipping=float(f.get("abandon_free_shipping", f.get("abandon_at_payment", 0.0))),
            free_shipping_ngn=float(b.get("free_shipping_ngn", math.inf)),
            # A scenario recorded before the keys existed (an older run's manifest): no basket is topped up.
            top_up=float(b.get("top_up", 0.0)),
            top_up_gap_ngn=float(b.get("top_up_gap_ngn", 0.0)),
            method_mix=_ordered(pay["mix"], PAYMENT_METHODS, "payment.mix"),
            # A scenario recorded before the key existed (an older run's manifest): methods drawn afresh each time.
            method_loyalty=float(pay.get("loyalty", 0.0)),
            # A scenario recorded before these keys (an older run's manifest): the same mix everywhere, any amount.
            method_region_factor=_factor_table(pay.get("region_factor", {}), REGIONS, "payment.region_factor"),
            method_platform_factor=_factor_table(pay.get("platform_factor", {}), PLATFORMS, "payment.platform_factor"),
            ussd_max_ngn=float(pay.get("ussd_max_ngn", math.inf)),
            # A scenario recorded before weekly outages (an older run's manifest): the scenario's incidents only.
            outages_per_week=float(pay.get("outages", {}).get("per_week", 0.0)),
            outage_hours=float(pay.get("outages", {}).get("hours_median", 1.0)),
            outage_failure_rate=float(pay.get("outages", {}).get("failure_rate", 0.0)),
            outage_method=_ordered(
                pay.get("outages", {}).get("mix", dict.fromkeys(PAYMENT_METHODS, 1.0)),
                PAYMENT_METHODS,
                "payment.outages.mix",
            ),
            method_failure=_ordered(pay["failure"], PAYMENT_METHODS, "payment.failure"),
            retry=float(pay["retry"]),
            switch_method=float(pay["switch_method"]),
            max_attempts=int(pay["max_attempts"]),
            # A scenario recorded before item prices (an older run's manifest) has one lognormal basket total.
            basket_per_item="item_median_ngn" in b,
            basket_item_median=float(b.get("item_median_ngn", b.get("median_ngn", 0.0))),
            basket_item_sigma=float(b.get("item_sigma", b.get("sigma", 0.0))),
            basket_charm=float(b.get("charm", 0.0)),
            basket_min=int(b["min_ngn"]),
            basket_max=int(b["max_ngn"]),
            # A scenario recorded before these keys (an older run's manifest): the same prices for everyone.
            basket_region_factor=_ordered(
                b.get("region_factor", dict.fromkeys(REGIONS, 1.0)), REGIONS, "basket.region_factor"
            ),
            basket_platform_factor=_ordered(
                b.get("platform_factor", dict.fromkeys(PLATFORMS, 1.0)), PLATFORMS, "basket.platform_factor"
            ),
            packed_hours=float(ful["packed_hours_median"]),
            shipped_hours=float(ful["shipped_hours_median"]),
            hours_sigma=float(ful["hours_sigma"]),
            transit_sigma=float(ful["transit_sigma"]),
            outside_hubs_factor=float(ful["outside_hubs_factor"]),
            # A scenario recorded before zones (an older run's manifest): every zone outside the hubs alike.
            zone_factor=_ordered(ful.get("zone_factor", dict.fromkeys(ZONES, 1.0)), ZONES, "fulfilment.zone_factor"),
            hours_wat=working_hours(ful.get("hours_wat", AROUND_THE_CLOCK)),
            # A scenario recorded before the key existed (an older run's manifest): delivered when due.
            # A scenario recorded before the keys existed (an older run's manifest): shipped at any time in the hours.
            pickups_wat=np.rint(np.sort(np.array(ful.get("pickups_wat", []), dtype=float)) * HOUR).astype(np.int64),
            pickup_spread=float(ful.get("pickup_minutes", 0.0)) * 60e6,
            delivery_rounds=bool(ful.get("delivery_rounds", False)),
            failed_attempt=float(ful.get("failed_attempt", 0.0)),  # before 0.7: every first attempt delivers
            # A scenario recorded before the key existed: the serial times a constant plus an offset, so an order
            # pending across runs keeps the number its earlier events carry.
            tracking_permuted=bool(ful.get("tracking_permuted", False)),
            # A scenario recorded before the calendar (an older run's manifest) had no public holidays.
            holidays=holiday_days(d.get("calendar", {}).get("public_holidays", [])),
            # A scenario recorded before promotions (an older run's manifest) had none.
            promotions=tuple(Promotion.of(p) for p in d.get("calendar", {}).get("promotions", [])),
            carriers=Carriers(
                names=names,
                share=np.array([float(car[n]["share"]) for n in names]),
                transit_days=np.array([float(car[n]["transit_days"]) for n in names]),
                tracking_prefix=tuple(str(car[n]["tracking_prefix"]) for n in names),
                tracking_digits=np.array([int(car[n]["tracking_digits"]) for n in names]),
                # A carrier without `regions` (as every one in an older run's manifest) delivers everywhere.
                serves=np.array([[g in car[n].get("regions", REGIONS) for g in REGIONS] for n in names]),
            ),
            gap_seconds=gaps,
            gap_sigma=float(s["gap_sigma"]),
            retry_pause_seconds=float(s["retry_pause_seconds"]),
            # A scenario recorded before the key existed (an older run's manifest): every method alike.
            authorization_factor=_ordered(
                s.get("authorization_factor", dict.fromkeys(PAYMENT_METHODS, 1.0)),
                PAYMENT_METHODS,
                "session.authorization_factor",
            ),
            **_latency(lat),
            # A scenario recorded before the key existed (an older run's manifest): every event type alike.
            latency_server_factor=_ordered(
                lat.get("server_factor", dict.fromkeys(EVENT_TYPES, 1.0)), EVENT_TYPES, "latency.server_factor"
            ),
            latency_sigma=_ordered(lat["sigma"], PLATFORMS, "latency.sigma"),
            latency_threshold_ms=int(lat["threshold_ms"]),
            incidents=Incidents.from_list(d.get("incidents", []), names),
            faults=np.array([float(d.get("faults", {}).get(k, 0.0)) for k in FAULT_KINDS]),
        )


DEFAULT_SCENARIO = "scenarios/default.toml"  # inside the package


def default_scenario() -> dict:
    """The built-in default scenario as parsed TOML (a fresh dict each call)."""
    text = resources.files("generator").joinpath(DEFAULT_SCENARIO).read_text(encoding="utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def default_behaviour() -> Behaviour:
    return Behaviour.from_dict(default_scenario())
