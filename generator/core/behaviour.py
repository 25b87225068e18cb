"""The behavioural parameters of the simulation, read from the packaged `behaviour.toml` into arrays the core uses.

Mixes keyed by a name in the schema (platforms, payment methods, event types) become arrays in the schema's code
order, so the core indexes them by the same integer codes it writes.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from generator.schema import EVENT_CODE, EVENT_TYPES, PAYMENT_METHODS, PLATFORMS


def _ordered(mix: dict[str, float], names: tuple[str, ...], what: str) -> np.ndarray:
    unknown = set(mix) - set(names)
    if unknown:
        raise ValueError(f"{what}: unknown keys {sorted(unknown)}")
    return np.array([float(mix.get(n, 0.0)) for n in names])


@dataclass(frozen=True, eq=False)
class Carriers:
    names: tuple[str, ...]
    share: np.ndarray
    transit_days: np.ndarray
    tracking_prefix: tuple[str, ...]
    tracking_digits: np.ndarray


@dataclass(frozen=True, eq=False)
class Behaviour:
    raw: dict
    customers: int
    sessions_per_day: float
    activity_shape: float
    platform_mix: np.ndarray
    platform_loyalty: float
    hourly_wat: np.ndarray
    weekend_factor: float
    payday_factor: float
    payday_from_day: int
    login: float
    bounce: float
    extra_views_mean: float
    add_to_cart: float
    add_more: float
    checkout: float
    method_mix: np.ndarray
    method_failure: np.ndarray
    retry: float
    switch_method: float
    max_attempts: int
    basket_median: float
    basket_sigma: float
    basket_min: int
    basket_max: int
    packed_hours: float
    shipped_hours: float
    hours_sigma: float
    transit_sigma: float
    outside_hubs_factor: float
    carriers: Carriers
    gap_seconds: np.ndarray  # median gap before each event type, indexed by event code
    gap_sigma: float
    retry_pause_seconds: float
    latency_median_ms: np.ndarray
    latency_sigma: np.ndarray
    latency_threshold_ms: int

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
            hourly_wat=np.array(t["hourly_wat"], dtype=float),
            weekend_factor=float(t["weekend_factor"]),
            payday_factor=float(t["payday_factor"]),
            payday_from_day=int(t["payday_from_day"]),
            login=float(f["login"]),
            bounce=float(f["bounce"]),
            extra_views_mean=float(f["extra_views_mean"]),
            add_to_cart=float(f["add_to_cart"]),
            add_more=float(f["add_more"]),
            checkout=float(f["checkout"]),
            method_mix=_ordered(pay["mix"], PAYMENT_METHODS, "payment.mix"),
            method_failure=_ordered(pay["failure"], PAYMENT_METHODS, "payment.failure"),
            retry=float(pay["retry"]),
            switch_method=float(pay["switch_method"]),
            max_attempts=int(pay["max_attempts"]),
            basket_median=float(b["median_ngn"]),
            basket_sigma=float(b["sigma"]),
            basket_min=int(b["min_ngn"]),
            basket_max=int(b["max_ngn"]),
            packed_hours=float(ful["packed_hours_median"]),
            shipped_hours=float(ful["shipped_hours_median"]),
            hours_sigma=float(ful["hours_sigma"]),
            transit_sigma=float(ful["transit_sigma"]),
            outside_hubs_factor=float(ful["outside_hubs_factor"]),
            carriers=Carriers(
                names=names,
                share=np.array([float(car[n]["share"]) for n in names]),
                transit_days=np.array([float(car[n]["transit_days"]) for n in names]),
                tracking_prefix=tuple(str(car[n]["tracking_prefix"]) for n in names),
                tracking_digits=np.array([int(car[n]["tracking_digits"]) for n in names]),
            ),
            gap_seconds=gaps,
            gap_sigma=float(s["gap_sigma"]),
            retry_pause_seconds=float(s["retry_pause_seconds"]),
            latency_median_ms=_ordered(lat["median_ms"], PLATFORMS, "latency.median_ms"),
            latency_sigma=_ordered(lat["sigma"], PLATFORMS, "latency.sigma"),
            latency_threshold_ms=int(lat["threshold_ms"]),
        )


@lru_cache(maxsize=1)
def default_behaviour() -> Behaviour:
    text = resources.files("generator").joinpath("data/behaviour.toml").read_text(encoding="utf-8")
    return Behaviour.from_dict(tomllib.loads(text))
