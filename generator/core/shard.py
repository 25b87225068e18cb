"""Shards: the plan that splits a run into units of work, and the pure functions that generate one.

A run covers a half-open window [start, end) of a timeline. A shard owns a block of customers. Generating it is
two steps, so that a run of exactly N events can end at one instant for every shard:

1. `simulate_shard`: the shard's customers live from the run's start (warm with the weeks before on a timeline's
   first run, or carrying on with the events earlier runs left pending) block by block over a time grid shared by
   every shard, until the grid point where all events before it are final.
2. `cut`: given the run's end (the instant after the N-th event of the whole run), the events before it are the
   shard's rows; those after it that belong to sessions and orders begun before it are carried into the next run;
   sessions begun after it never happened (the next run simulates that time afresh). `cut_before` takes the events
   before an earlier instant, which are the shard's rows wherever the end falls, so they can be written during
   step 1; `cut_point_sampled` finds the end from samples of every shard's times.

Every random stream is keyed by (seed, purpose, window start, shard, block or piece): the same inputs give the same
bytes. A shard numbers its new orders from a block of ORDER_STRIDE serials, so no serial depends on the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.core.behaviour import Behaviour, default_behaviour, region_of
from generator.core.events import DAY, SECOND, Events, dictionary, distinct_positions, sparse_strings, stable_order
from generator.core.incidents import conversion_factor, latency_factor, with_recurring
from generator.core.lifecycle import (
    Placed,
    fulfil,
    method_cell,
    pay,
    spend_scale,
    tracking_numbers,
    transit_factors,
)
from generator.core.nigeria import Pools, default_pools
from generator.core.population import (
    activity,
    home_state,
    identities,
    network_quality,
    operators,
    platform_by_region,
    platforms_in,
    primary_platform,
    propensity,
    sign_ups,
    usual_method,
)
from generator.core.sessions import (
    cart_probability,
    draw_in_curve,
    expected_events_per_session,
    intensity_curve,
    piece_masses,
    simulate,
    within_piece,
)
from generator.core.streams import pick, rng
from generator.schema import (
    COLUMN_NAMES,
    EVENT_CODE,
    EVENT_TYPES,
    INVALID_LATENCY,
    ORDER_STAGES,
    PAYMENT_METHODS,
    PAYMENT_STATUS_BY_TYPE,
    PAYMENT_STATUSES,
    PLATFORMS,
    encoded_schema,
)

WARM_UP = 28 * DAY  # orders placed this long before a timeline's first start still deliver inside its window
MAX_CUSTOMERS_PER_SHARD = 250_000
PART_ROWS_PER_DAY = 50_000
MIN_SHARD, MAX_SHARD = 50_000, 200_000
MAX_SHARDS = 50_000
MAX_WINDOW_DAYS = 3653
ORDERS_PER_SHARD = 1 << 24  # serial space of one shard generated on its own (`shard_rows`)
# Shards write their events before the others' order counts are known: each shard of a run numbers its new orders
# from a block of this many serials (a shard places tens of thousands of orders at most; the 10**12 tracking numbers
# last for a million shards' blocks).
ORDER_STRIDE = 1 << 20
# The part of a run sized by events that every shard writes while it simulates: its events before the instant where the
# run expects (1 - EARLY_MARGIN) of its events. The run's end is later unless the whole population runs ahead of its
# expectation by the margin (or four standard deviations of a small run's count: events come in sessions, so its
# variance is EVENT_DISPERSION times the count, E[X^2]/E[X] of the events X of a session: 8.3 by the default scenario's
# funnel, 300,000 sessions (9.4 on Android since 0.8.0, whose carting sessions browse more); with 4/sqrt(N), a
# 2,000-event run of 3,000 customers wrote again in 3 of 30 seeds); then the shards write again (and with --bucket the
# early parts are in S3, listed by no manifest). Measured (2M-event runs: first and continuing runs, every example
# scenario, Black Friday inside its sale, 50,000 customers; and a 20,000-event run), the events before the (1 - 0.08)
# instant were 90.8-93.1% of the run: the population is within 1.5% of its expectation, so 5% leaves three times that. A
# scenario whose flash sale multiplies conversion far beyond the examples' 1.5 can run ahead by more and pays a second
# write, never a wrong run.
EARLY_MARGIN = 0.05
EVENT_DISPERSION = 10.0
# The time grid of a run sized by events: the instants where the whole run expects these multiples of its events,
# 0.5, 0.8 and 0.95, then 1 + m, 1 + 2m, 1 + 4m, ... with a margin m of 3%, or four standard deviations of a
# Poisson count for small runs. Shards simulate up to 1 + m (DEFAULT_STOP; short runs a little further, see
# `first_stop`); the run's end almost always falls before it (the expectation is within about 1% at the default
# scenario), and when it does not, every shard simulates again to the next point.
GRID_HEAD = (0.5, 0.8, 0.95)
DEFAULT_STOP = len(GRID_HEAD)
MAX_STOP = DEFAULT_STOP + 24  # 1 + m * 2**24: a population this far below its expectation is refused


def grid_multiple(k: int, events: int) -> float:
    if k < len(GRID_HEAD):
        return GRID_HEAD[k]
    margin = max(0.03, 4 / math.sqrt(events))
    return 1 + margin * 2 ** (k - len(GRID_HEAD))


def next_stop(stop: int, events: int, wanted: int, simulated: int) -> int:
    """The grid point to simulate to after a round up to `stop` held only `simulated` of the `wanted` events:
    the first point past `stop` whose multiple of the expectation covers the shortfall in proportion (at most
    four times the last one). A run's first minutes fall furthest short of the expectation (a cold start has
    no sessions going on yet, and a session's events come minutes after its start), so a run of a few thousand
    events gets there in one more round instead of three. The bytes do not depend on how far shards simulate."""
    need = grid_multiple(stop, events) * min(wanted / max(simulated, 1), 4.0)
    k = stop + 1
    while k < MAX_STOP and grid_multiple(k, events) < need:
        k += 1
    return k


_FULFILMENT = np.isin(np.arange(len(EVENT_TYPES)), [EVENT_CODE[t] for t in ORDER_STAGES[2:]])


def _key(t_us: int) -> int:
    return t_us & 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class GenConfig:
    """Everything that decides the bytes of a run's parts."""

    seed: int
    events: int | None  # exactly this many events; None: every event of [start_us, end_us)
    start_us: int
    shard_size: int
    latency_threshold_ms: int
    customers: int
    end_us: int | None = None  # the window's end, for a run sized by time
    warm: bool = True  # a timeline's first run starts warm; later runs carry on with the pending events
    behaviour: Behaviour = field(default_factory=default_behaviour, compare=False, repr=False)

    def __post_init__(self) -> None:
        """The scenario's weekly random payment outages and its calendar's yearly promotions join its incidents for
        every week the run can reach: from the warm start's orders to well past its expected end (outages are a
        pure function of the seed and the week, promotions of the date, so any span covering the run's gives the
        same ones). Promotions change the traffic, so the run's end cannot be estimated without them: they are
        expanded over all the run may reach (ten years; the incidents' functions skip windows that cover nothing)."""
        b = self.behaviour
        if b.outages_per_week > 0 or b.promotions:
            end = self.end_us
            if end is None:  # (a run of over ten years is refused: no more than that is drawn for it)
                end = self.start_us + int(min(1.5 * window_days(self), MAX_WINDOW_DAYS) * DAY) + 2 * DAY
            end = min(end, self.start_us + (MAX_WINDOW_DAYS + 2) * DAY)
            reach = self.end_us if self.end_us is not None else self.start_us + (MAX_WINDOW_DAYS + 2) * DAY
            span = (self.start_us - WARM_UP, reach)
            object.__setattr__(self, "behaviour", with_recurring(b, self.seed, span[0], end, span)[0])

    @property
    def planned_events(self) -> int:
        """The run's events, or the expected number in its window when it is sized by time."""
        if self.events is not None:
            return self.events
        return max(1, round(expected_events(self, self.start_us, self.end_us or self.start_us)))


@dataclass(frozen=True)
class Shard:
    index: int
    events: int
    first_customer: int
    customers: int


def split(total: int, parts: int, i: int) -> tuple[int, int]:
    """Start and size of part i of `total` split into `parts`: sizes differ by at most one."""
    base, extra = divmod(total, parts)
    return i * base + min(i, extra), base + (1 if i < extra else 0)


def auto_shard_size(events: int, customers: int, b: Behaviour) -> int:
    """Events per shard when the user does not choose: about PART_ROWS_PER_DAY rows per daily partition.

    A shard's events spread over the whole window, one part per day, so shards grow with the window's length
    (fewer, fuller files for long runs), between MIN_SHARD and MAX_SHARD events (memory stays bounded)."""
    days = events / (customers * b.sessions_per_day * expected_events_per_session(b))
    return int(min(max(PART_ROWS_PER_DAY * days, MIN_SHARD), MAX_SHARD))


def shard_count(events: int, customers: int, shard_size: int) -> int:
    return max(math.ceil(events / shard_size), math.ceil(customers / MAX_CUSTOMERS_PER_SHARD))


def plan(cfg: GenConfig) -> list[Shard]:
    """Split the population and the event target into shards (independent of how many workers run them)."""
    events = cfg.planned_events
    # Every shard needs at least one customer: a tiny population makes fewer, larger shards.
    n = min(shard_count(events, cfg.customers, cfg.shard_size), cfg.customers)
    shards = []
    for i in range(n):
        first, count = split(cfg.customers, n, i)
        shards.append(Shard(i, split(events, n, i)[1], first, count))
    return shards


def window_days(cfg: GenConfig) -> float:
    """Days of traffic the run covers (expected, for a run sized by events)."""
    if cfg.events is None:
        return ((cfg.end_us or cfg.start_us) - cfg.start_us) / DAY
    b = cfg.behaviour
    return cfg.events / (cfg.customers * b.sessions_per_day * expected_events_per_session(b))


def expected_events(cfg: GenConfig, t0: int, t1: int) -> float:
    """Expected events of the whole population in [t0, t1), by the traffic curve the sessions are drawn from."""
    b = cfg.behaviour
    mass = float(piece_masses(*intensity_curve(b, t0, t1)).sum())
    return cfg.customers * b.sessions_per_day * expected_events_per_session(b) * mass / DAY


def _time_of(cfg: GenConfig, target: float) -> int:
    """The instant where the population's expected events since the start reach `target` (by the piecewise-linear
    traffic curve the sessions are drawn from: within the run's first hour the curve can sit well off that hour's
    mean, 15% in the first 25 minutes from the default start)."""
    return int(_times_of(cfg, [target])[0])


def _times_of(cfg: GenConfig, targets) -> np.ndarray:
    """`_time_of` of each of `targets` (any order), in one pass over the curve: a shard's grid is four or more of
    them, 3.5 ms one at a time and 0.6 ms together (a 1,000,000-event run's). The curve is taken in the same 30-day
    pieces, so each instant is the same to the microsecond as on its own. `grid_cap` for a target the curve does not
    reach by then."""
    b = cfg.behaviour
    cap = grid_cap(cfg)
    targets = np.asarray(targets, dtype=np.float64)
    out = np.full(targets.size, cap, np.int64)
    per_day = cfg.customers * b.sessions_per_day * expected_events_per_session(b)
    pending = np.arange(targets.size)
    horizon, done = cfg.start_us, 0.0
    while pending.size and horizon < cap:
        at, values = intensity_curve(b, horizon, horizon + 30 * DAY)
        cum = done + np.cumsum(per_day * piece_masses(at, values) / DAY)
        i = np.searchsorted(cum, targets[pending])
        hit = i < cum.size
        if hit.any():
            p, i = pending[hit], i[hit]
            before = np.where(i > 0, cum[i - 1], done)
            with np.errstate(divide="ignore", invalid="ignore"):
                u = np.where(cum[i] > before, (targets[p] - before) / (cum[i] - before), 0.0)
                x = np.where(u > 0, within_piece(u, values[i], values[i + 1]), 0.0)
            out[p] = np.minimum((at[i] + x * (at[i + 1] - at[i])).astype(np.int64) + SECOND, cap)
            pending = pending[~hit]
        done = float(cum[-1])
        horizon += 30 * DAY
    return out


def grid_cap(cfg: GenConfig) -> int:
    """How far a run's simulation may go: ten years from its start (a population so far below its expectation
    that its events need longer is refused, as a run expected to take longer is)."""
    return cfg.start_us + MAX_WINDOW_DAYS * DAY


COLD_START = 3 * 60 * SECOND  # how long a session's events trail its start, for `first_stop`


def first_stop(cfg: GenConfig) -> int:
    """The grid point a run simulates to first: DEFAULT_STOP, or further for a run so short that what its first
    minutes fall below the expectation (a session's events come minutes after its start, and a cold start has
    none going on yet) is more than the grid's margin. A 10,000-event first run from the default start made 9,557
    events by DEFAULT_STOP and needed a second round. The grid is the same, so the bytes are too."""
    if cfg.events is None:
        return DEFAULT_STOP
    need = 1 + expected_events(cfg, cfg.start_us, cfg.start_us + COLD_START) / cfg.events
    k = DEFAULT_STOP
    while k < MAX_STOP and grid_multiple(k, cfg.events) < need:
        k += 1
    if k == DEFAULT_STOP or _time_of(cfg, grid_multiple(k, cfg.events) * cfg.events) < grid_cap(cfg):
        return k  # reached before the cap: `last_stop` is further (asking it walks the ten years: 0.06 s)
    return min(k, last_stop(cfg))


def last_stop(cfg: GenConfig) -> int:
    """The last grid point a run simulates to: the first that reaches `grid_cap`, or MAX_STOP."""
    ks = range(DEFAULT_STOP, MAX_STOP)
    reach = _times_of(cfg, [grid_multiple(k, cfg.events) * cfg.events for k in ks]) >= grid_cap(cfg)
    return ks[int(np.argmax(reach))] if reach.any() else MAX_STOP


def grid(cfg: GenConfig, stop: int) -> list[int]:
    """The block ends of the run's simulation up to grid point `stop` (the same for every shard)."""
    if cfg.events is None:
        return [cfg.end_us]
    ends = _times_of(cfg, [grid_multiple(k, cfg.events) * cfg.events for k in range(stop + 1)])
    return [max(int(e), cfg.start_us + SECOND) for e in ends]


@dataclass(eq=False)
class Pending:
    """Events simulated by earlier runs that fall at or after this run's start: fulfilment of orders placed
    before it, and the rest of sessions that were going on at its start. `events.order` holds each order's
    timeline serial (not a shard-local number); `carrier` is per event (-1 where none)."""

    events: Events
    carrier: np.ndarray

    def __len__(self) -> int:
        return len(self.events)

    @staticmethod
    def empty() -> Pending:
        z64, z8 = np.zeros(0, np.int64), np.zeros(0, np.int8)
        ev = Events(ts=z64, type=z8, customer=z64, platform=z8, amount=z64, method=z8, order=z64, origin=z64)
        return Pending(ev, z8)

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self.events, f.name) for f in fields(Events)} | {"carrier": self.carrier}

    @staticmethod
    def from_columns(cols: dict[str, np.ndarray]) -> Pending:
        ev = Events(**{f.name: np.asarray(cols[f.name]) for f in fields(Events)})
        return Pending(ev, np.asarray(cols["carrier"]))

    def of_customers(self, first: int, count: int) -> Pending:
        keep = np.flatnonzero((self.events.customer >= first) & (self.events.customer < first + count))
        return Pending(self.events.take(keep), self.carrier[keep])

    @staticmethod
    def concat(parts: list[Pending]) -> Pending:
        parts = [p for p in parts if len(p)] or [Pending.empty()]
        return Pending(Events.concat([p.events for p in parts]), np.concatenate([p.carrier for p in parts]))


@dataclass(eq=False)
class Sim:
    """A shard simulated up to `until`: every event it holds before `until` is final. Events are sorted by time
    (ties in the order they were simulated). Orders are numbered locally; `serial` holds the timeline serial of
    orders carried in from earlier runs (-1 for new ones)."""

    events: Events
    carrier: np.ndarray  # int8 per local order
    serial: np.ndarray  # int64 per local order
    order_origin: np.ndarray  # int64 per local order: the start of the session that placed it
    until: int

    def final_ts(self) -> np.ndarray:
        """The times of the final events, sorted (a view: the events are kept sorted by time)."""
        ts = self.events.ts
        return ts[: int(np.searchsorted(ts, self.until))]

    def arrays(self) -> dict[str, np.ndarray]:
        cols = {f"ev_{f.name}": getattr(self.events, f.name) for f in fields(Events)}
        return cols | {
            "carrier": self.carrier,
            "serial": self.serial,
            "order_origin": self.order_origin,
            "until": np.array([self.until], np.int64),
        }

    @staticmethod
    def from_arrays(a: dict[str, np.ndarray]) -> Sim:
        ev = Events(**{f.name: a[f"ev_{f.name}"] for f in fields(Events)})
        return Sim(ev, a["carrier"], a["serial"], a["order_origin"], int(a["until"][0]))


class _Stream:
    """One shard's customers and their running simulation state."""

    def __init__(self, cfg: GenConfig, shard: Shard, pools: Pools):
        self.cfg, self.shard, self.pools, self.b = cfg, shard, pools, cfg.behaviour
        self.ids = np.arange(shard.first_customer, shard.first_customer + shard.customers, dtype=np.int64)
        self.activity_cdf = np.cumsum(activity(cfg.seed, self.ids, self.b))  # expected sessions a day, running
        self.activity_total = float(self.activity_cdf[-1]) if self.ids.size else 0.0
        self.region = region_of(pools.state_is_hub, pools.state_zone)[home_state(cfg.seed, self.ids, pools)]
        # Where the customer lives tilts its platforms (a scenario before 0.7: the mix everywhere).
        self.platform_mix = None if self.b.platform_region_factor is None else platform_by_region(self.b, pools)
        self.primary = primary_platform(cfg.seed, self.ids, self.b, self.region, self.platform_mix)
        self.usual_method = usual_method(cfg.seed, self.ids, self.b, self.region, self.primary)
        self.propensity = propensity(cfg.seed, self.ids, self.b)
        self.signed_up = sign_ups(cfg.seed, self.ids, self.b)  # None: every customer there all along
        self.last_end = np.full(shard.customers, np.iinfo(np.int64).min // 2, np.int64)
        self.chunks: list[Events] = []
        self.carriers: list[np.ndarray] = []
        self.serials: list[np.ndarray] = []
        self.origins: list[np.ndarray] = []
        self.orders = 0

    def arrivals(
        self, r: np.random.Generator, t0: int, t1: int, per_session: float = 1.0, weight: np.ndarray | None = None
    ):
        """Sessions (or checkouts, with per_session < 1) starting in [t0, t1): sorted start times, the block
        position of each one's customer, and the platform it uses.

        Each customer's count is Poisson with mean activity x the window's share of a day's intensity, drawn as
        the pooled process (the same law): the total is Poisson with the summed mean and each arrival picks its
        customer by activity, a search per arrival instead of a draw per customer of the shard (most of whom have
        no session in a block); the arrivals are spread over the window by intensity. `weight` (per customer, at
        most 1) thins each customer's arrivals: its rate is activity x weight. Where the launch's ramp is sign-ups,
        arrivals are drawn at the mature rate (no ramp) and a customer's before its sign-up are left out: the
        ramp's traffic in expectation, carried by the customers signed up."""
        signed_up = self.signed_up
        at, values = intensity_curve(self.b, t0, t1, ramp=signed_up is None)
        mass = float(piece_masses(at, values).sum())
        cdf = self.activity_cdf if weight is None else np.cumsum(np.diff(self.activity_cdf, prepend=0.0) * weight)
        total = float(cdf[-1]) if cdf.size else 0.0
        n = r.poisson(total * (per_session * mass / DAY))
        u = r.random(n)
        u.sort()  # sorted queries search the cdf in one sweep
        local = np.minimum(np.searchsorted(cdf, u * total, side="right"), cdf.size - 1)
        starts = draw_in_curve(r, at, values, local.size)
        # The customers come out in block order and the instants grouped by piece of the curve, earliest first:
        # paired as they are, a customer's sessions would keep to one time of day set by its index. A random
        # permutation pairs them at random, as the pooled process does.
        local = local[r.permutation(local.size)]
        order = stable_order(starts)
        starts, local = starts[order], local[order]
        if signed_up is not None:
            joined = np.flatnonzero(starts >= signed_up[local])
            starts, local = starts[joined], local[joined]
        if self.platform_mix is None:
            other = pick(np.cumsum(self.b.platform_mix), r.random(local.size)).astype(np.int8)
        else:  # another device, from the mix of where the customer lives
            other = platforms_in(self.region[local], self.platform_mix, r.random(local.size))
        platform = np.where(r.random(local.size) < self.b.platform_loyalty, self.primary[local], other)
        return starts, local, platform

    def add_orders(self, r: np.random.Generator, placed: Placed) -> None:
        state = home_state(self.cfg.seed, placed.customer, self.pools)
        transit = transit_factors(self.b, self.pools.state_is_hub, self.pools.state_zone)[state]
        region = region_of(self.pools.state_is_hub, self.pools.state_zone)[state]
        ev, carrier = fulfil(r, self.b, placed, self.orders, transit, region)
        self.chunks.append(ev)
        self.carriers.append(carrier)
        self.serials.append(np.full(carrier.size, -1, np.int64))
        self.origins.append(placed.origin)
        self.orders += carrier.size

    def warm(self) -> None:
        """Orders placed in the weeks before the start: only their fulfilment events from the start on."""
        start = self.cfg.start_us
        r = rng(self.cfg.seed, "warm", _key(start), self.shard.index)
        # Checkouts: each customer's arrivals at its likeliest platform's rate (its propensity times the top
        # platform factor, at most 1), each kept with its own platform's probability relative to that one
        # (thinning: exact, whatever the platforms' factors and the customers' propensities).
        top = cart_probability(self.b, np.array([int(np.argmax(self.b.cart_factor))]), self.propensity)
        # Flash sales in the weeks before (the calendar's promotions): checkouts at the highest rate among them,
        # each kept with its own instant's probability relative to it (thinning again; none: as before them).
        checkout = most = self.b.checkout
        sales = self.b.incidents.conversion
        inside = (sales.end_us > start - WARM_UP) & (sales.start_us < start)
        if inside.any():
            edges = np.r_[sales.start_us[inside], sales.end_us[inside]]  # where the factor can change
            at = np.r_[start - WARM_UP, np.clip(edges, start - WARM_UP, start - 1)]
            most = float(np.minimum(self.b.checkout * conversion_factor(self.b, at), 1.0).max())
        t, local, platform = self.arrivals(r, start - WARM_UP, start, (1 - self.b.bounce) * most, top)
        keep = r.random(t.size) * top[local] < cart_probability(self.b, platform, self.propensity[local])
        t, local, platform = t[keep], local[keep], platform[keep]
        if most != checkout:
            keep = r.random(t.size) * most < np.minimum(checkout * conversion_factor(self.b, t), 1.0)
            t, local, platform = t[keep], local[keep], platform[keep]
        cell = method_cell(self.b, self.region[local], platform)  # no basket drawn here: no USSD cap
        _, success, _ = pay(r, self.b, t.size, ts=t, usual=self.usual_method[local], cell=cell)
        placed = Placed(ts=t[success], customer=self.ids[local[success]], platform=platform[success], origin=t[success])
        self.add_orders(r, placed)
        self.chunks[-1] = self.chunks[-1].take(np.flatnonzero(self.chunks[-1].ts >= start))

    def carry(self, pending: Pending) -> None:
        """Take over the events earlier runs left pending: their orders become local orders 0..k-1 (keeping
        their serials and carriers), and a session still going on delays its customer's next one."""
        ev = pending.events
        has_order = ev.order >= 0
        serial, first, local = np.unique(ev.order[has_order], return_index=True, return_inverse=True)
        order = np.full(len(ev), -1, np.int64)
        order[has_order] = local
        rows = np.flatnonzero(has_order)[first]
        self.chunks.append(Events(**{**{f.name: getattr(ev, f.name) for f in fields(Events)}, "order": order}))
        self.carriers.append(pending.carrier[rows].astype(np.int8))
        self.serials.append(serial.astype(np.int64))
        self.origins.append(ev.origin[rows])
        self.orders += serial.size
        session = ~_FULFILMENT[ev.type]
        np.maximum.at(self.last_end, ev.customer[session] - self.shard.first_customer, ev.ts[session])

    def block(self, i: int, t0: int, t1: int) -> None:
        r = rng(self.cfg.seed, "block", _key(self.cfg.start_us), self.shard.index, i)
        starts, local, platform = self.arrivals(r, t0, t1)
        spend = spend_scale(self.b, self.region[local], platform)
        ev, placed = simulate(
            r,
            self.b,
            starts,
            self.ids[local],
            platform,
            local,
            self.last_end,
            self.orders,
            spend,
            self.usual_method[local],
            self.propensity[local],
            method_cell(self.b, self.region[local], platform),
        )
        self.chunks.append(ev)
        self.add_orders(r, placed)

    def sim(self, until: int) -> Sim:
        def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype)

        events = Events.concat(self.chunks) if self.chunks else Pending.empty().events
        return Sim(
            events=events.take(stable_order(events.ts)),
            carrier=cat(self.carriers, np.int8),
            serial=cat(self.serials, np.int64),
            order_origin=cat(self.origins, np.int64),
            until=until,
        )


def simulate_shard(
    cfg: GenConfig, shard: Shard, pending: Pending | None = None, stop: int = DEFAULT_STOP, pools: Pools | None = None
) -> Sim:
    """Simulate the shard over the run's grid up to point `stop`: a timeline's first run starts warm, a later one
    carries on with `pending` (the events earlier runs left for this shard's customers)."""
    s = _Stream(cfg, shard, pools or default_pools())
    if cfg.warm:
        s.warm()
    if pending is not None and len(pending):
        s.carry(pending)
    t0 = cfg.start_us
    for i, t1 in enumerate(grid(cfg, stop)):
        s.block(i, t0, t1)
        t0 = t1
    return s.sim(t0)


@dataclass(eq=False)
class Cut:
    """A shard's share of a run: the events it writes (sorted by time, local order numbers, with each local
    order's serial and carrier) and the events it carries into the next run."""

    written: Events
    serial: np.ndarray
    carrier: np.ndarray
    carried: Pending
    new_orders: int  # orders of this run (given serials from `first_serial`)


def cut(sim: Sim, last_ts: int, take: int, first_serial: int) -> Cut:
    """Split the shard at the run's end, `last_ts + 1`: events before `last_ts`, and the first `take` of those at
    `last_ts`, are written (other events at `last_ts` move to the end, one microsecond on, into the next run);
    the rest of sessions and orders begun before the end are carried; those begun after it are dropped. Orders
    placed in this run get serials from `first_serial` in local order (see `number_orders`)."""
    ev = sim.events
    end = last_ts + 1
    # Events are sorted by time and none comes before the start of its session, so every event before the end is
    # from a session begun before it: the written events are a prefix (a view, no copy); only the rest is sorted
    # into carried and dropped.
    at = np.searchsorted(ev.ts, [last_ts, end])
    n_written = int(at[0]) + min(take, int(at[1] - at[0]))
    written = ev.take(slice(0, n_written))
    tail = ev.take(slice(n_written, len(ev)))
    later = tail.take(np.flatnonzero(tail.origin < end))
    later.ts = np.maximum(later.ts, end)
    serial, new_orders = number_orders(sim, first_serial)
    has_order = later.order >= 0
    carried_carrier = np.where(has_order, sim.carrier[np.maximum(later.order, 0)] if sim.carrier.size else -1, -1)
    later.order = np.where(has_order, serial[np.maximum(later.order, 0)] if serial.size else -1, -1)
    return Cut(written, serial, sim.carrier, Pending(later, carried_carrier.astype(np.int8)), new_orders)


def number_orders(sim: Sim, first_serial: int) -> tuple[np.ndarray, int]:
    """Each local order's timeline serial: carried orders keep theirs, this run's orders take `first_serial`,
    `first_serial + 1`, ... in local order (those begun after the run's end leave their numbers unused), so a
    serial never depends on where the run ends. Also how many this run placed."""
    serial = sim.serial.copy()
    new = np.flatnonzero(serial < 0)
    serial[new] = first_serial + np.arange(new.size)
    return serial, int(new.size)


def cut_before(sim: Sim, until_ts: int, first_serial: int) -> tuple[Cut, Sim]:
    """The shard's events before `until_ts` (at or before the run's end, so all of them are written), and the rest
    of its simulation to cut at the end later; orders numbered as in `cut`."""
    ev = sim.events
    n = int(np.searchsorted(ev.ts, until_ts))
    serial, new_orders = number_orders(sim, first_serial)
    early = Cut(ev.take(slice(0, n)), serial, sim.carrier, Pending.empty(), new_orders)
    rest = Sim(ev.take(slice(n, len(ev))), sim.carrier, serial, sim.order_origin, sim.until)
    return early, rest


def early_until(cfg: GenConfig) -> int | None:
    """The instant before which a run sized by events writes during the simulation (None: a run sized by time)."""
    if cfg.events is None:
        return None
    margin = max(EARLY_MARGIN, 4 * math.sqrt(EVENT_DISPERSION / cfg.events))
    return max(cfg.start_us, _time_of(cfg, (1 - margin) * cfg.events)) if margin < 1 else cfg.start_us


SAMPLE_EVERY = 64  # a shard reports every 64th of its sorted final times; the coordinator reads few others


def time_sample(final_ts: np.ndarray, every: int = SAMPLE_EVERY) -> np.ndarray:
    """Every `every`-th of a shard's sorted final times (the one at index k*every - 1, k = 1, 2, ...)."""
    return np.ascontiguousarray(final_ts[every - 1 :: every])


def cut_point_sampled(
    samples: list[np.ndarray],
    sizes: list[int],
    events: int,
    read: Callable[[int, int, int], np.ndarray],
    every: int = SAMPLE_EVERY,
) -> tuple[int, list[int]] | None:
    """The instant of the run's last event when `events` are taken from the shards' sorted final times, and how
    many of the events at that instant each shard takes (in shard order); None when there are too few.

    The shards' samples (`time_sample`) bound every count: a shard with c samples at or below v has at least
    K*c and at most K*c + K - 1 times at or below v (K = `every`). They bracket the answer between two
    sample values lo < answer <= hi; `read(shard, i, j)` then gives the shard's final times i..j-1 around the
    bracket: its times in (lo, hi] and at most K - 1 more on either side. That is a few K per shard, save where many
    times are one instant inside the bracket: the one window per shard holds all of them (the takes count them).
    The answer is picked by rank among them. The caller never holds more than the samples and these reads."""
    k, n_shards = every, len(sizes)
    if events < 1 or sum(sizes) < events:
        return None
    every = np.sort(np.concatenate(samples)) if samples else np.zeros(0, np.int64)
    # Upper end: a sample value with at least `events` times at or below it, by the lower bounds alone.
    j = -(-events // k) - 1
    hi = int(every[j]) if j < every.size else None
    # Lower end: a sample value with fewer than `events` times at or below it, even by the upper bounds.
    j = min((events - 1 - (k - 1) * n_shards) // k - 1, every.size - 1)
    while j >= 0 and k * int(np.searchsorted(every, every[j], side="right")) + (k - 1) * n_shards >= events:
        j = int(np.searchsorted(every, every[j], side="left")) - 1
    lo = int(every[j]) if j >= 0 else None
    windows, starts = [], []
    for s, (sample, n) in enumerate(zip(samples, sizes, strict=True)):
        i0 = 0 if lo is None else k * int(np.searchsorted(sample, lo, side="right"))
        i1 = n if hi is None else min(k * int(np.searchsorted(sample, hi, side="right")) + k - 1, n)
        windows.append(read(s, i0, max(i0, i1)))
        starts.append(i0)
    below = sum(
        i0 + (int(np.searchsorted(w, lo, side="right")) if lo is not None else 0)
        for i0, w in zip(starts, windows, strict=True)
    )
    between = np.concatenate([w[np.searchsorted(w, lo, side="right") if lo is not None else 0 :] for w in windows])
    between = between[between <= hi] if hi is not None else between
    rank = events - below - 1
    last = int(np.partition(between, rank)[rank])
    left = events - sum(i0 + int(np.searchsorted(w, last, side="left")) for i0, w in zip(starts, windows, strict=True))
    takes = []
    for w in windows:
        tied = int(np.searchsorted(w, last, side="right") - np.searchsorted(w, last, side="left"))
        takes.append(min(tied, left))
        left -= takes[-1]
    return last, takes


def cut_point(final_ts: list[np.ndarray], events: int, every: int = SAMPLE_EVERY) -> tuple[int, list[int]] | None:
    """`cut_point_sampled` over whole arrays of sorted final times (one shard alone, tests)."""
    samples = [time_sample(a, every) for a in final_ts]
    sizes = [a.size for a in final_ts]
    return cut_point_sampled(samples, sizes, events, lambda s, i, j: final_ts[s][i:j], every)


def shard_cut(cfg: GenConfig, shard: Shard, pools: Pools | None = None) -> Cut:
    """One shard on its own, as if it were the whole run (tests and benchmarks): its first `shard.events` events,
    or with a time-sized config every event before the end. Raises ValueError when the shard has not made
    `shard.events` events by the grid's last point (`last_stop`), where a run gives up too."""
    stop = first_stop(cfg)
    while True:
        sim = simulate_shard(cfg, shard, stop=stop, pools=pools)
        if cfg.events is None:
            return cut(sim, cfg.end_us - 1, len(sim.events), shard.index * ORDERS_PER_SHARD)
        point = cut_point([sim.final_ts()], shard.events)
        if point is not None:
            return cut(sim, point[0], point[1][0], shard.index * ORDERS_PER_SHARD)
        if stop >= last_stop(cfg):
            raise ValueError(f"shard {shard.index}: the population made too few events for {shard.events}")
        stop = min(next_stop(stop, cfg.events, shard.events, sim.final_ts().size), last_stop(cfg))


_EVENT_TYPES = pa.array(EVENT_TYPES)
_PLATFORMS = pa.array(PLATFORMS)


# UUID octets 6 and 8 as bits of the two little-endian 64-bit words of each id.
_VERSION_MASK, _VERSION_4 = np.uint64(~(0xF0 << 48) & (2**64 - 1)), np.uint64(0x40 << 48)
_VARIANT_MASK, _VARIANT_RFC = np.uint64(~0xC0 & (2**64 - 1)), np.uint64(0x80)


_INT32_MAX = np.iinfo(np.int32).max


def network_ms(b: Behaviour, operator: np.ndarray, ts: np.ndarray, quality: np.ndarray | None = None) -> np.ndarray:
    """The network round trip (whole ms, as float) of each event's customer, on its mobile operator (an index into
    `behaviour.OPERATORS`) at its instant: the operator's idle round trip times the customer's own `quality`
    (`population.network_quality`), times 1 + peak_load x (intensity - 1) while the traffic curve is above its
    mean (congested cells at the evening peak and in a flash sale). (A scenario of before 0.4, one floor for
    everyone and no load, gets its floor as it is.)"""
    base = b.latency_network_ms[operator]  # a new array: the steps below work in place
    if quality is not None:
        base *= quality
    if b.latency_peak_load > 0 and ts.size:
        at, values = intensity_curve(b, int(ts.min()), int(ts.max()) + 1)
        load = np.interp(ts, at, values)
        load -= 1.0
        np.maximum(load, 0.0, out=load)
        load *= b.latency_peak_load
        load += 1.0
        base *= load
    elif quality is None:
        return base
    return np.rint(base, out=base)


def latency_ms(
    r: np.random.Generator,
    b: Behaviour,
    platform: np.ndarray,
    ts: np.ndarray,
    network: np.ndarray | float = 0.0,
    kind: np.ndarray | None = None,
) -> np.ndarray:
    """Latency in whole ms (int32, at least 1) of events on each platform at each instant: the customer's network
    round trip (`network_ms`) plus the platform's lognormal server time (median and sigma from the scenario, the
    median times the event type's server factor when `kind` gives the types) drawn exactly, so values are
    continuous and the tail is the law's own, times a latency degradation's factor inside its window."""
    p = platform.astype(np.intp)
    ms = r.standard_normal(p.size)
    ms *= b.latency_sigma[p]
    np.exp(ms, out=ms)
    ms *= b.latency_server_ms[p]
    if kind is not None and (b.latency_server_factor != 1).any():
        ms *= b.latency_server_factor[kind]
    ms += network
    if len(b.incidents.latency_degradation):  # a degraded platform is slower inside its incident's window
        ms *= latency_factor(b, platform, ts)
    np.rint(ms, out=ms)
    return np.clip(ms, 1, _INT32_MAX, out=ms).astype(np.int32)


_STATUS_OF_TYPE = np.array(
    [PAYMENT_STATUSES.index(PAYMENT_STATUS_BY_TYPE[t]) if t in PAYMENT_STATUS_BY_TYPE else -1 for t in EVENT_TYPES]
)


@dataclass(frozen=True, eq=False)
class ShardRows:
    """A shard's rows sorted by event_ts, ready to become tables for any row range (one per partition).

    `fixed` columns are Arrow arrays, sliced as they are. Keyed columns (the customer identities, tracking
    numbers) are per-row keys into per-shard strings; each range gets them as dictionaries holding only the
    values it uses, each once, so the Parquet writer stores codes without copying or hashing a string per row.
    """

    ts: np.ndarray
    fixed: dict[str, pa.Array]
    # (per-row key, number of keys, {column: (code of each key or None when keys are the codes, values)})
    keyed: tuple[tuple[np.ndarray, int, dict[str, tuple[np.ndarray | None, pa.Array]]], ...]

    def __len__(self) -> int:
        return self.ts.size

    def table(self, lo: int = 0, hi: int | None = None) -> pa.Table:
        hi = len(self) if hi is None else hi
        columns = {name: array.slice(lo, hi - lo) for name, array in self.fixed.items()}
        for key, universe, named in self.keyed:
            # key: per-row index into the shard's keys (customers, orders); each named column maps a key to a
            # code into its own distinct values, so equal strings (two Emeka Ezes) share one dictionary entry.
            used, position = distinct_positions(key[lo:hi], max(universe, 1))
            missing = position < 0
            for name, (code_of_key, values) in named.items():
                if code_of_key is None:  # values unique per key: the used keys are the kept values
                    kept, remap = used, np.arange(used.size)
                else:
                    kept, remap = distinct_positions(code_of_key[used], max(len(values), 1))
                if missing.any():
                    row_codes = np.where(missing, -1, remap[np.maximum(position, 0)] if used.size else -1)
                else:
                    row_codes = remap[position]
                # Codes are positions among the kept values (distinct_positions): in range by construction.
                columns[name] = dictionary(row_codes, values.take(pa.array(kept)), checked=False)
        return pa.Table.from_arrays([columns[c] for c in COLUMN_NAMES], schema=encoded_schema())


_DISTINCT = ("customer_id", "phone_number", "email")


def _distinct_codes(values: pa.Array) -> tuple[np.ndarray | None, pa.Array]:
    """Per value, a code into the distinct values (in first-seen order), and those distinct values; no codes
    (None) when the values are already distinct."""
    encoded = pc.dictionary_encode(values)
    if len(encoded.dictionary) == len(values):
        return None, values
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def build_rows(cfg: GenConfig, shard: Shard, c: Cut, pools: Pools | None = None, piece: int = 0) -> ShardRows:
    """The columns of the events a shard writes (in the shard's `piece`-th batch of the run): ids, latency and its
    error code drawn here, identities from the customers, tracking numbers from the orders' serials."""
    pools = pools or default_pools()
    b = cfg.behaviour
    ev = c.written
    n = len(ev)
    keys = (_key(cfg.start_us), shard.index) + ((piece,) if piece else ())
    r = rng(cfg.seed, "columns", *keys)

    words = r.integers(0, np.iinfo(np.uint64).max, size=(n, 2), dtype=np.uint64, endpoint=True)
    words[:, 0] = (words[:, 0] & _VERSION_MASK) | _VERSION_4  # octet 6: version 4
    words[:, 1] = (words[:, 1] & _VARIANT_MASK) | _VARIANT_RFC  # octet 8: RFC 9562 variant
    storage = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(words)])
    event_id = pa.ExtensionArray.from_storage(pa.uuid(), storage)

    event_ts = pa.Array.from_buffers(pa.timestamp("us", tz="UTC"), n, [None, pa.py_buffer(ev.ts)])
    active, cust_pos = distinct_positions(ev.customer - shard.first_customer, shard.customers)
    customers = shard.first_customer + active
    operator = operators(cfg.seed, customers, pools)[cust_pos]
    quality = network_quality(cfg.seed, customers, b)[cust_pos]
    network = network_ms(b, operator, ev.ts, quality)
    if not b.latency_fulfilment_round_trip:  # back-office events: server to server, no customer's round trip
        network[_FULFILMENT[ev.type]] = 0.0
    latency = latency_ms(r, b, ev.platform, ev.ts, network, ev.type)
    slow = latency > cfg.latency_threshold_ms

    ident = identities(cfg.seed, customers, pools, cfg.customers)
    carriers = c.carrier
    used_orders, order_pos = distinct_positions(ev.order, max(len(carriers), 1))
    tracking = tracking_numbers(cfg.seed, c.serial[used_orders], carriers[used_orders], b)
    carrier = np.where(ev.order >= 0, carriers[np.maximum(ev.order, 0)] if len(carriers) else -1, -1)

    amount_valid = ev.amount >= 0
    words = np.zeros((n, 2), np.int64)
    words[:, 0] = np.where(amount_valid, ev.amount, 0)
    validity = pa.array(amount_valid).buffers()[1]
    amount = pa.Array.from_buffers(
        pa.decimal128(12, 2), n, [validity, pa.py_buffer(words)], null_count=int(n - amount_valid.sum())
    )

    fixed = {
        "event_id": event_id,
        "event_ts": event_ts,
        "event_type": dictionary(ev.type, _EVENT_TYPES),
        "platform": dictionary(ev.platform, _PLATFORMS),
        "latency_ms": pa.array(latency),
        "error_code": sparse_strings(np.where(slow, 0, -1), (INVALID_LATENCY,)),
        "total_amount": amount,
        "payment_method": sparse_strings(ev.method, PAYMENT_METHODS),
        "payment_status": sparse_strings(_STATUS_OF_TYPE[ev.type], PAYMENT_STATUSES),
        "carrier": sparse_strings(carrier, b.carriers.names),
    }
    keyed = (
        # customer ids, phones and e-mails are distinct by construction (unique across the population); names and
        # addresses may repeat
        (cust_pos, active.size, {k: (None, v) if k in _DISTINCT else _distinct_codes(v) for k, v in ident.items()}),
        (order_pos, used_orders.size, {"tracking_number": (None, tracking)}),  # one per order, never shared
    )
    return ShardRows(ts=ev.ts, fixed=fixed, keyed=keyed)


def shard_rows(cfg: GenConfig, shard: Shard, pools: Pools | None = None) -> ShardRows:
    """One shard on its own, as if it were the whole run (tests and benchmarks), as columns."""
    return build_rows(cfg, shard, shard_cut(cfg, shard, pools), pools)


def shard_table(cfg: GenConfig, shard: Shard, pools: Pools | None = None) -> pa.Table:
    """The shard's part as one Arrow table in `encoded_schema()`, sorted by event_ts (`decoded()` gives it as
    readers see it)."""
    return shard_rows(cfg, shard, pools).table()
