"""Traffic and sessions: when customers open the app, and the funnel each session walks, as whole arrays.

A session is OPEN, maybe USER_LOGIN, product views with add-to-carts among them, maybe CHECKOUT_STARTED and its
payment attempts (none when the checkout is abandoned at the payment step), ending in PAYMENT_AUTHORIZED and
ORDER_PLACED when a payment succeeds. Abandonment happens at every step. Times follow the West Africa Time diurnal
curve; one customer's sessions never overlap.
"""

from __future__ import annotations

import math
import weakref
from statistics import NormalDist

import numpy as np

from generator.core.behaviour import Behaviour
from generator.core.events import DAY, EPOCH_WEEKDAY, HOUR, SECOND, WAT_OFFSET, Events
from generator.core.incidents import conversion_factor, traffic_factor
from generator.core.lifecycle import Placed, basket_kobo, payment_draws, settle, top_up
from generator.core.streams import mix64
from generator.schema import EVENT_CODE

_OPEN, _LOGIN, _VIEW, _CART = (EVENT_CODE[k] for k in ("OPEN", "USER_LOGIN", "PRODUCT_VIEW", "ADD_TO_CART"))
_CHECKOUT, _FAILED, _AUTH, _ORDER = (
    EVENT_CODE[k] for k in ("CHECKOUT_STARTED", "PAYMENT_FAILED", "PAYMENT_AUTHORIZED", "ORDER_PLACED")
)
_PAIR = 127  # placeholder code for the (view, cart) pairs segment
_SEGMENT_CODES = np.array([_OPEN, _LOGIN, _VIEW, _PAIR, _CHECKOUT, _FAILED, _AUTH, _ORDER], np.int8)
MIN_GAP = 200_000  # 0.2 s: the least time between two events of one session
SESSION_PAUSE = 60 * SECOND  # the least time between two sessions of one customer


def intensity(b: Behaviour, hour_starts: np.ndarray, ramp: bool = True) -> np.ndarray:
    """Relative session intensity of each UTC hour (given by its start, us), averaging ~1 over months outside
    flash sales (a scenario's and the calendar's promotions), which multiply it: the hourly curve of a weekday or of
    a weekend day (public holidays are weekend days), the weekend and payday factors and a launch's ramp (left
    out with `ramp=False`: the intensity of the customers signed up, where the ramp is sign-ups)."""
    wat = hour_starts + WAT_OFFSET
    hour_of_day = (wat // HOUR) % 24
    days = (wat // DAY).astype("datetime64[D]")
    weekday = (days.astype(np.int64) + EPOCH_WEEKDAY) % 7  # Monday = 0
    day_of_month = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    weekend = weekday >= 5
    if b.holidays.size:  # a public holiday's traffic is a weekend day's
        weekend |= np.isin(wat // DAY, b.holidays)
    # a weekend day's own hourly shape (the same mean as the weekday curve's: weekend_factor sets the day's total)
    f = np.where(weekend, b.weekend_hourly_wat[hour_of_day], b.hourly_wat[hour_of_day])
    f = f * np.where(weekend, b.weekend_factor, 1.0)
    if b.payday_curve is None:
        f = f * np.where(day_of_month >= b.payday_from_day, b.payday_factor, 1.0)
        paydays = (31 - b.payday_from_day + 1) * 12 / 365.25
    else:
        f = f * payday_factor(b, days, day_of_month)
        paydays = float(b.payday_curve.sum()) * 12 / 365.25  # each day since a payday comes 12 times a year
    if b.ramp_first != 1.0 and ramp:
        f = f * ramp_factor(b, hour_starts)
    norm = b.hourly_wat.mean() * (5 + 2 * b.weekend_factor) / 7 * (1 + paydays * (b.payday_factor - 1))
    if len(b.incidents.traffic):
        return f / norm * traffic_factor(b, hour_starts)
    return f / norm


def payday_factor(b: Behaviour, days: np.ndarray, day_of_month: np.ndarray) -> np.ndarray:
    """The payday curve's factor on each day (datetime64[D], WAT): 1 + (payday_factor - 1) x the curve's value for
    the days since the last payday (payday_from_day of this month, or of the month before; 0 past the curve)."""
    month = days.astype("datetime64[M]")
    before = (month.astype("datetime64[D]") - (month - 1).astype("datetime64[D]")).astype(np.int64)
    since = np.where(day_of_month >= b.payday_from_day, day_of_month, day_of_month + before) - b.payday_from_day
    curve = np.r_[b.payday_curve, 0.0]
    return 1 + (b.payday_factor - 1) * curve[np.clip(since, 0, curve.size - 1)]


def ramp_factor(b: Behaviour, t: np.ndarray) -> np.ndarray:
    """A launch's adoption at instants `t` (us): `ramp_first` before `ramp_start_us`, then growing linearly to 1
    over `ramp_days` (at once, for none), 1 after."""
    t = np.asarray(t, np.int64)
    if b.ramp_days > 0:
        grown = np.clip((t - b.ramp_start_us) / (b.ramp_days * DAY), 0.0, 1.0)
    else:
        grown = (t >= b.ramp_start_us).astype(float)
    return b.ramp_first + (1.0 - b.ramp_first) * grown


def hour_buckets(b: Behaviour, t0: int, t1: int, joined=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hour buckets covering [t0, t1): their starts and lengths clipped to the window, and intensities.
    `joined` (`population.signed_up_share`, where the ramp is sign-ups): the intensity of the customers signed up,
    the mature curve times their share of the activity at the middle of each bucket."""
    first = (t0 // HOUR) * HOUR
    starts = np.arange(first, t1, HOUR, dtype=np.int64)
    lo = np.maximum(starts, t0)
    hi = np.minimum(starts + HOUR, t1)
    if joined is None:
        return lo, hi - lo, intensity(b, starts)
    return lo, hi - lo, intensity(b, starts, ramp=False) * joined((lo + hi) // 2)


# Each Behaviour's hourly intensities worked out so far, per `ramp`: (first hour's start, values). A shard asks
# for the curve some ten times (each block's arrivals, the run's time grid, the network's load), over hours that
# mostly overlap; every hour's value is its own (`intensity` works hour by hour), so a value kept is the value anew.
_HOURLY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_HOURLY_GAP = 400 * 24  # hours: a request further than this from those kept is worked out on its own


def hourly_intensity(b: Behaviour, first: int, n: int, ramp: bool = True) -> np.ndarray:
    """`intensity(b, hours, ramp)` of the `n` hours from `first` (an hour's start, us), read-only: from the hours
    kept for `b`, extended by those missing."""
    ramp = bool(ramp) and b.ramp_first != 1.0
    kept = _HOURLY.setdefault(b, {})
    start, values = kept.get(ramp, (first, np.empty(0)))
    lo, hi = (first - start) // HOUR, (first - start) // HOUR + n
    if lo < -_HOURLY_GAP or hi > values.size + _HOURLY_GAP:
        alone = intensity(b, first + HOUR * np.arange(n, dtype=np.int64), ramp)
        alone.flags.writeable = False
        return alone
    if lo < 0 or hi > values.size:
        below = intensity(b, start + HOUR * np.arange(min(lo, 0), 0, dtype=np.int64), ramp)
        above = intensity(b, start + HOUR * np.arange(values.size, max(hi, values.size), dtype=np.int64), ramp)
        start, values = start + HOUR * min(lo, 0), np.concatenate([below, values, above])
        values.flags.writeable = False
        kept[ramp] = (start, values)
        lo, hi = lo - min(lo, 0), hi - min(lo, 0)
    return values[lo:hi]


def intensity_curve(b: Behaviour, t0: int, t1: int, ramp: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The session intensity over [t0, t1) as a continuous, piecewise-linear curve: its knots' times (t0 and t1
    first and last, us) and values. Each hour's own intensity (`intensity`) is its curve's mean over the hour,
    so traffic per hour is as before, but it changes smoothly across hour boundaries instead of in steps (a
    plot of sessions per minute showed a staircase, x2.35 from 05:59 to 06:00 WAT). Knots: each hour boundary
    at the mean of the hours either side, but at most twice the quieter one (so that a quiet hour beside a flash
    sale's needs no negative half hour), each half hour at what keeps its hour's mean, never below zero. `ramp`:
    as for `intensity`."""
    first = (t0 // HOUR) * HOUR
    hours = np.arange(first - HOUR, t1 + HOUR, HOUR, dtype=np.int64)  # one more hour on either side
    f = hourly_intensity(b, int(hours[0]), hours.size, ramp)
    times = np.empty(2 * hours.size - 3, np.int64)
    values = np.empty(times.size)
    edge = np.minimum((f[:-1] + f[1:]) / 2, 2 * np.minimum(f[:-1], f[1:]))
    times[0::2], values[0::2] = hours[1:], edge
    times[1::2], values[1::2] = hours[1:-1] + HOUR // 2, np.maximum(2 * f[1:-1] - (edge[:-1] + edge[1:]) / 2, 0.0)
    inner = (times > t0) & (times < t1)
    at = np.concatenate([[t0], times[inner], [t1]])
    return at, np.interp(at, times, values)


def piece_masses(at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The area under each piece of the piecewise-linear curve (`at`, `values`), in value x us."""
    return (values[:-1] + values[1:]) / 2 * np.diff(at)


def within_piece(u, a, b):
    """Where, as a fraction of its length, a piece whose density goes linearly from a to b holds fraction u of its
    mass: the root of the quadratic, rationalised (exact for a == b, where it is u, and for a == 0, sqrt(u))."""
    s = u * (a + b)
    return s / (a + np.sqrt(a * a + (b - a) * s))


def draw_in_curve(r: np.random.Generator, at: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """`n` instants (us, unsorted) drawn with density proportional to the piecewise-linear curve (`at`, `values`)."""
    length = np.diff(at)
    a, b = values[:-1], values[1:]
    mass = piece_masses(at, values)
    per_piece = r.multinomial(n, mass / mass.sum()) if mass.sum() > 0 else np.zeros(length.size, np.int64)
    piece = np.repeat(np.arange(length.size), per_piece)
    a, b = a[piece], b[piece]
    x = within_piece(r.random(n), a, b)
    # x can round to a hair above 1 for u a few ulps below 1: never past the piece's end (the window's end is open)
    return at[piece] + np.minimum((x * length[piece]).astype(np.int64), length[piece] - 1)


def cart_probability(b: Behaviour, platform: np.ndarray, propensity: np.ndarray | float = 1.0) -> np.ndarray:
    """Probability that a browsing session on `platform` (codes) adds to its cart: `add_to_cart` times the
    platform's factor (the apps convert better than the web) times its customer's `propensity`, at most 1."""
    return np.minimum(b.add_to_cart * b.cart_factor[platform] * propensity, 1.0)


def mean_cart_probability(b: Behaviour) -> float:
    """`cart_probability` over the sessions' platforms and customers: a session's platform follows the mix (the
    customer's primary one, itself drawn from the mix, or another drawn from it), its customer's propensity is
    lognormal with mean 1 and sigma `propensity_sigma`, independent of the platform. Exactly, with the cap at 1:
    E[min(cX, 1)] = c P(X < 1/c) under X's size-biased law + P(X >= 1/c). Sums are exactly rounded (fsum), so
    the run's sizing is the same on every CPU (a BLAS dot's order of additions is not)."""
    mix = b.platform_mix / b.platform_mix.sum()
    c = b.add_to_cart * b.cart_factor
    s = b.propensity_sigma
    if s == 0:
        return math.fsum(mix * np.minimum(c, 1.0))
    normal = NormalDist()
    per = [
        (ci * normal.cdf((math.log(1 / ci) - s * s / 2) / s) + 1 - normal.cdf((math.log(1 / ci) + s * s / 2) / s))
        if ci > 0
        else 0.0
        for ci in c
    ]
    return math.fsum(mix * np.array(per))


def expected_events_per_session(b: Behaviour) -> float:
    """Mean events per session including the fulfilment events of its order (for sizing blocks). The top-ups to free
    shipping (a view and an add for about 1.5% of checkouts, `lifecycle.top_up`) are left out: 0.03% of events."""
    browse = 1 - b.bounce
    p_cart = mean_cart_probability(b)
    views = browse * views_per_browsing_session(b, p_cart)
    carts = browse * p_cart * adds_per_carted_session(b)
    checkout = browse * p_cart * b.checkout
    # A checkout abandoned at payment is its CHECKOUT_STARTED alone; the others add their payment attempts, the
    # order and its fulfilment.
    return 1 + b.login + views + carts + checkout * (1 + (1 - b.abandon_at_payment) * (3.5 + 0.3))


def views_per_browsing_session(b: Behaviour, p_cart: float) -> float:
    """Mean product views of a browsing session whose probability of adding to its cart is `p_cart`."""
    return 1 + b.extra_views_mean * (1 + p_cart * (b.carted_views_factor - 1))


def adds_per_carted_session(b: Behaviour) -> float:
    """Mean ADD_TO_CART events of a session that adds: its first, and each of its extra views with add_more."""
    return 1 + b.extra_views_mean * b.carted_views_factor * b.add_more


def extra_views(rng: np.random.Generator, b: Behaviour, n: int, scale: float = 1.0) -> np.ndarray:
    """Views after the first in `n` browsing sessions: negative binomial (mean, shape), Poisson for shape inf.
    `scale` > 0 multiplies the shape and the mean alike (the odds stay): the views of `scale` sessions' worth, so
    that the draws for scale 1 and for scale s - 1 add up to those of scale s (`carted_extra_views`)."""
    if not math.isfinite(b.extra_views_shape) or b.extra_views_mean == 0:
        return rng.poisson(b.extra_views_mean * scale, n)
    k = b.extra_views_shape
    return rng.negative_binomial(k * scale, k / (k + b.extra_views_mean), n)


def carted_extra_views(rng: np.random.Generator, b: Behaviour, n: int) -> np.ndarray:
    """The further views of `n` sessions that add to their carts, beyond those every browsing session draws:
    `carted_views_factor` - 1 sessions' worth, so that such a session's extra views are a negative binomial of
    shape and mean `carted_views_factor` times the others' (nothing drawn at factor 1: runs before the key)."""
    if b.carted_views_factor == 1 or not n:
        return np.zeros(n, np.int64)
    return extra_views(rng, b, n, b.carted_views_factor - 1)


def views_law(b: Behaviour, views: np.ndarray, carted: bool) -> np.ndarray:
    """P(a browsing session has `views` product views), for one that adds to its cart or one that does not: 1 +
    a negative binomial (Poisson for shape inf) of shape and mean times carted_views_factor when it adds."""
    scale = b.carted_views_factor if carted else 1.0
    distinct, at = np.unique(np.asarray(views, np.int64), return_inverse=True)  # a few dozen, however many sessions
    x = distinct - 1
    mean = b.extra_views_mean * scale
    law = np.zeros(x.shape)
    ok = x >= 0
    if mean == 0:
        law = np.where(x == 0, 1.0, 0.0)
    else:
        xs = x[ok].astype(float)
        lgamma = np.array([math.lgamma(v + 1) for v in xs])
        if not math.isfinite(b.extra_views_shape):
            law[ok] = np.exp(xs * math.log(mean) - mean - lgamma)
        else:
            k = b.extra_views_shape * scale
            q = b.extra_views_shape / (b.extra_views_shape + b.extra_views_mean)
            rising = np.array([math.lgamma(v + k) for v in xs]) - math.lgamma(k)
            law[ok] = np.exp(rising - lgamma + k * math.log(q) + xs * math.log1p(-q))
    return law[at].reshape(np.shape(views))


def cart_given_views(b: Behaviour, p_cart: np.ndarray, views: np.ndarray) -> np.ndarray:
    """P(a browsing session added to its cart | its product views), for sessions whose own probability of adding
    is `p_cart`: Bayes over the two laws of `views_law` (p_cart itself at carted_views_factor 1)."""
    if b.carted_views_factor == 1:
        return np.asarray(p_cart, float)
    yes = p_cart * views_law(b, views, True)
    no = (1 - p_cart) * views_law(b, views, False)
    total = yes + no
    return np.divide(yes, total, out=np.asarray(p_cart, float).copy(), where=total > 0)


def checkouts_per_session(b: Behaviour) -> float:
    """Mean CHECKOUT_STARTED per session (abandoned at payment or not: `pay` decides which)."""
    return (1 - b.bounce) * mean_cart_probability(b) * b.checkout


def simulate(
    rng: np.random.Generator,
    b: Behaviour,
    starts: np.ndarray,
    customer: np.ndarray,
    platform: np.ndarray,
    local: np.ndarray,
    last_end: np.ndarray,
    first_order: int,
    spend: np.ndarray | None = None,
    usual: np.ndarray | None = None,
    propensity: np.ndarray | None = None,
    cell: np.ndarray | None = None,
) -> tuple[Events, Placed]:
    """Walk the funnel for sessions starting at `starts` (sorted) of `customer` on `platform`.

    `local` is each session's customer position in the shard's block and `last_end[local]` the end of that
    customer's previous session, updated here, so no two sessions of one customer overlap. Successful
    checkouts become orders numbered from `first_order`. `spend` is each session's factor on item prices
    (`lifecycle.spend_scale`; none: 1). `usual` is each session's customer's usual payment method (none: every
    method drawn from the mix), `propensity` its customer's factor on adding to the cart (none: 1), `cell` its
    payment methods' weights (`lifecycle.method_cell`: where its customer lives and its platform; none: the mix).
    """
    n = starts.size
    login = rng.random(n) < b.login
    browse = rng.random(n) >= b.bounce
    views = np.where(browse, 1 + extra_views(rng, b, n), 0)
    carted = browse & (rng.random(n) < cart_probability(b, platform, 1.0 if propensity is None else propensity))
    # A session that adds to its cart has browsed more: who is minded to buy looks around (so sessions with more
    # views convert better, without the views causing it).
    if b.carted_views_factor != 1:
        views[carted] += carted_extra_views(rng, b, int(carted.sum()))
    if b.cart_anywhere:
        carts, cart_at = _carts_among_views(rng, b, views, carted)
    else:  # runs before 0.7: the adds after the plain views, each right after a view of its own
        carts, cart_at = np.where(carted, 1 + rng.binomial(np.maximum(views - 1, 0), b.add_more), 0), None
    p_checkout = b.checkout
    if len(b.incidents.conversion):  # flash sales, by the session's start
        p_checkout = np.minimum(b.checkout * conversion_factor(b, starts), 1.0)
    checkout = carted & (rng.random(n) < p_checkout)

    chk = np.flatnonzero(checkout)
    # Payment outages apply by the session's start: its checkout comes minutes later, inside the same window
    # but at its edges (the checkout times depend on the attempts, so they cannot be drawn first).
    # The method and the abandonment may depend on the amount (USSD's cap, free shipping), drawn after the
    # payment's uniforms, as it always was.
    draws = payment_draws(rng, b, chk.size, usual is not None)
    amount = basket_kobo(rng, b, carts[chk], None if spend is None else spend[chk])  # the items it added to its cart
    # Near free shipping, some shoppers view and add one more item to reach it: a last (view, add) before checkout.
    amount, grew = top_up(rng, b, amount)
    if grew.any():
        topped = chk[grew]
        views[topped] += 1
        carts[topped] += 1
        if cart_at is not None:  # the new add is the last of its session's views and adds
            cart_at = (np.r_[cart_at[0], topped], np.r_[cart_at[1], views[topped] + carts[topped] - 1])
    paying = {"usual": None if usual is None else usual[chk], "cell": None if cell is None else cell[chk]}
    fails, success, method = settle(b, draws, ts=starts[chk], amount=amount, **paying)
    n_fail = np.zeros(n, np.int64)
    n_fail[chk] = fails
    ok = np.zeros(n, bool)
    ok[chk] = success

    # Each session is eight segments laid end to end: OPEN, [LOGIN], views, (view, cart) pairs, [CHECKOUT],
    # failed attempts, [AUTH, ORDER]. Types come from one np.repeat of the segment codes by segment lengths.
    seg = np.empty((n, 8), np.int64)
    seg[:, 0] = 1
    seg[:, 1] = login
    seg[:, 2] = views - carts if cart_at is None else views + carts  # then views and adds interleaved here
    seg[:, 3] = 2 * carts if cart_at is None else 0
    seg[:, 4] = checkout
    seg[:, 5] = n_fail
    seg[:, 6] = ok
    seg[:, 7] = ok
    count = seg.sum(axis=1)
    etype = np.repeat(np.tile(_SEGMENT_CODES, n), seg.ravel())
    pair = np.flatnonzero(etype == _PAIR)
    if pair.size:  # alternate view, cart inside each pairs segment
        run_start = np.r_[True, np.diff(pair) != 1]
        run_index = np.maximum.accumulate(np.where(run_start, np.arange(pair.size), 0))
        etype[pair] = np.where((np.arange(pair.size) - run_index) % 2 == 0, _VIEW, _CART)
    if cart_at is not None:  # each add right after its view: its place among the session's views and adds
        start = np.cumsum(count) - count + 1 + login
        etype[start[cart_at[0]] + cart_at[1]] = _CART

    # Time inside the session: lognormal gaps by the kind of the next event; a pause before each retry after a
    # failed payment.
    gap_us = session_gaps(rng, b, etype)
    first = np.cumsum(count) - count
    if (b.authorization_factor != 1).any():  # the time to an authorised payment depends on the method
        auth = np.flatnonzero(etype == _AUTH)
        paid_with = np.zeros(n, np.int8)
        paid_with[chk] = method
        factor = b.authorization_factor[paid_with[np.searchsorted(first, auth, side="right") - 1]]
        gap_us[auth] = MIN_GAP + ((gap_us[auth] - MIN_GAP) * factor).astype(np.int64)
    retry = np.flatnonzero(((etype == _FAILED) | (etype == _AUTH)) & (np.r_[0, etype[:-1]] == _FAILED))
    pause = rng.standard_normal(retry.size)
    pause *= b.gap_sigma
    gap_us[retry] += (b.retry_pause_seconds * SECOND * np.exp(pause, out=pause)).astype(np.int64)
    gap_us[first] = 0
    cum = np.cumsum(gap_us)
    offset = cum - np.repeat(cum[first], count)
    duration = cum[first + count - 1] - cum[first]

    start = _no_overlap(starts.copy(), duration, local, last_end)

    # Orders are numbered in session order, from `first_order`.
    won = chk[success]
    order_no = np.full(n, -1, np.int64)
    order_no[won] = first_order + np.arange(won.size)
    placed = Placed(ts=start[won] + duration[won], customer=customer[won], platform=platform[won], origin=start[won])

    # Money columns live on the few checkout events: fill them through their sessions only.
    amount_s = np.full(n, -1, np.int64)
    amount_s[chk] = amount
    method_s = np.full(n, -1, np.int8)
    method_s[chk] = np.where(success, method, -1)
    money = np.flatnonzero(etype >= _CHECKOUT)
    money_sid = np.searchsorted(first, money, side="right") - 1
    paid = (etype[money] == _AUTH) | (etype[money] == _ORDER)
    amount_e = np.full(etype.size, -1, np.int64)
    amount_e[money] = amount_s[money_sid]
    method_e = np.full(etype.size, -1, np.int8)
    method_e[money] = np.where(paid, method_s[money_sid], -1)
    order_e = np.full(etype.size, -1, np.int64)
    order_e[money] = np.where(paid, order_no[money_sid], -1)
    events = Events(
        ts=np.repeat(start, count) + offset,
        type=etype,
        customer=np.repeat(customer, count),
        platform=np.repeat(platform, count),
        amount=amount_e,
        method=method_e,
        order=order_e,
        origin=np.repeat(start, count),
    )
    return events, placed


def _carts_among_views(
    rng: np.random.Generator, b: Behaviour, views: np.ndarray, carted: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Which views of each session are followed by an ADD_TO_CART: in a session that adds, one view drawn
    uniformly among its views (its first add) and each of the others with probability `add_more`, so the adds are
    1 + Binomial(views - 1, add_more) as ever, anywhere among the views: a shopper adds and goes on browsing.
    Returns the adds per session and, for each add, its session and its place among the session's views and adds
    (view j, after a of the session's adds, is at j + a; its add right after it)."""
    sid = np.flatnonzero(carted)
    v = views[sid]
    total = int(v.sum())
    added = rng.random(total) < b.add_more
    offset = np.cumsum(v) - v
    added[offset + np.minimum((rng.random(sid.size) * v).astype(np.int64), v - 1)] = True
    before = np.cumsum(added)  # adds up to and including each view, over all the sessions
    first_in = before[offset] - added[offset]  # adds before each session's views
    owner = np.repeat(np.arange(sid.size), v)
    j = np.flatnonzero(added)
    carts = np.zeros(views.size, np.int64)
    carts[sid] = np.add.reduceat(added, offset) if sid.size else 0
    at = (j - offset[owner[j]]) + (before[j] - first_in[owner[j]])
    return carts, (sid[owner[j]], at)


def session_gaps(rng: np.random.Generator, b: Behaviour, etype: np.ndarray) -> np.ndarray:
    """Gap before each event of a session, in whole microseconds: MIN_GAP plus a lognormal (sigma `gap_sigma`)
    drawn exactly, scaled so that the median is the event type's `gap_seconds` (none below MIN_GAP: a pile of
    gaps at exactly MIN_GAP, or a few thousand distinct values from a table, would show in any histogram)."""
    excess = np.maximum(b.gap_seconds * SECOND - MIN_GAP, 0.0)
    g = rng.standard_normal(etype.size)
    g *= b.gap_sigma
    np.exp(g, out=g)
    g *= excess[etype.astype(np.intp)]
    g += MIN_GAP
    return g.astype(np.int64)


def _breaks(start: np.ndarray) -> np.ndarray:
    """The break (us) before a session that has to wait for the customer's previous one to end: SESSION_PAUSE
    plus a gamma(2) of mean 2 x SESSION_PAUSE, a pure function of the session's own drawn start (so no rng
    draw depends on which sessions wait). A fixed break put 0.9% of all gaps between sessions at exactly 60 s."""
    h = mix64(start.astype(np.uint64))
    u1 = ((h >> np.uint64(32)).astype(np.float64) + 0.5) / 2.0**32
    u2 = ((h & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) / 2.0**32
    return SESSION_PAUSE + (-SESSION_PAUSE * np.log(u1 * u2)).astype(np.int64)


def _no_overlap(start: np.ndarray, duration: np.ndarray, local: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Delay sessions that would begin less than SESSION_PAUSE after an earlier session of the same customer
    ends to a break after it (`_breaks`); update `ends`."""
    # Customer-major, start order within a customer (starts arrive sorted): a stable sort by customer, a radix
    # sort when positions fit 16 bits (blocks of up to 65,536 customers: ten times faster than a comparison sort).
    if ends.size <= 1 << 16:
        order = np.argsort(local.astype(np.uint16), kind="stable")
    else:
        order = np.argsort(local.astype(np.int64) * start.size + np.arange(start.size))
    s = start[order]
    drawn = s.copy()
    d = duration[order]
    c = local[order]
    new_customer = np.ones(s.size, bool)
    new_customer[1:] = c[1:] != c[:-1]
    while True:
        prev_end = np.empty_like(s)
        prev_end[1:] = s[:-1] + d[:-1]
        prev_end[new_customer] = ends[c[new_customer]]
        late = s < prev_end + SESSION_PAUSE
        if not late.any():
            break
        s[late] = prev_end[late] + _breaks(drawn[late])
    np.maximum.at(ends, c, s + d)
    out = np.empty_like(start)
    out[order] = s
    return out
