"""The core's columnar event batch (parallel numpy arrays, one element per event, before any strings exist),
and the helpers that turn its integer keys into dictionary-encoded Arrow columns."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

US = 1
SECOND = 1_000_000 * US
HOUR = 3600 * SECOND
DAY = 24 * HOUR
WAT_OFFSET = HOUR  # West Africa Time is UTC+1 all year
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def stable_order(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, kind="stable")` of int64 keys: when the keys' range and the positions fit in 63 bits
    together, the packed (key, position) pairs are sorted as plain integers (a vectorised sort, several times
    faster than a stable argsort) and the positions read back; ties keep their order either way."""
    n = keys.size
    if n < 2:
        return np.arange(n, dtype=np.int64)
    lo, hi = int(keys.min()), int(keys.max())
    shift = (n - 1).bit_length()
    if (hi - lo).bit_length() + shift > 63:
        return np.argsort(keys, kind="stable")
    packed = (keys - lo) << shift
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    packed &= (1 << shift) - 1
    return packed


@dataclass
class Events:
    """Events as codes: strings (identities, tracking numbers) are attached only when a part is built."""

    ts: np.ndarray  # int64 microseconds since the epoch, UTC
    type: np.ndarray  # int8 event code (schema.EVENT_CODE)
    customer: np.ndarray  # int64 global customer index
    platform: np.ndarray  # int8 platform code
    amount: np.ndarray  # int64 kobo, -1 where null
    method: np.ndarray  # int8 payment method code, -1 where null
    order: np.ndarray  # int64 shard-local order number, -1 where the event belongs to no order
    origin: np.ndarray  # int64 start of the session the event comes from (for fulfilment: the order's session)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx: np.ndarray | slice) -> Events:
        """The events at `idx` (an index array: copies; a slice: views)."""
        return Events(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Events)})


def distinct_positions(keys: np.ndarray, universe: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct non-negative keys (sorted) and, per element, its position among them (-1 for negatives)."""
    used = np.zeros(universe, bool)
    valid = keys >= 0
    used[keys[valid]] = True
    rank = np.cumsum(used) - 1
    return np.flatnonzero(used), np.where(valid, rank[np.maximum(keys, 0)], -1)


def dictionary(codes: np.ndarray, values: pa.Array, checked: bool = True) -> pa.DictionaryArray:
    """A dictionary-encoded Arrow column from integer codes into `values` (negative codes give null).

    `checked=False` skips Arrow's bounds check of every code, for codes made in range by construction."""
    mask = codes < 0
    indices = pa.array(codes.astype(np.int32, copy=False), pa.int32(), mask=mask if mask.any() else None)
    return pa.DictionaryArray.from_arrays(indices, values, safe=checked)


def sparse_strings(codes: np.ndarray, values: tuple[str, ...]) -> pa.Array:
    """A plain string column from integer codes into a few `values` (negative codes give null), built from
    buffers: for mostly-null columns this is several times cheaper than an Arrow take."""
    encoded = [v.encode() for v in values]
    lengths = np.array([len(v) for v in encoded], np.int32)
    starts = np.cumsum(lengths) - lengths
    valid = codes >= 0
    kept = codes[valid]
    row_length = np.zeros(codes.size, np.int32)
    row_length[valid] = lengths[kept]
    offsets = np.zeros(codes.size + 1, np.int32)
    np.cumsum(row_length, out=offsets[1:])
    flat = np.frombuffer(b"".join(encoded), np.uint8)
    value_length = lengths[kept]
    first_byte = np.cumsum(value_length) - value_length
    byte_index = np.repeat(starts[kept] - first_byte, value_length) + np.arange(int(value_length.sum()))
    data = flat[byte_index] if byte_index.size else np.zeros(0, np.uint8)
    nulls = int(codes.size - kept.size)
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(
        pa.string(), codes.size, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls
    )
