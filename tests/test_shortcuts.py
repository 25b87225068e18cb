"""The generator's shortcuts give exactly what the computations they replace give: the run's time grid resolved in
one pass over the traffic curve, the hourly intensities kept per scenario, a short run's first grid point, the
population's e-mail reissues found without sorting every address with its customer, and the e-mail hash's tables
built a byte position at a time. Each is checked against the plain computation, written out here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from generator.config import ConfigError, RunConfig
from generator.core import population as population_module
from generator.core import sessions as sessions_module
from generator.core import shard as shard_module
from generator.core.events import DAY, HOUR, SECOND
from generator.core.nigeria import default_pools
from generator.core.population import _HASH_BASE, _address_hashes, _EmailHash, email_reissues
from generator.core.sessions import expected_events_per_session, intensity, intensity_curve, piece_masses, within_piece

SCENARIOS = Path(__file__).resolve().parents[1] / "generator" / "scenarios"
START = 1_761_951_600_000_000  # 2025-11-01 00:00 WAT


def _config(scenario: str | None, events: int, customers: int | None, offset_hours: int):
    """The resolved config of such a run (a combination the generator refuses, too few customers for the events
    within ten years, is not one to draw)."""
    from datetime import UTC, datetime

    start = datetime.fromtimestamp((START + offset_hours * HOUR) / 1e6, UTC)
    run = RunConfig(
        events=events,
        workers=1,
        run_id="shortcuts",
        customers=customers,
        start=start,
        scenario=SCENARIOS / scenario if scenario else None,
    )
    try:
        return run.resolve(None).gen()
    except ConfigError:
        reject()


def _time_of_plainly(cfg, target: float) -> int:
    """The instant where the population's expected events since the start reach `target`, one target at a time,
    thirty days of the curve after another (as the grid was worked out before `_times_of`)."""
    b = cfg.behaviour
    cap = shard_module.grid_cap(cfg)
    per_day = cfg.customers * b.sessions_per_day * expected_events_per_session(b)
    horizon, done = cfg.start_us, 0.0
    while horizon < cap:
        at, values = _plain_curve(b, horizon, horizon + 30 * DAY)
        cum = done + np.cumsum(per_day * piece_masses(at, values) / DAY)
        i = int(np.searchsorted(cum, target))
        if i < cum.size:
            before = cum[i - 1] if i else done
            u = (target - before) / (cum[i] - before) if cum[i] > before else 0.0
            x = float(within_piece(u, values[i], values[i + 1])) if u > 0 else 0.0
            return min(int(at[i] + x * (at[i + 1] - at[i])) + SECOND, cap)
        done = float(cum[-1])
        horizon += 30 * DAY
    return cap


def _plain_curve(b, t0: int, t1: int):
    """`intensity_curve` with every hour's intensity worked out afresh (no hours kept)."""
    sessions_module._HOURLY.pop(b, None)
    try:
        return intensity_curve(b, t0, t1)
    finally:
        sessions_module._HOURLY.pop(b, None)


_CONFIGS = st.tuples(
    st.sampled_from([None, "launch.toml", "black-friday.toml", "payment-outage.toml"]),
    st.sampled_from([7, 1_000, 20_000, 500_000, 5_000_000]),
    st.sampled_from([None, 300, 5_000]),
    st.integers(-24 * 40, 24 * 400),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_CONFIGS, st.lists(st.floats(0.0, 3.0), min_size=1, max_size=6))
def test_the_grid_in_one_pass_is_each_instant_worked_out_alone(config, fractions):
    """Targets in any order, at and past the run's size (some beyond what ten years of this population make)."""
    cfg = _config(*config)
    targets = [f * cfg.events for f in fractions] + [
        shard_module.grid_multiple(k, cfg.events) * cfg.events for k in (0, 3, 8)
    ]
    got = shard_module._times_of(cfg, targets)
    assert got.tolist() == [_time_of_plainly(cfg, t) for t in targets]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_CONFIGS)
def test_a_runs_first_and_last_grid_points_are_those_of_the_plain_search(config):
    """`first_stop` asks for `last_stop` only where the first point it needs is not reached before the cap; the
    answer is `min(k, last_stop)` either way."""
    cfg = _config(*config)
    last = shard_module.DEFAULT_STOP
    while last < shard_module.MAX_STOP and _time_of_plainly(
        cfg, shard_module.grid_multiple(last, cfg.events) * cfg.events
    ) < shard_module.grid_cap(cfg):
        last += 1
    assert shard_module.last_stop(cfg) == last
    need = 1 + shard_module.expected_events(cfg, cfg.start_us, cfg.start_us + shard_module.COLD_START) / cfg.events
    k = shard_module.DEFAULT_STOP
    while k < shard_module.MAX_STOP and shard_module.grid_multiple(k, cfg.events) < need:
        k += 1
    assert shard_module.first_stop(cfg) == (k if k == shard_module.DEFAULT_STOP else min(k, last))


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([None, "launch.toml", "black-friday.toml"]),
    st.lists(
        st.tuples(st.integers(-24 * 800, 24 * 800), st.integers(1, 24 * 90), st.booleans()), min_size=1, max_size=8
    ),
)
def test_hours_kept_are_the_hours_worked_out_anew(scenario, requests):
    """Requests before, across, after and far from the hours kept so far, with and without a launch's ramp: every
    answer is `intensity` of those hours, bit for bit, and no caller can write into what is kept."""
    b = _config(scenario, 1_000, None, 0).behaviour
    sessions_module._HOURLY.pop(b, None)
    for offset, n, ramp in requests:
        first = START + offset * HOUR
        got = sessions_module.hourly_intensity(b, first, n, ramp)
        assert np.array_equal(got, intensity(b, first + HOUR * np.arange(n, dtype=np.int64), ramp))
        assert not got.flags.writeable
    for _, kept in sessions_module._HOURLY.get(b, {}).values():
        assert not kept.flags.writeable
    sessions_module._HOURLY.pop(b, None)


def _pending_plainly(seed: int, population: int) -> np.ndarray:
    """The customers whose first-choice address a lower-numbered customer has: a dictionary of addresses."""
    natural, _ = _address_hashes(seed, range(population), default_pools(), _EmailHash(default_pools()))
    holder: dict[int, int] = {}
    pending = []
    for customer, h in enumerate(natural.tolist()):
        if h in holder:
            pending.append(customer)
        else:
            holder[h] = customer
    return np.array(pending, np.int64)


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60_000))
def test_the_customers_who_pick_another_address_are_those_a_dictionary_finds(seed, population):
    """Of each address's holders the lowest-numbered keeps it, and every other one picks another."""
    population_module._reissued.clear()
    try:
        idx, _ = email_reissues(seed, population, default_pools())
    finally:
        population_module._reissued.clear()
    assert np.array_equal(idx, _pending_plainly(seed, population))


def test_the_default_population_has_addresses_to_reissue():
    """(So that the property above checks something at the sizes it draws: about one in a hundred at 50,000.)"""
    assert _pending_plainly(42, 50_000).size > 100


def _polynomial_hash(s: str) -> tuple[int, int]:
    x, power = 0, 1
    for ch in s.encode():
        x = (x * _HASH_BASE + ch) & 0xFFFFFFFFFFFFFFFF
        power = (power * _HASH_BASE) & 0xFFFFFFFFFFFFFFFF
    return x, power


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=40))
def test_the_email_hash_tables_are_the_polynomial_hash_of_each_word(words):
    """Empty words, words of different lengths and non-ASCII ones (hashed by their UTF-8 bytes)."""
    built = _tables_of(words)
    assert [(int(h), int(p)) for h, p in zip(*built, strict=True)] == [_polynomial_hash(w) for w in words]


def _tables_of(words: list[str]):
    """`_EmailHash`'s table of `words`, through a stand-in for the pools."""

    class Words:
        def __init__(self, values):
            self.values = values

        def to_pylist(self):
            return self.values

    class Pools:
        email_words = Words(words)
        email_domains = Words(["gmail.com"])

    return _EmailHash(Pools()).words


def test_the_email_hash_tables_of_the_pools_are_the_polynomial_hash():
    table = _EmailHash(default_pools())
    words = default_pools().email_words.to_pylist()
    assert [(int(h), int(p)) for h, p in zip(*table.words, strict=True)] == [_polynomial_hash(w) for w in words]
    digits = [""] + [str(d) for d in range(population_module.EMAIL_DIGITS_MAX + 1)]
    assert [(int(h), int(p)) for h, p in zip(*table.digits, strict=True)] == [_polynomial_hash(d) for d in digits]


@pytest.mark.parametrize("population", [1, 2, 3])
def test_tiny_populations_have_nothing_to_reissue(population):
    population_module._reissued.clear()
    try:
        idx, digits = email_reissues(7, population, default_pools())
    finally:
        population_module._reissued.clear()
    assert idx.size == 0 and digits.size == 0
