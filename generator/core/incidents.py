"""Incidents: what a scenario's time-windowed overrides do to the simulation, as pure functions over whole arrays.

Each function takes the behaviour and arrays of codes and instants (microseconds since the epoch, UTC) and returns
one value per element; a window [start, end) covers the instants inside it. With no incidents of a kind, every
result is the neutral value (the base rate, a factor of 1, no extra days). Overlapping windows combine: factors
multiply, extra days add, and an outage sets the highest of the covering failure rates.
"""

from __future__ import annotations

import numpy as np

from generator.core.behaviour import Behaviour, Windows
from generator.core.events import HOUR


def _covers(w: Windows, i: int, ts_us: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    inside = (ts_us >= w.start_us[i]) & (ts_us < w.end_us[i])
    return inside if codes is None else inside & (codes == w.target[i])


def _product(w: Windows, ts_us: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    out = np.ones(np.shape(ts_us))
    for i in range(len(w)):
        out = np.where(_covers(w, i, ts_us, codes), out * w.value[i], out)
    return out


def method_failure_at(b: Behaviour, method_codes: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Failure probability of a payment attempt with each method at each instant: the method's base rate, or
    inside a payment outage of that method the outage's failure rate."""
    method_codes = np.asarray(method_codes)
    w = b.incidents.payment_outage
    outage = np.full(np.broadcast_shapes(method_codes.shape, np.shape(ts_us)), np.nan)
    for i in range(len(w)):
        outage = np.fmax(outage, np.where(_covers(w, i, ts_us, method_codes), w.value[i], np.nan))
    return np.where(np.isnan(outage), b.method_failure[method_codes], outage)


def traffic_factor(b: Behaviour, hour_starts_us: np.ndarray) -> np.ndarray:
    """Session intensity factor of each hour (given by its start) from flash sales: a sale covering part of an
    hour raises it in proportion to the part covered."""
    w = b.incidents.traffic
    out = np.ones(np.shape(hour_starts_us))
    for i in range(len(w)):
        overlap = np.minimum(hour_starts_us + HOUR, w.end_us[i]) - np.maximum(hour_starts_us, w.start_us[i])
        out = out * (1 + (w.value[i] - 1) * np.clip(overlap, 0, HOUR) / HOUR)
    return out


def conversion_factor(b: Behaviour, ts_us: np.ndarray) -> np.ndarray:
    """Factor on the checkout probability of sessions starting at `ts_us` (flash sales)."""
    return _product(b.incidents.conversion, ts_us)


def latency_factor(b: Behaviour, platform_codes: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Factor on the latency of events on each platform at each instant (latency degradations)."""
    return _product(b.incidents.latency_degradation, ts_us, np.asarray(platform_codes))


def extra_transit_days(b: Behaviour, carrier_codes: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """Extra days in transit of parcels of each carrier shipped at each instant (carrier delays)."""
    w = b.incidents.carrier_delay
    carrier_codes = np.asarray(carrier_codes)
    out = np.zeros(np.broadcast_shapes(carrier_codes.shape, np.shape(ts_us)))
    for i in range(len(w)):
        out = out + np.where(_covers(w, i, ts_us, carrier_codes), w.value[i], 0.0)
    return out
