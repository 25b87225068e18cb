"""Random streams keyed by what they generate, never by which process happens to run them.

`rng(seed, purpose, *keys)` gives an independent numpy Generator per (seed, purpose, shard, block...);
`hash_uniform(seed, purpose, index)` gives a counter-based uniform per element of an index array, so a customer's
attributes are a pure function of (seed, customer index) wherever that customer is drawn.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from statistics import NormalDist

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
    z = x.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def hash_u64(seed: int, purpose: str, index: np.ndarray) -> np.ndarray:
    key = mix64(np.array([(seed & 0xFFFFFFFFFFFFFFFF) ^ (_purpose_code(purpose) << 32)], dtype=np.uint64))[0]
    return mix64(index.astype(np.uint64) * _GOLDEN + key)


def hash_uniform(seed: int, purpose: str, index: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1), one per index, a pure function of (seed, purpose, index)."""
    return (hash_u64(seed, purpose, index) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from a discrete distribution given its cumulative weights (last = total) and uniforms."""
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


QUANTILES = 4096


@lru_cache(maxsize=32)
def lognormal_quantiles(sigma: float) -> np.ndarray:
    """exp(sigma * z) at QUANTILES evenly spaced quantiles of the standard normal (median 1).

    Drawing an integer index into this table gives a lognormal variate at a fraction of the cost of a normal
    draw and an exp per element; 4096 levels are far finer than anything the data is read at.
    """
    inv = NormalDist().inv_cdf
    z = np.array([inv((i + 0.5) / QUANTILES) for i in range(QUANTILES)])
    return np.exp(sigma * z)
