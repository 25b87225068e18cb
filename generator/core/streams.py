"""Random streams keyed by what they generate, never by which process happens to run them.

`rng(seed, purpose, *keys)` gives an independent numpy Generator per (seed, purpose, shard, block...);
`hash_uniform(seed, purpose, index)` gives a counter-based uniform per element of an index array, so a customer's
attributes are a pure function of (seed, customer index) wherever that customer is drawn.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _purpose_code(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


def rng(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """An independent generator for one unit of work: (seed, purpose, keys...) -> a fixed stream."""
    ss = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, _purpose_code(purpose), *keys])
    return np.random.Generator(np.random.PCG64(ss))


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over a uint64 array: a bijection with good avalanche."""
    return _mix64_in_place(x.astype(np.uint64, copy=True))


def _mix64_in_place(z: np.ndarray) -> np.ndarray:
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def hash_u64(seed: int, purpose: str, index: np.ndarray) -> np.ndarray:
    key = mix64(np.array([(seed & 0xFFFFFFFFFFFFFFFF) ^ (_purpose_code(purpose) << 32)], dtype=np.uint64))[0]
    z = np.asarray(index).astype(np.uint64)  # a new array: the steps below work in place
    z *= _GOLDEN
    z += key
    return _mix64_in_place(z)


def hash_uniform(seed: int, purpose: str, index: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), one per index, a pure function of (seed, purpose, index)."""
    h = hash_u64(seed, purpose, index)
    h >>= np.uint64(11)
    u = h.astype(np.float64)
    u *= 1.0 / (1 << 53)
    return u


def hash_normal(seed: int, purpose: str, index: np.ndarray) -> np.ndarray:
    """Standard normals, one per index, a pure function of (seed, purpose, index): Box-Muller from the index's
    uniforms for `purpose` and `purpose/angle`."""
    radius = np.sqrt(-2.0 * np.log1p(-hash_uniform(seed, purpose, index)))
    return radius * np.cos(2.0 * math.pi * hash_uniform(seed, f"{purpose}/angle", index))


def pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from a discrete distribution given its cumulative weights (last = total) and uniforms."""
    return _search(cdf, u, None, lambda miss: u[miss] * cdf[-1])


def segment_pick(cdf: np.ndarray, segment: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw from distribution `segment` of a segmented cdf (distribution s spans [s, s + 1]), returning the flat
    index of the outcome. (s + u can round up to s + 1 for u just below 1 once s > 0: kept below it, so the draw
    stays in its segment.)"""
    if np.shape(segment) != np.shape(u):
        segment, u = np.broadcast_arrays(segment, u)
    return _search(cdf, u, segment, lambda miss: _in_segment(segment[miss] + u[miss], segment[miss]))


def _in_segment(v: np.ndarray, segment: np.ndarray) -> np.ndarray:
    return np.minimum(v, np.nextafter(segment + 1.0, 0.0))


# Both are `searchsorted(cdf, v, side="right")`, clamped to the last index, with v increasing in u. A binary search
# per draw costs tens of nanoseconds; a table of the answer for each of M equal slices of u (per segment) gives it
# at once wherever the slice holds no step of the cdf, and the search runs only for draws in the others (about
# one in M / steps). The answers are the search's own, bit for bit: the slice's edges are computed as the draws
# are (s + u, or u * total, at u = b / M), and rounding is monotone, so a draw in a slice lies between its edges.
_lookups: dict[tuple[bytes, bool], tuple[int, np.ndarray]] = {}


def _lookup(cdf: np.ndarray, segmented: bool) -> tuple[int, np.ndarray]:
    key = (cdf.tobytes(), segmented)
    found = _lookups.get(key)
    if found is None:
        segments = int(cdf[-1] + 0.5) if segmented else 1
        m = 4096 if segments == 1 else 1024 if segments <= 64 else 256
        b = np.arange(m + 1) / m
        if segmented:
            s = np.arange(segments)[:, None]
            edges = _in_segment(s + b[None, :], s)
        else:
            edges = (b * cdf[-1])[None, :]
        at = np.searchsorted(cdf, edges.ravel(), side="right").reshape(segments, m + 1)
        table = np.where(at[:, :-1] == at[:, 1:], np.minimum(at[:, :-1], len(cdf) - 1), -1).astype(np.int32)
        if len(_lookups) >= 256:
            _lookups.clear()
        found = _lookups[key] = (m, table.ravel())
    return found


def _search(cdf: np.ndarray, u: np.ndarray, segment: np.ndarray | None, value_at) -> np.ndarray:
    """`value_at(miss)`: the searched values of the draws at `miss` (only those the table does not answer are
    worked out: most draws need none)."""
    m, table = _lookup(cdf, segment is not None)
    slot = (u * m).astype(np.int64)
    if segment is not None:
        slot += segment * m
    out = table[slot].astype(np.int64)
    miss = np.flatnonzero(out < 0)
    if miss.size:
        out[miss] = np.minimum(np.searchsorted(cdf, value_at(miss), side="right"), len(cdf) - 1)
    return out
