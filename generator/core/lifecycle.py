"""Payments and order lifecycles: attempts, failures and retries at checkout, then PACKED, SHIPPED, DELIVERED.

An order is born at ORDER_PLACED; its carrier and tracking number are fixed from PAYMENT_AUTHORIZED on.
Fulfilment comes hours and days later, by carrier, slower outside the Lagos and Abuja hubs and slower still the
further the customer's geopolitical zone lies from Lagos, each stage within its working hours in West Africa Time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.core.behaviour import REGIONS, Behaviour
from generator.core.events import DAY, EPOCH_WEEKDAY, HOUR, WAT_OFFSET, Events
from generator.core.incidents import extra_transit_days, method_failure_at
from generator.core.streams import hash_u64, pick, segment_pick
from generator.schema import EVENT_CODE, PAYMENT_METHODS, PLATFORMS

_PACKED, _SHIPPED, _DELIVERED = (EVENT_CODE[k] for k in ("PACKED", "SHIPPED", "DELIVERED"))


@dataclass
class Placed:
    """Orders just placed: ORDER_PLACED time, customer, platform and the start of the session that placed
    them, in order-number order."""

    ts: np.ndarray
    customer: np.ndarray
    platform: np.ndarray
    origin: np.ndarray


def pay(
    rng: np.random.Generator,
    b: Behaviour,
    k: int,
    *,
    ts: np.ndarray | None = None,
    usual: np.ndarray | None = None,
    cell: np.ndarray | None = None,
    amount: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Payment attempts of `k` checkouts: (failures before the outcome, success, method of the last attempt), from
    `payment_draws` and `settle` (see there)."""
    return settle(b, payment_draws(rng, b, k, usual is not None), ts=ts, usual=usual, cell=cell, amount=amount)


def payment_draws(rng: np.random.Generator, b: Behaviour, k: int, loyal: bool) -> np.ndarray:
    """The uniforms `settle` needs for `k` checkouts (`loyal`: their customers' usual methods will be given), one
    row per use, in the order every generator version has drawn them: the method, whether the usual one is taken,
    whether the checkout is abandoned, then per attempt whether it fails, is retried, which other method and
    whether to switch. Drawn before the basket, so a checkout's method can depend on its amount without moving
    any other draw."""
    rows = 2 + (loyal and b.method_loyalty > 0) + 4 * b.max_attempts
    return rng.random((rows, k))


def settle(
    b: Behaviour,
    u: np.ndarray,
    *,
    ts: np.ndarray | None = None,
    usual: np.ndarray | None = None,
    cell: np.ndarray | None = None,
    amount: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Payment attempts of checkouts given their `payment_draws` `u`: (failures before the outcome, success,
    method of the last attempt).

    A share `abandon_at_payment` of checkouts is abandoned before any attempt (delivery fee shown, account or OTP
    friction, a changed mind; `abandon_free_shipping` of those whose `amount` ships free): no failure and no
    success (their method, drawn like the others', is never written).
    `ts` (microseconds, UTC) is when each checkout happens: every attempt of a checkout made inside a payment
    outage of its method fails at the outage's rate. Without `ts`, no outage applies. `usual` is each checkout's
    customer's usual method, its first attempt's with probability `method_loyalty` (else drawn from the checkout's
    weights). A checkout's weights (`method_table`) are those of its `cell` (`method_cell`: where its customer
    lives and its platform; none: the plain mix) and, where its `amount` (kobo) is above `ussd_max_ngn`, leave
    USSD out: such a checkout never pays by USSD, its usual method included. A retrying customer switches, with
    probability `switch_method`, to another method by the same weights."""
    k = u.shape[1]
    rows = iter(u)
    outage = ts is not None and len(b.incidents.payment_outage) > 0
    first = next(rows)
    loyal = next(rows) < b.method_loyalty if usual is not None and b.method_loyalty > 0 else None
    alive = next(rows) >= abandon_probability(b, amount)
    if b.methods_vary:
        m = len(PAYMENT_METHODS)
        capped = np.zeros(k, bool) if amount is None else amount > b.ussd_max_ngn * 100
        row = 2 * (np.full(k, len(REGIONS) * len(PLATFORMS)) if cell is None else cell.astype(np.int64)) + capped
        table = method_table(b).reshape(-1, m)
        method = (segment_pick(segmented_cdf(table), row, first) - row * m).astype(np.int8)
        if loyal is not None:
            loyal &= ~(capped & (usual == _USSD))
        switch_cdf = segmented_cdf(switch_weights(table).reshape(-1, m))

        def switched(current: np.ndarray, v: np.ndarray) -> np.ndarray:
            segment = row * m + current
            return segment_pick(switch_cdf, segment, v) - segment * m

    else:  # as before the keys: every checkout by the mix
        mix = np.cumsum(b.method_mix)
        method = pick(mix, first).astype(np.int8)
        others = _switch_cdf(b.method_mix)

        def switched(current: np.ndarray, v: np.ndarray) -> np.ndarray:
            within = np.searchsorted(others, current + v, side="right") - (mix.size - 1) * current
            other = np.minimum(within, mix.size - 2)
            return other + (other >= current)

    if loyal is not None:
        method = np.where(loyal, usual, method).astype(np.int8)
    fails = np.zeros(k, np.int64)
    success = np.zeros(k, bool)
    for attempt in range(b.max_attempts):
        failed = next(rows) < (method_failure_at(b, method, ts) if outage else b.method_failure[method])
        success |= alive & ~failed
        lost = alive & failed
        fails += lost
        alive = lost & (next(rows) < b.retry) & (attempt + 1 < b.max_attempts)
        other = switched(method, next(rows)).astype(np.int8)
        method = np.where(alive & (next(rows) < b.switch_method), other, method).astype(np.int8)
    return fails, success, method


_USSD = PAYMENT_METHODS.index("USSD")


def abandon_probability(b: Behaviour, amount: np.ndarray | None) -> np.ndarray | float:
    """The probability that a checkout of `amount` kobo ends at CHECKOUT_STARTED with no payment attempt:
    `abandon_free_shipping` where the basket reaches `free_shipping_ngn` (no delivery fee is shown), else
    `abandon_at_payment`; the latter for checkouts of no known amount (the warm start draws no baskets)."""
    if amount is None or not math.isfinite(b.free_shipping_ngn):
        return b.abandon_at_payment
    return np.where(amount >= b.free_shipping_ngn * 100, b.abandon_free_shipping, b.abandon_at_payment)


def method_cell(b: Behaviour, region: np.ndarray, platform: np.ndarray) -> np.ndarray:
    """Each checkout's cell of `method_table`: where its customer lives (a REGIONS index) and its platform."""
    return region.astype(np.int64) * len(PLATFORMS) + platform


def method_table(b: Behaviour) -> np.ndarray:
    """The method weights of checkouts, normalised, shaped (cells, 2, PAYMENT_METHODS): cell region ×
    len(PLATFORMS) + platform (`method_cell`), the mix times the region's factors and the platform's, then a last
    cell holding the plain mix (a checkout of no known customer or platform); [:, 1] holds those of a basket above
    `ussd_max_ngn`: USSD left out, the others in proportion (where no other method has any weight, USSD stays)."""
    w = b.method_mix * b.method_region_factor[:, None, :] * b.method_platform_factor[None, :, :]
    w = np.concatenate([w.reshape(-1, len(PAYMENT_METHODS)), b.method_mix[None, :]])
    capped = w.copy()
    capped[:, _USSD] = 0
    capped = np.where(capped.sum(axis=1, keepdims=True) > 0, capped, w)
    t = np.stack([w, capped], axis=1)
    return t / t.sum(axis=-1, keepdims=True)


def switch_weights(table: np.ndarray) -> np.ndarray:
    """Per row of weights (the last axis: methods) and per current method, the weights of a switch away from it:
    its own left out, the others' normalised (where no other has any weight: the current one). Shaped
    (*table.shape, methods)."""
    m = table.shape[-1]
    eye = np.eye(m, dtype=bool)
    w = np.where(eye, 0.0, table[..., None, :])
    w = np.where(w.sum(axis=-1, keepdims=True) > 0, w, eye.astype(float))
    return w / w.sum(axis=-1, keepdims=True)


def segmented_cdf(p: np.ndarray) -> np.ndarray:
    """Rows of weights as a segmented cdf (row s spans [s, s + 1], ending exactly at s + 1) for
    `streams.segment_pick`."""
    c = np.cumsum(p, axis=1)
    return (np.arange(p.shape[0])[:, None] + c / c[:, -1:]).ravel()


def _switch_cdf(mix: np.ndarray) -> np.ndarray:
    """Segmented cdf: segment m (spanning (m, m+1]) draws among the methods other than m, by the mix."""
    segments = []
    for m in range(mix.size):
        w = np.delete(mix, m)
        segments.append(m + np.cumsum(w) / w.sum())
    return np.concatenate(segments)


def item_prices_ngn(rng: np.random.Generator, b: Behaviour, k: int, scale: np.ndarray | None = None) -> np.ndarray:
    """`k` item prices in whole naira on price points: a lognormal around the median item price (times each item's
    `scale`, where given), rounded to the grid of its range (NGN 50 below NGN 10,000, NGN 500 below NGN 100,000,
    NGN 1,000 above; never below one step), and a share `charm` of the prices on a round hundred made one naira
    less (1,500 becomes 1,499): every price ends in 00, 50 or 99."""
    price = b.basket_item_median * np.exp(b.basket_item_sigma * rng.standard_normal(k))
    if scale is not None:
        price *= scale
    step = np.where(price < 10_000, 50, np.where(price < 100_000, 500, 1_000))
    naira = np.maximum(np.round(price / step), 1).astype(np.int64) * step
    return naira - ((naira % 100 == 0) & (rng.random(k) < b.basket_charm))


def basket_kobo(
    rng: np.random.Generator, b: Behaviour, items: np.ndarray, scale: np.ndarray | None = None
) -> np.ndarray:
    """Order totals in kobo (whole naira) of baskets holding `items` items each (at least one): the sum of their
    item prices (`item_prices_ngn`, the median times each basket's `scale`: `spend_scale`), clipped to [min, max].
    A scenario recorded before item prices (an older run's manifest) draws, as it was generated, one lognormal
    total per basket, whatever it holds."""
    k = items.size
    if not b.basket_per_item:
        naira = np.round(b.basket_item_median * np.exp(b.basket_item_sigma * rng.standard_normal(k)))
        return np.clip(naira, b.basket_min, b.basket_max).astype(np.int64) * 100
    price = item_prices_ngn(rng, b, int(items.sum()), None if scale is None else np.repeat(scale, items))
    through = np.cumsum(price)[np.cumsum(items) - 1] if k else np.zeros(0, np.int64)  # running total at each end
    naira = np.diff(through, prepend=0)
    return np.clip(naira, b.basket_min, b.basket_max).astype(np.int64) * 100


TOP_UP_OVER_NGN = 2_000  # a filler item costs the gap plus a uniform of up to this, on the price grid


def tops_up(b: Behaviour) -> bool:
    """Whether baskets short of free shipping may be topped up to it (`top_up`): not without a threshold."""
    return b.top_up > 0 and math.isfinite(b.free_shipping_ngn)


def top_up(rng: np.random.Generator, b: Behaviour, amount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baskets (kobo) topped up to free shipping: one short of `free_shipping_ngn` by at most `top_up_gap_ngn`
    gets one more item with probability `top_up`, a filler priced at the gap plus a uniform of up to
    TOP_UP_OVER_NGN, rounded up to its price grid (NGN 50 below NGN 10,000, NGN 500 above), so the total clears
    the threshold by a little. Returns the totals and which baskets grew. Nothing is drawn without the keys (a
    scenario recorded before them): the generator's state is as it was."""
    grew = np.zeros(amount.size, bool)
    if not tops_up(b) or not amount.size:
        return amount, grew
    gap = b.free_shipping_ngn - amount / 100
    u, over = rng.random(amount.size), rng.random(amount.size)
    grew = (gap > 0) & (gap <= b.top_up_gap_ngn) & (u < b.top_up)
    price = gap + over * TOP_UP_OVER_NGN
    step = np.where(price < 10_000, 50, 500)
    filler = (np.ceil(price / step) * step).astype(np.int64)
    total = np.minimum(amount // 100 + filler, b.basket_max) * 100
    return np.where(grew, total, amount), grew


def spend_scale(b: Behaviour, region: np.ndarray, platform: np.ndarray) -> np.ndarray:
    """Per basket, the median item price's factor: where its customer lives (a REGIONS index) and the platform of
    its session."""
    return b.basket_region_factor[region] * b.basket_platform_factor[platform]


def transit_factors(b: Behaviour, is_hub: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """Per state (given its hub flag and zone), its deliveries' transit times a factor: 1 in the hubs, else the
    outside-hub factor times its geopolitical zone's."""
    return np.where(is_hub, 1.0, b.outside_hubs_factor * b.zone_factor[zone])


def fulfil(
    rng: np.random.Generator,
    b: Behaviour,
    placed: Placed,
    first_order: int,
    transit: np.ndarray,
    region: np.ndarray | None = None,
) -> tuple[Events, np.ndarray]:
    """PACKED, SHIPPED and DELIVERED events of placed orders (each with its customer's `transit_factors`), and
    each order's carrier code: drawn among the carriers delivering to the customer's `region` (an index into
    REGIONS), by their shares (none: among all carriers)."""
    k = placed.ts.size
    if region is None:
        carrier = pick(np.cumsum(b.carriers.share), rng.random(k)).astype(np.int8)
    else:
        n, region = len(b.carriers.names), region.astype(np.int64)
        carrier = (segment_pick(b.carriers.region_cdf(), region, rng.random(k)) - region * n).astype(np.int8)
    packed, shipped, delivered = stage_times(rng, b, placed.ts, carrier, transit)
    order = first_order + np.arange(k, dtype=np.int64)
    ev = Events(
        ts=np.concatenate([packed, shipped, delivered]),
        type=np.repeat(np.array([_PACKED, _SHIPPED, _DELIVERED], np.int8), k),
        customer=np.tile(placed.customer, 3),
        platform=np.tile(placed.platform, 3),
        amount=np.full(3 * k, -1, np.int64),
        method=np.full(3 * k, -1, np.int8),
        order=np.tile(order, 3),
        origin=np.tile(placed.origin, 3),
    )
    return ev, carrier


def stage_times(
    rng: np.random.Generator, b: Behaviour, placed_ts: np.ndarray, carrier: np.ndarray, transit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When orders placed at `placed_ts` are PACKED, SHIPPED and DELIVERED (microseconds, UTC): each stage a
    lognormal delay after the one before, then moved into its working hours (never earlier)."""
    k = placed_ts.size
    packed = placed_ts + (b.packed_hours * HOUR * np.exp(b.hours_sigma * rng.standard_normal(k))).astype(np.int64)
    packed = in_working_hours(packed, b.hours_wat[0], rng.random(k), b.holidays)
    shipped = packed + (b.shipped_hours * HOUR * np.exp(b.hours_sigma * rng.standard_normal(k))).astype(np.int64)
    if b.pickups_wat.size:  # the carrier's van collects at set times: SHIPPED is the scan when it loads
        shipped = at_pickups(shipped, b.hours_wat[1], b.pickups_wat, rng.random(k) * b.pickup_spread, b.holidays)
    else:  # runs before 0.7: any time in the hours
        shipped = in_working_hours(shipped, b.hours_wat[1], rng.random(k), b.holidays)
    return packed, shipped, delivery_times(rng, b, shipped, carrier, transit)


_PICKUP_SEARCH_DAYS = 15  # a week plus holidays; past it, the working hours (a scenario with no pickup open)


def at_pickups(
    ts: np.ndarray, hours: np.ndarray, pickups: np.ndarray, after: np.ndarray, holidays: np.ndarray | None = None
) -> np.ndarray:
    """Instants (microseconds, UTC) moved to the next pickup: `pickups` are times of day (microseconds after
    midnight WAT, sorted) at which the carrier collects, on days and inside the hours `hours` keeps open (as in
    `in_working_hours`: a holiday keeps Sunday's), at or after the instant; each then `after` (microseconds) later,
    the parcel's scan as the van is loaded, but before the day's closing. Never earlier than the instant."""
    local = ts + WAT_OFFSET
    day = local // DAY
    clock = local - day * DAY
    holidays = np.zeros(0, np.int64) if holidays is None else holidays

    def schedule(d: np.ndarray) -> np.ndarray:
        weekday = (d + EPOCH_WEEKDAY) % 7
        return np.where(_sorted_isin(d, holidays), 6, weekday) if holidays.size else weekday

    opens, closes = hours[:, 0], hours[:, 1]
    chosen = np.full(ts.size, -1, np.int64)
    room = np.zeros(ts.size, np.int64)  # from the pickup to the day's closing: the scan stays inside the hours
    for j in range(_PICKUP_SEARCH_DAYS):
        left = np.flatnonzero(chosen < 0)
        if not left.size:
            break
        row = schedule(day[left] + j)
        for p in pickups[::-1]:  # the earliest valid pickup of the day wins: written last
            ok = (opens[row] <= p) & (p < closes[row]) & ((j > 0) | (p >= clock[left]))
            hit = left[ok]
            chosen[hit] = (day[hit] + j) * DAY + p - WAT_OFFSET
            room[hit] = closes[row[ok]] - p - 1
    out = np.where(chosen >= 0, chosen + np.minimum(after.astype(np.int64), room), 0)
    missed = chosen < 0
    if missed.any():  # no pickup open within the search: any time in the hours
        out[missed] = in_working_hours(ts[missed], hours, np.zeros(int(missed.sum())), holidays)
    return out


def delivery_times(
    rng: np.random.Generator, b: Behaviour, shipped: np.ndarray, carrier: np.ndarray, transit: np.ndarray
) -> np.ndarray:
    """When parcels SHIPPED at `shipped` by `carrier` are DELIVERED: the carrier's transit times the parcel's
    `transit` factor (its state's: `transit_factors`) plus the extra days of carrier delays covering the SHIPPED
    time, then moved into delivery hours; a share `failed_attempt` of the first attempts finds no one, and the
    parcel goes out again with the next working day's round."""
    k = shipped.size
    days = b.carriers.transit_days[carrier] * transit
    delivered = shipped + (days * DAY * np.exp(b.transit_sigma * rng.standard_normal(k))).astype(np.int64)
    if len(b.incidents.carrier_delay):
        delivered = delivered + (extra_transit_days(b, carrier, shipped) * DAY).astype(np.int64)
    hours = b.hours_wat[2]
    delivered = in_working_hours(delivered, hours, rng.random(k), b.holidays, rounds=b.delivery_rounds)
    if b.failed_attempt > 0:  # (none drawn for a scenario before the key: its bytes as they were)
        again, u = rng.random(k) < b.failed_attempt, rng.random(k)
        delivered[again] = in_working_hours(delivered[again], hours, u[again], b.holidays, rounds=True)
    return delivered


def in_working_hours(
    ts: np.ndarray, hours: np.ndarray, u: np.ndarray, holidays: np.ndarray | None = None, rounds: bool = False
) -> np.ndarray:
    """Instants (microseconds, UTC) moved into working hours: `hours` holds each weekday's [opening, closing) in
    microseconds after midnight WAT (Monday first; an empty span is a closed day), and a public holiday (`holidays`:
    WAT day numbers, sorted) keeps Sunday's. An instant inside its day's hours stays; any other moves to the next
    opening plus `u` (uniform in [0, 1)) of that day's hours, so it lands inside them and never earlier. With
    `rounds` (couriers' delivery rounds), every instant goes to the next opening, today's if it is still to come,
    and lands at a triangular spread of that day's hours from `u` (the most at their middle). At least one day of
    the week must be open."""
    local = ts + WAT_OFFSET
    day = local // DAY
    clock = local - day * DAY
    holidays = np.zeros(0, np.int64) if holidays is None else holidays

    def schedule(d: np.ndarray) -> np.ndarray:  # the row of `hours` a day keeps: its weekday's, Sunday's if a holiday
        weekday = (d + EPOCH_WEEKDAY) % 7
        return np.where(_sorted_isin(d, holidays), 6, weekday) if holidays.size else weekday

    opens, closes = hours[:, 0], hours[:, 1]
    is_open = opens < closes
    today = schedule(day)
    inside = (clock >= opens[today]) & (clock < closes[today]) & (not rounds)
    # Days to the next opening: 0 before today's, else the first open day after (a week at most, plus holidays).
    later = np.where(is_open[today] & (clock < opens[today]), 0, -1)
    j = 0
    while (later < 0).any():
        j += 1
        wait = np.flatnonzero(later < 0)
        later[wait[is_open[schedule(day[wait] + j)]]] = j
    target = schedule(day + later)
    start = (day + later) * DAY + opens[target] - WAT_OFFSET
    if rounds:  # the triangular distribution on [0, 1) by its inverse cdf
        u = np.where(u < 0.5, np.sqrt(u / 2), 1 - np.sqrt((1 - u) / 2))
    moved = start + (u * (closes[target] - opens[target])).astype(np.int64)
    return np.where(inside, ts, moved)


def _permuted(seed: int, x: np.ndarray, digits: int) -> np.ndarray:
    """A keyed bijection of [0, 10**digits): a Feistel network over its high and low decimal halves (the halves
    swap sizes each round; an even number of rounds ends in the starting layout)."""
    high = digits // 2
    low = digits - high
    a, c = x // np.uint64(10**low), x % np.uint64(10**low)  # `high` and `low` digits
    for i in range(_TRACKING_ROUNDS):
        m = np.uint64(10 ** (high if i % 2 == 0 else low))
        a, c = c, (a + hash_u64(seed, f"tracking/{i}", c) % m) % m
    return a * np.uint64(10**low) + c


def _sorted_isin(x: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    at = np.minimum(np.searchsorted(sorted_values, x), sorted_values.size - 1)
    return sorted_values[at] == x


# Tracking numbers: a keyed permutation (a Feistel network over the two halves of the digits) of the order's serial
# number in the timeline (numbered across shards and runs) onto the carrier's digit space: two orders never share
# one until 10**12 orders, and numbers look drawn at random, not grouped by shard or customer. Timelines begun
# before 0.6 keep theirs: the serial times a multiplier coprime with 10 (invertible modulo every power of ten)
# plus a keyed offset.
_TRACKING_ROUNDS = 4
_TRACKING_MULT = np.uint64(40_491_277)


def tracking_numbers(seed: int, serial: np.ndarray, carrier: np.ndarray, b: Behaviour) -> pa.Array:
    """Tracking numbers of orders given by their timeline serial numbers, and their carriers."""
    if serial.size == 0:
        return pa.array([], pa.string())
    digits = b.carriers.tracking_digits[carrier]
    if b.tracking_permuted:
        number = np.zeros(serial.size, np.uint64)
        for d in np.unique(digits):
            mine = digits == d
            number[mine] = _permuted(seed, serial[mine].astype(np.uint64) % np.uint64(10 ** int(d)), int(d))
    else:
        modulus = (10 ** digits.astype(np.uint64)).astype(np.uint64)
        offset = hash_u64(seed, "tracking", np.zeros(1, np.uint64))[0]
        number = (serial.astype(np.uint64) * _TRACKING_MULT % modulus + offset % modulus) % modulus
    # Zero-padded to the carrier's own width (numbers are below 10**digits, so padding never truncates).
    widths, which = np.unique(digits, return_inverse=True)
    raw = pc.cast(pa.array(number), pa.string())
    padded = [pc.utf8_lpad(raw, int(w), "0") for w in widths]
    text = padded[0] if len(padded) == 1 else pc.choose(pa.array(which.astype(np.int8)), *padded)
    prefixes = pa.array(np.array(b.carriers.tracking_prefix, dtype=object)[carrier], pa.string())
    return pc.binary_join_element_wise(prefixes, text, "")
